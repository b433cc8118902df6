/* schakel top --once against a small HTTP server of the test's own
 * (libmicrohttpd) serving committed /metrics texts (tests/fixtures/
 * metrics/): real HTTP, real parsing. The frame shows the broker up,
 * the log's records per second from the two readings, events by type,
 * lag per service, held, denied and rejected by reason, overdue loops,
 * the services' refused decisions and the adapter's row (outbox, dead
 * letters, error code); what the node does not serve is "unknown"; a
 * server that does not answer is exit status 1 with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define FIXTURES SCHAKEL_SOURCE_DIR "/tests/fixtures/metrics/"

typedef struct {
    char *text[2];
    size_t len[2];
    atomic_int served;
} fixture_t;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

/* GET /metrics: the first reading, then the second for every later one. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state)
{
    (void)version, (void)data, (void)size, (void)state;
    fixture_t *fx = cls;
    int ok = !strcmp(method, "GET") && !strcmp(url, "/metrics");
    int k = ok ? atomic_fetch_add(&fx->served, 1) : 0;
    struct MHD_Response *r =
        ok ? MHD_create_response_from_buffer(fx->len[k ? 1 : 0], fx->text[k ? 1 : 0], MHD_RESPMEM_PERSISTENT)
           : MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result rc = MHD_queue_response(c, ok ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
    MHD_destroy_response(r);
    return rc;
}

static int run_top(const char *addr, char **out, char **err)
{
    char dir[] = "/tmp/schakel-top-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *args[] = {"top", "--http", addr, "--once", NULL};
    int rc = harness_run_captured(dir, args, out, err);
    char path[64];
    snprintf(path, sizeof path, "%s/out", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/err", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}

/* schakel top --once against a server of the two readings first and
 * second: its output in *out (it exits 0). */
static void top_of(const char *first, const char *second, fixture_t *fx, char **out)
{
    fx->text[0] = slurp(first, &fx->len[0]);
    fx->text[1] = slurp(second, &fx->len[1]);
    int port = harness_free_port();
    assert_true(port > 0);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                                            on_request, fx, MHD_OPTION_END);
    assert_non_null(d);
    char addr[32], *err = NULL;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int rc = run_top(addr, out, &err);
    MHD_stop_daemon(d);
    if (rc != 0) fail_msg("exit %d: %s", rc, err ? err : "");
    free(err);
}

static void once_shows_the_nodes_picture_from_its_metrics(void **state)
{
    (void)state;
    fixture_t fx = {0};
    char *out = NULL;
    top_of(FIXTURES "node-1.prom", FIXTURES "node-2.prom", &fx, &out);
    assert_int_equal(atomic_load(&fx.served), 2); /* two readings, for the rates */
    const char *want[] = {
        "broker    UP  orgs connected 9  checkpoint 12 s ago  fsync mean 2.50 ms\n",
        "log       48310 records  ", /* then the rate: 100 records over about a second */
        "events      signal ",
        "  referral 0.0/s (40)",
        "lag         routing 0 (oldest 0 s)  consent 17 (oldest 4 s)  feedback 3 (oldest 1 s)\n",
        "held        no_consent 6\n",
        "denied      purpose_not_covered 1\n",
        "rejected    not_allowed 2\n",
        "overdue     wijkteam-zuid 2  smw-farent 0\n",
        "refused     routing/not_allowed 1\n",
        "school-12ab00",
        "events_rejected",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) fail_msg("missing \"%s\" in:\n%s", want[i], out);
    /* the adapter's row: outbox 120, 3 h oldest, 4 dead letters */
    const char *row = strstr(out, "          school-12ab00");
    assert_non_null(row);
    char name[64], heard[16], unit[8], oldest[16], ounit[8], code[32];
    double depth, dead;
    assert_int_equal(sscanf(row, "%63s %15s %7s %lf %15s %7s %lf %31s", name, heard, unit, &depth, oldest,
                            ounit, &dead, code),
                     8);
    assert_int_equal((int)depth, 120);
    assert_string_equal(oldest, "3"), assert_string_equal(ounit, "h");
    assert_int_equal((int)dead, 4);
    assert_string_equal(code, "events_rejected");
    /* the log's rate is positive: 100 more records in the second reading */
    const char *log = strstr(out, "log       48310 records  ");
    double r = strtod(log + strlen("log       48310 records  "), NULL);
    assert_true(r > 0);
    free(out), free(fx.text[0]), free(fx.text[1]);
}

/* What the node does not serve (the broker's own figures for a monitor
 * that PINGs as an organisation, held and denied without the master key,
 * the log when it cannot be read) is "unknown", never a 0 that looks
 * like a quiet bus; a family served without a sample is "none". */
static void once_says_unknown_for_what_the_node_does_not_serve(void **state)
{
    (void)state;
    fixture_t fx = {0};
    char *out = NULL;
    top_of(FIXTURES "node-org.prom", FIXTURES "node-org.prom", &fx, &out);
    const char *want[] = {
        "broker    UP  orgs connected unknown  checkpoint unknown  fsync mean unknown\n",
        "log       unknown\n",
        "events      none\n",
        "lag         routing 0 (oldest 0 s)\n",
        "held        unknown\n",
        "denied      unknown\n",
        "rejected    unknown\n",
        "overdue     unknown\n",
        "refused     none\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) fail_msg("missing \"%s\" in:\n%s", want[i], out);
    free(out), free(fx.text[0]), free(fx.text[1]);
}

static void a_node_that_does_not_answer_is_exit_1(void **state)
{
    (void)state;
    int port = harness_free_port();
    char addr[32], *out = NULL, *err = NULL;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(run_top(addr, &out, &err), 1);
    assert_non_null(strstr(err, "schakel top: http://"));
    assert_non_null(strstr(err, "/metrics does not answer"));
    free(out), free(err);
    const char *bad[] = {"top", "--http", "127.0.0.1:7480/x", "--once", NULL};
    char dir[] = "/tmp/schakel-top-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(harness_run_captured(dir, bad, &out, &err), 2);
    assert_non_null(strstr(err, "--http wants ADDR:PORT"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(once_shows_the_nodes_picture_from_its_metrics),
        cmocka_unit_test(once_says_unknown_for_what_the_node_does_not_serve),
        cmocka_unit_test(a_node_that_does_not_answer_is_exit_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
