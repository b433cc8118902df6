/* Power-cut test: publishers keep sending while the broker is SIGKILLed
 * at random moments, and each time its log file is replaced by what a
 * power cut would have left on disk (tests/crash/powercut.c, preloaded
 * into the broker: the file as of its last flush, plus writes made with
 * O_DSYNC). Then it is started again. Afterwards every event that was
 * ever ACKed is in the log exactly once, at the seq its ACK named, and
 * the chain verifies. This is what holds the broker to sending an ACK
 * only once the commit's meta page is flushed, not just its data pages
 * (docs/architecture.md, "Group commit"). Seed: SCHAKEL_CRASH_SEED;
 * rounds: SCHAKEL_CRASH_ROUNDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../integration/harness.h"
#include "acked.h"
#include "fileio.h"

#define PUBLISHERS 3

static harness_t *H;
static acked_run_t *run;

/* What the disk holds after the cut becomes the log; no image: nothing
 * was ever flushed, so there is no log. */
static void power_cut(const char *logdir)
{
    char db[SCHAKEL_PATH_MAX], img[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN];
    assert_int_equal(schakel_path_join(db, sizeof db, logdir, "data.mdb", why), 0);
    assert_int_equal(schakel_path_fmt(img, sizeof img, why, "%s.durable", db), 0);
    if (rename(img, db) != 0) unlink(db);
}

static void acked_events_survive_power_cuts(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 10;
    printf("power-cut test: seed=%u rounds=%d\n", seed, rounds);
    srand(seed);
    char logdir[PATH_MAX + 8], real[PATH_MAX];
    mkdir(H->data, 0700); /* the broker takes it as it finds it */
    assert_non_null(realpath(H->data, real));
    snprintf(logdir, sizeof logdir, "%s/log", real);
    /* only the broker children get the model, through their environment */
    setenv("SCHAKEL_POWERCUT_DIR", logdir, 1);
    setenv("LD_PRELOAD", SCHAKEL_POWERCUT_LIB, 1);
    char asan[512];
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0",
             getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "", getenv("ASAN_OPTIONS") ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    assert_int_equal(harness_start(H), 0);
    const char *orgs[PUBLISHERS] = {"school-a", "smw-b", "school-a"};
    run = acked_start(H, orgs, PUBLISHERS);
    assert_non_null(run);

    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(100000 + rand() % 600000));
        harness_stop(H, SIGKILL);
        power_cut(logdir);
        assert_int_equal(harness_start(H), 0);
    }
    usleep(500000);
    acked_stop(run);
    unsetenv("LD_PRELOAD");
    printf("power-cut test: %zu events acked\n", acked_count(run));
    assert_true(acked_count(run) > 0);

    /* The missing are counted, so the failure says how many were lost. */
    size_t missing = acked_check(run, H, "power-cut test", false);
    if (missing)
        fail_msg("%zu of %zu ACKed events are missing after the power cuts", missing, acked_count(run));

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

static int teardown(void **state)
{
    (void)state;
    acked_halt(run);
    unsetenv("LD_PRELOAD");
    harness_destroy(&H);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acked_events_survive_power_cuts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
