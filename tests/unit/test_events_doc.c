/* docs/events.md is a contract: every ```json block in it must parse as an
 * event and validate as the broker would, and every event type must have
 * at least one such example. A documented example that the bus would
 * reject is a bug in the docs or in the validator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "json.h"
#include "validate.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static void every_example_validates_and_every_type_has_one(void **state)
{
    (void)state;
    char *doc = read_all(SCHAKEL_SOURCE_DIR "/docs/events.md");
    assert_non_null(doc);
    int seen[SCHAKEL_MAX_BATCH_EVENTS] = {0};
    size_t examples = 0;
    for (char *p = strstr(doc, "```json\n"); p; p = strstr(p, "```json\n")) {
        char *start = p + 8, *end = strstr(start, "\n```");
        assert_non_null(end);
        size_t line = 1;
        for (char *q = doc; q < start; q++) line += *q == '\n';
        char why[SCHAKEL_ERRLEN] = "";
        schakel_envelope_t *e = schakel_json_parse_envelope(start, (size_t)(end - start), why);
        if (!e) fail_msg("docs/events.md:%zu: example does not parse: %s", line, why);
        uint8_t id[16] = {0x5c, 0x4a, 0x1e};
        if (!e->event_id.len) { /* publishers add one; examples may leave it out */
            e->event_id.data = id;
            e->event_id.len = 16;
        }
        if (schakel_envelope_validate(e, why) != 0)
            fail_msg("docs/events.md:%zu: example would be rejected: %s", line, why);
        if (e->type > 0 && e->type < SCHAKEL_MAX_BATCH_EVENTS) seen[e->type] = 1;
        if (e->event_id.data == id) e->event_id.len = 0, e->event_id.data = NULL;
        schakel_envelope_free(e);
        examples++;
        p = end + 4;
    }
    const int *types;
    size_t n = schakel_event_types(&types);
    for (size_t i = 0; i < n; i++)
        if (!seen[types[i]])
            fail_msg("docs/events.md has no example of %s", schakel_event_type_name(types[i]));
    assert_true(examples >= n);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_example_validates_and_every_type_has_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
