/* Nothing fails silently when the broker goes away (operators issue):
 * with the broker SIGKILLed for three seconds, a service process and an
 * idle adapter process each log that they lost it, and that it is back
 * with how long it was gone; a service given an endpoint where no broker
 * listens says so within seconds instead of waiting in silence; a service
 * far behind the log's head says so, and again when it caught up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "client.h"
#include "fileio.h"
#include "harness.h"
#include "scenario.h"
#include "service.h"

#define FIXTURE SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json"
#define OUTAGE_MS 3000

typedef struct {
    char log[600];
    pid_t pid;
} proc_t;

static proc_t svc, astray;
static adapter_t adapter;

static void spawn(proc_t *p, const char *tag, const char *const *args)
{
    snprintf(p->log, sizeof p->log, "%s/%s.log", H->dir, tag);
    p->pid = harness_spawn(p->log, args);
    assert_true(p->pid > 0);
}

static void reap(proc_t *p)
{
    if (p->pid <= 0) return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

/* Waits (up to limit_ms) until the file holds needle; the text from
 * there (caller frees), or NULL. */
static char *wait_for(const char *path, const char *needle, int limit_ms)
{
    for (int waited = 0; waited <= limit_ms; waited += 100) {
        size_t len;
        char *text = schakel_file_read(path, 1 << 20, &len);
        char *at = text ? strstr(text, needle) : NULL;
        if (at) {
            char *copy = strdup(at);
            free(text);
            return copy;
        }
        free(text);
        usleep(100000);
    }
    return NULL;
}

/* The gone_ms of the event=broker_back that follows event=broker_lost in
 * the file: fails the test when either line is missing. */
static long long gone_ms(const char *path)
{
    char *lost = wait_for(path, "event=broker_lost", 10000);
    if (!lost) fail_msg("%s: no event=broker_lost", path);
    free(lost);
    for (int waited = 0; waited <= 20000; waited += 100) {
        char *from = wait_for(path, "event=broker_lost", 0);
        char *back = from ? strstr(from, "event=broker_back") : NULL;
        char *g = back ? strstr(back, "gone_ms=") : NULL;
        long long ms = g ? atoll(g + 8) : -1;
        free(from);
        if (g) return ms;
        usleep(100000);
    }
    fail_msg("%s: no event=broker_back after event=broker_lost", path);
    return -1;
}

static void lost_and_back_are_logged_with_the_time_gone(void **state)
{
    (void)state;
    const char *routing[] = {"routing", "--node", H->data, NULL};
    spawn(&svc, "routing", routing);
    adapter_init(&adapter, NULL, "school-12ab00", FIXTURE, NULL);
    adapter_start_ready(&adapter);
    char *up = wait_for(svc.log, "event=started", 10000);
    assert_non_null(up);
    free(up);
    usleep(500000); /* both handshakes done */

    harness_stop(H, SIGKILL);
    usleep(OUTAGE_MS * 1000);
    assert_int_equal(harness_start(H), 0);

    long long s = gone_ms(svc.log), a = gone_ms(adapter.log);
    printf("broker gone for %d ms: the routing service logged gone_ms=%lld, the idle adapter %lld\n",
           OUTAGE_MS, s, a);
    assert_true(s >= OUTAGE_MS - 500 && s < 60000);
    assert_true(a >= OUTAGE_MS - 500 && a < 60000);
    assert_int_equal(adapter_stop(&adapter, SIGTERM), 0);
    reap(&svc);
}

/* n signals from a school, in batches of 500, each ACKed. */
static void publish_many(size_t n)
{
    schakel_client_t *c = harness_client(H, "school-12ab00");
    assert_non_null(c);
    for (size_t done = 0; done < n;) {
        uint8_t *bufs[500];
        size_t lens[500], k = n - done < 500 ? n - done : 500;
        for (size_t i = 0; i < k; i++) {
            uint8_t id[16];
            harness_event_id(id);
            harness_signal("school-12ab00", id, (unsigned)(done + i), &bufs[i], &lens[i]);
        }
        assert_int_equal(schakel_client_submit(c, (const uint8_t *const *)bufs, lens, k, NULL, NULL, NULL),
                         0);
        for (size_t i = 0; i < k; i++) free(bufs[i]);
        done += k;
    }
    for (int i = 0; i < 300 && schakel_client_poll(c, 100, NULL, NULL); i++) {
    }
    assert_int_equal(schakel_client_inflight(c), 0);
    schakel_client_destroy(&c);
}

/* A service started more than SCHAKEL_SERVICE_LAG_WARN records behind
 * says so, and says again when it has caught up. */
static void a_service_far_behind_says_so_and_when_it_caught_up(void **state)
{
    (void)state;
    publish_many(SCHAKEL_SERVICE_LAG_WARN * 3 / 2); /* more than a group past the bound */
    const char *feedback[] = {"feedback", "--node", H->data, NULL};
    spawn(&svc, "feedback", feedback);
    char *high = wait_for(svc.log, "event=lag_high", 30000);
    if (!high)
        fail_msg("feedback started %d records behind and said nothing", SCHAKEL_SERVICE_LAG_WARN * 3 / 2);
    free(high);
    char *ok = wait_for(svc.log, "event=lag_ok", 60000);
    if (!ok) fail_msg("feedback never said it caught up");
    free(ok);
    reap(&svc);
}

static void a_wrong_endpoint_is_said_not_waited_on(void **state)
{
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", harness_free_port());
    const char *consent[] = {"consent", "--node", H->data, "--endpoint", ep, NULL};
    spawn(&astray, "astray", consent);
    char *said = wait_for(astray.log, "event=broker_unreachable", 15000);
    if (!said) fail_msg("a service without a broker at %s said nothing in 15 s", ep);
    assert_non_null(strstr(said, ep));
    free(said);
    reap(&astray);
}

static int setup(void **state)
{
    (void)state;
    H = harness_new_node();
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "--no-services");
    return harness_start(H);
}

static int teardown(void **state)
{
    (void)state;
    reap(&svc);
    reap(&astray);
    (void)adapter_stop(&adapter, SIGKILL);
    harness_destroy(&H);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lost_and_back_are_logged_with_the_time_gone),
        cmocka_unit_test(a_wrong_endpoint_is_said_not_waited_on),
        cmocka_unit_test(a_service_far_behind_says_so_and_when_it_caught_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
