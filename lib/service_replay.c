/* The replay check of the services (`schakel audit replay`): runs their
 * engines over a log on disk, read-only, from the start, each in a state
 * of its own in a temporary directory, and compares every event they
 * derive, byte for byte, with the copy on the log; then looks for events
 * of each service on the log that it did not derive. Equal bytes are the
 * proof that the services' decisions follow from the log and their rules
 * alone (the log's time, ids derived from what they are about).
 *
 * The log is read once, here, in batches (decrypted, each event decoded
 * once); each service runs in a thread of its own over the same batches
 * (service_replay_check.c), which it only reads. A batch is let go when
 * every service is REPLAY_HOLD batches past it. */
#include "service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "service_replay_impl.h"
#include "store_lmdb.h"

/* ---- the one log handle, shared ----
 * Reading a store is for one thread at a time (store.h); lookups are for
 * any. The services read a record back now and then (an old record an
 * engine asks for, a copy on the log before the event that derived it):
 * through this view of the log, which takes a lock around each read. */

typedef struct {
    schakel_store_t base;
    schakel_store_t *log;
    pthread_mutex_t *lock;
} locked_log_t;

static int locked_read(schakel_store_t *s, const char *stream, uint64_t from_seq, size_t max_count,
                       size_t max_bytes, schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    locked_log_t *l = (locked_log_t *)s;
    pthread_mutex_lock(l->lock);
    int rc = schakel_store_read(l->log, stream, from_seq, max_count, max_bytes, fn, arg, next_seq);
    pthread_mutex_unlock(l->lock);
    return rc;
}

static int locked_lookup(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq)
{
    return schakel_store_lookup(((locked_log_t *)s)->log, source_org, event_id, seq);
}

/* Only what the services use: reads and lookups. */
static const schakel_store_ops_t locked_ops = {.read = locked_read, .lookup = locked_lookup};

/* ---- the reader ---- */

typedef struct {
    replay_batch_t *b;
    replay_cache_t *cache;
    int rc;
} fill_t;

static const char *arena_str(schakel_arena_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = schakel_arena_alloc(a, n);
    if (c) memcpy(c, s, n);
    return c;
}

/* Copies a record into the batch (its bytes are the store's only during
 * the call). */
static int fill_cb(void *arg, const schakel_record_t *rec)
{
    fill_t *f = arg;
    replay_batch_t *b = f->b;
    replay_item_t *it = &b->items[b->n];
    memset(it, 0, sizeof *it);
    it->seq = rec->seq;
    it->recorded_at = rec->recorded_at;
    memcpy(it->event_id, rec->event_id, 16);
    it->type = rec->type;
    it->source_org = arena_str(b->arena, rec->source_org ? rec->source_org : "");
    if (rec->event) {
        uint8_t *e = schakel_arena_alloc(b->arena, rec->event_len);
        if (e) memcpy(e, rec->event, rec->event_len);
        it->event = e;
        it->event_len = rec->event_len;
    }
    if (!it->source_org || (rec->event && !it->event)) {
        f->rc = SCHAKEL_ENOMEM;
        return 1;
    }
    replay_cache_put(f->cache, rec);
    b->n++;
    return 0;
}

/* Decodes each event of the batch once, for every service. */
static void decode_batch(replay_batch_t *b)
{
    ProtobufCAllocator *a = schakel_arena_allocator(b->arena);
    for (size_t i = 0; i < b->n; i++) {
        replay_item_t *it = &b->items[i];
        if (it->event) it->env = schakel_envelope_decode_with(it->event, it->event_len, a, NULL);
    }
}

/* Waits until every service let the batch go, then fills it with the
 * records from *from on (none at the end of the log). */
static int read_batch(replay_feed_t *f, replay_batch_t *b, schakel_store_t *log, pthread_mutex_t *lock,
                      uint64_t *from, char *why)
{
    pthread_mutex_lock(&f->lock);
    while (b->refs > 0) pthread_cond_wait(&f->freed, &f->lock);
    pthread_mutex_unlock(&f->lock);
    schakel_arena_reset(b->arena);
    b->n = 0;
    fill_t fl = {b, f->cache, 0};
    uint64_t next = *from;
    pthread_mutex_lock(lock);
    /* no byte limit: a batch is REPLAY_BATCH records unless the log ends */
    int rc = schakel_store_read(log, "all", *from, REPLAY_BATCH, SIZE_MAX, fill_cb, &fl, &next);
    pthread_mutex_unlock(lock);
    if (rc < 0 || fl.rc) {
        b->n = 0;
        return schakel_fail(why, fl.rc ? fl.rc : rc, "cannot read the log from seq %llu",
                            (unsigned long long)*from);
    }
    *from = next;
    decode_batch(b);
    return 0;
}

static void hand_out(replay_feed_t *f, replay_batch_t *b)
{
    pthread_mutex_lock(&f->lock);
    b->refs = f->readers;
    f->produced++;
    pthread_cond_broadcast(&f->ready);
    pthread_mutex_unlock(&f->lock);
}

/* Reads the whole log into the feed; the last batch handed out is empty. */
static int read_log(replay_feed_t *f, schakel_store_t *log, pthread_mutex_t *lock, char *why)
{
    uint64_t from = 1;
    for (uint64_t k = 0;; k++) {
        replay_batch_t *b = f->ring[k % REPLAY_RING];
        int rc = read_batch(f, b, log, lock, &from, why);
        hand_out(f, b);
        if (rc) return rc;
        if (b->n == 0) return 0;
    }
}

/* ---- the whole check ---- */

static replay_feed_t *feed_new(int readers)
{
    replay_feed_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    /* default attributes: these cannot fail (glibc) */
    (void)pthread_mutex_init(&f->lock, NULL);
    (void)pthread_cond_init(&f->ready, NULL);
    (void)pthread_cond_init(&f->freed, NULL);
    f->readers = readers;
    f->cache = replay_cache_new(); /* without it, reads back go to the log */
    for (int i = 0; i < REPLAY_RING; i++) {
        f->ring[i] = calloc(1, sizeof *f->ring[i]);
        if (!f->ring[i] || !(f->ring[i]->arena = schakel_arena_new(4u << 20))) return f; /* caller checks */
    }
    return f;
}

static int feed_ok(const replay_feed_t *f)
{
    for (int i = 0; i < REPLAY_RING; i++)
        if (!f->ring[i] || !f->ring[i]->arena) return 0;
    return 1;
}

static void feed_free(replay_feed_t *f)
{
    if (!f) return;
    replay_cache_free(f->cache);
    for (int i = 0; i < REPLAY_RING; i++) {
        if (f->ring[i]) schakel_arena_destroy(&f->ring[i]->arena);
        free(f->ring[i]);
    }
    /* no thread is left to hold them */
    (void)pthread_cond_destroy(&f->ready);
    (void)pthread_cond_destroy(&f->freed);
    (void)pthread_mutex_destroy(&f->lock);
    free(f);
}

static schakel_store_t *open_log(const char *logdir, const uint8_t master_key[32], char *why)
{
    schakel_lmdb_options_t lo = {0};
    lo.dir = logdir;
    lo.read_only = 1;
    memcpy(lo.master_key, master_key, 32);
    schakel_store_t *log = schakel_store_open_lmdb(&lo, why);
    memset(lo.master_key, 0, 32);
    return log;
}

/* Starts a thread per service that could open its state; the others get
 * their error in rcs and take no batches. Returns how many started. */
static size_t start_services(replay_svc_t *svc, pthread_t *threads, int *started, size_t n, replay_feed_t *f)
{
    size_t running = 0;
    for (size_t i = 0; i < n; i++) {
        svc[i].feed = f;
        svc[i].rc = replay_svc_open(&svc[i]);
        if (svc[i].rc == 0) running++;
    }
    f->readers = (int)running;
    for (size_t i = 0; i < n; i++) {
        if (svc[i].rc) continue;
        if (pthread_create(&threads[i], NULL, replay_svc_main, &svc[i]) == 0) {
            started[i] = 1;
            continue;
        }
        svc[i].rc = schakel_fail(svc[i].why, SCHAKEL_ENOMEM, "cannot start a thread");
        f->readers--; /* before the first batch is handed out */
    }
    return running;
}

int schakel_service_replay_all(const char *logdir, const uint8_t master_key[32], size_t n,
                               const schakel_engine_ops_t *const *ops, void *const *engines,
                               const char *const *orgs, schakel_replay_report_t *reports, int *rcs)
{
    return schakel_service_replay_upto(logdir, master_key, n, ops, engines, orgs, NULL, reports, rcs);
}

int schakel_service_replay_upto(const char *logdir, const uint8_t master_key[32], size_t n,
                                const schakel_engine_ops_t *const *ops, void *const *engines,
                                const char *const *orgs, const uint64_t *upto,
                                schakel_replay_report_t *reports, int *rcs)
{
    char why[SCHAKEL_ERRLEN] = "";
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    locked_log_t shared = {{&locked_ops}, NULL, &lock};
    replay_svc_t *svc = calloc(n ? n : 1, sizeof *svc);
    pthread_t *threads = calloc(n ? n : 1, sizeof *threads);
    int *started = calloc(n ? n : 1, sizeof *started);
    replay_feed_t *f = feed_new((int)n);
    int rc = svc && threads && started && f && feed_ok(f) ? 0 : SCHAKEL_ENOMEM;
    if (rc) snprintf(why, sizeof why, "out of memory");
    schakel_store_t *log = rc ? NULL : open_log(logdir, master_key, why);
    if (rc == 0 && !log) rc = SCHAKEL_EIO;
    shared.log = log;
    for (size_t i = 0; i < n; i++) {
        memset(&reports[i], 0, sizeof reports[i]);
        rcs[i] = rc;
        if (rc) {
            snprintf(reports[i].why, sizeof reports[i].why, "%s", why);
            continue;
        }
        svc[i] = (replay_svc_t){.ops = ops[i],
                                .engine = engines[i],
                                .org = orgs[i],
                                .log = log,
                                .shared = &shared.base,
                                .r = &reports[i],
                                .upto = upto ? upto[i] : 0};
        reports[i].upto = upto ? upto[i] : 0;
    }
    if (rc == 0 && start_services(svc, threads, started, n, f) > 0) rc = read_log(f, log, &lock, why);
    for (size_t i = 0; i < n; i++) {
        if (started && started[i]) (void)pthread_join(threads[i], NULL); /* ours, joined once */
        if (rc == 0 || (svc && svc[i].rc)) {
            rcs[i] = svc[i].rc;
            if (rcs[i] && !reports[i].why[0])
                snprintf(reports[i].why, sizeof reports[i].why, "%s",
                         svc[i].why[0] ? svc[i].why : schakel_strerror(rcs[i]));
        } else if (svc) { /* the log could not be read to the end */
            rcs[i] = rc;
            snprintf(reports[i].why, sizeof reports[i].why, "%s", why);
        }
        if (rcs[i] == 0 && (reports[i].differ || reports[i].missing || reports[i].extra))
            rcs[i] = SCHAKEL_ECORRUPT;
        if (svc) replay_svc_close(&svc[i]);
    }
    schakel_store_close(&log);
    feed_free(f);
    free(started);
    free(threads);
    free(svc);
    (void)pthread_mutex_destroy(&lock); /* the threads are joined */
    int worst = 0;
    for (size_t i = 0; i < n; i++)
        if (rcs[i] && (worst == 0 || worst == SCHAKEL_ECORRUPT)) worst = rcs[i];
    return worst;
}

int schakel_service_replay(const char *logdir, const uint8_t master_key[32], const schakel_engine_ops_t *ops,
                           void *engine, const char *org_id, schakel_replay_report_t *r)
{
    int rc;
    return schakel_service_replay_all(logdir, master_key, 1, &ops, &engine, &org_id, r, &rc);
}
