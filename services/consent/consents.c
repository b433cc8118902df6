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

/* The decoded consents, each with the bytes it was decoded from: a slot
 * is picked by the consent's key and answers only when the bytes stored
 * under that key now are the same, so an aborted transaction or a
 * withdrawal (the flag is not part of the bytes) can never make it stale.
 * A child's consents are decoded once, not once per recipient of every
 * routing decision about the child. */
struct consent_cached {
    uint8_t *bytes; /* the stored consent, without the withdrawn flag */
    size_t len;
    schakel_envelope_t *env;
};

static size_t cache_slot(const uint8_t *key, size_t kl)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: consent ids are chosen by organisations */
    for (size_t i = 0; i < kl; i++) h = (h ^ key[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 32)) & (CONSENT_CACHE - 1);
}

static const schakel_envelope_t *consent_decoded(schakel_consent_t *c, const uint8_t *key, size_t kl,
                                                 const uint8_t *bytes, size_t len)
{
    if (!c->cache && !(c->cache = calloc(CONSENT_CACHE, sizeof *c->cache)))
        return NULL; /* no memory: the caller says so */
    struct consent_cached *s = &c->cache[cache_slot(key, kl)];
    if (s->env && s->len == len && !memcmp(s->bytes, bytes, len)) return s->env;
    schakel_envelope_free(s->env);
    free(s->bytes);
    s->env = schakel_envelope_decode(bytes, len, NULL);
    s->bytes = s->env ? malloc(len) : NULL;
    s->len = s->bytes ? len : 0; /* no memory for the bytes: used now, decoded again next time */
    if (s->bytes) memcpy(s->bytes, bytes, len);
    return s->env;
}

void consent_cache_free(schakel_consent_t *c)
{
    for (size_t i = 0; c->cache && i < CONSENT_CACHE; i++) {
        schakel_envelope_free(c->cache[i].env);
        free(c->cache[i].bytes);
    }
    free(c->cache);
    c->cache = NULL;
}

void consent_cache_drop(schakel_consent_t *c, const uint8_t *key, size_t kl)
{
    struct consent_cached *s = c->cache ? &c->cache[cache_slot(key, kl)] : NULL;
    if (!s) return;
    schakel_envelope_free(s->env);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

/* A consent recorded by org, and whether it was withdrawn. *env (when
 * env is not NULL) is the engine's: valid until the next consent_load. */
int consent_load(schakel_consent_t *c, MDB_txn *txn, const uint8_t id[16], const char *org,
                 const schakel_envelope_t **env, int *withdrawn)
{
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    size_t kl = consent_key(key, id, org);
    if (env) *env = NULL;
    if (schakel_kv_get(txn, c->consents, key, kl, &v) != 0 || v.mv_size < 2) return SCHAKEL_ENOTFOUND;
    const uint8_t *p = v.mv_data;
    *withdrawn = p[0];
    if (!env) return 0;
    *env = consent_decoded(c, key, kl, p + 1, v.mv_size - 1);
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
 * organisation recorded, withdrawn by one whose consent it needed. */
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
        else if (!consent_withdrawal_counts((int)e->age_band, (int)e->consent_withdrawn->withdrawn_by,
                                            ce->consent_given))
            reason = "not_entitled"; /* e.g. parents taking back a youth of 16's own consent */
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
