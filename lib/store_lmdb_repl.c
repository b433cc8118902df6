/* The LMDB log as the local index of a replicated stream (the jetstream
 * backend, store_jetstream.c): an append's new records become one stream
 * message each, carrying everything the append wrote for that record
 * (ReplicatedRecord, bus.proto), and a message read back from the stream
 * is applied to the index exactly as the append would have written it.
 * The writer's thread only. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store_lmdb_impl.h"

/* The writes of one record besides the record: stream entries (one per
 * index and fanout name), a proof, a data key, a checkpoint. */
typedef struct {
    Schakel__V1__ReplicatedPut *puts, **ptrs;
    uint8_t (*sk)[SCHAKEL_STREAM_MAX + 9], (*target)[8], seqkey[8];
    size_t n, cap;
} puts_t;

static int puts_init(puts_t *p, size_t entries)
{
    p->n = 0;
    p->cap = entries + 3;
    p->puts = calloc(p->cap, sizeof *p->puts);
    p->ptrs = calloc(p->cap, sizeof *p->ptrs);
    p->sk = calloc(entries ? entries : 1, sizeof *p->sk);
    p->target = calloc(entries ? entries : 1, sizeof *p->target);
    return p->puts && p->ptrs && p->sk && p->target ? 0 : SCHAKEL_ENOMEM;
}

static void puts_free(puts_t *p)
{
    free(p->puts);
    free(p->ptrs);
    free(p->sk);
    free(p->target);
}

static void add_put(puts_t *p, int table, const void *k, size_t kl, const void *v, size_t vl)
{
    Schakel__V1__ReplicatedPut *u = &p->puts[p->n];
    schakel__v1__replicated_put__init(u);
    u->table = table;
    u->key.data = (uint8_t *)k;
    u->key.len = kl;
    u->value.data = (uint8_t *)v;
    u->value.len = vl;
    p->ptrs[p->n++] = u;
}

/* What the append wrote for record seq besides the record: its stream
 * entries (item it, if any), its batch's proof, its data key, a checkpoint.
 * Values point into txn's pages: valid until it ends. */
static int gather(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const Schakel__V1__RecordBody *b,
                  const schakel_append_item_t *it, const lmdb_repl_entry_t *found, size_t n_found, puts_t *p,
                  char *why)
{
    schakel_put_be64(p->seqkey, seq);
    size_t entries = it ? it->n_index + it->n_fanout : 0;
    for (size_t x = 0; x < entries; x++) {
        MDB_val k, v;
        lmdb_stream_entry(it, x, seq, p->sk[x], &k, p->target[x], &v);
        add_put(p, SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_STREAMS, k.mv_data, k.mv_size,
                v.mv_size ? v.mv_data : NULL, v.mv_size);
    }
    for (size_t x = 0; x < n_found; x++)
        add_put(p, SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_STREAMS, found[x].key.mv_data,
                found[x].key.mv_size, found[x].value.mv_size ? found[x].value.mv_data : NULL,
                found[x].value.mv_size);
    MDB_val k = {8, p->seqkey}, v;
    int rc = mdb_get(txn, st->proofs, &k, &v);
    if (rc == 0)
        add_put(p, SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_PROOFS, p->seqkey, 8, v.mv_data,
                v.mv_size);
    else if (rc != MDB_NOTFOUND) return lmdb_err(rc, why, "read proof to replicate");
    MDB_val kk = {b->key_id.len, b->key_id.data};
    rc = mdb_get(txn, st->keys, &kk, &v);
    if (rc == 0)
        add_put(p, SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_KEYS, b->key_id.data, b->key_id.len,
                v.mv_data, v.mv_size);
    else if (rc != MDB_NOTFOUND) return lmdb_err(rc, why, "read data key to replicate");
    rc = mdb_get(txn, st->checkpoints, &k, &v);
    if (rc == 0)
        add_put(p, SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_CHECKPOINTS, p->seqkey, 8, v.mv_data,
                v.mv_size);
    else if (rc != MDB_NOTFOUND) return lmdb_err(rc, why, "read checkpoint to replicate");
    return 0;
}

/* The message of record seq, packed into m. */
static int make_msg(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const schakel_append_item_t *it,
                    const lmdb_repl_entry_t *found, size_t n_found, lmdb_repl_msg_t *m, char *why)
{
    MDB_val v;
    Schakel__V1__RecordBody *b;
    int rc = lmdb_record_body(st, txn, seq, &v, &b, "read record to replicate", why);
    if (rc) return rc;
    puts_t p;
    rc = puts_init(&p, (it ? it->n_index + it->n_fanout : 0) + n_found);
    if (rc == 0) rc = gather(st, txn, seq, b, it, found, n_found, &p, why);
    if (rc == 0) {
        Schakel__V1__ReplicatedRecord r = SCHAKEL__V1__REPLICATED_RECORD__INIT;
        r.record.data = v.mv_data;
        r.record.len = v.mv_size;
        r.n_puts = p.n;
        r.puts = p.ptrs;
        m->seq = seq;
        m->len = schakel__v1__replicated_record__get_packed_size(&r);
        m->data = malloc(m->len);
        if (!m->data) rc = SCHAKEL_ENOMEM;
        else schakel__v1__replicated_record__pack(&r, m->data);
        size_t o =
            (size_t)snprintf(m->msg_id, sizeof m->msg_id, "%.64s/", b->source_org ? b->source_org : "");
        for (size_t i = 0; i < b->event_id.len && i < 16; i++)
            o += (size_t)snprintf(m->msg_id + o, sizeof m->msg_id - o, "%02x", b->event_id.data[i]);
    }
    puts_free(&p);
    schakel__v1__record_body__free_unpacked(b, NULL);
    return rc;
}

int lmdb_repl_publish(lmdb_store_t *st, MDB_txn *txn, uint64_t before, const schakel_append_batch_t *batches,
                      size_t n, char *why)
{
    size_t count = (size_t)(st->head.seq - before);
    lmdb_repl_msg_t *msgs = calloc(count, sizeof *msgs);
    const schakel_append_item_t **items = calloc(count, sizeof *items);
    int rc = msgs && items ? 0 : SCHAKEL_ENOMEM;
    /* each item stored by this append, at its record's place */
    for (size_t i = 0; rc == 0 && i < n; i++)
        for (size_t j = 0; j < batches[i].n_items; j++) {
            const schakel_append_item_t *it = &batches[i].items[j];
            if (!it->duplicate && it->seq > before && it->seq <= st->head.seq)
                items[it->seq - before - 1] = it;
        }
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = make_msg(st, txn, before + 1 + i, items[i], NULL, 0, &msgs[i], why);
    if (rc == 0) rc = st->replicate(st->repl_arg, msgs, count, why);
    for (size_t i = 0; msgs && i < count; i++) free(msgs[i].data);
    free(msgs);
    free(items);
    return rc;
}

int lmdb_repl_message(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const lmdb_repl_entry_t *entries,
                      size_t n, lmdb_repl_msg_t *m, char *why)
{
    return make_msg(st, txn, seq, NULL, entries, n, m, why);
}

static MDB_dbi table_of(lmdb_store_t *st, int table, int *ok)
{
    *ok = 1;
    switch (table) {
    case SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_STREAMS: return st->streams;
    case SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_PROOFS: return st->proofs;
    case SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_KEYS: return st->keys;
    case SCHAKEL__V1__REPLICATED_TABLE__REPLICATED_TABLE_CHECKPOINTS: return st->checkpoints;
    default: *ok = 0; return 0;
    }
}

/* The record of r is the next one: its seq, its link to the head, its hash. */
static int check_next(lmdb_store_t *st, const Schakel__V1__ReplicatedRecord *r, uint64_t seq,
                      Schakel__V1__RecordBody **body, char *why)
{
    const uint8_t *rec = r->record.data;
    *body = r->record.len > HDR_LEN
                ? schakel__v1__record_body__unpack(NULL, r->record.len - HDR_LEN, rec + HDR_LEN)
                : NULL;
    if (!*body)
        return schakel_fail(why, SCHAKEL_ECORRUPT, "stream record %llu does not decode",
                            (unsigned long long)seq);
    uint8_t h[SCHAKEL_SHA256_LEN];
    lmdb_chain_hash(seq, st->head.hash, rec + HDR_LEN, r->record.len - HDR_LEN, h);
    if ((*body)->seq != seq || memcmp(rec, st->head.hash, 32) != 0 || memcmp(rec + 32, h, 32) != 0)
        return schakel_fail(
            why, SCHAKEL_ECORRUPT,
            "stream record %llu does not extend the local chain (head %llu): not this log's stream",
            (unsigned long long)seq, (unsigned long long)st->head.seq);
    if ((*body)->event_id.len != 16)
        return schakel_fail(why, SCHAKEL_ECORRUPT, "stream record %llu has no event id",
                            (unsigned long long)seq);
    return 0;
}

static int apply_in(lmdb_store_t *st, MDB_txn *txn, const Schakel__V1__ReplicatedRecord *r,
                    const Schakel__V1__RecordBody *b, uint64_t seq, int *cp, char *why)
{
    uint8_t key[8], ik[IDS_KEY_LEN];
    if (!b || b->event_id.len != 16) /* check_next made sure; the analyser cannot see it */
        return schakel_fail(why, SCHAKEL_ECORRUPT, "stream record %llu has no event id",
                            (unsigned long long)seq);
    schakel_put_be64(key, seq);
    MDB_val k = {8, key}, v = {r->record.len, r->record.data};
    int rc = mdb_put(txn, st->events, &k, &v, MDB_APPEND);
    if (rc) return lmdb_err(rc, why, "apply stream record");
    ids_key(ik, b->event_id.data, seq);
    MDB_val ikv = {IDS_KEY_LEN, ik}, empty = {0, key};
    rc = mdb_put(txn, st->ids, &ikv, &empty, MDB_NOOVERWRITE);
    if (rc) return lmdb_err(rc, why, "apply stream record's id");
    for (size_t i = 0; i < r->n_puts; i++) {
        const Schakel__V1__ReplicatedPut *u = r->puts[i];
        int ok;
        MDB_dbi dbi = table_of(st, u->table, &ok);
        if (!ok || u->key.len == 0 || u->key.len > 511)
            return schakel_fail(why, SCHAKEL_ECORRUPT, "stream record %llu: unknown write",
                                (unsigned long long)seq);
        MDB_val pk = {u->key.len, u->key.data}, pv = {u->value.len, u->value.data};
        /* a data key is carried by every record that uses it: the first wins */
        unsigned flags = dbi == st->keys ? MDB_NOOVERWRITE : 0;
        rc = mdb_put(txn, dbi, &pk, &pv, flags);
        if (rc == MDB_KEYEXIST) rc = 0;
        if (rc) return lmdb_err(rc, why, "apply stream record's index");
        if (dbi == st->checkpoints) *cp = 1;
    }
    return 0;
}

int lmdb_repl_apply(lmdb_store_t *st, const uint8_t *msg, size_t len, char *why)
{
    uint64_t seq = st->head.seq + 1;
    Schakel__V1__ReplicatedRecord *r = schakel__v1__replicated_record__unpack(NULL, len, msg);
    if (!r)
        return schakel_fail(why, SCHAKEL_ECORRUPT, "stream message %llu does not decode",
                            (unsigned long long)seq);
    Schakel__V1__RecordBody *b = NULL;
    int rc = check_next(st, r, seq, &b, why);
    if (rc == 0) rc = lmdb_ensure_room(st, len + 512, why);
    MDB_txn *txn = NULL;
    if (rc == 0 && (rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0) rc = lmdb_err(rc, why, "begin apply");
    int cp = 0;
    if (rc == 0) {
        rc = apply_in(st, txn, r, b, seq, &cp, why);
        if (rc) mdb_txn_abort(txn);
    }
    if (rc == 0) {
        uint8_t head[32];
        memcpy(head, r->record.data + 32, 32);
        schakel_head_t saved = st->head;
        st->head.seq = seq;
        memcpy(st->head.hash, head, 32);
        int c = lmdb_commit(st, txn, 1);
        if (c) {
            st->head = saved;
            rc = lmdb_write_err(st, c, why, "commit stream record");
        } else if (cp) {
            st->cp_seq = seq;
            st->cp_at = b->recorded_at;
        }
    }
    if (b) schakel__v1__record_body__free_unpacked(b, NULL);
    schakel__v1__replicated_record__free_unpacked(r, NULL);
    /* on the stream, so on a quorum: durable as soon as it is here */
    if (rc == 0) lmdb_durable_set(st, st->head.seq);
    return rc;
}
