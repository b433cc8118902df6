/* What the files of the LMDB log share, and nobody else sees: the store's
 * struct (tables, key caches, map size, head), the record layout, and the
 * functions one part calls in another. The parts:
 *   store_lmdb.c         open, tables, map sizing, errors, the chain hash
 *   store_lmdb_append.c  append + fsync, checkpoints, cursors (one writer)
 *   store_lmdb_read.c    reads, lookups (any thread, own read txn)
 *   store_lmdb_keys.c    data keys, their caches, erasure
 *   store_lmdb_audit.c   the read-only readers of `schakel audit`
 *   store_lmdb_sigs.c    the batch signatures in that walk
 *   store_lmdb_erasures.c  every erasure record with its erasure event, in that walk
 *   store_lmdb_verify.c  that walk on every core (a pool of threads)
 *   store_lmdb_verify_records.c  its stage A: a chunk of records checked
 *                        on any thread (store_lmdb_verify_impl.h)
 *   store_lmdb_map.c     the broker's mappings of the map dropped after appends
 *   store_lmdb_repl.c    the log as the local index of a replicated stream
 * No transaction is shared between threads: each call opens and ends its
 * own. Growing the map and opening the environment again (erasure) take
 * the resize lock for writing; every read of another thread (reads of a
 * stream, lookups, holds_id_at) holds it for reading while its read
 * transaction is open. The data-key cache has a mutex of its own
 * (key_lock); durable_seq is atomic, and its changes are signalled on
 * durable_cond (lmdb_durable_set). */
#ifndef SCHAKEL_STORE_LMDB_IMPL_H
#define SCHAKEL_STORE_LMDB_IMPL_H

#include <lmdb.h>

#include "bytes.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "crypto.h"
#include "schakel/v1/bus.pb-c.h"
#include "store_audit.h"
#include "store_lmdb.h"

#define KEY_ID_LEN 16
#define WRAPPED_LEN (SCHAKEL_AEAD_NONCE_LEN + SCHAKEL_AEAD_KEY_LEN + SCHAKEL_AEAD_TAG_LEN)
#define HDR_LEN (2 * SCHAKEL_SHA256_LEN) /* prev_hash || hash before the body */
/* An erasure record in table `keys`, under the erased key's id:
 * "schakel-erased\0\0" (16) || u64be(last seq erased) || i64be(at, unix ms).
 * Alone: the subject's key was erased. Followed by a wrapped key: a new key
 * for the subject's records after `last seq erased`. */
#define TOMB_MAGIC "schakel-erased\0"
#define TOMB_LEN 32
/* Two 4-way set-associative caches of 32768 entries each (~4.6 MiB): a
 * direct-mapped cache thrashes once a few thousand children are active. */
#define CACHE_SETS 8192
#define CACHE_WAYS 4

typedef struct {
    uint8_t id[KEY_ID_LEN];
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    uint64_t erased_upto; /* records up to this seq were erased (old key) */
    int used;
} key_slot_t;

/* subject -> key id is a keyed hash that never changes, so this cache
 * needs no invalidation, not even on erasure. */
typedef struct {
    char subject[65];
    uint8_t id[KEY_ID_LEN];
    int used;
} subject_slot_t;

typedef struct {
    key_slot_t way[CACHE_WAYS];
    unsigned next; /* round-robin victim */
} key_set_t;

typedef struct {
    subject_slot_t way[CACHE_WAYS];
    unsigned next;
} subject_set_t;

/* One record as a message of the replicated stream: a packed
 * ReplicatedRecord (bus.proto), its seq (the stream sequence it must
 * get) and its dedup id, "<source_org>/<event id in hex>". */
typedef struct {
    uint8_t *data;
    size_t len;
    uint64_t seq;
    char msg_id[64 + 1 + 32 + 1];
} lmdb_repl_msg_t;

/* The ids of the records appended last, the writer's alone: two
 * generations of RECENT_GEN ids, open addressing (an all-zero slot is
 * empty), the newer generation's first seq in lo[0], the older's in lo[1]
 * (0: none). An append item whose id the checker found absent up to seq
 * s (absent_upto) is new when no record after s holds it: while the table
 * holds every record from s + 1 on, a miss there says so without a
 * search of the event-id index. A hit is only a maybe (an aborted
 * append's ids stay behind): the index decides. */
#define RECENT_GEN 32768
#define RECENT_SLOTS (2 * RECENT_GEN)
typedef struct {
    uint8_t (*ids[2])[16];
    size_t n; /* ids in the newer generation */
    uint64_t lo[2];
} lmdb_recent_t;

typedef struct {
    schakel_store_t base;
    MDB_env *env;
    MDB_dbi events, ids, by_id, streams, cursors, checkpoints, keys, proofs;
    uint8_t kid_key[SCHAKEL_SHA256_LEN];    /* derives key ids from subjects */
    schakel_hmac_key_t kid_hmac;            /* kid_key, prepared (written at open only) */
    uint8_t wrap_key[SCHAKEL_AEAD_KEY_LEN]; /* wraps data keys */
    uint8_t sign_secret[SCHAKEL_ED25519_SEC_LEN];
    int can_sign;
    uint64_t cp_every;
    int64_t cp_ms;
    uint64_t cp_seq; /* last checkpoint */
    int64_t cp_at;
    size_t map_size, map_max;
    uint64_t full_retries;
    /* growing the map, or opening the environment again, needs no
     * transaction open in the process: readers in other threads hold it
     * shared while theirs is open. Writer-preferring: readers that come
     * one after the other never starve the broker's loop. */
    pthread_rwlock_t resize;
    /* `cache` (data keys), shared by the writer and readers in other
     * threads; `subjects` is the writer's alone (append, erase) */
    pthread_mutex_t key_lock;
    /* durable_seq changes are broadcast here (lmdb_wait_durable) */
    pthread_mutex_t durable_lock;
    pthread_cond_t durable_cond;
    schakel_head_t head;
    /* Every record up to durable_seq is on disk for good: its commit's meta
     * page was flushed. The env runs with MDB_NOMETASYNC, so a commit
     * flushes its data pages but leaves its meta page in the page cache
     * until the next commit's flush or an mdb_env_sync (lmdb_commit). */
    _Atomic uint64_t durable_seq; /* read by any thread; set by lmdb_durable_set */
    uint64_t committed_seq;       /* head as of the last commit */
    int read_only;
    /* A log written before table `ids`: its event-id index is `by_id`
     * (OLD_BY_ID: org || 0 || id -> seq; OLD_BY_BARE_ID: the bare id ->
     * seq). Opened for writing, `ids` is built and `by_id` dropped. */
    enum { IDS, OLD_BY_ID, OLD_BY_BARE_ID } index;
    uint8_t nonce_prefix[4]; /* nonce = prefix || u64be(seq): unique per data key */
    uint8_t pool[4096];      /* random bytes for new data keys, drawn a page at a time */
    size_t pool_left;
    void *map_addr; /* the map as lmdb_map_release found it, for map size map_for */
    size_t map_len, map_for;
    size_t map_floor; /* file pages mapped right after the last release: not the log's */
    /* A replicated log (store_jetstream.c): called in every append with
     * the group's new records as stream messages, before the local
     * commit; 0 only when a quorum of the cluster stores them all. NULL:
     * the embedded log alone. */
    int (*replicate)(void *arg, const lmdb_repl_msg_t *msgs, size_t n, char *why);
    void *repl_arg;
    lmdb_recent_t recent;
    key_set_t cache[CACHE_SETS];
    subject_set_t subjects[CACHE_SETS];
} lmdb_store_t;

/* The key of the old `by_id` table: an event's publisher id, a NUL, its
 * 16-byte event id (ids are scoped to the organisation that published
 * them, so no organisation can take another's id first). */
#define ID_KEY_ORG_MAX 63 /* organisation ids are 1 to 63 characters */
#define ID_KEY_MAX (ID_KEY_ORG_MAX + 1 + 16)
static inline size_t id_key(uint8_t out[ID_KEY_MAX], const char *org, const uint8_t id[16])
{
    size_t n = strnlen(org ? org : "", ID_KEY_ORG_MAX);
    memcpy(out, org ? org : "", n);
    out[n] = 0;
    memcpy(out + n + 1, id, 16);
    return n + 17;
}

/* The key of table `ids`: the 16-byte event id, then u64be(seq); the
 * value is empty. 34 bytes in the B-tree where `by_id` (org || 0 || id ->
 * seq) took about 48, so a group's inserts rewrite fewer pages, and ids a
 * publisher makes in order (a counter) still go in order. Organisations
 * may use the same id (ids are scoped to their publisher): a lookup
 * checks each candidate's record for its publisher (lmdb_ids_find). */
#define IDS_PREFIX_LEN 16
#define IDS_KEY_LEN (IDS_PREFIX_LEN + 8)
static inline void ids_key(uint8_t out[IDS_KEY_LEN], const uint8_t id[16], uint64_t seq)
{
    memcpy(out, id, IDS_PREFIX_LEN);
    schakel_put_be64(out + IDS_PREFIX_LEN, seq);
}

/* The entry x of item it in table `streams` (x < n_index: it->index[x],
 * another record or this one; past that: it->fanout, this record), the
 * record being at seq: key stream || 0 || u64be(seq) into sk, value the
 * target's seq (8 bytes) into target, or empty for this record. */
static inline void lmdb_stream_entry(const schakel_append_item_t *it, size_t x, uint64_t seq,
                                     uint8_t sk[SCHAKEL_STREAM_MAX + 9], MDB_val *k, uint8_t target[8],
                                     MDB_val *v)
{
    int own = x >= it->n_index; /* a fanout entry: this record itself */
    const char *name = own ? it->fanout[x - it->n_index] : it->index[x].stream;
    size_t sl = strnlen(name, SCHAKEL_STREAM_MAX - 1);
    memcpy(sk, name, sl);
    sk[sl] = 0;
    /* The entry's place in the stream is this record's seq, so a delivery
     * decided later (a hold released) comes after everything the stream
     * already holds and no reader's cursor has passed it. The value names
     * the record delivered when it is another one. */
    schakel_put_be64(sk + sl + 1, seq);
    uint64_t to = !own && it->index[x].seq ? it->index[x].seq : seq;
    schakel_put_be64(target, to);
    k->mv_size = sl + 9;
    k->mv_data = sk;
    v->mv_size = to == seq ? 0 : 8;
    v->mv_data = target;
}

/* store_lmdb_repl.c: a replicated log. publish: the records after
 * `before` that txn appended (items of batches) as stream messages, handed
 * to st->replicate; 0 when stored on the quorum. apply: one message read
 * back from the stream, for the record at head + 1, committed to the local
 * index (a record the stream holds that this index lost or never had). */
int lmdb_repl_publish(lmdb_store_t *st, MDB_txn *txn, uint64_t before, const schakel_append_batch_t *batches,
                      size_t n, char *why);
int lmdb_repl_apply(lmdb_store_t *st, const uint8_t *msg, size_t len, char *why);
/* message: the stream message of record seq of a log written without a
 * stream (`schakel log copy`), its entries in table `streams` given (key
 * and value in txn's pages or the caller's); free m->data. */
typedef struct {
    MDB_val key, value;
} lmdb_repl_entry_t;
int lmdb_repl_message(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const lmdb_repl_entry_t *entries,
                      size_t n, lmdb_repl_msg_t *m, char *why);

/* store_lmdb.c */
/* An LMDB error as an error code, with what was being done in why (NULL:
 * no reason wanted); a full map or disk is SCHAKEL_EFULL. */
int lmdb_err(int rc, char *why, const char *what);
/* The record at seq (its stored bytes in *v) and its decoded body (free
 * with schakel__v1__record_body__free_unpacked), or an error naming what
 * was being done: an LMDB error as lmdb_err reports it,
 * SCHAKEL_ECORRUPT when it does not decode. */
int lmdb_record_body(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, MDB_val *v, Schakel__V1__RecordBody **body,
                     const char *what, char *why);
/* The same for a failed write (commit), telling a full disk from EIO. */
int lmdb_write_err(lmdb_store_t *st, int rc, char *why, const char *what);
void lmdb_chain_hash(uint64_t seq, const uint8_t prev[32], const uint8_t *body, size_t len, uint8_t out[32]);
int lmdb_ensure_room(lmdb_store_t *st, size_t incoming, char *why);
/* Closes and opens the environment again: LMDB's reused page buffers
 * are dropped (erasure). 0 or an error code; on error there is no
 * environment left. */
int lmdb_reopen(lmdb_store_t *st, char *why);
/* Commits a write transaction (wrote: it changed something) with
 * MDB_NOMETASYNC: its data pages are flushed, its meta page not yet. The
 * flush makes every commit before it durable. An LMDB code. */
int lmdb_commit(lmdb_store_t *st, MDB_txn *txn, int wrote);
/* Flushes the last commit's meta page: everything committed is durable.
 * An LMDB code. */
int lmdb_flush(lmdb_store_t *st);
/* Both: a commit that is durable when this returns 0. */
int lmdb_commit_durable(lmdb_store_t *st, MDB_txn *txn);
/* Moves durable_seq up to seq (never down) and wakes lmdb_wait_durable. */
void lmdb_durable_set(lmdb_store_t *st, uint64_t seq);
uint64_t lmdb_wait_durable(schakel_store_t *s, uint64_t after, int timeout_ms);

/* store_lmdb_append.c: the write operations of store.h */
int lmdb_append(schakel_store_t *s, schakel_append_batch_t *batches, size_t n, int64_t now_ms, char *why);
int lmdb_append_deferred(schakel_store_t *s, schakel_append_batch_t *batches, size_t n, int64_t now_ms,
                         char *why);
int lmdb_sync(schakel_store_t *s, char *why);
uint64_t lmdb_durable_seq(schakel_store_t *s);
int lmdb_cursor_set(schakel_store_t *s, const char *name, uint64_t seq);
int lmdb_checkpoint(schakel_store_t *s, int64_t now_ms);

/* store_lmdb_map.c: drops the process's mappings of the log's pages
 * (they stay in the page cache) once more than 48 MiB of mapped file
 * pages are resident; after every append's commit. */
void lmdb_map_release(lmdb_store_t *st);
/* The log's map (*addr) and how much of it the file uses: 0 when the map
 * is not found (/proc/self/maps). */
size_t lmdb_map_used(lmdb_store_t *st, uint8_t **addr);
/* The same, for a reader that will read all of it (audit verify): the
 * map is advised to take the file's pages in 2 MiB pieces where the page
 * cache holds them so (bench/README.md: in this VM the first touch of a
 * 4 KiB page costs about 1.6 us, of a 2 MiB piece no more). */
size_t lmdb_map_used_whole(lmdb_store_t *st, uint8_t **addr);
/* n bytes of fresh zero pages, 2 MiB-aligned and asked for huge pages:
 * each 4 KiB page faulted in costs tens of microseconds in some VMs, and
 * a cache looked up at random misses the TLB on small pages. *map is what
 * to unmap (n + LMDB_HUGE_PAGE bytes); NULL when out of memory. */
#define LMDB_HUGE_PAGE ((size_t)2 << 20)
void *lmdb_huge_map(size_t n, void **map);

/* store_lmdb_read.c: the seq of the event `id` that org published, in
 * txn: 0, MDB_NOTFOUND, or another LMDB code. */
int lmdb_ids_find(lmdb_store_t *st, MDB_txn *txn, const char *org, const uint8_t id[16], uint64_t *seq);

/* store_lmdb_read.c: the read operations of store.h */
int lmdb_read(schakel_store_t *s, const char *stream, uint64_t from_seq, size_t max_count, size_t max_bytes,
              schakel_record_fn fn, void *arg, uint64_t *next_seq);
int lmdb_read_upto_skip(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto,
                        size_t max_count, size_t max_bytes, const schakel_type_set_t *skip,
                        schakel_record_fn fn, void *arg, uint64_t *next_seq);
int lmdb_read_upto(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto, size_t max_count,
                   size_t max_bytes, schakel_record_fn fn, void *arg, uint64_t *next_seq);
int lmdb_lookup(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq);
int lmdb_lookup_upto(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq,
                     uint64_t *upto);
void lmdb_recent_free(lmdb_store_t *st);
int lmdb_holds_id_at(schakel_store_t *s, uint64_t seq, const uint8_t id[16]);
int lmdb_cursor_get(schakel_store_t *s, const char *name, uint64_t *seq);

/* store_lmdb_keys.c */
void lmdb_derive(const uint8_t master[32], const char *label, uint8_t out[32]);
/* The key id of a subject (a keyed hash; cached). */
void lmdb_key_id_of(lmdb_store_t *st, const char *subject, uint8_t id[KEY_ID_LEN]);
/* The key cache, under key_lock (any thread): get copies a cached key
 * out (1: found); drop forgets one key id; clear forgets every key. */
int lmdb_key_cache_get(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN], uint8_t key[SCHAKEL_AEAD_KEY_LEN],
                       uint64_t *erased_upto);
void lmdb_key_cache_drop(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN]);
void lmdb_key_cache_clear(lmdb_store_t *st);
int lmdb_is_tomb(const MDB_val *v);
/* The data key of key id `id` (see the comment on its definition). */
int lmdb_data_key_ex(lmdb_store_t *st, MDB_txn *txn, const uint8_t id[KEY_ID_LEN], int create,
                     uint8_t key[SCHAKEL_AEAD_KEY_LEN], uint64_t *erased_upto, char *why);
int lmdb_data_key(lmdb_store_t *st, MDB_txn *txn, const uint8_t id[KEY_ID_LEN], int create,
                  uint8_t key[SCHAKEL_AEAD_KEY_LEN], char *why);
int lmdb_erase_subject(schakel_store_t *s, const char *subject);
int lmdb_erased_before(schakel_store_t *s, const char *subject, uint64_t *upto, int64_t *at_ms);

struct schakel_verify_report;
/* store_lmdb_audit.c: the plaintext of record seq (body b) into a malloc'd
 * *plain. 0, SCHAKEL_ENOTFOUND (its data key is gone: erased or missing)
 * or SCHAKEL_ECORRUPT (does not decrypt). */
int lmdb_record_open(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const Schakel__V1__RecordBody *b,
                     uint8_t **plain, size_t *plen);

/* store_lmdb_body.c: a record's body as schakel__v1__record_body__unpack
 * gives it, from allocator a (an arena: never freed field by field), its
 * bytes fields pointing into data when the body has the form the broker
 * writes (then data must outlive it). NULL when it does not decode. */
Schakel__V1__RecordBody *lmdb_body_unpack(ProtobufCAllocator *a, const uint8_t *data, size_t len);
/* The same for a batch proof: its event hashes point into data. */
Schakel__V1__BatchProof *lmdb_proof_unpack(ProtobufCAllocator *a, const uint8_t *data, size_t len);

/* store_lmdb_audit.c: fills r->bad_seq and r->why; SCHAKEL_ECORRUPT. */
int lmdb_verify_fail(struct schakel_verify_report *r, uint64_t seq, const char *msg);
/* One checkpoint's signature check, for any thread (lmdb_cp_job_run). */
typedef struct {
    uint64_t seq;
    const uint8_t *pub;
    uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN];
    uint8_t sig[SCHAKEL_ED25519_SIG_LEN];
    int ok;
} lmdb_cp_job_t;
void lmdb_cp_job_run(lmdb_cp_job_t *j);
/* Runs lmdb_cp_job_run on each of the n jobs, on any threads. */
typedef void (*lmdb_cp_run_fn)(void *arg, lmdb_cp_job_t *jobs, size_t n);
/* Every stored checkpoint: its hash on the chain up to r->head, its
 * signature by broker_pub (if not NULL), the signatures checked by run
 * (NULL: here, one after the other); the first that fails is named. */
int lmdb_verify_checkpoints(lmdb_store_t *st, MDB_txn *txn, const uint8_t *broker_pub,
                            struct schakel_verify_report *r, lmdb_cp_run_fn run, void *arg);

/* store_lmdb_erasures.c: every erasure record that erased a record of the
 * walk has the broker's `erasure` event on the log (SCHAKEL_VERIFY_ERASURES).
 * lmdb_erasures_record takes each record in seq order, with the seq up to
 * which the erasure record of its key erased (0: not erased); finish
 * fails naming the first erased record of a subject with no event. */
typedef struct lmdb_erasures lmdb_erasures_t;
lmdb_erasures_t *lmdb_erasures_new(void);
int lmdb_erasures_record(lmdb_erasures_t *e, lmdb_store_t *st, MDB_txn *txn, uint64_t seq,
                         const Schakel__V1__RecordBody *b, uint64_t erased_upto,
                         struct schakel_verify_report *r);
int lmdb_erasures_finish(lmdb_erasures_t *e, struct schakel_verify_report *r);
void lmdb_erasures_free(lmdb_erasures_t **e);

/* store_lmdb_sigs.c: checks batch signatures record by record, in seq
 * order, with the directory the log had at each point. */
typedef struct lmdb_sigs lmdb_sigs_t;
lmdb_sigs_t *lmdb_sigs_new(MDB_txn *txn, MDB_dbi proofs, const uint8_t *broker_pub);
/* 0, or SCHAKEL_ECORRUPT with r->bad_seq and r->why filled. */
/* A batch proof read ahead, by any thread: lmdb_proof_fetch finds the
 * proof stored at seq (mv_data NULL when it is not there) and asks for
 * its bytes to be fetched into the cache; lmdb_proof_decode decodes it (with
 * allocator a, an arena's: its hashes are left in the map), checks its
 * form, and takes the digest its signer signed (schakel_batch_digest of
 * its event hashes). proof is NULL when it does not decode. */
typedef struct {
    Schakel__V1__BatchProof *proof;
    uint8_t digest[SCHAKEL_SHA256_LEN];
} lmdb_proof_t;
void lmdb_proof_fetch(MDB_txn *txn, MDB_dbi proofs, uint64_t seq, MDB_val *v);
void lmdb_proof_decode(ProtobufCAllocator *a, const MDB_val *v, lmdb_proof_t *out);
/* pre: for a record that starts its batch, lmdb_proof_decode of its proof
 * (proof NULL when it is not there). */
int lmdb_sigs_record(lmdb_sigs_t *w, lmdb_store_t *st, MDB_txn *txn, uint64_t seq,
                     const Schakel__V1__RecordBody *b, const lmdb_proof_t *pre,
                     struct schakel_verify_report *r);
/* After the last record: no proof is left over. */
int lmdb_sigs_finish(lmdb_sigs_t *w, struct schakel_verify_report *r);
void lmdb_sigs_free(lmdb_sigs_t **w);

/* The Ed25519 checks themselves are left for later, so that a pool of
 * threads can run them (store_lmdb_verify.c): lmdb_sigs_record queues one
 * job per batch with the keys the directory in force allows; the caller
 * runs lmdb_sig_job_run on each (any thread, any order), then
 * lmdb_sigs_resolve takes the results in seq order. */
typedef struct {
    uint64_t seq;   /* the batch's first record */
    uint64_t epoch; /* directories taken before it */
    int64_t at;
    uint8_t digest[SCHAKEL_SHA256_LEN];
    uint8_t sig[SCHAKEL_ED25519_SIG_LEN];
    uint8_t key[SCHAKEL_ED25519_PUB_LEN]; /* in force (has_key) */
    uint8_t old[SCHAKEL_ED25519_PUB_LEN]; /* the one a change just replaced (has_old) */
    char signer[64];
    char ver[32];
    uint8_t is_broker, has_key, has_old, has_replaced;
    int8_t key_ok, old_ok; /* results: 1 verifies, 0 not or not tried */
} lmdb_sig_job_t;
/* The jobs queued since the last resolve. */
lmdb_sig_job_t *lmdb_sigs_jobs(lmdb_sigs_t *w, size_t *n);
void lmdb_sig_job_run(lmdb_sig_job_t *j);
/* The jobs' results, in order: 0, or SCHAKEL_ECORRUPT with r->bad_seq
 * and r->why filled for the first that fails. Empties the queue. */
int lmdb_sigs_resolve(lmdb_sigs_t *w, struct schakel_verify_report *r);

#endif
