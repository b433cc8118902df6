/* Fuzzes what the broker does with each event of a PUBLISH before it is
 * stored: decode with the size cap into an arena, validate; and, for an
 * event that validates, what clients do with it: JSON out and back in
 * (`schakel tail`, `schakel publish`), encode and decode again. Properties:
 * no crash or sanitizer report; a valid event stays valid through both
 * round trips. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "codec.h"
#include "error.h"
#include "json.h"
#include "validate.h"

#define CHECK(c, ...)                     \
    do {                                  \
        if (!(c)) {                       \
            fprintf(stderr, __VA_ARGS__); \
            abort();                      \
        }                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static schakel_arena_t *arena;
    if (!arena) arena = schakel_arena_new(0);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *e = schakel_envelope_decode_with(data, size, schakel_arena_allocator(arena), why);
    if (!e) {
        CHECK(why[0], "decode failed without a reason\n");
        schakel_arena_reset(arena);
        return 0;
    }
    int valid = schakel_envelope_validate(e, why) == 0;
    CHECK(valid || why[0], "validate failed without a reason\n");
    schakel_envelope_body(e);
    schakel_body_bytes(e, "referral_id");
    schakel_body_string(e, "reason");
    if (valid) {
        json_t *j = schakel_json_from_envelope(e);
        CHECK(j, "a valid event has no JSON form\n");
        char *text = json_dumps(j, JSON_COMPACT);
        CHECK(text, "JSON form does not dump\n");
        schakel_envelope_t *back = schakel_json_parse_envelope(text, strlen(text), why);
        CHECK(back, "JSON form of a valid event does not parse back: %s\n%s\n", why, text);
        CHECK(schakel_envelope_validate(back, why) == 0,
              "JSON form of a valid event does not validate: %s\n%s\n", why, text);
        schakel_envelope_free(back);
        free(text);
        json_decref(j);

        uint8_t *buf = NULL;
        size_t len = 0;
        if (schakel_envelope_encode(e, &buf, &len) == 0) {
            schakel_envelope_t *again = schakel_envelope_decode(buf, len, why);
            CHECK(again, "re-encoded valid event does not decode: %s\n", why);
            CHECK(schakel_envelope_validate(again, why) == 0,
                  "re-encoded valid event does not validate: %s\n", why);
            schakel_envelope_free(again);
            free(buf);
        }
    }
    schakel_arena_reset(arena);
    return 0;
}
