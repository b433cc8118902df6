/* Auditing an LMDB log (store_audit.h): walks the chain read-only,
 * recomputing every hash, checking every signed checkpoint and, with the
 * master key, every payload against its event hash. Opens the log
 * read-only in its own environment, so it runs beside a live broker. */
#include "store_audit.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store_lmdb.h"
#include "store_lmdb_impl.h"

static int verify_fail(schakel_verify_report_t *r, uint64_t seq, const char *msg)
{
    r->bad_seq = seq;
    snprintf(r->why, sizeof r->why, "%s", msg);
    return SCHAKEL_ECORRUPT;
}

/* A record whose data key is missing or damaged: counted, and the first
 * one named, while the walk goes on; the log then does not verify. */
static void key_problem(schakel_verify_report_t *r, uint64_t seq, uint64_t *count, const char *msg)
{
    (*count)++;
    if (r->bad_seq) return;
    r->bad_seq = seq;
    snprintf(r->why, sizeof r->why, "%s", msg);
}

int lmdb_record_open(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const Schakel__V1__RecordBody *b,
                     uint8_t **plain, size_t *plen)
{
    uint8_t dk[SCHAKEL_AEAD_KEY_LEN], aad[24];
    uint64_t upto = 0;
    int krc = b->key_id.len == KEY_ID_LEN ? lmdb_data_key_ex(st, txn, b->key_id.data, 0, dk, &upto, NULL)
                                          : SCHAKEL_ECORRUPT;
    if (krc == SCHAKEL_ENOTFOUND || (krc == 0 && seq <= upto)) return SCHAKEL_ENOTFOUND;
    if (krc || b->ciphertext.len < SCHAKEL_AEAD_TAG_LEN || b->nonce.len != 12 || b->event_id.len != 16)
        return SCHAKEL_ECORRUPT;
    size_t n = b->ciphertext.len - SCHAKEL_AEAD_TAG_LEN;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return SCHAKEL_ENOMEM;
    schakel_put_be64(aad, seq);
    memcpy(aad + 8, b->event_id.data, 16);
    if (schakel_aead_open(dk, b->nonce.data, aad, 24, b->ciphertext.data, b->ciphertext.len, p) != 0) {
        free(p);
        return SCHAKEL_ECORRUPT;
    }
    *plain = p;
    *plen = n;
    return 0;
}

/* With a master key: the payload decrypts and hashes to event_hash. A
 * record erased by an erasure record counts as erased; a key that is gone
 * without one (missing) or does not unwrap (corrupt) is a failure. */
static int verify_payload(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const Schakel__V1__RecordBody *b,
                          schakel_verify_report_t *r)
{
    int rc = 0, krc = SCHAKEL_ECORRUPT;
    uint8_t dk[SCHAKEL_AEAD_KEY_LEN];
    uint64_t upto = 0;
    if (b->key_id.len == KEY_ID_LEN) krc = lmdb_data_key_ex(st, txn, b->key_id.data, 0, dk, &upto, NULL);
    if (seq <= upto) {
        r->erased++;
    } else if (krc == SCHAKEL_ENOTFOUND) {
        key_problem(r, seq, &r->keys_missing,
                    upto ? "data key is missing for a record after its subject's erasure"
                         : "data key is missing and there is no erasure record for it");
    } else if (krc != 0) {
        key_problem(r, seq, &r->keys_corrupt,
                    "data key is corrupted: it does not unwrap with the "
                    "master key");
    } else if (b->ciphertext.len < SCHAKEL_AEAD_TAG_LEN || b->nonce.len != 12 || b->event_id.len != 16 ||
               b->event_hash.len != 32) {
        rc = verify_fail(r, seq, "record body is missing fields");
    } else {
        uint8_t *plain = NULL, h[32];
        size_t plen = 0;
        rc = lmdb_record_open(st, txn, seq, b, &plain, &plen);
        if (rc == SCHAKEL_ECORRUPT)
            rc = verify_fail(r, seq, "payload does not decrypt (altered or wrong key)");
        if (rc == 0) {
            schakel_sha256(plain, plen, h);
            if (memcmp(h, b->event_hash.data, 32) != 0)
                rc = verify_fail(r, seq, "payload does not match its signed event hash");
        }
        free(plain);
    }
    return rc;
}

/* One record's body, beyond the chain: payload and signature checks. */
static int verify_body(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const uint8_t *body, size_t blen,
                       int payloads, lmdb_sigs_t *sigs, schakel_verify_report_t *r)
{
    Schakel__V1__RecordBody *b = schakel__v1__record_body__unpack(NULL, blen, body);
    if (!b) return verify_fail(r, seq, "record body does not decode");
    int rc = 0;
    if (b->seq != seq) rc = verify_fail(r, seq, "record body names another sequence number");
    if (rc == 0 && payloads) rc = verify_payload(st, txn, seq, b, r);
    if (rc == 0 && sigs) rc = lmdb_sigs_record(sigs, st, txn, seq, b, r);
    schakel__v1__record_body__free_unpacked(b, NULL);
    return rc;
}

static int verify_checkpoints(lmdb_store_t *st, MDB_txn *txn, const uint8_t *broker_pub,
                              schakel_verify_report_t *r)
{
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(txn, st->checkpoints, &cur)) return SCHAKEL_ESTORE;
    int rc = 0, op = MDB_FIRST;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        Schakel__V1__Checkpoint *cp = schakel__v1__checkpoint__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t seq = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0;
        if (!cp || cp->seq != seq || cp->hash.len != 32 || cp->signature.len != 64) {
            rc = verify_fail(r, seq, "checkpoint does not decode");
        } else if (seq > r->head) {
            rc = verify_fail(r, seq, "checkpoint is beyond the last record: records were removed");
        } else {
            uint8_t ek[8];
            schakel_put_be64(ek, seq);
            MDB_val kk = {8, ek}, vv;
            if (mdb_get(txn, st->events, &kk, &vv) != 0 || vv.mv_size < HDR_LEN ||
                memcmp((uint8_t *)vv.mv_data + 32, cp->hash.data, 32) != 0) {
                rc = verify_fail(r, seq, "checkpoint hash differs from the chain");
            } else if (broker_pub) {
                schakel_checkpoint_t c = {.seq = seq, .at = cp->at};
                memcpy(c.hash, cp->hash.data, 32);
                uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN];
                schakel_checkpoint_message(&c, msg);
                if (schakel_ed25519_verify(broker_pub, msg, sizeof msg, cp->signature.data) != 0)
                    rc = verify_fail(r, seq, "checkpoint signature does not verify");
            }
            if (rc == 0) r->checkpoints++;
        }
        if (cp) schakel__v1__checkpoint__free_unpacked(cp, NULL);
    }
    mdb_cursor_close(cur);
    return rc;
}

int schakel_lmdb_verify(const char *dir, const uint8_t *broker_pub, const uint8_t *master_key,
                        schakel_verify_report_t *r)
{
    return schakel_lmdb_verify_with(dir, broker_pub, master_key, SCHAKEL_VERIFY_PAYLOADS, r);
}

int schakel_lmdb_verify_with(const char *dir, const uint8_t *broker_pub, const uint8_t *master_key,
                             unsigned what, schakel_verify_report_t *r)
{
    memset(r, 0, sizeof *r);
    schakel_lmdb_options_t o = {0};
    o.dir = dir;
    o.read_only = 1;
    if (master_key) memcpy(o.master_key, master_key, sizeof o.master_key);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_store_t *s = schakel_store_open_lmdb(&o, why);
    if (!s) {
        snprintf(r->why, sizeof r->why, "%s", why);
        return SCHAKEL_EIO;
    }
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        schakel_store_close(&s);
        return SCHAKEL_ESTORE;
    }
    int payloads = master_key && (what & SCHAKEL_VERIFY_PAYLOADS);
    lmdb_sigs_t *sigs = NULL;
    if (master_key && (what & SCHAKEL_VERIFY_SIGNATURES)) {
        sigs = lmdb_sigs_new(txn, st->proofs, broker_pub);
        r->sigs_checked = 1;
    }
    if ((r->sigs_checked && !sigs) || mdb_cursor_open(txn, st->events, &cur) != 0) {
        lmdb_sigs_free(&sigs);
        mdb_txn_abort(txn);
        schakel_store_close(&s);
        return SCHAKEL_ESTORE;
    }
    uint8_t prev[32] = {0}, h[32];
    uint64_t expect = 1;
    int op = MDB_FIRST;
    rc = 0;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        uint64_t seq = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0;
        const uint8_t *p = v.mv_data;
        if (seq != expect) {
            rc = verify_fail(r, expect, "record is missing (sequence numbers jump)");
        } else if (v.mv_size < HDR_LEN) {
            rc = verify_fail(r, seq, "record is truncated");
        } else if (memcmp(p, prev, 32) != 0) {
            rc = verify_fail(r, seq, "previous-hash field does not match the record before");
        } else {
            lmdb_chain_hash(seq, prev, p + HDR_LEN, v.mv_size - HDR_LEN, h);
            if (memcmp(h, p + 32, 32) != 0)
                rc = verify_fail(r, seq, "hash does not match the record's contents");
            else if (payloads || sigs)
                rc = verify_body(st, txn, seq, p + HDR_LEN, v.mv_size - HDR_LEN, payloads, sigs, r);
        }
        if (rc) break;
        memcpy(prev, h, 32);
        r->records++;
        r->head = seq;
        expect = seq + 1;
    }
    mdb_cursor_close(cur);
    memcpy(r->head_hash, prev, 32);
    if (rc == 0 && sigs) rc = lmdb_sigs_finish(sigs, r);
    lmdb_sigs_free(&sigs);
    if (rc == 0) rc = verify_checkpoints(st, txn, broker_pub, r);
    if (rc == 0 && (r->keys_missing || r->keys_corrupt)) rc = SCHAKEL_ECORRUPT;
    mdb_txn_abort(txn);
    schakel_store_close(&s);
    return rc;
}

/* Opens dir read-only for one of the audit readers below. */
static lmdb_store_t *open_audit(const char *dir, MDB_txn **txn)
{
    schakel_lmdb_options_t o = {0};
    o.dir = dir;
    o.read_only = 1;
    schakel_store_t *s = schakel_store_open_lmdb(&o, NULL);
    if (!s) return NULL;
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn) != 0) {
        schakel_store_close(&s);
        return NULL;
    }
    return st;
}

static void close_audit(lmdb_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    schakel_store_t *s = &st->base;
    schakel_store_close(&s);
}

int schakel_lmdb_checkpoints(const char *dir, uint64_t from_seq,
                             int (*fn)(void *arg, const schakel_checkpoint_t *cp), void *arg)
{
    MDB_txn *txn;
    lmdb_store_t *st = open_audit(dir, &txn);
    if (!st) return SCHAKEL_EIO;
    MDB_cursor *cur;
    uint8_t key[8];
    schakel_put_be64(key, from_seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_cursor_open(txn, st->checkpoints, &cur) ? SCHAKEL_ESTORE : 0;
    int op = MDB_SET_RANGE;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        Schakel__V1__Checkpoint *cp = schakel__v1__checkpoint__unpack(NULL, v.mv_size, v.mv_data);
        if (!cp || cp->hash.len != 32 || cp->signature.len != 64) {
            rc = SCHAKEL_ECORRUPT;
        } else {
            schakel_checkpoint_t c = {.seq = cp->seq, .at = cp->at};
            memcpy(c.hash, cp->hash.data, 32);
            memcpy(c.signature, cp->signature.data, 64);
            if (fn(arg, &c)) op = -1;
        }
        if (cp) schakel__v1__checkpoint__free_unpacked(cp, NULL);
        if (op < 0) break;
    }
    if (rc != SCHAKEL_ESTORE) mdb_cursor_close(cur);
    close_audit(st, txn);
    return rc;
}

int schakel_lmdb_hash_at(const char *dir, uint64_t seq, uint8_t out[SCHAKEL_SHA256_LEN])
{
    MDB_txn *txn;
    lmdb_store_t *st = open_audit(dir, &txn);
    if (!st) return SCHAKEL_EIO;
    uint8_t key[8];
    schakel_put_be64(key, seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(txn, st->events, &k, &v);
    int ret = rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : rc ? SCHAKEL_ESTORE : 0;
    if (ret == 0 && v.mv_size < HDR_LEN) ret = SCHAKEL_ECORRUPT;
    if (ret == 0) memcpy(out, (uint8_t *)v.mv_data + 32, 32);
    close_audit(st, txn);
    return ret;
}
