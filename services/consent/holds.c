/* Holds: an event a recipient may not know yet, for want of a consent,
 * is held (holds, keyed by child; deadlines, by deadline). A consent of
 * the child re-decides every hold of that child (consent_release_holds);
 * a hold whose deadline passed by the log's time expires and its sender
 * is told (consent_expire_holds, after every record). Holds are put by
 * decisions.c. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "consent_impl.h"
#include "error.h"

#define HOLD_KEY_MAX (SUBJECT_LEN + 8 + SCHAKEL_ID_MAX)

static size_t hold_key(uint8_t *key, const char *subject, uint64_t about_seq, const char *x)
{
    size_t n = strnlen(x, SCHAKEL_ID_MAX - 1);
    memcpy(key, subject, SUBJECT_LEN);
    schakel_put_be64(key + SUBJECT_LEN, about_seq);
    memcpy(key + SUBJECT_LEN + 8, x, n);
    return SUBJECT_LEN + 8 + n;
}

typedef struct {
    int64_t deadline;
    uint64_t about_seq;
} hold_t;

int consent_hold_put(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, uint64_t seq,
                     const char *x, int64_t deadline)
{
    uint8_t key[HOLD_KEY_MAX], dkey[8 + HOLD_KEY_MAX];
    size_t n = hold_key(key, e->subject, seq, x);
    hold_t h = {deadline, seq};
    schakel_put_be64(dkey, (uint64_t)deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_put(txn, c->holds, key, n, &h, sizeof h);
    return rc ? rc : schakel_kv_put(txn, c->deadlines, dkey, 8 + n, "", 0);
}

static int hold_del(schakel_consent_t *c, MDB_txn *txn, const uint8_t *key, size_t n, int64_t deadline)
{
    uint8_t dkey[8 + HOLD_KEY_MAX];
    schakel_put_be64(dkey, (uint64_t)deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_del(txn, c->holds, key, n);
    return rc ? rc : schakel_kv_del(txn, c->deadlines, dkey, 8 + n);
}

/* Consent arrived: re-decide every hold of this child. */
int consent_release_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                          schakel_emit_t *out, char *why)
{
    const char *subject = rec->env->subject;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->holds, &cur) != 0) return SCHAKEL_ESTORE;
    /* collect first: deleting under a live cursor is easy to get wrong */
    uint8_t(*keys)[HOLD_KEY_MAX] = NULL;
    size_t *lens = NULL, n = 0, cap = 0;
    hold_t *holds = NULL;
    MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
    int rc = 0;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= SUBJECT_LEN + 8 || memcmp(k.mv_data, subject, SUBJECT_LEN) != 0) break;
        if (k.mv_size >= HOLD_KEY_MAX || v.mv_size != sizeof(hold_t)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            void *nk = realloc(keys, cap * sizeof *keys), *nl = realloc(lens, cap * sizeof *lens),
                 *nh = realloc(holds, cap * sizeof *holds);
            if (nk) keys = nk;
            if (nl) lens = nl;
            if (nh) holds = nh;
            if (!nk || !nl || !nh) {
                rc = SCHAKEL_ENOMEM;
                break;
            }
        }
        memcpy(keys[n], k.mv_data, k.mv_size);
        lens[n] = k.mv_size;
        memcpy(&holds[n], v.mv_data, sizeof(hold_t));
        n++;
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char x[SCHAKEL_ID_MAX];
        size_t xl = lens[i] - SUBJECT_LEN - 8;
        memcpy(x, keys[i] + SUBJECT_LEN + 8, xl);
        x[xl] = 0;
        const schakel_envelope_t *e = consent_load_event(c, rec, holds[i].about_seq, NULL, &rc, why);
        if (!e) { /* erased meanwhile: nothing left to deliver */
            if (rc == 0) rc = hold_del(c, txn, keys[i], lens[i], holds[i].deadline);
            continue;
        }
        verdict_t vd;
        consent_decide(c, txn, e, x, rec->now, &vd);
        if (vd.outcome == SCHAKEL_OUTCOME(DELIVER)) {
            vd.rule = vd.basis == SCHAKEL_BASIS(CONSENT) && vd.has_consent ? "consent/released" : vd.rule;
            rc = consent_emit_decision(c, out, e, holds[i].about_seq, x, &vd, &rec->env->event_id, rec->now,
                                       why);
            if (rc == 0) rc = consent_delivered(c, txn, e, x, &vd);
            if (rc == 0) rc = hold_del(c, txn, keys[i], lens[i], holds[i].deadline);
        }
    }
    free(keys);
    free(lens);
    free(holds);
    return rc;
}

/* Holds whose deadline has passed by the log's time expire, and their
 * senders are told. */
int consent_expire_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                         char *why)
{
    const ProtobufCBinaryData cause = rec->env ? rec->env->event_id : (ProtobufCBinaryData){0, NULL};
    uint8_t seqcause[8];
    ProtobufCBinaryData c2 = cause;
    if (!cause.len) { /* an erased record still moves time: name it by seq */
        schakel_put_be64(seqcause, rec->seq);
        c2.data = seqcause;
        c2.len = 8;
    }
    for (;;) {
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_cursor_open(txn, c->deadlines, &cur) != 0) return SCHAKEL_ESTORE;
        int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        uint8_t key[8 + HOLD_KEY_MAX];
        size_t n = g == 0 && k.mv_size > 8 + SUBJECT_LEN + 8 && k.mv_size < sizeof key ? k.mv_size : 0;
        if (n) memcpy(key, k.mv_data, n);
        mdb_cursor_close(cur);
        if (!n) return 0;
        int64_t deadline = (int64_t)schakel_get_be64(key);
        if (deadline > rec->now) return 0;
        hold_t h = {deadline, schakel_get_be64(key + 8 + SUBJECT_LEN)};
        char x[SCHAKEL_ID_MAX];
        size_t xl = n - 8 - SUBJECT_LEN - 8;
        memcpy(x, key + 8 + SUBJECT_LEN + 8, xl);
        x[xl] = 0;
        int rc = 0;
        const schakel_envelope_t *e = consent_load_event(c, rec, h.about_seq, NULL, &rc, why);
        if (e) {
            verdict_t vd = {
                .outcome = SCHAKEL_OUTCOME(EXPIRED), .basis = SCHAKEL_BASIS(CONSENT), .rule = "hold/expired"};
            rc = consent_emit_decision(c, out, e, h.about_seq, x, &vd, &c2, rec->now, why);
        }
        if (rc == 0) rc = hold_del(c, txn, key + 8, n - 8, deadline);
        if (rc) return rc;
    }
}
