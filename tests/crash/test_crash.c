/* Crash test: publishers keep sending while the broker is SIGKILLed at
 * random moments and restarted, many times. Afterwards every event that
 * was ever ACKed is in the log exactly once, at the seq its ACK named, and
 * the chain verifies. Seed: SCHAKEL_CRASH_SEED; rounds: SCHAKEL_CRASH_ROUNDS. */
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
#include <time.h>
#include <unistd.h>

#include "../integration/harness.h"
#include "acked.h"

#define PUBLISHERS 3

static harness_t *H;
static acked_run_t *run;

static void acked_events_survive_sigkill(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 15;
    printf("crash test: seed=%u rounds=%d\n", seed, rounds);
    srand(seed);
    assert_int_equal(harness_start(H), 0);
    const char *orgs[PUBLISHERS] = {"school-a", "smw-b", "school-a"};
    run = acked_start(H, orgs, PUBLISHERS);
    assert_non_null(run);

    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(100000 + rand() % 600000));
        harness_stop(H, SIGKILL);
        usleep((useconds_t)(rand() % 200000));
        assert_int_equal(harness_start(H), 0);
    }
    usleep(500000);
    acked_stop(run);
    printf("crash test: %zu events acked, %lu batches timed out\n", acked_count(run), acked_timeouts(run));
    assert_true(acked_count(run) > 0);

    /* Read the whole log back through the broker; a missing event fails at once. */
    acked_check(run, H, "crash test", true);

    assert_int_equal(harness_shutdown(H), 0);
    const char *args[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);
    acked_free(&run);
}

static int setup(void **state)
{
    (void)state;
    H = harness_new();
    return 0;
}

/* Runs also when an assertion failed: no broker outlives the test. */
static int teardown(void **state)
{
    (void)state;
    acked_halt(run);
    harness_destroy(&H);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acked_events_survive_sigkill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
