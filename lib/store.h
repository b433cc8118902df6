/* The log backend: append batches, read ranges and streams, cursors,
 * checkpoints. The broker speaks only to this interface; LMDB
 * (store_lmdb.c) is the embedded default, and a replicated NATS JetStream
 * stream with LMDB as its local index (store_jetstream.c) the other
 * backend; another engine can take their place by providing the same
 * operations.
 *
 * Invariants every backend keeps:
 *  - sequence numbers start at 1 and are contiguous;
 *  - h[n] = SHA-256("schakel/v1" || u64be(n) || h[n-1] || SHA-256(body)),
 *    h[0] = 32 zero bytes, body = the serialized RecordBody (bus.proto);
 *  - an append returns only after everything in it is durable (fsync; on
 *    a replicated log: stored on a quorum of the cluster);
 *    a deferred append returns once it is committed, and is durable when
 *    durable_seq reaches the head it left (the next append's flush, or
 *    sync); a read sees it at once, so whoever promises durability or
 *    acts on a record (an ACK, a FETCH, a service in the node) goes no
 *    further than durable_seq: the broker ACKs once durable_seq covers a
 *    batch, FETCH reads with read_upto(durable_seq), and the services of
 *    a node read the same way (lib/consumer.c: schakel_consumer_local_new);
 *  - an event id is stored once per publishing organisation (the batch's
 *    signer_org): a second append of (signer_org, id) reports the first
 *    copy's seq with duplicate = 1; the same id from another organisation
 *    is another event;
 *  - payloads are stored encrypted with the subject's data key; erasing
 *    the key leaves records and chain intact.
 *
 * Threads: one thread writes (the broker's loop: append, append_deferred,
 * sync, cursor_set, checkpoint, erase_subject, close) and only it may call
 * head and cursor_get. These may be called from any thread at any time
 * while the store is open, also while the writer appends, grows the map
 * or erases a subject: read, read_upto, lookup, holds_id_at, durable_seq
 * and wait_durable (the LMDB store: each read has its own read
 * transaction under the map's resize lock; the data-key cache has a lock
 * of its own). Erasure: a read that runs while erase_subject runs may
 * still decrypt some of the subject's records (it began before the key
 * was gone); no read that starts after erase_subject returned decrypts
 * any, and erase_subject returns only once every read that began before
 * it has ended. close waits for no reader: stop them first. */
#ifndef SCHAKEL_STORE_H
#define SCHAKEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "error.h"

#define SCHAKEL_STREAM_MAX 80
#define SCHAKEL_MAX_INDEX 4

typedef struct schakel_store schakel_store_t;

/* One accepted event to append. */
typedef struct {
    const uint8_t *event; /* envelope bytes as published */
    size_t event_len;
    const uint8_t *event_id;                /* 16 bytes */
    int type;                               /* event type */
    const char *subject;                    /* pseudonym, "" when anonymous */
    uint8_t event_hash[SCHAKEL_SHA256_LEN]; /* SHA-256(event) */
    uint32_t proof_index;                   /* position in the signed batch */
    /* Optional: streams to index a record into besides "all": another
     * record (a delivery: seq of the event into "org/<id>"), or this
     * record itself (seq 0). The entry's place in the stream (its
     * position) is always this record's seq, so an old event delivered
     * now lands after what the stream already holds. Skipped for a
     * duplicate. */
    struct {
        char stream[SCHAKEL_STREAM_MAX];
        uint64_t seq;
    } index[SCHAKEL_MAX_INDEX];
    size_t n_index;
    /* Optional: more streams that take this record itself, at its own
     * place, for an event that goes to many (an erasure into every
     * org/<id>): n_fanout names, each shorter than SCHAKEL_STREAM_MAX.
     * The caller keeps them until the append returns. */
    const char *const *fanout;
    size_t n_fanout;
    /* Optional: the caller looked the id up (schakel_store_lookup_upto)
     * and no record up to this seq held it (0: not looked up). The append
     * then searches only the records after it, where it can, instead of
     * the whole event-id index again. */
    uint64_t absent_upto;
    /* out */
    uint64_t seq;
    int duplicate; /* stored before: seq is the first copy's */
    int conflict;  /* the id was stored before with other bytes: not stored */
} schakel_append_item_t;

/* One signed batch as published; items are the accepted events of it. */
typedef struct {
    const char *signer_org;
    const uint8_t *signature; /* SCHAKEL_ED25519_SIG_LEN bytes */
    const uint8_t (*hashes)[SCHAKEL_SHA256_LEN];
    size_t n_hashes; /* every event of the signed batch */
    schakel_append_item_t *items;
    size_t n_items;
} schakel_append_batch_t;

/* A record as read back; pointers are valid during the callback only. */
typedef struct {
    uint64_t seq;
    uint64_t position; /* its place in the stream read ("all": seq) */
    int64_t recorded_at;
    const uint8_t *hash;  /* h[seq] */
    const uint8_t *event; /* decrypted envelope; NULL when erased */
    size_t event_len;
    const uint8_t *event_id;
    int type;
    const char *source_org;
} schakel_record_t;

/* A set of event types: a bit per EventType number (0 to 255). */
typedef struct schakel_type_set {
    uint64_t bits[4];
} schakel_type_set_t;

static inline void schakel_type_set_add(schakel_type_set_t *t, int type)
{
    if (type >= 0 && type < 256) t->bits[type >> 6] |= (uint64_t)1 << (type & 63);
}

static inline int schakel_type_set_has(const schakel_type_set_t *t, int type)
{
    return t && type >= 0 && type < 256 && ((t->bits[type >> 6] >> (type & 63)) & 1);
}

/* Return 0 to go on, non-zero to stop (that value is returned by read). */
typedef int (*schakel_record_fn)(void *arg, const schakel_record_t *rec);

typedef struct {
    uint64_t seq;
    uint8_t hash[SCHAKEL_SHA256_LEN];
} schakel_head_t;

typedef struct {
    int (*append)(schakel_store_t *s, schakel_append_batch_t *batches, size_t n, int64_t now_ms, char *why);
    int (*read)(schakel_store_t *s, const char *stream, uint64_t from_seq, size_t max_count, size_t max_bytes,
                schakel_record_fn fn, void *arg, uint64_t *next_seq);
    void (*head)(schakel_store_t *s, schakel_head_t *head);
    int (*lookup)(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq);
    int (*holds_id_at)(schakel_store_t *s, uint64_t seq, const uint8_t id[16]);
    int (*cursor_get)(schakel_store_t *s, const char *name, uint64_t *seq);
    int (*cursor_set)(schakel_store_t *s, const char *name, uint64_t seq);
    int (*checkpoint)(schakel_store_t *s, int64_t now_ms);
    int (*erase_subject)(schakel_store_t *s, const char *subject);
    void (*close)(schakel_store_t *s);
    int (*append_deferred)(schakel_store_t *s, schakel_append_batch_t *batches, size_t n, int64_t now_ms,
                           char *why);
    int (*sync)(schakel_store_t *s, char *why);
    uint64_t (*durable_seq)(schakel_store_t *s);
    int (*read_upto)(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto,
                     size_t max_count, size_t max_bytes, schakel_record_fn fn, void *arg, uint64_t *next_seq);
    uint64_t (*wait_durable)(schakel_store_t *s, uint64_t after, int timeout_ms);
    int (*erased_before)(schakel_store_t *s, const char *subject, uint64_t *upto, int64_t *at_ms);
    int (*lookup_upto)(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq,
                       uint64_t *upto);
    /* NULL: read_upto serves (every record whole) */
    int (*read_upto_skip)(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto,
                          size_t max_count, size_t max_bytes, const schakel_type_set_t *skip,
                          schakel_record_fn fn, void *arg, uint64_t *next_seq);
} schakel_store_ops_t;

struct schakel_store {
    const schakel_store_ops_t *ops;
};

/* Appends every batch in one durable transaction (group commit). Fills
 * each item's seq and duplicate. Returns 0; SCHAKEL_EFULL when the map or
 * the disk is full (nothing was stored: retry later); SCHAKEL_ESTORE. */
SCHAKEL_MUST_USE static inline int schakel_store_append(schakel_store_t *s, schakel_append_batch_t *b,
                                                        size_t n, int64_t now_ms, char *why)
{
    return s->ops->append(s, b, n, now_ms, why);
}

/* As schakel_store_append, but it returns before the commit is durable:
 * it becomes durable with the next append (deferred or not), cursor_set,
 * checkpoint or sync, whichever flushes first; schakel_store_durable_seq
 * says how far that has come. Half the flushes of an append under load:
 * the next group's flush carries this one. */
static inline int schakel_store_append_deferred(schakel_store_t *s, schakel_append_batch_t *b, size_t n,
                                                int64_t now_ms, char *why)
{
    return s->ops->append_deferred(s, b, n, now_ms, why);
}

/* Makes everything appended so far durable (one flush; nothing to do if it
 * is). 0 or an error code with the reason in why. */
static inline int schakel_store_sync(schakel_store_t *s, char *why)
{
    return s->ops->sync(s, why);
}

/* Every record up to this seq survives a crash or power loss. Records
 * above it (deferred appends) are committed and readable, not yet durable. */
static inline uint64_t schakel_store_durable_seq(schakel_store_t *s)
{
    return s->ops->durable_seq(s);
}

/* Calls fn for each record of stream ("all" or another name) at a
 * position >= from_seq (for "all" the position is the seq), at most
 * max_count records and about max_bytes of events (at least one record). *next_seq is the position the next read should start at. */
SCHAKEL_MUST_USE static inline int schakel_store_read(schakel_store_t *s, const char *stream,
                                                      uint64_t from_seq, size_t max_count, size_t max_bytes,
                                                      schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    return s->ops->read(s, stream, from_seq, max_count, max_bytes, fn, arg, next_seq);
}

/* As schakel_store_read, but no record at a position above upto: the
 * read ends before it (*next_seq is then that position). Any thread. */
SCHAKEL_MUST_USE static inline int schakel_store_read_upto(schakel_store_t *s, const char *stream,
                                                           uint64_t from_seq, uint64_t upto, size_t max_count,
                                                           size_t max_bytes, schakel_record_fn fn, void *arg,
                                                           uint64_t *next_seq)
{
    return s->ops->read_upto(s, stream, from_seq, upto, max_count, max_bytes, fn, arg, next_seq);
}

/* As schakel_store_read_upto, but a record whose type is in skip comes
 * without its payload (event NULL, as an erased one; nothing decrypted):
 * for a reader that does nothing with such records. A backend without
 * it gives every record whole. */
SCHAKEL_MUST_USE static inline int
schakel_store_read_upto_skip(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto,
                             size_t max_count, size_t max_bytes, const schakel_type_set_t *skip,
                             schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    return s->ops->read_upto_skip
               ? s->ops->read_upto_skip(s, stream, from_seq, upto, max_count, max_bytes, skip, fn, arg,
                                        next_seq)
               : s->ops->read_upto(s, stream, from_seq, upto, max_count, max_bytes, fn, arg, next_seq);
}

/* Waits until durable_seq is above after, at most timeout_ms; returns
 * durable_seq then. Any thread: how a reader in the broker's process
 * sleeps until the durable head moves. */
static inline uint64_t schakel_store_wait_durable(schakel_store_t *s, uint64_t after, int timeout_ms)
{
    return s->ops->wait_durable(s, after, timeout_ms);
}

/* The last record's seq and hash (seq 0: an empty log). Cannot fail: the
 * store keeps its head in memory. The writer's thread only. */
static inline void schakel_store_head(schakel_store_t *s, schakel_head_t *head)
{
    s->ops->head(s, head);
}

/* seq of the event that source_org published with event_id, or
 * SCHAKEL_ENOTFOUND. Ids are scoped to their publisher: another
 * organisation's event with the same id is never found. */
SCHAKEL_MUST_USE static inline int schakel_store_lookup(schakel_store_t *s, const char *source_org,
                                                        const uint8_t *event_id, uint64_t *seq)
{
    return s->ops->lookup(s, source_org, event_id, seq);
}

/* The same; when not found, *upto is the last seq of the log as that
 * lookup saw it: no record up to there holds the id (an append item's
 * absent_upto). */
SCHAKEL_MUST_USE static inline int schakel_store_lookup_upto(schakel_store_t *s, const char *source_org,
                                                             const uint8_t *event_id, uint64_t *seq,
                                                             uint64_t *upto)
{
    return s->ops->lookup_upto(s, source_org, event_id, seq, upto);
}

/* Is the record at seq the event with id id: 0, SCHAKEL_ENOTFOUND (no
 * record there, or another event), or SCHAKEL_ESTORE. */
SCHAKEL_MUST_USE static inline int schakel_store_holds_id_at(schakel_store_t *s, uint64_t seq,
                                                             const uint8_t id[16])
{
    return s->ops->holds_id_at(s, seq, id);
}

/* Cursors: a missing cursor reads as 0. set is durable when it returns. */
SCHAKEL_MUST_USE static inline int schakel_store_cursor_get(schakel_store_t *s, const char *name,
                                                            uint64_t *seq)
{
    return s->ops->cursor_get(s, name, seq);
}
SCHAKEL_MUST_USE static inline int schakel_store_cursor_set(schakel_store_t *s, const char *name,
                                                            uint64_t seq)
{
    return s->ops->cursor_set(s, name, seq);
}

/* Writes a signed checkpoint of the head if events arrived since the last
 * one and it is due by time. Returns 0 or an error code. */
SCHAKEL_MUST_USE static inline int schakel_store_checkpoint(schakel_store_t *s, int64_t now_ms)
{
    return s->ops->checkpoint(s, now_ms);
}

/* Destroys the subject's data key: its events can no longer be decrypted;
 * the chain still verifies. Every copy of the wrapped key that LMDB left
 * in freed pages is overwritten too. 0; SCHAKEL_ENOTFOUND (no key: never
 * seen, or erased before); SCHAKEL_EIO: erased for good, but the copies
 * could not all be overwritten (an I/O error, logged); another code:
 * nothing was erased. */
SCHAKEL_MUST_USE static inline int schakel_store_erase_subject(schakel_store_t *s, const char *subject)
{
    return s->ops->erase_subject(s, subject);
}

/* Was the subject erased, with no key made for it since? 0 with the
 * erasure's last erased seq and its time (unix ms); SCHAKEL_ENOTFOUND
 * when it has a data key, or never had one. */
SCHAKEL_MUST_USE static inline int schakel_store_erased_before(schakel_store_t *s, const char *subject,
                                                               uint64_t *upto, int64_t *at_ms)
{
    return s->ops->erased_before(s, subject, upto, at_ms);
}

static inline void schakel_store_close(schakel_store_t **s)
{
    if (*s) {
        (*s)->ops->close(*s);
        *s = NULL;
    }
}

#endif
