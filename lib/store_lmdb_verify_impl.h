/* The parts of `schakel audit verify` (store_lmdb_verify.c) that its
 * stages share: the window's slots, the pool and its threads. Stage A,
 * which checks a chunk of records on any thread, is in
 * store_lmdb_verify_records.c. Internal to the LMDB backend. */
#ifndef SCHAKEL_STORE_LMDB_VERIFY_IMPL_H
#define SCHAKEL_STORE_LMDB_VERIFY_IMPL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>

#include "arena.h"
#include "store_lmdb_impl.h"

#define WINDOW 16384      /* records per window */
#define CHUNK_RECORDS 512 /* records a thread takes at a time */
#define MAX_THREADS 16    /* a pool of one per core, at most this */
#define WKEY_SETS 16384   /* a thread's data key cache: sets of CACHE_WAYS (4 MiB) */

/* What stage A found about one record. */
typedef struct {
    uint64_t seq;
    const uint8_t *rec; /* in the map: valid as long as the transaction */
    size_t len;
    Schakel__V1__RecordBody *body; /* in a thread's arena; NULL without one */
    const char *fail;              /* A's verdict: NULL when the record is good */
    uint8_t present;               /* the table holds this seq */
    uint8_t done;                  /* A reached it */
    uint8_t erased;
    uint8_t link;         /* its previous-hash against the record before: LINK_* */
    uint64_t erased_upto; /* when erased: up to where its erasure record reaches */
    uint8_t key_problem;  /* 1 missing, 2 corrupt */
    const char *key_why;
    lmdb_proof_t proof; /* when the record starts its batch and signatures are checked */
} slot_t;

/* A chunk's first record is linked to the one before by stage B, in
 * order; the others by stage A, which walked the one before as well. */
enum { LINK_UNCHECKED, LINK_GOOD, LINK_BAD };

typedef struct pool pool_t;

/* Asks for the cache line at p. gcc 12 drops a __builtin_prefetch whose
 * address comes from loads it then considers dead (a key cache's set, a
 * slot's body) as an effect-free statement, so on x86-64 the instruction
 * is written out. */
static inline void verify_fetch_line(const char *p)
{
#if defined(__x86_64__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*p));
#else
    __builtin_prefetch(p);
#endif
}

/* A set of a thread's data key cache: four whole cache lines, aligned, so
 * that a lookup can fetch it ahead (the victim counters live apart). */
typedef struct {
    _Alignas(64) key_slot_t way[CACHE_WAYS];
} wset_t;

typedef struct {
    pool_t *pool;
    unsigned index;
    pthread_t thread;
    MDB_txn *txn;
    MDB_cursor *cur;            /* on the events table */
    schakel_arena_t *arenas[2]; /* one per window in flight: arenas[pool->parity] */
    schakel_arena_t *arena;     /* the one of the stage A running */
    wset_t *keys;               /* in keys_map */
    void *keys_map;
    uint8_t *victim; /* per set: the next way to replace */
} worker_t;

struct pool {
    lmdb_store_t *st;
    int payloads, bodies, proofs;
    unsigned n;       /* threads, the caller's included */
    unsigned running; /* threads started besides the caller's */
    worker_t w[MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned generation, finished;
    int stage;         /* 'A', 'C', or 0: stop */
    size_t next_chunk; /* the next chunk of the stage to take (atomic) */
    slot_t *bufs[2];   /* two windows: stage B takes one while stage A fills the other */
    void *bufs_map[2]; /* where they are mapped (lmdb_huge_map) */
    slot_t *slots;     /* stage A's window: slots[i] is seq base + i */
    size_t n_slots;
    unsigned parity;     /* stage A's window: bufs[parity], each thread's arenas[parity] */
    uint64_t base, last; /* the window's first seq; the table's last */
    uint64_t odd_at;     /* a key that is no seq sits just before this seq (atomic min; 0: none) */
    lmdb_sig_job_t *jobs;
    size_t n_jobs;
    lmdb_cp_job_t *cp_jobs; /* stage K: the checkpoints' signatures */
    size_t n_cp_jobs;
    uint8_t *map; /* stage P: the log's map, map_used bytes of it */
    size_t map_used;
};

/* Stage A over slots lo..hi of the pool's window, on thread w: the
 * records walked with w's cursor, each one's link to the record before
 * in the chunk, hash, body, payload and batch proof; a failure is left in
 * its slot for stage B. */
void lmdb_verify_chunk(worker_t *w, size_t lo, size_t hi);

#endif
