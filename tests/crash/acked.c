/* Publishers that record what the broker ACKed, and the check that the
 * log kept it (acked.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acked.h"

#define MAX_PUBLISHERS 8
#define BATCH 20
#define MAX_ACKED 400000

typedef struct {
    uint8_t id[16];
    uint64_t seq;
} acked_t;

typedef struct {
    acked_run_t *run;
    const char *org;
} publisher_arg_t;

struct acked_run {
    harness_t *h;
    atomic_int stop;
    pthread_mutex_t lock;
    acked_t *acked;
    size_t n_acked;
    atomic_ulong timeouts;
    pthread_t threads[MAX_PUBLISHERS];
    publisher_arg_t args[MAX_PUBLISHERS];
    int n_threads;
};

/* Keeps only the entries the broker accepted (code 0), with their seq. */
static void record(acked_run_t *run, const Schakel__V1__Ack *ack, uint8_t ids[][16])
{
    pthread_mutex_lock(&run->lock);
    for (size_t i = 0; i < ack->n_entries && run->n_acked < MAX_ACKED; i++) {
        if (ack->entries[i]->code != 0) continue;
        memcpy(run->acked[run->n_acked].id, ids[i], 16);
        run->acked[run->n_acked].seq = ack->entries[i]->seq;
        run->n_acked++;
    }
    pthread_mutex_unlock(&run->lock);
}

static void *publisher(void *arg)
{
    const publisher_arg_t *p = arg;
    acked_run_t *run = p->run;
    schakel_client_t *c = harness_client(run->h, p->org);
    unsigned subject = 0;
    while (!atomic_load(&run->stop)) {
        uint8_t *bufs[BATCH], ids[BATCH][16];
        size_t lens[BATCH];
        for (int i = 0; i < BATCH; i++) {
            harness_event_id(ids[i]);
            harness_signal(p->org, ids[i], subject++ % 50, &bufs[i], &lens[i]);
        }
        Schakel__V1__Ack *ack = NULL;
        if (schakel_client_publish(c, (const uint8_t *const *)bufs, lens, BATCH, &ack, 20000) == 0) {
            record(run, ack, ids);
            schakel__v1__ack__free_unpacked(ack, NULL);
        } else {
            atomic_fetch_add(&run->timeouts, 1);
        }
        for (int i = 0; i < BATCH; i++) free(bufs[i]);
    }
    schakel_client_destroy(&c);
    return NULL;
}

acked_run_t *acked_start(harness_t *h, const char *const *orgs, int n)
{
    acked_run_t *run = calloc(1, sizeof *run);
    if (!run) return NULL;
    run->acked = calloc(MAX_ACKED, sizeof *run->acked);
    if (!run->acked || n > MAX_PUBLISHERS) {
        free(run->acked);
        free(run);
        return NULL;
    }
    run->h = h;
    pthread_mutex_init(&run->lock, NULL);
    for (int i = 0; i < n; i++) {
        run->args[i] = (publisher_arg_t){run, orgs[i]};
        if (pthread_create(&run->threads[i], NULL, publisher, &run->args[i]) != 0) break;
        run->n_threads++;
    }
    return run;
}

void acked_halt(acked_run_t *run)
{
    if (run) atomic_store(&run->stop, 1);
}

void acked_stop(acked_run_t *run)
{
    atomic_store(&run->stop, 1);
    for (int i = 0; i < run->n_threads; i++) pthread_join(run->threads[i], NULL);
    run->n_threads = 0;
}

size_t acked_count(acked_run_t *run)
{
    /* also while the publishers run (test_jetstream_failover) */
    pthread_mutex_lock(&run->lock);
    size_t n = run->n_acked;
    pthread_mutex_unlock(&run->lock);
    return n;
}

unsigned long acked_timeouts(const acked_run_t *run)
{
    return (unsigned long)atomic_load(&run->timeouts);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Every record on the log as (event id, seq), in the log's order. */
static acked_t *read_log(harness_t *h, size_t *n_out)
{
    schakel_consumer_t *c = harness_consumer(h, "svc-reader", "all", NULL);
    size_t cap = 1 << 16, n = 0;
    acked_t *logged = malloc(cap * sizeof *logged);
    assert_non_null(logged);
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
    *n_out = n;
    return logged;
}

size_t acked_check(acked_run_t *run, harness_t *h, const char *label, bool fail_on_missing)
{
    size_t n;
    acked_t *logged = read_log(h, &n);
    printf("%s: %zu records in the log\n", label, n);
    qsort(logged, n, sizeof *logged, cmp_id);
    for (size_t i = 1; i < n; i++) assert_memory_not_equal(logged[i - 1].id, logged[i].id, 16);
    size_t missing = 0;
    for (size_t i = 0; i < run->n_acked; i++) {
        const acked_t *want = &run->acked[i];
        const acked_t *hit = bsearch(want, logged, n, sizeof *logged, cmp_id);
        if (!hit && fail_on_missing)
            fail_msg("ACKed event %zu (seq %llu) is missing from the log", i, (unsigned long long)want->seq);
        if (!hit) missing++;
        else if (hit->seq != want->seq)
            fail_msg("ACKed event %zu: ACK said seq %llu, the log has it at %llu", i,
                     (unsigned long long)want->seq, (unsigned long long)hit->seq);
    }
    free(logged);
    return missing;
}

void acked_free(acked_run_t **run)
{
    if (!*run) return;
    pthread_mutex_destroy(&(*run)->lock);
    free((*run)->acked);
    free(*run);
    *run = NULL;
}
