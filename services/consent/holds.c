/* Holds: an event a recipient may not know yet, for want of a consent,
 * is held (holds, keyed by child; deadlines, by deadline). A consent of
 * the child re-decides the holds of that child it may release: those of
 * events it counts for, for a recipient it covers (consent_release_holds;
 * a hold keeps what that takes, so that one organisation's many holds
 * and consents cost others nothing but a scan of the child's holds);
 * a hold whose deadline passed by the log's time expires and its sender
 * is told (consent_expire_holds, after every record). Holds are put by
 * decisions.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "calendar.h"
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

#define HOLD_CATS 16

/* A hold's value: when it expires, the held event's seq and what decides
 * whether a new consent may release it (consent_may_release) without
 * reading the event back. A hold of an older version is the first two
 * alone (hold_t's size up to `facts`): every consent re-decides it. */
typedef struct {
    int64_t deadline;
    uint64_t about_seq;
    int32_t purpose, age_band;
    uint32_t n_categories; /* over HOLD_CATS: not kept, the event is read back */
    int32_t categories[HOLD_CATS];
    char source_org[SCHAKEL_ID_MAX];
    uint8_t has_news;    /* the event is news about a loop (consent_news_id) */
    uint8_t news_id[16]; /* that loop's id */
} hold_t;
#define HOLD_OLD_SIZE (offsetof(hold_t, purpose))

int consent_hold_put(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, uint64_t seq,
                     const char *x, int64_t deadline)
{
    uint8_t key[HOLD_KEY_MAX], dkey[8 + HOLD_KEY_MAX];
    size_t n = hold_key(key, e->subject, seq, x);
    hold_t h;
    memset(&h, 0, sizeof h);
    h.deadline = deadline;
    h.about_seq = seq;
    h.purpose = (int32_t)e->purpose;
    h.age_band = (int32_t)e->age_band;
    h.n_categories = e->n_categories <= HOLD_CATS ? (uint32_t)e->n_categories : UINT32_MAX;
    for (size_t i = 0; i < e->n_categories && i < HOLD_CATS; i++) h.categories[i] = (int32_t)e->categories[i];
    snprintf(h.source_org, sizeof h.source_org, "%s", e->source_org);
    char tag;
    const ProtobufCBinaryData *news = consent_news_id(e, &tag);
    if (news && news->len == 16) {
        h.has_news = 1;
        memcpy(h.news_id, news->data, 16);
    }
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

/* Might the consent just recorded (rec) release hold h for x? From the
 * hold's facts when it has them; else (an older hold, many categories)
 * yes: it is re-decided in full. */
static int may_release(schakel_consent_t *c, const schakel_logrec_t *rec, const hold_t *h, int facts,
                       const char *x)
{
    if (!facts || h->n_categories > HOLD_CATS || !rec->env->consent_given) return 1;
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__DataCategory cats[HOLD_CATS];
    for (uint32_t i = 0; i < h->n_categories; i++) cats[i] = (Schakel__V1__DataCategory)h->categories[i];
    e.source_org = (char *)h->source_org;
    e.purpose = (Schakel__V1__Purpose)h->purpose;
    e.age_band = (Schakel__V1__AgeBand)h->age_band;
    e.n_categories = h->n_categories;
    e.categories = cats;
    char date[11];
    schakel_date_of(rec->now, date);
    return consent_may_release(c, rec->env->consent_given, rec->env->source_org, &e, x, date);
}

/* Ids of loops a release opened or joined (a referral, a follow-up
 * signal, a handover, a MAZL request; a redirect's intake): news about
 * them that waits may now travel on the loop's ground. */
typedef struct {
    uint8_t (*ids)[16];
    size_t n, cap;
} idset_t;

static int idset_has(const idset_t *s, const uint8_t id[16])
{
    for (size_t i = 0; i < s->n; i++)
        if (!memcmp(s->ids[i], id, 16)) return 1;
    return 0;
}

static int idset_add(idset_t *s, const ProtobufCBinaryData *id)
{
    if (!id || id->len != 16 || idset_has(s, id->data)) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        void *more = realloc(s->ids, cap * sizeof *s->ids);
        if (!more) return SCHAKEL_ENOMEM;
        s->ids = more;
        s->cap = cap;
    }
    memcpy(s->ids[s->n++], id->data, 16);
    return 0;
}

/* Which holds a pass re-decides: the first, those the consent may
 * release; the next ones, those that are news about a loop the pass
 * before opened. */
typedef struct {
    const schakel_logrec_t *rec;
    const idset_t *opened; /* NULL: the first pass */
} pick_t;

static int picked(schakel_consent_t *c, const pick_t *p, const hold_t *h, int facts, const char *x)
{
    if (!p->opened) return may_release(c, p->rec, h, facts, x);
    return !facts || (h->has_news && idset_has(p->opened, h->news_id));
}

/* One pass over the child's holds: re-decides those picked, delivers
 * what may go now, and adds the loops those open to *opened. */
static int release_pass(schakel_consent_t *c, MDB_txn *txn, const pick_t *p, idset_t *opened,
                        schakel_emit_t *out, char *why)
{
    const schakel_logrec_t *rec = p->rec;
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
        if (k.mv_size >= HOLD_KEY_MAX || v.mv_size < HOLD_OLD_SIZE || v.mv_size > sizeof(hold_t)) continue;
        hold_t h;
        memset(&h, 0, sizeof h);
        memcpy(&h, v.mv_data, v.mv_size);
        h.source_org[sizeof h.source_org - 1] = 0;
        char x[SCHAKEL_ID_MAX];
        size_t xl = k.mv_size - SUBJECT_LEN - 8;
        memcpy(x, (const uint8_t *)k.mv_data + SUBJECT_LEN + 8, xl);
        x[xl] = 0;
        if (!picked(c, p, &h, v.mv_size == sizeof(hold_t), x)) continue; /* nothing to read back */
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
        holds[n] = h;
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
            char tag;
            if (rc == 0) rc = idset_add(opened, consent_loop_id(e, &tag));
            if (rc == 0) rc = idset_add(opened, consent_news_id(e, &tag));
        }
    }
    free(keys);
    free(lens);
    free(holds);
    return rc;
}

/* Consent arrived: re-decide the holds of this child it may release;
 * then, as long as a release opened a loop, the news about it that
 * waits (it may travel on the loop's ground now). */
int consent_release_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                          schakel_emit_t *out, char *why)
{
    idset_t a = {0}, b = {0};
    pick_t p = {rec, NULL};
    int rc = release_pass(c, txn, &p, &a, out, why);
    for (int round = 0; rc == 0 && a.n && round < 8; round++) {
        p.opened = &a;
        b.n = 0;
        rc = release_pass(c, txn, &p, &b, out, why);
        idset_t t = a;
        a = b;
        b = t;
    }
    free(a.ids);
    free(b.ids);
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
        uint64_t about_seq = schakel_get_be64(key + 8 + SUBJECT_LEN);
        char x[SCHAKEL_ID_MAX];
        size_t xl = n - 8 - SUBJECT_LEN - 8;
        memcpy(x, key + 8 + SUBJECT_LEN + 8, xl);
        x[xl] = 0;
        int rc = 0;
        const schakel_envelope_t *e = consent_load_event(c, rec, about_seq, NULL, &rc, why);
        if (e) {
            verdict_t vd = {
                .outcome = SCHAKEL_OUTCOME(EXPIRED), .basis = SCHAKEL_BASIS(CONSENT), .rule = "hold/expired"};
            rc = consent_emit_decision(c, out, e, about_seq, x, &vd, &c2, rec->now, why);
        }
        if (rc == 0) rc = hold_del(c, txn, key + 8, n - 8, deadline);
        if (rc) return rc;
    }
}
