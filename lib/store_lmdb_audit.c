/* Auditing an LMDB log (store_audit.h): what the walk of
 * store_lmdb_verify.c shares (decrypting one record, the checkpoints at
 * the end) and the readers of `schakel audit checkpoints`. Opens the log
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

int lmdb_verify_fail(schakel_verify_report_t *r, uint64_t seq, const char *msg)
{
    r->bad_seq = seq;
    snprintf(r->why, sizeof r->why, "%s", msg);
    return SCHAKEL_ECORRUPT;
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

void lmdb_cp_job_run(lmdb_cp_job_t *j)
{
    j->ok = schakel_ed25519_verify(j->pub, j->msg, sizeof j->msg, j->sig) == 0;
}

/* In order: each checkpoint decodes, lies within the log and names the
 * chain's hash there; its signature is queued. Stops at the first that
 * does not, with r filled (rc). */
static int cp_collect(lmdb_store_t *st, MDB_txn *txn, const uint8_t *broker_pub, schakel_verify_report_t *r,
                      lmdb_cp_job_t **jobs, size_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t cap = 0;
    if (mdb_cursor_open(txn, st->checkpoints, &cur)) return SCHAKEL_ESTORE;
    int rc = 0, op = MDB_FIRST;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        Schakel__V1__Checkpoint *cp = schakel__v1__checkpoint__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t seq = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0;
        uint8_t ek[8];
        schakel_put_be64(ek, seq);
        MDB_val kk = {8, ek}, vv;
        if (!cp || cp->seq != seq || cp->hash.len != 32 || cp->signature.len != 64) {
            rc = lmdb_verify_fail(r, seq, "checkpoint does not decode");
        } else if (seq > r->head) {
            rc = lmdb_verify_fail(r, seq, "checkpoint is beyond the last record: records were removed");
        } else if (mdb_get(txn, st->events, &kk, &vv) != 0 || vv.mv_size < HDR_LEN ||
                   memcmp((uint8_t *)vv.mv_data + 32, cp->hash.data, 32) != 0) {
            rc = lmdb_verify_fail(r, seq, "checkpoint hash differs from the chain");
        } else if (*n == cap) {
            lmdb_cp_job_t *j = realloc(*jobs, (cap = cap ? 2 * cap : 256) * sizeof *j);
            if (j) *jobs = j;
            else rc = SCHAKEL_ENOMEM;
        }
        if (rc == 0) {
            lmdb_cp_job_t *j = &(*jobs)[(*n)++];
            schakel_checkpoint_t c = {.seq = seq, .at = cp->at};
            memcpy(c.hash, cp->hash.data, 32);
            schakel_checkpoint_message(&c, j->msg);
            memcpy(j->sig, cp->signature.data, 64);
            j->seq = seq;
            j->pub = broker_pub;
            j->ok = 1; /* without the broker's key: the hashes alone */
        }
        if (cp) schakel__v1__checkpoint__free_unpacked(cp, NULL);
    }
    mdb_cursor_close(cur);
    return rc;
}

int lmdb_verify_checkpoints(lmdb_store_t *st, MDB_txn *txn, const uint8_t *broker_pub,
                            schakel_verify_report_t *r, lmdb_cp_run_fn run, void *arg)
{
    lmdb_cp_job_t *jobs = NULL;
    size_t n = 0;
    schakel_verify_report_t first = *r;
    int rc = cp_collect(st, txn, broker_pub, &first, &jobs, &n);
    if (broker_pub && n) {
        if (run) run(arg, jobs, n);
        else
            for (size_t i = 0; i < n; i++) lmdb_cp_job_run(&jobs[i]);
    }
    /* a signature that does not verify comes before what stopped the collection */
    size_t i = 0;
    while (i < n && jobs[i].ok) i++;
    r->checkpoints += i;
    if (i < n) rc = lmdb_verify_fail(r, jobs[i].seq, "checkpoint signature does not verify");
    else if (rc) {
        r->bad_seq = first.bad_seq;
        memcpy(r->why, first.why, sizeof r->why);
    }
    free(jobs);
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
    return schakel_lmdb_verify_opts(dir, broker_pub, master_key, what, NULL, r);
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
