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
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../integration/harness.h"
#include "fileio.h"

#define PUBLISHERS 3
#define BATCH 20
#define MAX_ACKED 400000

typedef struct {
    uint8_t id[16];
    uint64_t seq;
} acked_t;

static harness_t *H;
static atomic_int stop_publishing;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static acked_t *acked;
static size_t n_acked;

static void *publisher(void *arg)
{
    const char *org = arg;
    schakel_client_t *c = harness_client(H, org);
    unsigned subject = 0;
    while (!atomic_load(&stop_publishing)) {
        uint8_t *bufs[BATCH], ids[BATCH][16];
        size_t lens[BATCH];
        for (int i = 0; i < BATCH; i++) {
            harness_event_id(ids[i]);
            harness_signal(org, ids[i], subject++ % 50, &bufs[i], &lens[i]);
        }
        Schakel__V1__Ack *ack = NULL;
        if (schakel_client_publish(c, (const uint8_t *const *)bufs, lens, BATCH, &ack, 20000) == 0) {
            pthread_mutex_lock(&lock);
            for (size_t i = 0; i < ack->n_entries && n_acked < MAX_ACKED; i++) {
                if (ack->entries[i]->code != 0) continue;
                memcpy(acked[n_acked].id, ids[i], 16);
                acked[n_acked].seq = ack->entries[i]->seq;
                n_acked++;
            }
            pthread_mutex_unlock(&lock);
            schakel__v1__ack__free_unpacked(ack, NULL);
        }
        for (int i = 0; i < BATCH; i++) free(bufs[i]);
    }
    schakel_client_destroy(&c);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

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
    acked = calloc(MAX_ACKED, sizeof *acked);
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
    pthread_t t[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) pthread_create(&t[i], NULL, publisher, (void *)orgs[i]);

    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(100000 + rand() % 600000));
        harness_stop(H, SIGKILL);
        power_cut(logdir);
        assert_int_equal(harness_start(H), 0);
    }
    usleep(500000);
    atomic_store(&stop_publishing, 1);
    for (int i = 0; i < PUBLISHERS; i++) pthread_join(t[i], NULL);
    unsetenv("LD_PRELOAD");
    printf("power-cut test: %zu events acked\n", n_acked);
    assert_true(n_acked > 0);

    schakel_consumer_t *c = harness_consumer(H, "svc-reader", "all", NULL);
    size_t cap = 1 << 16, n = 0;
    acked_t *logged = malloc(cap * sizeof *logged);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    while (schakel_consumer_next(c, &r, 1000, why) == 0) {
        schakel_envelope_t *env = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(env);
        if (n == cap) logged = realloc(logged, (cap *= 2) * sizeof *logged);
        memcpy(logged[n].id, env->event_id.data, 16);
        logged[n].seq = r->seq;
        n++;
        schakel_envelope_free(env);
    }
    schakel_consumer_destroy(&c);
    printf("power-cut test: %zu records in the log\n", n);
    qsort(logged, n, sizeof *logged, cmp_id);
    for (size_t i = 1; i < n; i++) assert_memory_not_equal(logged[i - 1].id, logged[i].id, 16);
    size_t missing = 0;
    for (size_t i = 0; i < n_acked; i++) {
        acked_t *hit = bsearch(&acked[i], logged, n, sizeof *logged, cmp_id);
        if (!hit) missing++;
        else if (hit->seq != acked[i].seq)
            fail_msg("ACKed event %zu: ACK said seq %llu, the log has it at %llu", i,
                     (unsigned long long)acked[i].seq, (unsigned long long)hit->seq);
    }
    if (missing) fail_msg("%zu of %zu ACKed events are missing after the power cuts", missing, n_acked);

    assert_int_equal(harness_shutdown(H), 0);
    const char *args[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);
    free(logged);
    free(acked);
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
    atomic_store(&stop_publishing, 1);
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
