/* The walk of `schakel audit verify` (store_audit.h) on every core. One
 * read transaction pins the log; the log is taken a window of sequence
 * numbers at a time (slot i of the window is seq base + i), by a pool,
 * after stage P (all threads) has populated the map's pages:
 *
 *   A (all threads, taking chunks of 512 seqs): the chunk's part of the
 *     events table walked with the thread's own cursor (a key that is no
 *     seq is noted as the seq it stands in for missing) and each record's
 *     previous-hash compared with the stored hash of the record before it
 *     in the chunk, then each record's own hash recomputed from its stored
 *     previous-hash and body, the body decoded (into the thread's arena,
 *     its bytes left in the map), and with the master key the payload
 *     decrypted and hashed against its signed event hash
 *     (store_lmdb_verify_records.c);
 *   B (the calling thread, in seq order): no seq missing, the previous-hash
 *     of each chunk's first record equal to the stored hash of the record
 *     before (which A checked), A's verdicts (the other links among
 *     them), and the batch proofs with the directory on the log at that
 *     point (store_lmdb_sigs.c), which queue one Ed25519 check per batch;
 *   C (all threads): those Ed25519 checks;
 *   D (the calling thread, in seq order): their results.
 *
 * Two windows are in flight: while the calling thread takes window n in
 * stage B, the others run stage A of window n+1 (into the other set of
 * slots and arenas), and it joins them when B is done.
 *
 * Every stage stops at its first failure and B and D go in seq order, so
 * the first bad sequence number named is the one a single thread finds,
 * whatever the number of threads. A thread of the pool has its own read
 * transaction and its own cache of data keys; none touches the store's. */
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "error.h"
#include "store_audit.h"
#include "store_lmdb.h"
#include "store_lmdb_impl.h"
#include "store_lmdb_verify_impl.h"

#define CHUNK_JOBS 4 /* signatures a thread takes at a time */
/* A thread's arena: one chunk for what it decodes of a whole window (about 200 bytes a record: the
 * bodies' bytes stay in the map), kept from window to window; only the pages used are resident. */
#define ARENA_BYTES ((size_t)WINDOW * 2048)
#define MAP_PIECE ((size_t)4 << 20) /* stage P: the map populated this much at a time */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

/* Takes chunks of the stage's work until none is left: a thread the
 * machine slows down takes fewer, instead of holding up the window. */
static void run_stage(worker_t *w, int stage)
{
    pool_t *p = w->pool;
    w->arena = w->arenas[p->parity];
    size_t n = stage == 'A'   ? p->n_slots
               : stage == 'K' ? p->n_cp_jobs
               : stage == 'P' ? (p->map_used + MAP_PIECE - 1) / MAP_PIECE
                              : p->n_jobs,
           chunk = stage == 'A' ? CHUNK_RECORDS : CHUNK_JOBS;
    for (;;) {
        size_t from = __atomic_fetch_add(&p->next_chunk, 1, __ATOMIC_RELAXED) * chunk;
        if (from >= n) return;
        size_t to = n - from < chunk ? n : from + chunk;
        if (stage == 'A') {
            lmdb_verify_chunk(w, from, to);
            continue;
        }
        for (size_t i = from; i < to; i++)
            if (stage == 'P') /* advice: a failure leaves the faults to the walk */
                (void)madvise(p->map + i * MAP_PIECE,
                              p->map_used - i * MAP_PIECE < MAP_PIECE ? p->map_used - i * MAP_PIECE
                                                                      : MAP_PIECE,
                              MADV_POPULATE_READ);
            else if (stage == 'K') lmdb_cp_job_run(&p->cp_jobs[i]);
            else lmdb_sig_job_run(&p->jobs[i]);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pool_t *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen) pthread_cond_wait(&p->go, &p->mu);
        seen = p->generation;
        int stage = p->stage;
        pthread_mutex_unlock(&p->mu);
        if (!stage) return NULL;
        run_stage(w, stage);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->running) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Starts a stage on the pool's threads; the caller joins with pool_join. */
static void pool_start(pool_t *p, int stage)
{
    pthread_mutex_lock(&p->mu);
    p->stage = stage;
    p->finished = 0;
    p->next_chunk = 0;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
}

/* Takes what is left of the stage, then waits for the others. */
static void pool_join(pool_t *p, int stage)
{
    run_stage(&p->w[0], stage);
    pthread_mutex_lock(&p->mu);
    while (p->finished < p->running) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Runs a stage on every thread, the caller's as the first, to its end. */
static void pool_run(pool_t *p, int stage)
{
    pool_start(p, stage);
    if (stage) pool_join(p, stage); /* else they end: pool_free joins them */
}

static void pool_free(pool_t *p)
{
    if (p->running) pool_run(p, 0);
    for (unsigned i = 1; i <= p->running; i++) pthread_join(p->w[i].thread, NULL);
    for (unsigned i = 0; i < p->n; i++) {
        worker_t *w = &p->w[i];
        if (w->cur) mdb_cursor_close(w->cur);
        if (w->txn) mdb_txn_abort(w->txn);
        schakel_arena_destroy(&w->arenas[0]);
        schakel_arena_destroy(&w->arenas[1]);
        /* unmapped, the keys leave the process (the kernel zeroes a page
         * before it maps it again) */
        if (w->keys_map)
            (void)munmap(w->keys_map, WKEY_SETS * sizeof *w->keys + LMDB_HUGE_PAGE); /* ours, whole */
        free(w->victim);
    }
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    for (int i = 0; i < 2; i++)
        if (p->bufs_map[i]) (void)munmap(p->bufs_map[i], WINDOW * sizeof(slot_t) + LMDB_HUGE_PAGE);
    free(p);
}

/* A pool of n threads (the caller's included) over st. NULL when out of
 * memory or LMDB has no reader slot to spare. */
static pool_t *pool_new(lmdb_store_t *st, unsigned n, int payloads, int bodies)
{
    pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->st = st;
    p->n = n;
    p->payloads = payloads;
    p->bodies = bodies;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    int ok = (p->bufs[0] = lmdb_huge_map(WINDOW * sizeof(slot_t), &p->bufs_map[0])) &&
             (p->bufs[1] = lmdb_huge_map(WINDOW * sizeof(slot_t), &p->bufs_map[1]));
    for (unsigned i = 0; ok && i < n; i++) {
        worker_t *w = &p->w[i];
        w->pool = p;
        w->index = i;
        ok = (w->arenas[0] = schakel_arena_new_huge(ARENA_BYTES)) &&
             (w->arenas[1] = schakel_arena_new_huge(ARENA_BYTES)) &&
             (!payloads || ((w->keys = lmdb_huge_map(WKEY_SETS * sizeof(wset_t), &w->keys_map)) != NULL &&
                            (w->victim = calloc(WKEY_SETS, 1)) != NULL)) &&
             mdb_txn_begin(st->env, NULL, MDB_RDONLY, &w->txn) == 0 &&
             mdb_cursor_open(w->txn, st->events, &w->cur) == 0;
    }
    for (unsigned i = 1; ok && i < n; i++)
        if ((ok = pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) == 0)) p->running++;
    if (!ok) {
        pool_free(p);
        return NULL;
    }
    return p;
}

static unsigned threads_for(const schakel_verify_opts_t *o)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = o && o->threads ? o->threads : cores > 0 ? (unsigned)cores : 1;
    return n > MAX_THREADS ? MAX_THREADS : n;
}

/* ---- the walk ---- */

static const uint8_t no_record[32]; /* the previous-hash of the first record */

typedef struct {
    const uint8_t *prev; /* stored hash of the last record taken, in the map */
    uint64_t expect;     /* next seq */
    uint64_t key_first;  /* first record with a key problem */
    const char *key_why;
    lmdb_erasures_t *er; /* with SCHAKEL_VERIFY_ERASURES */
} walk_t;

/* The table's last seq (0 when none), and a first key that is not seq 1
 * noted as seq 1 missing. */
static void table_ends(pool_t *p, MDB_cursor *cur)
{
    MDB_val key, val;
    p->last = 0;
    if (mdb_cursor_get(cur, &key, &val, MDB_FIRST) != 0) return;
    if (key.mv_size != 8 || schakel_get_be64(key.mv_data) == 0) p->odd_at = 1;
    for (int op = MDB_LAST; mdb_cursor_get(cur, &key, &val, (MDB_cursor_op)op) == 0; op = MDB_PREV)
        if (key.mv_size == 8) {
            p->last = schakel_get_be64(key.mv_data);
            return;
        }
}

/* Sets up stage A's window from base in bufs[parity]; 0 past the end. */
static int next_window(pool_t *p, uint64_t base, unsigned parity)
{
    if (base > p->last) return 0;
    p->base = base;
    p->n_slots = p->last - base < WINDOW ? (size_t)(p->last - base + 1) : WINDOW;
    p->parity = parity;
    p->slots = p->bufs[parity];
    return 1;
}

/* Stage A wrote the slots and bodies on another core, and read the event
 * hashes a window ago: stage B, which reads them in order, asks for the
 * slots, then the bodies, then what they point at, each some records
 * ahead of its use. */
#define B_AHEAD 8
static void fetch_ahead(const slot_t *slots, size_t i, size_t n)
{
    _Static_assert(sizeof(slot_t) <= 128, "a slot is at most two cache lines");
    if (i + 3 * B_AHEAD < n)
        for (int line = 0; line < 2; line++)
            verify_fetch_line((const char *)&slots[i + 3 * B_AHEAD] + 64 * line);
    const Schakel__V1__RecordBody *b = i + 2 * B_AHEAD < n ? slots[i + 2 * B_AHEAD].body : NULL;
    if (b)
        for (size_t off = 0; off < sizeof *b; off += 64) verify_fetch_line((const char *)b + off);
    b = i + B_AHEAD < n ? slots[i + B_AHEAD].body : NULL;
    if (b && b->event_hash.data) verify_fetch_line((const char *)b->event_hash.data);
    if (b && b->source_org) verify_fetch_line(b->source_org);
}

/* Stage B over the window: 0, or SCHAKEL_ECORRUPT with r filled. */
static int take_window(pool_t *p, slot_t *slots, size_t n, walk_t *k, lmdb_sigs_t *sigs, MDB_txn *txn,
                       schakel_verify_report_t *r)
{
    /* stage A of the next window may lower odd_at meanwhile, never below
     * that window's first seq */
    uint64_t odd_at = __atomic_load_n(&p->odd_at, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++) {
        slot_t *s = &slots[i];
        fetch_ahead(slots, i, n);
        if (!s->present || k->expect == odd_at || s->seq != k->expect)
            return lmdb_verify_fail(r, k->expect, "record is missing (sequence numbers jump)");
        if (s->len < HDR_LEN) return lmdb_verify_fail(r, s->seq, "record is truncated");
        if (s->link == LINK_BAD || (s->link == LINK_UNCHECKED && memcmp(s->rec, k->prev, 32) != 0))
            return lmdb_verify_fail(r, s->seq, "previous-hash field does not match the record before");
        if (!s->done || s->fail)
            return lmdb_verify_fail(r, s->seq, s->fail ? s->fail : "record was not checked");
        if (s->erased) r->erased++;
        if (s->key_problem) {
            (*(s->key_problem == 1 ? &r->keys_missing : &r->keys_corrupt))++;
            if (!k->key_first) k->key_first = s->seq, k->key_why = s->key_why;
        }
        if (sigs) {
            int rc = lmdb_sigs_record(sigs, p->st, txn, s->seq, s->body, &s->proof, r);
            if (rc) return rc;
        }
        if (k->er) {
            int rc =
                lmdb_erasures_record(k->er, p->st, txn, s->seq, s->body, s->erased ? s->erased_upto : 0, r);
            if (rc) return rc;
        }
        k->prev = s->rec + 32;
        r->records++;
        r->head = s->seq;
        k->expect = s->seq + 1;
    }
    return 0;
}

/* Stage K: the checkpoints' signatures on every thread. */
static void run_checkpoints(void *arg, lmdb_cp_job_t *jobs, size_t n)
{
    pool_t *p = arg;
    p->cp_jobs = jobs;
    p->n_cp_jobs = n;
    pool_run(p, 'K');
}

/* Stage C and D: the window's signatures. A failure there comes before
 * any failure B found later in the window; the counts of B stay. */
static int take_signatures(pool_t *p, lmdb_sigs_t *sigs, int rc_b, schakel_verify_report_t *r)
{
    p->jobs = lmdb_sigs_jobs(sigs, &p->n_jobs);
    if (p->n_jobs) pool_run(p, 'C');
    schakel_verify_report_t d = *r;
    int rc = lmdb_sigs_resolve(sigs, &d);
    if (rc && (!rc_b || d.bad_seq <= r->bad_seq)) {
        r->bad_seq = d.bad_seq;
        memcpy(r->why, d.why, sizeof r->why);
        r->sigs_replaced_key = d.sigs_replaced_key;
        return rc;
    }
    r->sigs_replaced_key = d.sigs_replaced_key;
    return rc_b;
}

int schakel_lmdb_verify_opts(const char *dir, const uint8_t *broker_pub, const uint8_t *master_key,
                             unsigned what, const schakel_verify_opts_t *opts, schakel_verify_report_t *r)
{
    memset(r, 0, sizeof *r);
    schakel_lmdb_options_t o = {0};
    o.dir = dir;
    o.read_only = 1;
    if (master_key) memcpy(o.master_key, master_key, sizeof o.master_key);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_store_t *s = schakel_store_open_lmdb(&o, why);
    memset(o.master_key, 0, sizeof o.master_key);
    if (!s) {
        snprintf(r->why, sizeof r->why, "%s", why);
        return SCHAKEL_EIO;
    }
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) {
        schakel_store_close(&s);
        return SCHAKEL_ESTORE;
    }
    int payloads = master_key && (what & SCHAKEL_VERIFY_PAYLOADS);
    lmdb_sigs_t *sigs = NULL;
    if (master_key && (what & SCHAKEL_VERIFY_SIGNATURES)) {
        sigs = lmdb_sigs_new(txn, st->proofs, broker_pub);
        r->sigs_checked = 1;
    }
    pool_t *p = pool_new(st, threads_for(opts), payloads, payloads || sigs);
    if (p) p->proofs = sigs != NULL;
    MDB_stat ms;
    uint64_t total = mdb_stat(txn, st->events, &ms) == 0 ? ms.ms_entries : 0;
    int rc =
        (r->sigs_checked && !sigs) || !p || mdb_cursor_open(txn, st->events, &cur) != 0 ? SCHAKEL_ESTORE : 0;
    walk_t k = {.expect = 1, .prev = no_record};
    if (payloads && (what & SCHAKEL_VERIFY_ERASURES) && !rc && !(k.er = lmdb_erasures_new()))
        rc = SCHAKEL_ESTORE;
    if (rc == 0) table_ends(p, cur);
    /* The map's pages in a few calls on every thread instead of a page
     * fault per 64 KiB in the walk: in this VM a fault costs tens of µs. */
    if (rc == 0 && (p->map_used = lmdb_map_used_whole(st, &p->map))) pool_run(p, 'P');
    /* Stage A of window n+1 runs on the pool while this thread takes
     * window n in order (stage B), then joins it; then the signatures. */
    int have = rc == 0 && next_window(p, 1, 0);
    if (have) pool_run(p, 'A');
    for (unsigned n = 0; have; n++) {
        slot_t *slots = p->slots;
        size_t n_slots = p->n_slots;
        int next = next_window(p, p->base + WINDOW, (n + 1) & 1);
        if (next) pool_start(p, 'A');
        rc = take_window(p, slots, n_slots, &k, sigs, txn, r);
        if (next) pool_join(p, 'A');
        if (sigs) rc = take_signatures(p, sigs, rc, r);
        for (unsigned i = 0; i < p->n; i++) schakel_arena_reset(p->w[i].arenas[n & 1]);
        if (opts && opts->progress) opts->progress(opts->progress_arg, r->records, total);
        have = next && rc == 0;
    }
    if (rc == 0 && p->odd_at == k.expect) /* a key that is no seq after the last record */
        rc = lmdb_verify_fail(r, k.expect, "record is missing (sequence numbers jump)");
    if (cur) mdb_cursor_close(cur);
    if (rc == SCHAKEL_ECORRUPT) {
        /* what a single walk reports: the records before the bad one */
        r->records = r->head = r->bad_seq ? r->bad_seq - 1 : 0;
        uint8_t kk[8];
        schakel_put_be64(kk, r->head);
        MDB_val hk = {8, kk}, hv;
        memset(r->head_hash, 0, 32);
        if (r->head && mdb_get(txn, st->events, &hk, &hv) == 0 && hv.mv_size >= HDR_LEN)
            memcpy(r->head_hash, (uint8_t *)hv.mv_data + 32, 32);
    } else {
        memcpy(r->head_hash, k.prev, 32);
    }
    if (rc == 0 && sigs) rc = lmdb_sigs_finish(sigs, r);
    lmdb_sigs_free(&sigs);
    if (rc == 0) rc = lmdb_verify_checkpoints(st, txn, broker_pub, r, run_checkpoints, p);
    if (p) pool_free(p);
    if (rc == 0 && k.er) rc = lmdb_erasures_finish(k.er, r);
    lmdb_erasures_free(&k.er);
    if (rc == 0 && k.key_first) {
        r->bad_seq = k.key_first;
        snprintf(r->why, sizeof r->why, "%s", k.key_why);
        rc = SCHAKEL_ECORRUPT;
    }
    mdb_txn_abort(txn);
    schakel_store_close(&s);
    return rc;
}
