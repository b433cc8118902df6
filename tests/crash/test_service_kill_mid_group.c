/* Crash test of the services' pipeline: a node's broker with the routing
 * and consent services as processes of their own, a steady stream of
 * referrals, and each service SIGKILLed in the middle of a pipelined
 * group, several times: the kill model (tests/crash/svckill.c, preloaded
 * into the service) kills it right before or right after the LMDB commit
 * of a group whose decisions were already sent to the broker, while the
 * groups before it are in flight too. Afterwards every referral has
 * exactly one routing decision, and one consent decision per recipient
 * that routing named: none lost, none stored twice; a service killed
 * after a commit sent its outbox again on restart; and `schakel audit
 * replay` finds the same decisions, byte for byte. Seed:
 * SCHAKEL_CRASH_SEED; kills per service: SCHAKEL_CRASH_ROUNDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svcload.h"

#define MAX_SENT 200000
#define BATCH 20

/* Starts the service; with a kill (kill_at > 0) at its kill_at-th group
 * that sent decisions, before or after that group's commit. */
static void svc_start(svc_t *s, int kill_at, int after)
{
    char n[16];
    snprintf(n, sizeof n, "%d", kill_at);
    if (kill_at) {
        setenv("SCHAKEL_SVCKILL_AT", n, 1);
        setenv("SCHAKEL_SVCKILL_WHEN", after ? "after" : "before", 1);
        setenv("LD_PRELOAD", SCHAKEL_SVCKILL_LIB, 1);
    }
    svc_start_plain(s);
    unsetenv("LD_PRELOAD");
    unsetenv("SCHAKEL_SVCKILL_AT");
    unsetenv("SCHAKEL_SVCKILL_WHEN");
    if (kill_at) s->after += after;
}

/* The end of a service's log, when a test fails. */
static void show_log(const svc_t *s)
{
    FILE *f = fopen(s->log, "r");
    char line[2048];
    printf("--- %s\n", s->log);
    while (f && fgets(line, sizeof line, f)) printf("%s", line);
    if (f) fclose(f);
}

/* Restarts each armed service the model killed (armed again until it
 * was killed `rounds` times) until both are done: whichever dies first,
 * since consent decides on what routing decided, and a routing left dead
 * would starve it. 120 s without a kill fails. */
static void kill_rounds(int rounds)
{
    int64_t idle = 0;
    while (svcs[0].kills < rounds || svcs[1].kills < rounds) {
        int any = 0;
        for (int i = 0; i < 2; i++) {
            svc_t *s = &svcs[i];
            int status = 0;
            if (s->kills >= rounds || waitpid(s->pid, &status, WNOHANG) != s->pid) continue;
            s->pid = 0;
            if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
                show_log(s);
                fail_msg("%s ended with status %d, not by the kill in its group", s->name, status);
            }
            s->kills++;
            int again = s->kills < rounds;
            svc_start(s, again ? 2 + rand() % 8 : 0, s->kills % 2); /* before, after, before, ... */
            any = 1;
        }
        idle = any ? 0 : idle + 10;
        if (idle >= 120000) {
            for (int i = 0; i < 2; i++) show_log(&svcs[i]);
            fail_msg("no service was killed in a group within 120 s: no decisions in flight?");
        }
        usleep(10000);
    }
}

static void every_decision_once_after_kills_mid_group(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 3;
    printf("mid-group kill test: seed=%u kills per service=%d\n", seed, rounds);
    srand(seed);
    pthread_t t;
    svcload_publish("mid-group", BATCH, MAX_SENT, &t);
    for (int i = 0; i < 2; i++) svc_start(&svcs[i], 2 + rand() % 8, 0);
    kill_rounds(rounds);
    usleep(300000);
    size_t n = svcload_join(t);
    wait_published("routing", sent[n - 1], 180);
    wait_published("consent", harness_head(H), 180); /* after routing's decisions */

    size_t decisions = every_decision_once(n, NULL);
    printf("mid-group kill test: %zu referrals, %zu decisions, %d kills after a commit\n", n, decisions,
           svcs[0].after + svcs[1].after);
    /* a kill after a group's commit leaves its decisions in the outbox,
     * whose ACKs are applied only by the next transaction */
    for (int i = 0; i < 2; i++) {
        printf("mid-group kill test: %s resent %lu from its outbox\n", svcs[i].name, resent(&svcs[i]));
        if (svcs[i].after && resent(&svcs[i]) == 0)
            fail_msg("%s was killed after a commit but sent nothing again", svcs[i].name);
    }
    svcload_replay_equal();
}

static int setup(void **state)
{
    char asan[512];
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0",
             getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "", getenv("ASAN_OPTIONS") ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1); /* the model comes before the sanitizer's runtime */
    return svcload_setup(state);
}

/* Runs also when an assertion failed: no process outlives the test. */
static int teardown(void **state)
{
    unsetenv("LD_PRELOAD");
    return svcload_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_decision_once_after_kills_mid_group, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
