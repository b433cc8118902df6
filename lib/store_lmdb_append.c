/* Appending to the LMDB log, the broker's commit step: every batch of a
 * group in one write transaction (records, event-id index, stream index,
 * batch proofs, a checkpoint when due), committed with one flush. The
 * broker appends deferred and ACKs a group once the next group's flush
 * (or a sync) has made it durable (lmdb_commit in store_lmdb.c says why
 * that holds). Also the other writes: consumer cursors and checkpoints
 * between groups, each durable when it returns. Runs in the one thread
 * that writes the log. */
#include "store_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "logging.h"
#include "store_audit.h"
#include "store_lmdb_impl.h"

void schakel_checkpoint_message(const schakel_checkpoint_t *cp, uint8_t out[SCHAKEL_CHECKPOINT_MSG_LEN])
{
    memcpy(out, "schakel/v1/checkpoint", 21);
    schakel_put_be64(out + 21, cp->seq);
    memcpy(out + 29, cp->hash, 32);
    schakel_put_be64(out + 61, (uint64_t)cp->at);
}

static int put_checkpoint(lmdb_store_t *st, MDB_txn *txn, int64_t now_ms, char *why)
{
    schakel_checkpoint_t c = {.seq = st->head.seq, .at = now_ms};
    memcpy(c.hash, st->head.hash, 32);
    uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN];
    schakel_checkpoint_message(&c, msg);
    if (schakel_ed25519_sign(st->sign_secret, msg, sizeof msg, c.signature) != 0)
        return schakel_fail(why, SCHAKEL_ECRYPTO, "checkpoint could not be signed");
    Schakel__V1__Checkpoint cp = SCHAKEL__V1__CHECKPOINT__INIT;
    cp.seq = c.seq;
    cp.hash.data = c.hash;
    cp.hash.len = 32;
    cp.at = c.at;
    cp.signature.data = c.signature;
    cp.signature.len = sizeof c.signature;
    uint8_t buf[256], k[8];
    size_t n = schakel__v1__checkpoint__pack(&cp, buf);
    schakel_put_be64(k, cp.seq);
    MDB_val kv = {8, k}, vv = {n, buf};
    int rc = mdb_put(txn, st->checkpoints, &kv, &vv, MDB_APPEND);
    if (rc) return lmdb_err(rc, why, "store checkpoint");
    return 0;
}

/* For a duplicate id: is the stored event at seq the same bytes? A
 * publisher that reuses an id for another event gets a reject, never a
 * silent "already stored". */
static int same_event(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const uint8_t hash[32], int *conflict,
                      char *why)
{
    MDB_val v;
    Schakel__V1__RecordBody *b;
    int rc = lmdb_record_body(st, txn, seq, &v, &b, "read duplicate", why);
    if (rc) return rc;
    *conflict = b->event_hash.len != 32 || memcmp(b->event_hash.data, hash, 32) != 0;
    schakel__v1__record_body__free_unpacked(b, NULL);
    return 0;
}

static int recent_slot(const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    a ^= b * 0x9e3779b97f4a7c15ULL;
    a ^= a >> 31;
    a *= 0xbf58476d1ce4e5b9ULL;
    return (int)((a ^ a >> 29) & (RECENT_SLOTS - 1));
}

static const uint8_t zero_id[16];

/* Might a record the table covers hold id? */
static int recent_has(const lmdb_recent_t *r, const uint8_t id[16])
{
    if (!memcmp(id, zero_id, 16)) return 1; /* the empty slot's mark: never vouched for */
    for (int g = 0; g < 2; g++) {
        if (!r->ids[g] || !r->lo[g]) continue;
        for (int i = recent_slot(id);; i = (i + 1) & (RECENT_SLOTS - 1)) {
            if (!memcmp(r->ids[g][i], id, 16)) return 1;
            if (!memcmp(r->ids[g][i], zero_id, 16)) break;
        }
    }
    return 0;
}

/* Does the table hold every record after upto? */
static int recent_covers(const lmdb_recent_t *r, uint64_t upto)
{
    uint64_t lo = r->lo[1] ? r->lo[1] : r->lo[0];
    return lo && upto + 1 >= lo;
}

/* Notes id, appended at seq: every record appended comes through here. */
static void recent_add(lmdb_recent_t *r, const uint8_t id[16], uint64_t seq)
{
    if (!r->ids[0]) {
        r->ids[0] = calloc(RECENT_SLOTS, 16);
        r->ids[1] = calloc(RECENT_SLOTS, 16);
        if (!r->ids[0] || !r->ids[1]) { /* without it, the index answers every time */
            free(r->ids[0]);
            free(r->ids[1]);
            r->ids[0] = r->ids[1] = NULL;
            return;
        }
        r->lo[0] = seq;
    }
    if (r->n >= RECENT_GEN) { /* the older generation goes, the newer becomes it */
        uint8_t(*t)[16] = r->ids[1];
        r->ids[1] = r->ids[0];
        r->ids[0] = t;
        memset(t, 0, (size_t)RECENT_SLOTS * 16);
        r->lo[1] = r->lo[0];
        r->lo[0] = seq;
        r->n = 0;
    }
    if (!memcmp(id, zero_id, 16)) return;
    int i = recent_slot(id);
    while (memcmp(r->ids[0][i], zero_id, 16) != 0) i = (i + 1) & (RECENT_SLOTS - 1);
    memcpy(r->ids[0][i], id, 16);
    r->n++;
}

void lmdb_recent_free(lmdb_store_t *st)
{
    free(st->recent.ids[0]);
    free(st->recent.ids[1]);
    memset(&st->recent, 0, sizeof st->recent);
}

/* Is the id of it stored already: 0 with *first, MDB_NOTFOUND, or an
 * LMDB error. The checker's answer (absent up to absent_upto) stands
 * when no record since holds the id (the recent table, kept by this
 * thread, the log's only writer); on a replicated log records also come
 * in from the stream, past that table, and the index answers every time. */
static int stored_before(lmdb_store_t *st, MDB_txn *txn, const char *org, const schakel_append_item_t *it,
                         uint64_t *first)
{
    if (it->absent_upto && !st->replicate && recent_covers(&st->recent, it->absent_upto) &&
        !recent_has(&st->recent, it->event_id))
        return MDB_NOTFOUND;
    return lmdb_ids_find(st, txn, org, it->event_id, first);
}

static int append_one(lmdb_store_t *st, MDB_txn *txn, const schakel_append_batch_t *b,
                      schakel_append_item_t *it, uint64_t *proof_seq, int64_t now_ms, char *why)
{
    uint64_t seq = st->head.seq + 1, first;
    int rc = stored_before(st, txn, b->signer_org, it, &first);
    if (rc == 0) {
        it->seq = first;
        it->duplicate = 1;
        return same_event(st, txn, it->seq, it->event_hash, &it->conflict, why);
    }
    if (rc != MDB_NOTFOUND) return lmdb_err(rc, why, "dedup lookup");
    uint8_t key[8], ik[IDS_KEY_LEN];
    schakel_put_be64(key, seq);
    ids_key(ik, it->event_id, seq);
    MDB_val k = {IDS_KEY_LEN, ik}, v = {0, key};
    rc = mdb_put(txn, st->ids, &k, &v, MDB_NOOVERWRITE);
    if (rc) return lmdb_err(rc, why, "index event id");
    recent_add(&st->recent, it->event_id, seq);

    if (*proof_seq == 0) *proof_seq = seq;
    uint8_t kid[KEY_ID_LEN], dk[SCHAKEL_AEAD_KEY_LEN], nonce[SCHAKEL_AEAD_NONCE_LEN], aad[24];
    lmdb_key_id_of(st, it->subject ? it->subject : "", kid);
    rc = lmdb_data_key(st, txn, kid, 1, dk, why);
    if (rc) return rc;
    memcpy(nonce, st->nonce_prefix, 4);
    schakel_put_be64(nonce + 4, seq);
    schakel_put_be64(aad, seq);
    memcpy(aad + 8, it->event_id, 16);
    size_t clen = it->event_len + SCHAKEL_AEAD_TAG_LEN;
    uint8_t *ct = malloc(clen);
    if (!ct) return SCHAKEL_ENOMEM;
    rc = schakel_aead_seal(dk, nonce, aad, sizeof aad, it->event, it->event_len, ct);
    if (rc) {
        free(ct);
        return schakel_fail(why, SCHAKEL_ECRYPTO, "payload could not be encrypted");
    }

    Schakel__V1__RecordBody body = SCHAKEL__V1__RECORD_BODY__INIT;
    body.seq = seq;
    body.recorded_at = now_ms;
    body.event_id.data = (uint8_t *)it->event_id;
    body.event_id.len = 16;
    body.type = it->type;
    body.source_org = (char *)b->signer_org;
    body.key_id.data = kid;
    body.key_id.len = KEY_ID_LEN;
    body.nonce.data = nonce;
    body.nonce.len = sizeof nonce;
    body.ciphertext.data = ct;
    body.ciphertext.len = clen;
    body.event_hash.data = it->event_hash;
    body.event_hash.len = 32;
    body.proof_seq = *proof_seq;
    body.proof_index = it->proof_index;

    size_t blen = schakel__v1__record_body__get_packed_size(&body);
    MDB_val kv = {8, key}, vv = {HDR_LEN + blen, NULL};
    rc = mdb_put(txn, st->events, &kv, &vv, MDB_APPEND | MDB_RESERVE);
    if (rc) {
        free(ct);
        return lmdb_err(rc, why, "append record");
    }
    uint8_t *out = vv.mv_data;
    schakel__v1__record_body__pack(&body, out + HDR_LEN);
    free(ct);
    memcpy(out, st->head.hash, 32);
    lmdb_chain_hash(seq, st->head.hash, out + HDR_LEN, blen, out + 32);

    for (size_t x = 0; x < it->n_index + it->n_fanout; x++) {
        uint8_t sk[SCHAKEL_STREAM_MAX + 9], target[8];
        MDB_val skv, tv;
        lmdb_stream_entry(it, x, seq, sk, &skv, target, &tv);
        rc = mdb_put(txn, st->streams, &skv, &tv, 0);
        if (rc) return lmdb_err(rc, why, "index stream");
    }
    st->head.seq = seq;
    memcpy(st->head.hash, out + 32, 32);
    it->seq = seq;
    it->duplicate = 0;
    return 0;
}

static int put_proof(lmdb_store_t *st, MDB_txn *txn, const schakel_append_batch_t *b, uint64_t proof_seq,
                     char *why)
{
    Schakel__V1__BatchProof p = SCHAKEL__V1__BATCH_PROOF__INIT;
    ProtobufCBinaryData *hs = calloc(b->n_hashes ? b->n_hashes : 1, sizeof *hs);
    if (!hs) return SCHAKEL_ENOMEM;
    for (size_t i = 0; i < b->n_hashes; i++) {
        hs[i].data = (uint8_t *)b->hashes[i];
        hs[i].len = 32;
    }
    p.signer_org = (char *)b->signer_org;
    p.signature.data = (uint8_t *)b->signature;
    p.signature.len = SCHAKEL_ED25519_SIG_LEN;
    p.n_event_hashes = b->n_hashes;
    p.event_hashes = hs;
    uint8_t k[8];
    schakel_put_be64(k, proof_seq);
    MDB_val kv = {8, k}, vv = {schakel__v1__batch_proof__get_packed_size(&p), NULL};
    int rc = mdb_put(txn, st->proofs, &kv, &vv, MDB_APPEND | MDB_RESERVE);
    if (rc == 0) schakel__v1__batch_proof__pack(&p, vv.mv_data);
    free(hs);
    return rc ? lmdb_err(rc, why, "store batch proof") : 0;
}

/* One write transaction for the group, committed with one flush of its
 * data pages (lmdb_commit): the caller flushes its meta page when it must
 * be durable now. */
static int try_append(lmdb_store_t *st, schakel_append_batch_t *batches, size_t n, int64_t now_ms, char *why)
{
    uint64_t before = st->head.seq;
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, why, "begin append");
    for (size_t i = 0; i < n && rc == 0; i++) {
        schakel_append_batch_t *b = &batches[i];
        uint64_t proof_seq = 0;
        for (size_t j = 0; j < b->n_items && rc == 0; j++)
            rc = append_one(st, txn, b, &b->items[j], &proof_seq, now_ms, why);
        if (rc == 0 && proof_seq) rc = put_proof(st, txn, b, proof_seq, why);
    }
    int cp = 0;
    if (rc == 0 && st->can_sign && st->head.seq >= st->cp_seq + st->cp_every) {
        rc = put_checkpoint(st, txn, now_ms, why);
        cp = 1;
    }
    /* a replicated log: the new records go to the stream first, and are
     * committed here only once a quorum holds them */
    if (rc == 0 && st->replicate && st->head.seq != before)
        rc = lmdb_repl_publish(st, txn, before, batches, n, why);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* only duplicates: nothing written, and LMDB flushes nothing */
    rc = lmdb_commit(st, txn, cp || st->head.seq != before);
    if (rc) return lmdb_write_err(st, rc, why, "commit append");
    if (cp) {
        st->cp_seq = st->head.seq;
        st->cp_at = now_ms;
    }
    /* on a replicated log the group was stored on a quorum before the
     * commit: durable now, whatever this machine's disk does next */
    if (st->replicate) lmdb_durable_set(st, st->head.seq);
    lmdb_map_release(st);
    return 0;
}

int lmdb_append_deferred(schakel_store_t *s, schakel_append_batch_t *batches, size_t n, int64_t now_ms,
                         char *why)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only) return schakel_fail(why, SCHAKEL_EPERM, "store is read-only");
    size_t incoming = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < batches[i].n_items; j++) incoming += batches[i].items[j].event_len + 256;
    for (int attempt = 0;; attempt++) {
        int rc = lmdb_ensure_room(st, incoming, why);
        if (rc) return rc;
        schakel_head_t saved = st->head;
        rc = try_append(st, batches, n, now_ms, why);
        if (rc == 0) return 0;
        st->head = saved; /* the transaction is gone; so are its seqs */
        /* A failed commit may have left cached keys that never landed, and
         * its seqs will be used again: new nonces for them. */
        lmdb_key_cache_clear(st);
        if (schakel_random(st->nonce_prefix, sizeof st->nonce_prefix))
            return schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes for nonces");
        if (rc != SCHAKEL_EFULL || attempt > 0) return rc;
        if (st->map_size >= st->map_max) return rc;
        st->full_retries++;
        schakel_log(SCHAKEL_LOG_WARN, "store", "event=map_full_retry map=%zu", st->map_size);
        size_t next = st->map_size * 2 > st->map_max ? st->map_max : st->map_size * 2;
        pthread_rwlock_wrlock(&st->resize);
        int grown = mdb_env_set_mapsize(st->env, next);
        pthread_rwlock_unlock(&st->resize);
        if (grown != 0) return rc;
        st->map_size = next;
    }
}

int lmdb_append(schakel_store_t *s, schakel_append_batch_t *batches, size_t n, int64_t now_ms, char *why)
{
    int rc = lmdb_append_deferred(s, batches, n, now_ms, why);
    return rc ? rc : lmdb_sync(s, why);
}

/* A failed flush leaves what was committed in the log (readers see it),
 * just not known to be durable: the caller says "send again", and the
 * resend is answered as a duplicate. */
int lmdb_sync(schakel_store_t *s, char *why)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only || st->durable_seq >= st->committed_seq) return 0;
    int rc = lmdb_flush(st);
    return rc ? lmdb_write_err(st, rc, why, "flush the log") : 0;
}

uint64_t lmdb_durable_seq(schakel_store_t *s)
{
    return atomic_load(&((lmdb_store_t *)s)->durable_seq);
}

int lmdb_cursor_set(schakel_store_t *s, const char *name, uint64_t seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only) return SCHAKEL_EPERM;
    int rc = lmdb_ensure_room(st, 256, NULL);
    if (rc) return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin cursor");
    uint8_t b[8];
    schakel_put_be64(b, seq);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    rc = mdb_put(txn, st->cursors, &k, &v, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, NULL, "store cursor");
    }
    rc = lmdb_commit_durable(st, txn);
    return rc ? lmdb_err(rc, NULL, "commit cursor") : 0;
}

int lmdb_checkpoint(schakel_store_t *s, int64_t now_ms)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only || !st->can_sign || st->head.seq == st->cp_seq) return 0;
    if (now_ms - st->cp_at < st->cp_ms) return 0;
    int rc = lmdb_ensure_room(st, 256, NULL);
    if (rc) return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin checkpoint");
    rc = put_checkpoint(st, txn, now_ms, NULL);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = lmdb_commit_durable(st, txn);
    if (rc) return lmdb_err(rc, NULL, "commit checkpoint");
    st->cp_seq = st->head.seq;
    st->cp_at = now_ms;
    return 0;
}
