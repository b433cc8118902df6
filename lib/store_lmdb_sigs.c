/* The batch signatures in the audit walk (store_lmdb_audit.c): every
 * record points at the proof of the batch it came in (proof_seq, the
 * batch's first record, and proof_index, its place in the batch). The
 * proof holds what the publisher signed: the SHA-256 of every event of the
 * batch, and the Ed25519 signature over schakel_batch_digest of those,
 * the same digest the broker checked. The signature is verified against
 * the signing key that the directory on the log listed for the signer at
 * that point of the log; the broker's own batches ("broker") against the
 * broker's key. Only hashes are signed, so an erased payload verifies as
 * well. Reading a directory_update needs the master key (payloads are
 * encrypted), so without it no signature is checked. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "directory.h"
#include "store_audit.h"
#include "store_lmdb_impl.h"

/* How long after a directory change a batch signed with the key it
 * replaced may be stored: the checked batches the broker holds are
 * committed within milliseconds; this leaves room for a loaded disk. */
#define REPLACED_KEY_MS 10000

struct lmdb_sigs {
    const uint8_t *broker_pub;
    MDB_cursor *proofs;
    int proofs_op;  /* MDB_FIRST, then MDB_NEXT; -1 when the table ended */
    uint64_t pnext; /* key of the next stored proof, 0 if none */
    /* the batch being walked: what its signer signed */
    int has_batch;
    uint64_t batch_seq;
    uint8_t (*hashes)[SCHAKEL_SHA256_LEN]; /* room for SCHAKEL_MAX_BATCH_EVENTS */
    size_t n_hashes;
    char *signer;
    schakel_directory_t *dir, *replaced; /* in force, and the one before */
    uint64_t dir_version;
    int64_t dir_at; /* recorded_at of its directory_update */
    /* organisations that signed with their key in force since the last
     * change: from then on the replaced key no longer counts */
    char **moved;
    size_t n_moved, cap_moved;
    uint64_t moved_epoch; /* the directory the moved list is about */
    lmdb_sig_job_t *jobs;
    size_t n_jobs, cap_jobs;
};

__attribute__((format(printf, 3, 4))) static int sig_fail(schakel_verify_report_t *r, uint64_t seq,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->bad_seq = seq;
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return SCHAKEL_ECORRUPT;
}

static void proofs_advance(lmdb_sigs_t *w)
{
    MDB_val k, v;
    w->pnext = 0;
    if (w->proofs_op < 0 || mdb_cursor_get(w->proofs, &k, &v, (MDB_cursor_op)w->proofs_op) != 0) {
        w->proofs_op = -1;
        return;
    }
    w->proofs_op = MDB_NEXT;
    w->pnext = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : UINT64_MAX;
}

lmdb_sigs_t *lmdb_sigs_new(MDB_txn *txn, MDB_dbi proofs, const uint8_t *broker_pub)
{
    lmdb_sigs_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    if (!(w->hashes = malloc(SCHAKEL_MAX_BATCH_EVENTS * sizeof *w->hashes)) ||
        mdb_cursor_open(txn, proofs, &w->proofs) != 0) {
        free(w->hashes);
        free(w);
        return NULL;
    }
    w->broker_pub = broker_pub;
    w->proofs_op = MDB_FIRST;
    proofs_advance(w);
    return w;
}

void lmdb_sigs_free(lmdb_sigs_t **wp)
{
    lmdb_sigs_t *w = *wp;
    if (!w) return;
    mdb_cursor_close(w->proofs);
    free(w->hashes);
    free(w->signer);
    schakel_directory_destroy(&w->dir);
    schakel_directory_destroy(&w->replaced);
    for (size_t i = 0; i < w->n_moved; i++) free(w->moved[i]);
    free(w->moved);
    free(w->jobs);
    free(w);
    *wp = NULL;
}

static int has_moved(const lmdb_sigs_t *w, const char *org)
{
    for (size_t i = 0; i < w->n_moved; i++)
        if (!strcmp(w->moved[i], org)) return 1;
    return 0;
}

static void note_moved(lmdb_sigs_t *w, const char *org)
{
    if (has_moved(w, org)) return;
    if (w->n_moved == w->cap_moved) {
        size_t cap = w->cap_moved ? 2 * w->cap_moved : 16;
        char **m = realloc(w->moved, cap * sizeof *m);
        if (!m) return; /* then the replaced key counts a little longer */
        w->moved = m;
        w->cap_moved = cap;
    }
    char *s = strdup(org);
    if (s) w->moved[w->n_moved++] = s;
}

/* The signature of the batch starting at seq, stored at `at`: queued as a
 * job with the keys that may have signed it. The broker checks a batch
 * while it writes the group before, so a batch stored just after a
 * directory change may have been checked, and signed, with the key the
 * change replaced: that key counts for REPLACED_KEY_MS after the change,
 * and only until the organisation is seen signing with the new one
 * (lmdb_sigs_resolve). */
static int check_signature(lmdb_sigs_t *w, uint64_t seq, int64_t at, const Schakel__V1__BatchProof *p,
                           const uint8_t digest[SCHAKEL_SHA256_LEN], schakel_verify_report_t *r)
{
    int broker = !strcmp(p->signer_org, "broker");
    if (broker && !w->broker_pub) {
        r->sigs_unchecked++;
        return 0;
    }
    if (!broker && !w->dir)
        return sig_fail(r, seq, "batch signed by %s comes before any directory on the log", p->signer_org);
    if (w->n_jobs == w->cap_jobs) {
        size_t cap = w->cap_jobs ? 2 * w->cap_jobs : 256;
        lmdb_sig_job_t *j = realloc(w->jobs, cap * sizeof *j);
        if (!j) return SCHAKEL_ENOMEM;
        w->jobs = j;
        w->cap_jobs = cap;
    }
    lmdb_sig_job_t *j = &w->jobs[w->n_jobs++];
    memset(j, 0, sizeof *j);
    j->seq = seq;
    j->epoch = r->directories;
    j->at = at;
    memcpy(j->digest, digest, SCHAKEL_SHA256_LEN);
    memcpy(j->sig, p->signature.data, SCHAKEL_ED25519_SIG_LEN);
    snprintf(j->signer, sizeof j->signer, "%s", p->signer_org);
    r->signatures++;
    if (broker) {
        j->is_broker = 1;
        j->has_key = 1;
        memcpy(j->key, w->broker_pub, SCHAKEL_ED25519_PUB_LEN);
        return 0;
    }
    snprintf(j->ver, sizeof j->ver, " (version %llu)", (unsigned long long)w->dir_version);
    const schakel_org_t *org = schakel_directory_by_id(w->dir, p->signer_org);
    const schakel_org_t *old = w->replaced ? schakel_directory_by_id(w->replaced, p->signer_org) : NULL;
    j->has_replaced = w->replaced != NULL;
    if (org) {
        j->has_key = 1;
        memcpy(j->key, org->sign_public, SCHAKEL_ED25519_PUB_LEN);
    }
    if (old && at - w->dir_at <= REPLACED_KEY_MS) {
        j->has_old = 1;
        memcpy(j->old, old->sign_public, SCHAKEL_ED25519_PUB_LEN);
    }
    return 0;
}

lmdb_sig_job_t *lmdb_sigs_jobs(lmdb_sigs_t *w, size_t *n)
{
    *n = w->n_jobs;
    return w->jobs;
}

void lmdb_sig_job_run(lmdb_sig_job_t *j)
{
    j->key_ok = j->has_key && schakel_ed25519_verify(j->key, j->digest, sizeof j->digest, j->sig) == 0;
    /* the replaced key only when the one in force does not verify */
    j->old_ok =
        !j->key_ok && j->has_old && schakel_ed25519_verify(j->old, j->digest, sizeof j->digest, j->sig) == 0;
}

int lmdb_sigs_resolve(lmdb_sigs_t *w, schakel_verify_report_t *r)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->n_jobs; i++) {
        const lmdb_sig_job_t *j = &w->jobs[i];
        if (j->epoch != w->moved_epoch) { /* a directory change: nobody has moved yet */
            for (size_t m = 0; m < w->n_moved; m++) free(w->moved[m]);
            w->n_moved = 0;
            w->moved_epoch = j->epoch;
        }
        if (j->is_broker) {
            if (!j->key_ok)
                rc = sig_fail(r, j->seq, "batch signature of %s does not verify with the broker's key",
                              "broker");
        } else if (j->key_ok) {
            if (j->has_replaced) note_moved(w, j->signer);
        } else if (j->old_ok && !has_moved(w, j->signer)) {
            r->sigs_replaced_key++;
        } else if (!j->has_key) {
            rc = sig_fail(r, j->seq, "batch signed by %s, which is not in the directory in force%s",
                          j->signer, j->ver);
        } else {
            rc = sig_fail(r, j->seq,
                          "batch signature of %s does not verify with its signing key in the directory in "
                          "force%s",
                          j->signer, j->ver);
        }
    }
    w->n_jobs = 0;
    return rc;
}

void lmdb_proof_fetch(MDB_txn *txn, MDB_dbi proofs, uint64_t seq, MDB_val *v)
{
    uint8_t kb[8];
    schakel_put_be64(kb, seq);
    MDB_val k = {8, kb};
    if (mdb_get(txn, proofs, &k, v) != 0) { /* start_batch names it missing */
        v->mv_data = NULL;
        return;
    }
    for (size_t off = 0; off < v->mv_size; off += 64) __builtin_prefetch((const char *)v->mv_data + off);
}

void lmdb_proof_decode(ProtobufCAllocator *a, const MDB_val *v, lmdb_proof_t *out)
{
    out->proof = NULL;
    Schakel__V1__BatchProof *p = lmdb_proof_unpack(a, v->mv_data, v->mv_size);
    int ok = p && p->signature.len == SCHAKEL_ED25519_SIG_LEN && p->n_event_hashes > 0 &&
             p->n_event_hashes <= SCHAKEL_MAX_BATCH_EVENTS && p->signer_org;
    for (size_t i = 0; ok && i < p->n_event_hashes; i++) ok = p->event_hashes[i].len == SCHAKEL_SHA256_LEN;
    if (!ok) return; /* the arena takes it back */
    schakel_batch_digest_of(p->event_hashes, p->n_event_hashes, out->digest);
    out->proof = p;
}

/* A record that starts a batch: its proof must be the next one stored. */
static int start_batch(lmdb_sigs_t *w, uint64_t seq, int64_t at, const lmdb_proof_t *pre,
                       schakel_verify_report_t *r)
{
    if (w->pnext && w->pnext < seq)
        return sig_fail(r, w->pnext, "a batch proof is stored here but no record starts that batch");
    if (w->pnext != seq) return sig_fail(r, seq, "the batch proof of this record is missing");
    proofs_advance(w);
    w->has_batch = 0;
    const Schakel__V1__BatchProof *p = pre ? pre->proof : NULL;
    if (!p) return sig_fail(r, seq, "the batch proof does not decode");
    char *signer = strdup(p->signer_org);
    if (!signer) return SCHAKEL_ENOMEM;
    free(w->signer);
    w->signer = signer;
    for (size_t i = 0; i < p->n_event_hashes; i++)
        memcpy(w->hashes[i], p->event_hashes[i].data, SCHAKEL_SHA256_LEN);
    w->n_hashes = p->n_event_hashes;
    w->batch_seq = seq;
    w->has_batch = 1;
    r->batches++;
    return check_signature(w, seq, at, p, pre->digest, r);
}

/* A directory_update on the log is in force for the records after it. */
static int take_directory(lmdb_sigs_t *w, uint64_t seq, const uint8_t *plain, size_t len,
                          schakel_verify_report_t *r)
{
    schakel_envelope_t *env = schakel_envelope_decode_with(plain, len, NULL, NULL);
    if (!env || env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE || !env->directory_update) {
        schakel_envelope_free(env);
        return sig_fail(r, seq, "directory_update does not decode");
    }
    const char *doc = env->directory_update->document_json;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = doc ? schakel_directory_parse(doc, strlen(doc), why) : NULL;
    schakel_envelope_free(env);
    if (!d) return sig_fail(r, seq, "directory_update on the log does not parse: %s", why);
    schakel_directory_destroy(&w->replaced);
    w->replaced = w->dir;
    w->dir = d;
    w->dir_version = schakel_directory_version(d);
    r->directories++; /* the jobs after it start a new epoch */
    return 0;
}

int lmdb_sigs_record(lmdb_sigs_t *w, lmdb_store_t *st, MDB_txn *txn, uint64_t seq,
                     const Schakel__V1__RecordBody *b, const lmdb_proof_t *pre, schakel_verify_report_t *r)
{
    int rc = 0;
    if (b->proof_seq == seq) rc = start_batch(w, seq, b->recorded_at, pre, r);
    else if (!w->has_batch || b->proof_seq != w->batch_seq)
        return sig_fail(r, seq, "record names a batch proof that is not the batch it is stored in");
    if (rc) return rc;
    if (b->proof_index >= w->n_hashes || b->event_hash.len != SCHAKEL_SHA256_LEN ||
        memcmp(w->hashes[b->proof_index], b->event_hash.data, SCHAKEL_SHA256_LEN) != 0)
        return sig_fail(r, seq, "event hash is not one that %s signed in its batch", w->signer);
    if (!b->source_org || strcmp(b->source_org, w->signer) != 0)
        return sig_fail(r, seq, "source_org is %s but %s signed the batch",
                        b->source_org ? b->source_org : "", w->signer);
    if (b->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE) return 0;
    uint8_t *plain = NULL;
    size_t plen = 0;
    rc = lmdb_record_open(st, txn, seq, b, &plain, &plen);
    if (rc == SCHAKEL_ENOTFOUND)
        return sig_fail(r, seq, "directory_update cannot be read: its data key is gone");
    if (rc) return sig_fail(r, seq, "directory_update does not decrypt");
    rc = take_directory(w, seq, plain, plen, r);
    w->dir_at = b->recorded_at;
    free(plain);
    return rc;
}

int lmdb_sigs_finish(lmdb_sigs_t *w, schakel_verify_report_t *r)
{
    if (w->pnext)
        return sig_fail(r, w->pnext, "a batch proof is stored here but no record starts that batch");
    return 0;
}
