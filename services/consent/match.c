/* The verwijsindex (Jeugdwet 7.1.1.1 ff): who signalled about a child,
 * and nothing else. A signal enters its publisher for the child, whatever
 * routing and consent do with its content; organisations with a live
 * entry for the same child are told of each other, once per pair, with a
 * notice_only decision that says whom to contact. Entries expire two
 * years of log time after their latest signal (consent_expire_matches,
 * before every record). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "consent_impl.h"
#include "error.h"

/* An entry lives two years of log time from its organisation's latest
 * signal (Jeugdwet 7.1.1.1 ff: a melding is removed after at most two
 * years).
 * The other removal grounds (the youth turns 23, death) cannot be told
 * from what the bus knows. */
#define MATCH_MS (730LL * 86400000)
#define MATCH_KEY_MAX (SUBJECT_LEN + SCHAKEL_ID_MAX)
#define TOLD_KEY_MAX (SUBJECT_LEN + 2 * SCHAKEL_ID_MAX)

typedef struct {
    int64_t entered_at; /* log time of the signal that made this entry */
    int64_t deadline;   /* log time of the latest signal + two years */
    uint64_t seq;       /* the latest signal: read back for its contact */
} match_t;

typedef struct {
    char org[SCHAKEL_ID_MAX];
    match_t m;
} signaller_t;

static size_t match_key(uint8_t *key, const char *subject, const char *org)
{
    size_t n = strnlen(org, SCHAKEL_ID_MAX - 1);
    memcpy(key, subject, SUBJECT_LEN);
    memcpy(key + SUBJECT_LEN, org, n);
    return SUBJECT_LEN + n;
}

/* A pair is one mark whoever signalled first: the smaller id, NUL, the
 * larger. */
static size_t told_key(uint8_t *key, const char *subject, const char *a, const char *b)
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    size_t na = strnlen(a, SCHAKEL_ID_MAX - 1), nb = strnlen(b, SCHAKEL_ID_MAX - 1);
    memcpy(key, subject, SUBJECT_LEN);
    memcpy(key + SUBJECT_LEN, a, na);
    key[SUBJECT_LEN + na] = 0;
    memcpy(key + SUBJECT_LEN + na + 1, b, nb);
    return SUBJECT_LEN + na + 1 + nb;
}

static int match_put(schakel_consent_t *c, MDB_txn *txn, const char *subject, const char *org,
                     const match_t *m)
{
    uint8_t key[MATCH_KEY_MAX], dkey[8 + MATCH_KEY_MAX];
    size_t n = match_key(key, subject, org);
    schakel_put_be64(dkey, (uint64_t)m->deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_put(txn, c->matches, key, n, m, sizeof *m);
    return rc ? rc : schakel_kv_put(txn, c->match_deadlines, dkey, 8 + n, "", 0);
}

/* Forgets that org signalled about subject, and every pair it was in: a
 * later signal of it is a new entry, and its matches are told again. */
static int match_drop(schakel_consent_t *c, MDB_txn *txn, const char *subject, const char *org,
                      int64_t deadline)
{
    uint8_t key[MATCH_KEY_MAX], dkey[8 + MATCH_KEY_MAX];
    size_t n = match_key(key, subject, org), ol = n - SUBJECT_LEN;
    schakel_put_be64(dkey, (uint64_t)deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_del(txn, c->matches, key, n);
    if (rc == 0) rc = schakel_kv_del(txn, c->match_deadlines, dkey, 8 + n);
    if (rc) return rc;
    for (;;) { /* one mark at a time: deleting under a live cursor is easy to get wrong */
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, c->match_told, &cur) != 0) return SCHAKEL_ESTORE;
        MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
        uint8_t tkey[TOLD_KEY_MAX];
        size_t tl = 0;
        for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0 && !tl;
             g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size <= SUBJECT_LEN || memcmp(k.mv_data, subject, SUBJECT_LEN) != 0) break;
            const char *a = (const char *)k.mv_data + SUBJECT_LEN;
            size_t rest = k.mv_size - SUBJECT_LEN, al = strnlen(a, rest);
            if (al == rest || k.mv_size > sizeof tkey) continue;
            size_t bl = rest - al - 1;
            if ((al == ol && !memcmp(a, org, ol)) || (bl == ol && !memcmp(a + al + 1, org, ol))) {
                tl = k.mv_size;
                memcpy(tkey, k.mv_data, tl);
            }
        }
        mdb_cursor_close(cur);
        if (!tl) return 0;
        if ((rc = schakel_kv_del(txn, c->match_told, tkey, tl)) != 0) return rc;
    }
}

/* Is the deadline key dkey (u64be(deadline) || match key) the one of a
 * live entry? A later signal moves an entry's deadline without removing
 * its old key (a delete in the middle of the index for every repeated
 * signal was the largest cost of a signal); such a key names a deadline
 * its entry no longer has, or an entry dropped since. */
static int match_live(schakel_consent_t *c, MDB_txn *txn, const uint8_t *dkey, size_t n)
{
    MDB_val v;
    match_t m;
    if (schakel_kv_get(txn, c->matches, dkey + 8, n - 8, &v) != 0 || v.mv_size != sizeof m) return 0;
    memcpy(&m, v.mv_data, sizeof m);
    return (uint64_t)m.deadline == schakel_get_be64(dkey);
}

/* Entries whose two years have passed by the log's time are removed;
 * nobody is told. Keys left behind by a moved deadline are removed as
 * they come due, earlier than their entry's own. */
int consent_expire_matches(schakel_consent_t *c, MDB_txn *txn, int64_t now)
{
    for (;;) {
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_cursor_open(txn, c->match_deadlines, &cur) != 0) return SCHAKEL_ESTORE;
        int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        uint8_t key[8 + MATCH_KEY_MAX];
        size_t n = g == 0 && k.mv_size > 8 + SUBJECT_LEN && k.mv_size < sizeof key ? k.mv_size : 0;
        if (n) memcpy(key, k.mv_data, n);
        mdb_cursor_close(cur);
        if (!n) return 0;
        int64_t deadline = (int64_t)schakel_get_be64(key);
        if (deadline > now) return 0;
        int rc;
        if (!match_live(c, txn, key, n)) { /* left behind when its entry's deadline moved */
            if ((rc = schakel_kv_del(txn, c->match_deadlines, key, n)) != 0) return rc;
            continue;
        }
        char subject[SUBJECT_LEN + 1], org[SCHAKEL_ID_MAX];
        memcpy(subject, key + 8, SUBJECT_LEN);
        subject[SUBJECT_LEN] = 0;
        memcpy(org, key + 8 + SUBJECT_LEN, n - 8 - SUBJECT_LEN);
        org[n - 8 - SUBJECT_LEN] = 0;
        if ((rc = match_drop(c, txn, subject, org, deadline)) != 0) return rc;
    }
}

/* The live entries of subject, the signaller's own apart (*mine, *had). */
static int match_entries(schakel_consent_t *c, MDB_txn *txn, const char *subject, const char *self,
                         int64_t now, signaller_t **out, size_t *n_out, match_t *mine, int *had)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->matches, &cur) != 0) return SCHAKEL_ESTORE;
    signaller_t *s = NULL;
    size_t n = 0, cap = 0, self_len = strlen(self);
    int rc = 0;
    *had = 0;
    MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= SUBJECT_LEN || memcmp(k.mv_data, subject, SUBJECT_LEN) != 0) break;
        size_t ol = k.mv_size - SUBJECT_LEN;
        if (ol >= SCHAKEL_ID_MAX || v.mv_size != sizeof(match_t)) continue;
        match_t m;
        memcpy(&m, v.mv_data, sizeof m);
        if (ol == self_len && !memcmp((const char *)k.mv_data + SUBJECT_LEN, self, ol)) {
            *mine = m;
            *had = 1;
            continue;
        }
        if (m.deadline <= now) continue; /* consent_expire_matches removes it */
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            signaller_t *ns = realloc(s, cap * sizeof *s);
            if (!ns) {
                rc = SCHAKEL_ENOMEM;
                break;
            }
            s = ns;
        }
        memcpy(s[n].org, (const char *)k.mv_data + SUBJECT_LEN, ol);
        s[n].org[ol] = 0;
        s[n].m = m;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc) {
        free(s);
        s = NULL, n = 0;
    }
    *out = s;
    *n_out = n;
    return rc;
}

/* Tells the pair (the signal at rec, and other's latest about the same
 * child) of each other, unless it was told before. */
static int match_tell(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                      const signaller_t *other, schakel_emit_t *out, char *why)
{
    const schakel_envelope_t *e = rec->env;
    uint8_t tkey[TOLD_KEY_MAX];
    size_t tl = told_key(tkey, e->subject, e->source_org, other->org);
    MDB_val v;
    if (schakel_kv_get(txn, c->match_told, tkey, tl, &v) == 0) return 0;
    if (!consent_kind_of(c, other->org)) return 0; /* left the directory: can be told nothing */
    int rc = 0;
    const schakel_envelope_t *o = consent_load_event(c, rec, other->m.seq, NULL, &rc, why);
    if (o && (o->type != SCHAKEL_EVENT(SIGNAL) || strcmp(o->source_org, other->org) != 0 ||
              strcmp(o->subject, e->subject) != 0))
        o = NULL;
    if (!o) /* erased (or not what the index says): there is no signal left to match */
        return rc ? rc : match_drop(c, txn, e->subject, other->org, other->m.deadline);
    verdict_t vd = {.outcome = SCHAKEL_OUTCOME(NOTICE_ONLY),
                    .basis = SCHAKEL_BASIS(VERWIJSINDEX),
                    .duty = 1,
                    .rule = "verwijsindex/match"};
    rc = consent_emit_decision(c, out, e, rec->seq, other->org, &vd, &e->event_id, rec->now, why);
    if (rc == 0)
        rc = consent_emit_decision(c, out, o, other->m.seq, e->source_org, &vd, &e->event_id, rec->now, why);
    if (rc == 0) rc = schakel_kv_put(txn, c->match_told, tkey, tl, "", 0);
    return rc;
}

/* A signal about a child enters its publisher in the index, whatever
 * routing and consent do with its content: the verwijsindex is its own
 * legal ground. Every other organisation with a live entry for the child
 * and its publisher hear of each other. */
int consent_on_signal(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                      char *why)
{
    const schakel_envelope_t *e = rec->env;
    if (strnlen(e->subject, SUBJECT_LEN + 1) != SUBJECT_LEN) return 0; /* names no child */
    signaller_t *others;
    size_t n;
    match_t mine = {rec->now, 0, 0};
    int had, rc = match_entries(c, txn, e->subject, e->source_org, rec->now, &others, &n, &mine, &had);
    if (rc) return rc;
    /* had: the entry lives on and its deadline moves; the old deadline's
     * key stays until it comes due (match_live) */
    (void)had;
    mine.deadline = rec->now + MATCH_MS;
    mine.seq = rec->seq;
    rc = match_put(c, txn, e->subject, e->source_org, &mine);
    for (size_t i = 0; i < n && rc == 0; i++) rc = match_tell(c, txn, rec, &others[i], out, why);
    free(others);
    return rc;
}
