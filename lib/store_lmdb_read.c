/* Reading the LMDB log: ranges of "all" or of a stream (FETCH, services,
 * tail), each record's payload decrypted with its subject's data key (or
 * none when erased); the event-id lookups the broker's checker makes
 * while the loop appends; consumer cursors. Reads and lookups run in any
 * thread while the loop appends: each has its own read transaction,
 * under the resize lock. */
#include "store_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "error.h"
#include "store_lmdb_impl.h"

typedef struct {
    lmdb_store_t *st;
    MDB_txn *txn;
} reader_t;

/* Decodes one stored value and hands it to fn; decrypts with the data key.
 * Every reader of the log (each service of a node, FETCH, replay) pays this
 * per record, so nothing here is malloc'd: the body is read in place
 * (lmdb_body_unpack: its bytes point into the map, valid in txn) and the
 * payload opened into a, which the next record reuses. */
static int deliver(lmdb_store_t *st, MDB_txn *txn, schakel_arena_t *a, const schakel_type_set_t *skip,
                   uint64_t seq, uint64_t position, const MDB_val *v, schakel_record_fn fn, void *arg,
                   size_t *bytes)
{
    if (v->mv_size < HDR_LEN) return SCHAKEL_ECORRUPT;
    const uint8_t *p = v->mv_data;
    schakel_arena_reset(a);
    Schakel__V1__RecordBody *body =
        lmdb_body_unpack(schakel_arena_allocator(a), p + HDR_LEN, v->mv_size - HDR_LEN);
    if (!body) return SCHAKEL_ECORRUPT;
    schakel_record_t rec = {0};
    rec.seq = seq;
    rec.position = position;
    rec.recorded_at = body->recorded_at;
    rec.hash = p + 32;
    rec.event_id = body->event_id.data;
    rec.type = body->type;
    rec.source_org = body->source_org;
    uint8_t dk[SCHAKEL_AEAD_KEY_LEN];
    uint64_t erased_upto = 0;
    if (!schakel_type_set_has(skip, rec.type) && body->key_id.len == KEY_ID_LEN &&
        body->nonce.len == SCHAKEL_AEAD_NONCE_LEN && body->ciphertext.len >= SCHAKEL_AEAD_TAG_LEN &&
        lmdb_data_key_ex(st, txn, body->key_id.data, 0, dk, &erased_upto, NULL) == 0 && seq > erased_upto) {
        size_t plen = body->ciphertext.len - SCHAKEL_AEAD_TAG_LEN;
        uint8_t aad[24];
        schakel_put_be64(aad, seq);
        memcpy(aad + 8, body->event_id.data, body->event_id.len == 16 ? 16 : 0);
        uint8_t *plain = schakel_arena_alloc(a, plen ? plen : 1);
        if (!plain) return SCHAKEL_ENOMEM;
        if (schakel_aead_open(dk, body->nonce.data, aad, sizeof aad, body->ciphertext.data,
                              body->ciphertext.len, plain) != 0)
            return SCHAKEL_ECORRUPT;
        rec.event = plain;
        rec.event_len = plen;
    }
    *bytes += rec.event_len;
    return fn(arg, &rec);
}

int lmdb_read(schakel_store_t *s, const char *stream, uint64_t from_seq, size_t max_count, size_t max_bytes,
              schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    return lmdb_read_upto(s, stream, from_seq, UINT64_MAX, max_count, max_bytes, fn, arg, next_seq);
}

static int read_locked(lmdb_store_t *st, const char *stream, uint64_t from_seq, uint64_t upto,
                       size_t max_count, size_t max_bytes, const schakel_type_set_t *skip,
                       schakel_record_fn fn, void *arg, uint64_t *next_seq);

/* Any thread: the read transaction is open only under the resize lock
 * (no map growth, no reopen meanwhile). */
int lmdb_read_upto(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto, size_t max_count,
                   size_t max_bytes, schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    return lmdb_read_upto_skip(s, stream, from_seq, upto, max_count, max_bytes, NULL, fn, arg, next_seq);
}

int lmdb_read_upto_skip(schakel_store_t *s, const char *stream, uint64_t from_seq, uint64_t upto,
                        size_t max_count, size_t max_bytes, const schakel_type_set_t *skip,
                        schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    pthread_rwlock_rdlock(&st->resize);
    int rc = read_locked(st, stream, from_seq, upto, max_count, max_bytes, skip, fn, arg, next_seq);
    pthread_rwlock_unlock(&st->resize);
    return rc;
}

static int read_locked(lmdb_store_t *st, const char *stream, uint64_t from_seq, uint64_t upto,
                       size_t max_count, size_t max_bytes, const schakel_type_set_t *skip,
                       schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    schakel_arena_t *a = schakel_arena_new(16 << 10); /* a record's body and payload (deliver) */
    if (!a) return SCHAKEL_ENOMEM;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        schakel_arena_destroy(&a);
        return lmdb_err(rc, NULL, "begin read");
    }
    if (from_seq == 0) from_seq = 1;
    *next_seq = from_seq;
    size_t count = 0, bytes = 0;
    int all = strcmp(stream, "all") == 0;
    rc = mdb_cursor_open(txn, all ? st->events : st->streams, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        schakel_arena_destroy(&a);
        return lmdb_err(rc, NULL, "open cursor");
    }
    uint8_t key[SCHAKEL_STREAM_MAX + 9];
    size_t sl = strnlen(stream, SCHAKEL_STREAM_MAX - 1);
    MDB_val k, v;
    if (all) {
        schakel_put_be64(key, from_seq);
        k.mv_size = 8;
    } else {
        memcpy(key, stream, sl);
        key[sl] = 0;
        schakel_put_be64(key + sl + 1, from_seq);
        k.mv_size = sl + 9;
    }
    k.mv_data = key;
    int op = MDB_SET_RANGE;
    int out = 0;
    while (count < max_count && (count == 0 || bytes < max_bytes)) {
        rc = mdb_cursor_get(cur, &k, &v, op);
        op = MDB_NEXT;
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) break;
        uint64_t seq, position;
        if (all) {
            seq = position = schakel_get_be64(k.mv_data);
            if (position > upto) break;
        } else {
            if (k.mv_size != sl + 9 || memcmp(k.mv_data, key, sl + 1) != 0) break;
            /* an empty value: the entry is the record at its own place */
            position = schakel_get_be64((uint8_t *)k.mv_data + sl + 1);
            if (position > upto) break;
            seq = v.mv_size == 8 ? schakel_get_be64(v.mv_data) : position;
            uint8_t ek8[8];
            schakel_put_be64(ek8, seq);
            MDB_val ek = {8, ek8};
            rc = mdb_get(txn, st->events, &ek, &v);
            if (rc) break;
        }
        out = deliver(st, txn, a, skip, seq, position, &v, fn, arg, &bytes);
        count++;
        *next_seq = position + 1;
        if (out) break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    schakel_arena_destroy(&a);
    if (rc) return lmdb_err(rc, NULL, "read");
    return out;
}

/* The record at seq names publisher org (and, with id, event id id)? */
static int record_from(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const char *org, const uint8_t *id)
{
    uint8_t key[8];
    schakel_put_be64(key, seq);
    MDB_val k = {8, key}, v;
    if (mdb_get(txn, st->events, &k, &v) != 0 || v.mv_size <= HDR_LEN) return 0;
    Schakel__V1__RecordBody *b =
        schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (uint8_t *)v.mv_data + HDR_LEN);
    int same = b && b->source_org && strcmp(b->source_org, org) == 0 &&
               (!id || (b->event_id.len == 16 && memcmp(b->event_id.data, id, 16) == 0));
    if (b) schakel__v1__record_body__free_unpacked(b, NULL);
    return same;
}

/* Table `ids` holds id || seq for every event: the candidates are the
 * keys that start with the id, and the one whose record names this
 * publisher is it (another organisation may have used the same id; a
 * publisher's own copy is there once). */
int lmdb_ids_find(lmdb_store_t *st, MDB_txn *txn, const char *org, const uint8_t id[16], uint64_t *seq)
{
    uint8_t from[IDS_KEY_LEN];
    ids_key(from, id, 0);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->ids, &cur);
    if (rc) return rc;
    MDB_val k = {IDS_KEY_LEN, from}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != IDS_KEY_LEN || memcmp(k.mv_data, from, IDS_PREFIX_LEN) != 0) {
            rc = MDB_NOTFOUND;
            break;
        }
        uint64_t s = schakel_get_be64((const uint8_t *)k.mv_data + IDS_PREFIX_LEN);
        if (record_from(st, txn, s, org, id)) {
            *seq = s;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

/* A log from before table `ids`, opened read-only: its `by_id`. */
static int old_lookup(lmdb_store_t *st, MDB_txn *txn, const char *source_org, const uint8_t *event_id,
                      uint64_t *seq)
{
    uint8_t ik[ID_KEY_MAX];
    MDB_val k = {id_key(ik, source_org, event_id), ik}, v;
    if (st->index == OLD_BY_BARE_ID) { /* ids were unique across the log: check the publisher */
        k.mv_size = 16;
        k.mv_data = (void *)event_id;
    }
    int rc = mdb_get(txn, st->by_id, &k, &v);
    if (rc == 0 && v.mv_size != 8) rc = MDB_NOTFOUND;
    if (rc == 0 && st->index == OLD_BY_BARE_ID &&
        !record_from(st, txn, schakel_get_be64(v.mv_data), source_org, NULL))
        rc = MDB_NOTFOUND;
    if (rc == 0) *seq = schakel_get_be64(v.mv_data);
    return rc;
}

int lmdb_lookup(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq)
{
    return lmdb_lookup_upto(s, source_org, event_id, seq, NULL);
}

/* The last seq the read transaction sees (0 when it cannot tell: then
 * nothing is vouched for). */
static uint64_t last_seq(lmdb_store_t *st, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t last = 0;
    if (mdb_cursor_open(txn, st->events, &cur) != 0) return 0;
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) last = schakel_get_be64(k.mv_data);
    mdb_cursor_close(cur);
    return last;
}

int lmdb_lookup_upto(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq,
                     uint64_t *upto)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (upto) *upto = 0;
    MDB_txn *txn;
    pthread_rwlock_rdlock(&st->resize); /* the broker's checker thread calls this */
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) {
        pthread_rwlock_unlock(&st->resize);
        return SCHAKEL_ESTORE;
    }
    int rc;
    if (st->index == IDS) {
        rc = lmdb_ids_find(st, txn, source_org, event_id, seq);
    } else {
        rc = old_lookup(st, txn, source_org, event_id, seq);
    }
    if (rc == MDB_NOTFOUND && upto) *upto = last_seq(st, txn);
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : SCHAKEL_ESTORE;
}

/* Table `ids` holds id || seq exactly when the record at seq is the
 * event id: one search of the index, no record read or decoded (a log
 * from before that table, opened read-only: its record). */
int lmdb_holds_id_at(schakel_store_t *s, uint64_t seq, const uint8_t id[16])
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    pthread_rwlock_rdlock(&st->resize);
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) {
        pthread_rwlock_unlock(&st->resize);
        return SCHAKEL_ESTORE;
    }
    int rc;
    if (st->index == IDS) {
        uint8_t ik[IDS_KEY_LEN];
        ids_key(ik, id, seq);
        MDB_val k = {IDS_KEY_LEN, ik}, v;
        rc = mdb_get(txn, st->ids, &k, &v);
    } else {
        uint8_t key[8];
        schakel_put_be64(key, seq);
        MDB_val k = {8, key}, v;
        rc = mdb_get(txn, st->events, &k, &v);
        if (rc == 0) {
            Schakel__V1__RecordBody *b =
                v.mv_size > HDR_LEN ? schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN,
                                                                       (uint8_t *)v.mv_data + HDR_LEN)
                                    : NULL;
            rc = b && b->event_id.len == 16 && memcmp(b->event_id.data, id, 16) == 0 ? 0 : MDB_NOTFOUND;
            if (b) schakel__v1__record_body__free_unpacked(b, NULL);
        }
    }
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : SCHAKEL_ESTORE;
}

int lmdb_cursor_get(schakel_store_t *s, const char *name, uint64_t *seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    *seq = 0;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) return SCHAKEL_ESTORE;
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, st->cursors, &k, &v);
    if (rc == 0 && v.mv_size == 8) *seq = schakel_get_be64(v.mv_data);
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SCHAKEL_ESTORE;
}

int lmdb_record_body(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, MDB_val *v, Schakel__V1__RecordBody **body,
                     const char *what, char *why)
{
    uint8_t key[8];
    schakel_put_be64(key, seq);
    MDB_val k = {8, key};
    *body = NULL;
    int rc = mdb_get(txn, st->events, &k, v);
    if (rc) return lmdb_err(rc, why, what);
    *body = v->mv_size > HDR_LEN ? schakel__v1__record_body__unpack(NULL, v->mv_size - HDR_LEN,
                                                                    (uint8_t *)v->mv_data + HDR_LEN)
                                 : NULL;
    if (!*body)
        return schakel_fail(why, SCHAKEL_ECORRUPT, "record %llu does not decode", (unsigned long long)seq);
    return 0;
}
