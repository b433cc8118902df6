/* Crash test: publishers keep sending while the broker is SIGKILLed at
 * random moments and restarted, many times. Afterwards every event that
 * was ever ACKed is in the log exactly once, at the seq its ACK named, and
 * the chain verifies. Seed: SCHAKEL_CRASH_SEED; rounds: SCHAKEL_CRASH_ROUNDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../integration/harness.h"

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
static atomic_ulong timeouts;

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
        int rc = schakel_client_publish(c, (const uint8_t *const *)bufs, lens, BATCH, &ack, 20000);
        if (rc == 0) {
            pthread_mutex_lock(&lock);
            for (size_t i = 0; i < ack->n_entries && n_acked < MAX_ACKED; i++) {
                if (ack->entries[i]->code != 0) continue;
                memcpy(acked[n_acked].id, ids[i], 16);
                acked[n_acked].seq = ack->entries[i]->seq;
                n_acked++;
            }
            pthread_mutex_unlock(&lock);
            schakel__v1__ack__free_unpacked(ack, NULL);
        } else {
            atomic_fetch_add(&timeouts, 1);
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

static void acked_events_survive_sigkill(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 15;
    printf("crash test: seed=%u rounds=%d\n", seed, rounds);
    srand(seed);
    acked = calloc(MAX_ACKED, sizeof *acked);
    assert_int_equal(harness_start(H), 0);
    const char *orgs[PUBLISHERS] = {"school-a", "smw-b", "school-a"};
    pthread_t t[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) pthread_create(&t[i], NULL, publisher, (void *)orgs[i]);

    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(100000 + rand() % 600000));
        harness_stop(H, SIGKILL);
        usleep((useconds_t)(rand() % 200000));
        assert_int_equal(harness_start(H), 0);
    }
    usleep(500000);
    atomic_store(&stop_publishing, 1);
    for (int i = 0; i < PUBLISHERS; i++) pthread_join(t[i], NULL);
    printf("crash test: %zu events acked, %lu batches timed out\n", n_acked,
           (unsigned long)atomic_load(&timeouts));
    assert_true(n_acked > 0);

    /* Read the whole log back through the broker. */
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
    printf("crash test: %zu records in the log\n", n);
    qsort(logged, n, sizeof *logged, cmp_id);
    for (size_t i = 1; i < n; i++) assert_memory_not_equal(logged[i - 1].id, logged[i].id, 16);
    for (size_t i = 0; i < n_acked; i++) {
        acked_t *hit = bsearch(&acked[i], logged, n, sizeof *logged, cmp_id);
        if (!hit)
            fail_msg("ACKed event %zu (seq %llu) is missing from the log", i,
                     (unsigned long long)acked[i].seq);
        if (hit->seq != acked[i].seq)
            fail_msg("ACKed event %zu: ACK said seq %llu, the log has it at %llu", i,
                     (unsigned long long)acked[i].seq, (unsigned long long)hit->seq);
        assert_int_equal(hit->seq, acked[i].seq);
    }

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

/* Runs also when an assertion failed: no broker outlives the test. */
static int teardown(void **state)
{
    (void)state;
    atomic_store(&stop_publishing, 1);
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
