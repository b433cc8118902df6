/* Failover of the jetstream log: three publishers keep sending to a broker
 * whose log is a replicated stream on a real three-node NATS cluster, and
 * the stream's leader is SIGKILLed under them. Every event that was ACKed
 * is on the log exactly once at the seq its ACK named, the chain verifies,
 * the stream holds exactly the local index's records; the test prints the
 * counts and how long no ACK came (the failover time). Then the broker is
 * SIGKILLed three times under the same load and restarted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../integration/harness.h"
#include "../integration/nats_cluster.h"
#include "acked.h"
#include "store_audit.h"

#define PUBLISHERS 3
#define STREAM "SCHAKEL_FAILOVER"

static nats_cluster_t *C;
static harness_t *H;
static acked_run_t *run;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits until the ACK count grew by more than `by` (the batches that were
 * in flight at the kill are not yet proof of a new leader); the ms waited,
 * or -1 after limit_ms. */
static long long wait_acks(size_t from, size_t by, long long limit_ms)
{
    long long t0 = now_ms();
    while (acked_count(run) <= from + by) {
        if (now_ms() - t0 > limit_ms) return -1;
        usleep(5000);
    }
    return now_ms() - t0;
}

/* No ACK for a minute: what the broker and the servers were doing, on
 * stderr (the broker's threads under gdb when there is one, the store's
 * lines of its log, each server's view of the stream). */
static void stalled(void)
{
    fprintf(stderr, "jetstream failover: no ACK for 60 s: the broker's threads, log and the servers' view\n");
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null && gdb -p %d -batch -ex 'thread apply all bt' 2>&1 | "
             "grep -E '^(Thread|#)' | cut -c1-160 >&2; grep -E 'event=(append_failed|stream_|jetstream_)' "
             "%s/broker.log | "
             "tail -n 25 >&2",
             (int)H->broker, H->dir);
    if (system(cmd) != 0) fprintf(stderr, "jetstream failover: (gdb or the broker's log not there)\n");
    nats_cluster_dump(C, STREAM);
}

static void acked_events_survive_killing_the_stream_leader(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    const char *orgs[PUBLISHERS] = {"school-a", "smw-b", "school-a"};
    run = acked_start(H, orgs, PUBLISHERS);
    assert_non_null(run);
    assert_true(wait_acks(0, 200, 30000) >= 0);
    for (int round = 0; round < 2; round++) {
        int leader = nats_cluster_stream_leader(C, STREAM, 5000);
        assert_true(leader >= 0);
        size_t at_kill = acked_count(run);
        nats_cluster_kill(C, leader);
        long long t = wait_acks(at_kill, 3 * 20 * PUBLISHERS, 60000);
        if (t < 0) stalled();
        int next = nats_cluster_stream_leader(C, STREAM, 10000);
        printf("jetstream failover: round %d: SIGKILL of stream leader n%d with %zu ACKed; ACKs again after "
               "%lld "
               "ms; new leader n%d\n",
               round + 1, leader + 1, at_kill, t, next + 1);
        assert_true(t >= 0);
        assert_true(next >= 0 && next != leader);
        size_t before = acked_count(run);
        assert_true(wait_acks(before, 100, 30000) >= 0);
        assert_int_equal(nats_cluster_restart(C, leader), 0);
        /* the next round kills a leader: only once the restarted server
         * has caught up is a current majority left after that */
        long long caught_up = nats_cluster_stream_current(C, STREAM, 60000);
        printf("jetstream failover: n%d current again after %lld ms\n", leader + 1, caught_up);
        assert_true(caught_up >= 0);
    }
    /* and the broker itself, at random moments: what reached the stream
     * but not its index is applied when it starts again */
    srand((unsigned)time(NULL));
    for (int round = 0; round < 3; round++) {
        usleep((useconds_t)(200000 + rand() % 800000));
        harness_stop(H, SIGKILL);
        assert_int_equal(harness_start(H), 0);
    }
    assert_true(wait_acks(acked_count(run), 100, 30000) >= 0);
    acked_stop(run);
    printf("jetstream failover: %zu events ACKed, %lu batches timed out\n", acked_count(run),
           acked_timeouts(run));
    acked_check(run, H, "jetstream failover", true);
    assert_int_equal(harness_shutdown(H), 0);
    char log[512];
    snprintf(log, sizeof log, "%s/log", H->data);
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(log, NULL, NULL, &r), 0);
    unsigned long long last = nats_cluster_stream_last(C, STREAM);
    printf("jetstream failover: chain verifies: %llu records; the stream's last seq %llu\n",
           (unsigned long long)r.head, last);
    assert_int_equal(last, r.head);
    const char *args[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);
    acked_free(&run);
}

static int setup(void **state)
{
    (void)state;
    C = nats_cluster_start();
    if (!C) return -1;
    H = harness_new();
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "--log");
    int n = snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "%s/failover", C->url);
    return n < (int)sizeof H->extra_args[0] ? 0 : -1;
}

/* Runs also when an assertion failed: no broker or server outlives it. */
static int teardown(void **state)
{
    (void)state;
    acked_halt(run);
    harness_destroy(&H);
    nats_cluster_destroy(&C);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acked_events_survive_killing_the_stream_leader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
