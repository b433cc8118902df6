/* What the two halves of the replay check share: service_replay.c reads
 * the log once, into batches that every service's thread reads;
 * service_replay_check.c is one service's thread: its engine over the
 * records, and the comparison of what it derives with the log. */
#ifndef SCHAKEL_SERVICE_REPLAY_IMPL_H
#define SCHAKEL_SERVICE_REPLAY_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "enums.h"
#include "error.h"
#include "service.h"
#include "service_impl.h"

/* Records per batch, and how many batches a service keeps after it has
 * run over them: an engine reads records back (the event a decision is
 * about), mostly a few thousand records back at most, and those come from
 * the batches it keeps, not from the disk. */
#define REPLAY_BATCH 4096
#define REPLAY_HOLD 4
#define REPLAY_RING 8 /* batches in flight: the reader runs up to RING - HOLD ahead */

/* One record of the log as read once for every service: the bytes, the
 * decoded event (shared, read-only) and the strings live in the batch's
 * arena. */
typedef struct {
    uint64_t seq;
    int64_t recorded_at;
    const uint8_t *event; /* NULL when erased */
    size_t event_len;
    int type;
    const schakel_envelope_t *env; /* NULL when erased or not an envelope */
    const char *source_org;
    uint8_t event_id[16];
} replay_item_t;

typedef struct {
    replay_item_t items[REPLAY_BATCH];
    size_t n; /* 0: the end of the log (or the reader failed) */
    schakel_arena_t *arena;
    int refs; /* services still reading it (under the feed's lock) */
} replay_batch_t;

/* Records kept for reads back from behind the batches held
 * (service_replay_cache.c). */
typedef struct replay_cache replay_cache_t;

/* The batches between the reader and the services. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t ready, freed;
    replay_batch_t *ring[REPLAY_RING];
    uint64_t produced;     /* batches handed out so far */
    int readers;           /* services that take each batch */
    replay_cache_t *cache; /* filled by the reader; NULL: none */
} replay_feed_t;

/* The first difference, by the order in which the old one-service replay
 * found them: derived events by the record that derived them (seq, then
 * place in its output); events on the log that nobody derived after all
 * of those, by seq. */
typedef struct {
    uint64_t at, index; /* the order key */
    uint64_t seq;       /* the seq reported */
    const char *what;
    uint8_t id[16];
    int set;
} replay_bad_t;

/* A derived event whose copy on the log the service has not met yet:
 * compared when it gets there; missing if it never does. */
typedef struct {
    uint64_t at, index; /* who derived it (the order key) */
    uint8_t *bytes;     /* the derived event (owned); NULL once compared */
    size_t len;
    uint8_t id[16];
    size_t next;  /* the next one waiting with the same id, + 1 (0: none) */
    uint64_t met; /* the first of a chain: seq of the first copy met (0: none yet) */
} replay_pending_t;

/* 16-byte ids -> u64, open addressing; nothing is ever removed. A key
 * and its value share a slot: a lookup in a map of a million ids misses
 * the cache once per slot it probes, not twice. */
typedef struct {
    uint8_t key[16];
    uint64_t val; /* 0: empty slot */
} replay_slot_t;

typedef struct {
    replay_slot_t *slots;
    size_t cap, n;
} replay_idmap_t;

typedef struct {
    uint64_t seq;
    uint8_t id[16];
    int erased; /* its payload was erased: it cannot be read, nor compared */
} replay_own_t;

struct replay_svc;

/* The log as one service reads it back: from the batches it keeps, else
 * through the one log handle under its lock. */
typedef struct {
    schakel_store_t base;
    struct replay_svc *svc;
} replay_view_t;

/* One service's replay. */
typedef struct replay_svc {
    const schakel_engine_ops_t *ops;
    void *engine;
    const char *org;
    schakel_store_t *log;    /* lookups: any thread */
    schakel_store_t *shared; /* reads, under the lock of the one log handle */
    replay_view_t view;      /* reads back: the batches held, else shared */
    schakel_logsrc_t *src;   /* the engine's reads back: from view */
    replay_feed_t *feed;
    replay_batch_t *held[REPLAY_HOLD]; /* the batch being run over, and the ones before it */
    schakel_replay_report_t *r;
    uint64_t upto; /* the engine runs over the records up to it (0: all) */
    char dir[64];
    state_t s;
    int s_open;
    MDB_txn *txn;
    schakel_emit_t out;
    uint8_t (*ids)[16]; /* every id derived */
    size_t n_ids, cap_ids;
    replay_pending_t *pend; /* derived, copy not met yet (or compared since) */
    size_t n_pend, cap_pend;
    replay_idmap_t waiting; /* id -> first of pend waiting for it, + 1 (kept once met) */
    replay_idmap_t copies;  /* id -> seq of the service's events met before anything derived them */
    replay_own_t *own;      /* the service's events on the log, in order */
    size_t n_own, cap_own;
    replay_bad_t bad;
    uint64_t since_commit;
    int rc;
    char why[SCHAKEL_ERRLEN];
} replay_svc_t;

/* service_replay_cache.c */
replay_cache_t *replay_cache_new(void);
void replay_cache_free(replay_cache_t *c);
/* The reader's: keeps the record if it is of a kind kept and the cache
 * has room (else reads of it go to the log). */
void replay_cache_put(replay_cache_t *c, const schakel_record_t *rec);
/* A service's, for a seq of a batch it was handed: 1 and the record when
 * kept (pointers valid until the cache is freed), else 0. */
int replay_cache_get(const replay_cache_t *c, uint64_t seq, schakel_record_t *rec);

/* service_replay_check.c */
/* Opens the service's state in a temp directory; 0 or an error in why. */
int replay_svc_open(replay_svc_t *p);
/* The service's thread: every batch of the feed, in order. */
void *replay_svc_main(void *arg);
void replay_idmap_free(replay_idmap_t *m);
/* Frees what the service holds and removes its temp directory. */
void replay_svc_close(replay_svc_t *p);

#endif
