/* Fuzzes events written as JSON (docs/events.md; `schakel publish` and
 * the tests read them): parse to an envelope, validate, encode. Property:
 * no crash or sanitizer report; a failure always has a reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "error.h"
#include "json.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *e = schakel_json_parse_envelope((const char *)data, size, why);
    if (!e) {
        if (!why[0]) abort();
        return 0;
    }
    uint8_t id[16] = {1};
    if (!e->event_id.len) { /* as publishers do */
        e->event_id.data = id;
        e->event_id.len = 16;
    }
    if (schakel_envelope_validate(e, why) != 0 && !why[0]) abort();
    uint8_t *buf = NULL;
    size_t len = 0;
    if (schakel_envelope_encode(e, &buf, &len) == 0) free(buf);
    if (e->event_id.data == id) e->event_id.data = NULL, e->event_id.len = 0;
    schakel_envelope_free(e);
    return 0;
}
