/* Crash test of the services' outbox: a node's broker with the routing
 * and consent services as processes of their own, a steady stream of
 * referrals, and one of the services SIGKILLed at random moments (so with
 * decisions committed in its outbox and not yet ACKed, or ACKed and not
 * yet removed) and started again, several times; every other time the
 * broker is SIGKILLed shortly before the service, so that decisions the
 * service committed meanwhile exist only in its outbox. Afterwards every
 * referral has exactly one routing decision, and one consent decision per
 * recipient that routing named: none lost, none stored twice. And the
 * decisions still follow from the log (`schakel audit replay`). Seed:
 * SCHAKEL_CRASH_SEED; rounds: SCHAKEL_CRASH_ROUNDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "svcload.h"

#define MAX_SENT 100000
#define BATCH 10

static void every_decision_once_across_sigkills(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 8;
    printf("service outbox crash test: seed=%u rounds=%d\n", seed, rounds);
    srand(seed);
    for (int i = 0; i < 2; i++) svc_start_plain(&svcs[i]);
    pthread_t t;
    svcload_publish("outbox-crash", BATCH, MAX_SENT, &t);
    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(200000 + rand() % 700000));
        svc_t *s = &svcs[r % 2];
        if (r % 4 < 2) {
            svc_stop(s, SIGKILL);
            usleep((useconds_t)(rand() % 150000));
            svc_start_plain(s);
            continue;
        }
        /* The broker dies first: what the service commits meanwhile is in
         * its outbox only (the broker lost what it had not appended). */
        harness_stop(H, SIGKILL);
        usleep((useconds_t)(rand() % 400000));
        svc_stop(s, SIGKILL);
        assert_int_equal(harness_start(H), 0);
        svc_start_plain(s);
    }
    usleep(300000);
    size_t n = svcload_join(t);
    uint64_t last = sent[n - 1];
    wait_published("routing", last, 60);
    wait_published("consent", harness_head(H), 60); /* after routing's decisions */

    uint64_t records;
    size_t decisions = every_decision_once(n, &records);
    printf("service outbox crash test: %zu referrals, %zu decisions, %llu records, head %llu\n", n, decisions,
           (unsigned long long)records, (unsigned long long)last);
    /* the kills hit decisions in flight: some were sent again on start */
    printf("service outbox crash test: resent from the outbox: routing %lu, consent %lu\n", resent(&svcs[0]),
           resent(&svcs[1]));
    svcload_replay_equal();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_decision_once_across_sigkills, svcload_setup, svcload_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
