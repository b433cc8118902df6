/* Consents given and withdrawn: the consents and by_subject tables. A
 * consent is kept reduced to what decisions need, under its id and the
 * organisation that recorded it; a withdrawal flips its flag. On the data
 * path: consent_process hands each consent_given and consent_withdrawn
 * here first; rules.c reads them back (consent_load) when it decides. */
#include <stdlib.h>
#include <string.h>

#include "consent_impl.h"
#include "error.h"
#include "logging.h"

size_t consent_key(uint8_t *key, const uint8_t id[16], const char *org)
{
    size_t n = strnlen(org, SCHAKEL_ID_MAX - 1);
    memcpy(key, id, 16);
    memcpy(key + 16, org, n);
    return 16 + n;
}

/* A consent recorded by org, and whether it was withdrawn. Caller frees
 * *env. */
int consent_load(schakel_consent_t *c, MDB_txn *txn, const uint8_t id[16], const char *org,
                 schakel_envelope_t **env, int *withdrawn)
{
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    *env = NULL;
    if (schakel_kv_get(txn, c->consents, key, consent_key(key, id, org), &v) != 0 || v.mv_size < 2)
        return SCHAKEL_ENOTFOUND;
    const uint8_t *p = v.mv_data;
    *withdrawn = p[0];
    *env = schakel_envelope_decode(p + 1, v.mv_size - 1, NULL);
    return *env ? 0 : SCHAKEL_ECORRUPT;
}
/* A consent: kept reduced to what decisions need (no case reference, no
 * contact, no correlation), under its id and the organisation that
 * recorded it; the first one of that pair counts. */
int consent_on_given(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e)
{
    const ProtobufCBinaryData *id = &e->consent_given->consent_id;
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    size_t kl = id->len == 16 ? consent_key(key, id->data, e->source_org) : 0;
    if (!kl || !e->subject[0] || schakel_kv_get(txn, c->consents, key, kl, &v) == 0) return 0;
    Schakel__V1__ConsentGiven cg = *e->consent_given;
    cg.recorded_by = NULL;
    Schakel__V1__Envelope r = SCHAKEL__V1__ENVELOPE__INIT;
    r.type = e->type;
    r.source_org = e->source_org;
    r.subject = e->subject;
    r.age_band = e->age_band;
    r.body_case = SCHAKEL__V1__ENVELOPE__BODY_CONSENT_GIVEN;
    r.consent_given = &cg;
    size_t len = schakel__v1__envelope__get_packed_size(&r);
    uint8_t *val = malloc(len + 1);
    if (!val) return SCHAKEL_ENOMEM;
    val[0] = 0;
    schakel__v1__envelope__pack(&r, val + 1);
    int rc = schakel_kv_put(txn, c->consents, key, kl, val, len + 1);
    free(val);
    uint8_t skey[SUBJECT_LEN + CONSENT_KEY_MAX];
    memcpy(skey, e->subject, SUBJECT_LEN);
    memcpy(skey + SUBJECT_LEN, key, kl);
    return rc ? rc : schakel_kv_put(txn, c->by_subject, skey, SUBJECT_LEN + kl, "", 0);
}

/* A withdrawal counts only for a consent of the same child that the same
 * organisation recorded. */
int consent_on_withdrawn(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    const ProtobufCBinaryData *id = &e->consent_withdrawn->consent_id;
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    size_t kl = id->len == 16 ? consent_key(key, id->data, e->source_org) : 0;
    const char *reason = NULL;
    if (!kl || schakel_kv_get(txn, c->consents, key, kl, &v) != 0 || v.mv_size < 2) {
        reason = "no_consent_of_this_organisation";
    } else {
        schakel_envelope_t *ce = schakel_envelope_decode((uint8_t *)v.mv_data + 1, v.mv_size - 1, NULL);
        if (!ce || strcmp(ce->subject, e->subject) != 0) reason = "other_subject";
        schakel_envelope_free(ce);
    }
    if (reason) {
        c->ignored++;
        schakel_log(SCHAKEL_LOG_WARN, "consent", "event=withdrawal_ignored seq=%llu reason=%s ignored=%llu",
                    (unsigned long long)rec->seq, reason, (unsigned long long)c->ignored);
        return 0;
    }
    uint8_t *val = malloc(v.mv_size);
    if (!val) return SCHAKEL_ENOMEM;
    memcpy(val, v.mv_data, v.mv_size);
    val[0] = 1;
    int rc = schakel_kv_put(txn, c->consents, key, kl, val, v.mv_size);
    free(val);
    return rc;
}
