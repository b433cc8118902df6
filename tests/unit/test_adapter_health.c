/* lib/adapter_health.c: the latest adapter_status per organisation, from
 * records as the log gives them, rendered as the adapter metrics in
 * Prometheus text: one line per organisation and metric, the error code
 * as a label, a status read late changes nothing, other records and
 * erased ones are passed over, and nothing of a child's event shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_health.h"
#include "json.h"

#define PSEUDONYM "d46d6d4723da9cb9d99298aa26175ce1a80b76fa9c13b9a5d91a4d7f31748886"

static schakel_envelope_t *status_of(const char *org, int depth, int oldest, int dead, const char *code)
{
    char text[1024], why[SCHAKEL_ERRLEN] = "";
    snprintf(text, sizeof text,
             "{\"type\":\"adapter_status\",\"source_org\":\"%s\",\"occurred_at\":\"2027-01-11T08:15:00Z\","
             "\"purpose\":\"bus\",\"legal_basis\":\"bus\",\"adapter_status\":{\"outbox_depth\":%d,"
             "\"oldest_unacked_seconds\":%d,\"dead_letters\":%d,\"last_error\":\"%s\","
             "\"adapter_version\":\"0.24.0\"}}",
             org, depth, oldest, dead, code);
    schakel_envelope_t *e = schakel_json_parse_envelope(text, strlen(text), why);
    if (!e) fail_msg("%s", why);
    return e;
}

static int note(adapter_health_t *h, schakel_envelope_t *e, uint64_t seq, int64_t at)
{
    schakel_logrec_t rec = {
        .seq = seq, .recorded_at = at, .now = at, .env = e, .source_org = e ? e->source_org : ""};
    int rc = adapter_health_note(h, &rec);
    schakel_envelope_free(e);
    return rc;
}

static char *render(adapter_health_t *h)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(adapter_health_prometheus(h, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void the_latest_status_of_each_adapter_becomes_its_metrics(void **state)
{
    (void)state;
    adapter_health_t *h = adapter_health_new();
    assert_int_equal(note(h, status_of("school-12ab00", 3, 40, 0, "none"), 10, 1799999000123), 1);
    assert_int_equal(note(h, status_of("smw-farent", 0, 0, 0, "none"), 11, 1799999001000), 1);
    assert_int_equal(note(h, status_of("school-12ab00", 120, 10800, 4, "events_rejected"), 20, 1800000000500),
                     1);
    /* one read late (a lower seq) changes nothing */
    assert_int_equal(note(h, status_of("school-12ab00", 1, 1, 1, "outbox"), 15, 1800000000900), 0);
    assert_int_equal(adapter_health_count(h), 2);
    char *out = render(h);
    const char *want[] = {
        "# TYPE schakel_adapter_last_status_timestamp_seconds gauge\n",
        "schakel_adapter_last_status_timestamp_seconds{org=\"school-12ab00\"} 1800000000.500\n",
        "schakel_adapter_last_status_timestamp_seconds{org=\"smw-farent\"} 1799999001.000\n",
        "# TYPE schakel_adapter_outbox_depth gauge\n",
        "schakel_adapter_outbox_depth{org=\"school-12ab00\"} 120\n",
        "schakel_adapter_oldest_unacked_seconds{org=\"school-12ab00\"} 10800\n",
        "schakel_adapter_dead_letters{org=\"school-12ab00\"} 4\n",
        "schakel_adapter_dead_letters{org=\"smw-farent\"} 0\n",
        "# TYPE schakel_adapter_inbox_set_aside gauge\n",
        "schakel_adapter_inbox_set_aside{org=\"smw-farent\"} 0\n",
        "schakel_adapter_info{org=\"school-12ab00\",code=\"events_rejected\"} 1\n",
        "schakel_adapter_info{org=\"smw-farent\",code=\"none\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) fail_msg("missing %s in:\n%s", want[i], out);
    assert_null(strstr(out, "outbox\"")); /* the late one's code */
    /* id order within a metric: school- before smw- */
    assert_true(strstr(out, "dead_letters{org=\"school-12ab00\"}") <
                strstr(out, "dead_letters{org=\"smw-farent\"}"));
    free(out);
    adapter_health_free(&h);
    assert_null(h);
}

static void other_and_erased_records_are_passed_over(void **state)
{
    (void)state;
    adapter_health_t *h = adapter_health_new();
    char why[SCHAKEL_ERRLEN] = "";
    const char *signal =
        "{\"type\":\"signal\",\"source_org\":\"school-12ab00\",\"occurred_at\":\"2026-11-20T09:30:00Z\","
        "\"subject\":\"" PSEUDONYM "\",\"case_ref\":\"CASE-77\",\"purpose\":\"support\","
        "\"legal_basis\":\"consent\",\"signal\":{\"concerns\":[\"behaviour\"],"
        "\"observed_on\":\"2026-11-20\"}}";
    schakel_envelope_t *e = schakel_json_parse_envelope(signal, strlen(signal), why);
    assert_non_null(e);
    assert_int_equal(note(h, e, 1, 1800000000000), 0);
    assert_int_equal(note(h, NULL, 2, 1800000000000), 0); /* an erased payload */
    assert_int_equal(adapter_health_count(h), 0);
    char *out = render(h);
    /* every metric is declared, with no sample yet */
    assert_non_null(strstr(out, "# TYPE schakel_adapter_info gauge\n"));
    assert_null(strstr(out, "school-12ab00"));
    assert_null(strstr(out, PSEUDONYM));
    assert_null(strstr(out, "CASE-77"));
    free(out);
    adapter_health_free(&h);
}

static void an_unknown_code_is_shown_as_unknown(void **state)
{
    (void)state;
    assert_string_equal(adapter_health_code_name(99), "unknown");
    assert_string_equal(adapter_health_code_name(0), "unknown");
    assert_string_equal(adapter_health_code_name(SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_KEY_REFUSED),
                        "key_refused");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_latest_status_of_each_adapter_becomes_its_metrics),
        cmocka_unit_test(other_and_erased_records_are_passed_over),
        cmocka_unit_test(an_unknown_code_is_shown_as_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
