/* Retention: the broker erases a child once the retention rules in force
 * on the log (a rules_update of set retention, from DATA/retention.json)
 * say its time is up (docs/privacy.md, "Retention"),
 * by the log's clock, never the wall clock: the log's time is the
 * largest recorded_at and clock_tick at_ms read so far, as the services
 * count it. A pass reads the records appended since the last one (its
 * cursor), keeps per child the log time of its last event, the longest
 * period of the kinds of its events (what organisations record, types
 * 100 to 199; decisions about it do not count) and, with age_23, when it is surely
 * 23 and before when it cannot be, in DATA/retention/ (LMDB, derived from the log: pseudonyms and
 * times, no content); then erases every child that is due, each with an
 * `erasure` event of basis `retention` or `age_23` (erase.c). Runs in the
 * command loop's thread, between groups, at most once a second and at
 * most PASS_RECORDS records at a time. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker_impl.h"
#include "bytes.h"
#include "fileio.h"
#include "retention.h"

#define PASS_RECORDS 5000
#define PASS_ERASE_MAX 256 /* children erased per pass; the rest the next */
#define DAY_MS 86400000LL
#define STATE_LEN \
    40 /* i64 last, u32 days, u32 0, i64 surely 23 at, i64 not 23 before, i64 surely 23 by every band */
#define STATE_LEN_OLD 24 /* before the floor and the latest bound were kept: read as agreeing */
#define RETENTION_FILE_MAX (64 << 10)

struct broker_retention {
    char path[SCHAKEL_PATH_MAX]; /* retention.json */
    struct timespec mtime;
    int file_seen; /* the file was looked at once (a missing one written back) */
    int have_rules;
    uint64_t rules_seq; /* the rules_update they came from */
    schakel_retention_t rules;
    MDB_env *env;
    MDB_dbi subjects, meta;
    int64_t last_pass;
};

typedef struct {
    struct broker_retention *r;
    MDB_txn *txn;
    int64_t now;
    uint64_t seq;
    int rc;
} pass_t;

static int meta_get(struct broker_retention *r, MDB_txn *txn, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    *v = 0;
    int rc = mdb_get(txn, r->meta, &k, &d);
    if (rc == 0 && d.mv_size == 8) *v = schakel_get_be64(d.mv_data);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int meta_put(struct broker_retention *r, MDB_txn *txn, const char *name, uint64_t v)
{
    uint8_t b[8];
    schakel_put_be64(b, v);
    MDB_val k = {strlen(name), (void *)name}, d = {8, b};
    return mdb_put(txn, r->meta, &k, &d, 0);
}

/* An event's age band narrows when the child is surely 23 (the earliest
 * such bound) and before when it cannot be 23 (the latest such floor).
 * Bands that disagree (a floor after the bound: one organisation's
 * under_12, another's adult) are logged, once, and then the child is
 * surely 23 only when every band says so (the latest bound): no
 * organisation's band erases early what the others hold
 * (docs/privacy.md, "Retention"). */
static void age_bound(pass_t *p, int band, int64_t *age23, int64_t *not_before, int64_t *latest)
{
    int was = *not_before > *age23;
    int64_t a = schakel_retention_age23_at(band, p->now), lo = schakel_retention_age23_floor(band, p->now);
    if (a == INT64_MAX) return; /* no band */
    if (a < *age23) *age23 = a;
    if (a > *latest) *latest = a;
    if (lo > *not_before) *not_before = lo;
    if (!was && *not_before > *age23)
        schakel_log(SCHAKEL_LOG_WARN, "broker",
                    "event=age_band_conflict seq=%llu action=age_23_waits_for_every_band",
                    (unsigned long long)p->seq);
}

/* One record: the log's time moves; an event about a child updates its
 * entry. */
static int pass_record(void *arg, const schakel_record_t *rec)
{
    pass_t *p = arg;
    p->seq = rec->seq;
    if (rec->recorded_at > p->now) p->now = rec->recorded_at;
    schakel_envelope_t *e =
        rec->event ? schakel_envelope_decode_with(rec->event, rec->event_len, NULL, NULL) : NULL;
    if (!e) return 0; /* erased, or not ours to read: nothing to keep */
    if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK && e->clock_tick->at_ms > p->now)
        p->now = e->clock_tick->at_ms;
    /* only what organisations record about the child counts: decisions,
     * reminders and expiries the bus derives later do not keep it */
    if (strlen(e->subject) == 64 && (int)e->type >= 100 && (int)e->type < 200) {
        MDB_val k = {64, e->subject}, d;
        uint8_t st[STATE_LEN] = {0};
        int64_t age23 = INT64_MAX, not_before = INT64_MIN, latest = INT64_MIN;
        uint32_t days = 0;
        int rc = mdb_get(p->txn, p->r->subjects, &k, &d);
        if (rc == 0 && (d.mv_size == STATE_LEN || d.mv_size == STATE_LEN_OLD)) {
            days = (uint32_t)(schakel_get_be64((const uint8_t *)d.mv_data + 8) >> 32);
            age23 = (int64_t)schakel_get_be64((const uint8_t *)d.mv_data + 16);
            if (d.mv_size == STATE_LEN) {
                not_before = (int64_t)schakel_get_be64((const uint8_t *)d.mv_data + 24);
                latest = (int64_t)schakel_get_be64((const uint8_t *)d.mv_data + 32);
            } else if (age23 != INT64_MAX) {
                latest = age23; /* an older entry: its one bound */
            }
        }
        uint32_t t = schakel_retention_days(&p->r->rules, (int)e->type);
        if (t > days) days = t;
        if (p->r->rules.age_23) age_bound(p, (int)e->age_band, &age23, &not_before, &latest);
        schakel_put_be64(st, (uint64_t)p->now);
        schakel_put_be64(st + 8, (uint64_t)days << 32);
        schakel_put_be64(st + 16, (uint64_t)age23);
        schakel_put_be64(st + 24, (uint64_t)not_before);
        schakel_put_be64(st + 32, (uint64_t)latest);
        d.mv_size = STATE_LEN;
        d.mv_data = st;
        if ((rc = mdb_put(p->txn, p->r->subjects, &k, &d, 0)) != 0) p->rc = rc;
    }
    schakel_envelope_free(e);
    return p->rc ? 1 : 0;
}

int broker_retention_open(schakel_broker_t *b, const char *data_dir, char *why)
{
    struct broker_retention *r = calloc(1, sizeof *r);
    if (!r) return schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
    b->retention = r;
    char dir[SCHAKEL_PATH_MAX];
    int rc = schakel_path_join(r->path, sizeof r->path, data_dir, "retention.json", why);
    if (!rc) rc = schakel_path_join(dir, sizeof dir, data_dir, "retention", why);
    if (rc) return rc;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", dir, strerror(errno));
    MDB_txn *txn = NULL;
    int m = mdb_env_create(&r->env);
    if (!m) m = mdb_env_set_maxdbs(r->env, 4);
    if (!m) m = mdb_env_set_mapsize(r->env, (size_t)1 << 32);
    if (!m) m = mdb_env_open(r->env, dir, MDB_NOTLS, 0600);
    if (!m) m = mdb_txn_begin(r->env, NULL, 0, &txn);
    if (!m) m = mdb_dbi_open(txn, "subjects", MDB_CREATE, &r->subjects);
    if (!m) m = mdb_dbi_open(txn, "meta", MDB_CREATE, &r->meta);
    if (!m) m = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (m) return schakel_fail(why, SCHAKEL_ESTORE, "retention state in %s: %s", dir, mdb_strerror(m));
    return 0;
}

void broker_retention_close(schakel_broker_t *b)
{
    struct broker_retention *r = b->retention;
    if (!r) return;
    if (r->env) mdb_env_close(r->env);
    free(r);
    b->retention = NULL;
}

/* DATA/retention.json goes on the log as a rules_update (set retention)
 * when it changed, parses and differs from the rules in force; one that
 * does not parse is refused, naming the field, and the rules in force
 * stay. A missing file changes nothing; the first time it is written
 * back from the log, so that the operator edits what is in force. */
static void file_sync(schakel_broker_t *b, struct broker_retention *r)
{
    struct stat st;
    int first = !r->file_seen;
    r->file_seen = 1;
    if (stat(r->path, &st) != 0) {
        uint64_t seq = 0;
        char *doc = first ? broker_rules_retention(b, &seq) : NULL;
        if (doc && schakel_file_write_atomic(r->path, doc, strlen(doc)) == 0) {
            schakel_log(SCHAKEL_LOG_INFO, "broker", "event=rules_file_written set=retention from=log");
            if (stat(r->path, &st) == 0) r->mtime = st.st_mtim;
        }
        free(doc);
        return;
    }
    if (st.st_mtim.tv_sec == r->mtime.tv_sec && st.st_mtim.tv_nsec == r->mtime.tv_nsec) return;
    r->mtime = st.st_mtim;
    if (b->replicated_log) { /* refused at start too (broker.c) */
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=retention_rejected file=%s reason=\"the jetstream log cannot erase yet "
                    "(docs/scale-out.md)\" action=kept_previous",
                    r->path);
        return;
    }
    char why[SCHAKEL_ERRLEN] = "";
    size_t len = 0;
    char *text = schakel_file_read(r->path, RETENTION_FILE_MAX + 1, &len);
    schakel_retention_t rules;
    if (!text || len > RETENTION_FILE_MAX || strlen(text) != len)
        snprintf(why, sizeof why, "retention: %s", text ? "over 64 KiB, or holds a NUL" : strerror(errno));
    else if (schakel_retention_parse(text, len, &rules, why) == 0 &&
             broker_rules_put_retention(b, text, len) != 0)
        snprintf(why, sizeof why,
                 "retention: could not be put on the log (an alarm); it is read again "
                 "when it changes");
    if (why[0])
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=retention_rejected file=%s reason=\"%s\" action=kept_previous", r->path, why);
    free(text);
}

/* The rules in force: the last rules_update of set retention on the log. */
static void rules_from_log(schakel_broker_t *b, struct broker_retention *r)
{
    uint64_t seq = 0;
    char *doc = broker_rules_retention(b, &seq);
    if (doc && seq != r->rules_seq) {
        char why[SCHAKEL_ERRLEN] = "";
        schakel_retention_t rules;
        r->rules_seq = seq;
        if (schakel_retention_parse(doc, strlen(doc), &rules, why) != 0) {
            /* the broker checks a file before it logs it: an older
             * broker's, or a log written otherwise */
            schakel_log(SCHAKEL_LOG_ERROR, "broker",
                        "event=retention_rejected seq=%llu reason=\"%s\" action=kept_previous",
                        (unsigned long long)seq, why);
        } else {
            r->rules = rules;
            r->have_rules = 1;
            schakel_log(SCHAKEL_LOG_INFO, "broker", "event=retention_loaded seq=%llu version=%llu",
                        (unsigned long long)seq, (unsigned long long)rules.version);
        }
    }
    free(doc);
}

typedef struct {
    char subject[65];
    int basis;
} due_t;

/* The children due at the log's time now, at most max. */
static size_t find_due(struct broker_retention *r, MDB_txn *txn, int64_t now, due_t *out, size_t max)
{
    MDB_cursor *cur;
    size_t n = 0;
    if (mdb_cursor_open(txn, r->subjects, &cur) != 0) return 0;
    MDB_val k, d;
    for (int op = MDB_FIRST; n < max && mdb_cursor_get(cur, &k, &d, op) == 0; op = MDB_NEXT) {
        if (k.mv_size != 64 || (d.mv_size != STATE_LEN && d.mv_size != STATE_LEN_OLD)) continue;
        const uint8_t *s = d.mv_data;
        int64_t last = (int64_t)schakel_get_be64(s);
        uint32_t days = (uint32_t)(schakel_get_be64(s + 8) >> 32);
        int64_t age23 = (int64_t)schakel_get_be64(s + 16);
        int64_t not_before = d.mv_size == STATE_LEN ? (int64_t)schakel_get_be64(s + 24) : INT64_MIN;
        int64_t latest = d.mv_size == STATE_LEN ? (int64_t)schakel_get_be64(s + 32) : age23;
        if (!days) days = r->rules.default_days;
        /* surely 23: by the earliest bound while the bands agree, by every
         * band's when they do not */
        int by_age = r->rules.age_23 && (not_before <= age23 ? age23 : latest) <= now;
        if (!by_age && last + (int64_t)days * DAY_MS > now) continue;
        memcpy(out[n].subject, k.mv_data, 64);
        out[n].subject[64] = 0;
        out[n++].basis = by_age ? SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AGE_23
                                : SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_RETENTION;
    }
    mdb_cursor_close(cur);
    return n;
}

/* Erases each due child and forgets it. */
static void erase_due(schakel_broker_t *b, struct broker_retention *r, const due_t *due, size_t n)
{
    char purpose[64];
    snprintf(purpose, sizeof purpose, "retention.json version %llu", (unsigned long long)r->rules.version);
    for (size_t i = 0; i < n; i++) {
        Schakel__V1__Erase req = SCHAKEL__V1__ERASE__INIT;
        req.subject = (char *)due[i].subject;
        req.basis = (Schakel__V1__ErasureBasis)due[i].basis;
        req.purpose = purpose;
        req.requested_by = "retention";
        Schakel__V1__Erased out = SCHAKEL__V1__ERASED__INIT;
        uint8_t id[16];
        int rc = broker_erase(b, &req, &out, id);
        if (rc) { /* kept: the next pass tries again */
            schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=retention_erase_failed reason=\"%s\"",
                        schakel_strerror(rc));
            continue;
        }
        MDB_txn *txn;
        MDB_val k = {64, (void *)due[i].subject};
        if (mdb_txn_begin(r->env, NULL, 0, &txn) == 0) {
            int d = mdb_del(txn, r->subjects, &k, NULL);
            if (d == 0 || d == MDB_NOTFOUND) d = mdb_txn_commit(txn);
            else mdb_txn_abort(txn);
            if (d && d != MDB_NOTFOUND) /* erased; the next pass finds no key and forgets it */
                schakel_log(SCHAKEL_LOG_WARN, "broker", "event=retention_forget_failed reason=\"%s\"",
                            mdb_strerror(d));
        }
    }
}

void broker_retention_pass(schakel_broker_t *b, int64_t wall_now)
{
    struct broker_retention *r = b->retention;
    if (!r || !r->env || wall_now - r->last_pass < 1000) return;
    r->last_pass = wall_now;
    file_sync(b, r);
    rules_from_log(b, r);
    if (!r->have_rules) return;
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    MDB_txn *txn;
    int b0 = mdb_txn_begin(r->env, NULL, 0, &txn);
    if (b0) {
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=retention_pass_failed reason=\"%s\"",
                    mdb_strerror(b0));
        return;
    }
    uint64_t cursor = 0, now = 0;
    pass_t p = {r, txn, 0, 0, 0};
    int rc = meta_get(r, txn, "seq", &cursor);
    if (!rc) rc = meta_get(r, txn, "now", &now);
    p.now = (int64_t)now;
    p.seq = cursor;
    uint64_t from = cursor + 1;
    while (!rc && !p.rc && from <= h.seq && p.seq - cursor < PASS_RECORDS) {
        uint64_t next = from;
        int r2 = schakel_store_read(b->store, "all", from, 1000, 4u << 20, pass_record, &p, &next);
        if (r2 < 0 || next <= from) break;
        from = next;
    }
    if (!rc) rc = p.rc;
    if (!rc && p.seq > cursor) rc = meta_put(r, txn, "seq", p.seq);
    if (!rc) rc = meta_put(r, txn, "now", (uint64_t)p.now);
    static due_t due[PASS_ERASE_MAX];
    size_t n = rc ? 0 : find_due(r, txn, p.now, due, PASS_ERASE_MAX);
    if (!rc) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc) {
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=retention_pass_failed reason=\"%s\"",
                    mdb_strerror(rc));
        return;
    }
    if (p.seq > cursor || n)
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=retention_pass read=%llu upto=%llu due=%zu",
                    (unsigned long long)(p.seq - cursor), (unsigned long long)p.seq, n);
    if (n) {
        erase_due(b, r, due, n);
    }
}
