/* The service runner: live against a broker, or as a replay check over a
 * log on disk. Workload: a steady stream of small records, most of which
 * an engine looks at and drops; a group of up to GROUP records shares one
 * LMDB write transaction and one publish round trip. See service.h for
 * the contract that makes replay exact. */
#include "service.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "consumer.h"
#include "crypto.h"
#include "directory.h"
#include "error.h"
#include "logging.h"
#include "store_lmdb.h"

#define GROUP 256                 /* records per transaction */
#define PUBLISH_MAX 256           /* events per PUBLISH */
#define STATE_MAP ((size_t)16 << 30) /* sparse; state is small next to the log */
#define RECENT 1024               /* records kept in memory for schakel_log_event */

/* ---- reading the log back ---- */

struct schakel_logsrc {
    schakel_client_t *client;     /* live */
    schakel_store_t *store;       /* replay */
    struct {
        uint64_t seq;
        uint8_t *bytes;           /* NULL: erased */
        size_t len;
    } recent[RECENT];
};

/* Remembers the record just given to the engine (live). */
static void logsrc_remember(schakel_logsrc_t *l, uint64_t seq, const uint8_t *bytes, size_t len)
{
    size_t i = seq % RECENT;
    free(l->recent[i].bytes);
    l->recent[i].seq = seq;
    l->recent[i].bytes = len ? malloc(len) : NULL;
    l->recent[i].len = l->recent[i].bytes ? len : 0;
    if (l->recent[i].bytes) memcpy(l->recent[i].bytes, bytes, len);
    else if (len) l->recent[i].seq = 0; /* no memory: read it from the broker if asked */
}

static void logsrc_clear(schakel_logsrc_t *l)
{
    for (size_t i = 0; i < RECENT; i++) {
        free(l->recent[i].bytes);
        l->recent[i].bytes = NULL;
        l->recent[i].seq = 0;
    }
}

typedef struct {
    uint64_t seq;
    schakel_envelope_t *env;
    int found;
} logsrc_read_t;

static int logsrc_cb(void *arg, const schakel_record_t *rec)
{
    logsrc_read_t *r = arg;
    if (rec->seq == r->seq) {
        r->found = 1;
        r->env = rec->event ? schakel_envelope_decode(rec->event, rec->event_len, NULL) : NULL;
    }
    return 1;
}

int schakel_log_event(schakel_logsrc_t *l, uint64_t seq, schakel_envelope_t **env, char *why)
{
    *env = NULL;
    if (!l || !seq) return SCHAKEL_ENOTFOUND;
    size_t i = seq % RECENT;
    if (l->recent[i].seq == seq) {
        if (!l->recent[i].bytes) return SCHAKEL_ENOTFOUND;
        *env = schakel_envelope_decode(l->recent[i].bytes, l->recent[i].len, NULL);
        return *env ? 0 : SCHAKEL_ENOTFOUND;
    }
    if (l->store) {
        logsrc_read_t r = {seq, NULL, 0};
        uint64_t next;
        int rc = schakel_store_read(l->store, "all", seq, 1, 1, logsrc_cb, &r, &next);
        if (rc < 0) return schakel_fail(why, rc, "cannot read seq %llu of the log", (unsigned long long)seq);
        *env = r.env;
        return *env ? 0 : SCHAKEL_ENOTFOUND;
    }
    if (!l->client) return SCHAKEL_ENOTFOUND;
    Schakel__V1__Fetch f = SCHAKEL__V1__FETCH__INIT;
    f.stream = "all";
    f.from_seq = seq;
    f.max_count = 1;
    int rc = SCHAKEL_ETIMEOUT;
    for (int attempt = 0; attempt < 3 && rc == SCHAKEL_ETIMEOUT; attempt++) {
        ProtobufCMessage *reply = NULL;
        rc = schakel_client_call(l->client, "FETCH", &f.base, &schakel__v1__batch__descriptor, &reply, 5000, why);
        if (rc) continue;
        const Schakel__V1__Batch *b = (const Schakel__V1__Batch *)reply;
        if (b->n_records && b->records[0]->seq == seq && b->records[0]->event.len)
            *env = schakel_envelope_decode(b->records[0]->event.data, b->records[0]->event.len, NULL);
        schakel__v1__batch__free_unpacked((Schakel__V1__Batch *)reply, NULL);
        return *env ? 0 : SCHAKEL_ENOTFOUND;
    }
    char reason[SCHAKEL_ERRLEN];
    snprintf(reason, sizeof reason, "%s", why);
    return schakel_fail(why, rc, "cannot read seq %llu back from the broker: %s", (unsigned long long)seq, reason);
}

struct schakel_emit {
    uint8_t **bufs;
    size_t *lens;
    size_t n, cap;
};

int schakel_emit(schakel_emit_t *out, const schakel_envelope_t *env)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        uint8_t **b = realloc(out->bufs, cap * sizeof *b);
        if (!b) return SCHAKEL_ENOMEM;
        out->bufs = b;
        size_t *l = realloc(out->lens, cap * sizeof *l);
        if (!l) return SCHAKEL_ENOMEM;
        out->lens = l;
        out->cap = cap;
    }
    int rc = schakel_envelope_encode(env, &out->bufs[out->n], &out->lens[out->n]);
    if (rc == 0) out->n++;
    return rc;
}

static void emit_clear(schakel_emit_t *out)
{
    for (size_t i = 0; i < out->n; i++) free(out->bufs[i]);
    out->n = 0;
}

static void emit_free(schakel_emit_t *out)
{
    emit_clear(out);
    free(out->bufs);
    free(out->lens);
}

void schakel_derive_id(uint8_t out[16], const char *label, ...)
{
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, label, strlen(label) + 1);
    va_list ap;
    va_start(ap, label);
    for (const void *p = va_arg(ap, const void *); p; p = va_arg(ap, const void *)) {
        size_t n = va_arg(ap, size_t);
        uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        schakel_sha256_update(&h, len, 4); /* lengths keep ("ab","c") apart from ("a","bc") */
        schakel_sha256_update(&h, p, n);
    }
    va_end(ap);
    uint8_t d[SCHAKEL_SHA256_LEN];
    schakel_sha256_final(&h, d);
    memcpy(out, d, 16);
}

int schakel_kv_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, MDB_val *val)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_get(txn, dbi, &k, val);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : SCHAKEL_ESTORE;
}

int schakel_kv_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    return rc == 0 ? 0 : rc == MDB_MAP_FULL ? SCHAKEL_EFULL : SCHAKEL_ESTORE;
}

int schakel_kv_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SCHAKEL_ESTORE;
}

int schakel_engine_tables(MDB_txn *txn, const char *engine, const char *const *names,
                          MDB_dbi *const *dbis, size_t n, char *why)
{
    for (size_t i = 0; i < n; i++)
        if (mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]) != 0)
            return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot open table %s", engine, names[i]);
    return 0;
}

int schakel_engine_directory_load(MDB_txn *txn, MDB_dbi state, schakel_directory_t **dir)
{
    MDB_val v;
    schakel_directory_destroy(dir);
    if (schakel_kv_get(txn, state, "directory", 9, &v) == 0)
        *dir = schakel_directory_parse_with(v.mv_data, v.mv_size, SCHAKEL_DIRECTORY_HISTORY, NULL);
    return 0;
}

int schakel_engine_directory_update(MDB_txn *txn, MDB_dbi state, const schakel_envelope_t *e,
                                    schakel_directory_t **dir)
{
    const char *doc = e->directory_update->document_json;
    char why[SCHAKEL_ERRLEN];
    schakel_directory_t *d = schakel_directory_parse_with(doc, strlen(doc), SCHAKEL_DIRECTORY_HISTORY, why);
    if (!d) { /* the broker checks every update; one that slipped by is not used */
        schakel_log(SCHAKEL_LOG_WARN, "service", "event=directory_ignored reason=\"%s\"", why);
        return 0;
    }
    if (*dir && schakel_directory_version(d) <= schakel_directory_version(*dir)) {
        schakel_directory_destroy(&d);
        return 0;
    }
    int rc = schakel_kv_put(txn, state, "directory", 9, doc, strlen(doc));
    if (rc) {
        schakel_directory_destroy(&d);
        return rc;
    }
    schakel_directory_destroy(dir);
    *dir = d;
    return 0;
}

/* ---- the engine's environment and the runner's own table ---- */

typedef struct {
    MDB_env *env;
    MDB_dbi runner;  /* "cursor" -> u64 seq, "time" -> i64 ms, "alarms" -> u64 */
    uint64_t cursor;
    int64_t now;
    uint64_t alarms; /* derived events the broker refused, ever */
} state_t;

static uint64_t get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val v;
    uint64_t x = 0;
    if (schakel_kv_get(txn, dbi, key, strlen(key), &v) == 0 && v.mv_size == 8) memcpy(&x, v.mv_data, 8);
    return x;
}

static int state_open(state_t *s, const char *dir, const schakel_engine_ops_t *ops, void *engine,
                      char *why)
{
    memset(s, 0, sizeof *s);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", dir, strerror(errno));
    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(s->env, 32);
    if (rc == 0) rc = mdb_env_set_mapsize(s->env, STATE_MAP);
    if (rc == 0) rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rc) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", dir, mdb_strerror(rc));
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", dir, mdb_strerror(rc));
    rc = mdb_dbi_open(txn, "runner", MDB_CREATE, &s->runner);
    if (rc) {
        mdb_txn_abort(txn);
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", dir, mdb_strerror(rc));
    }
    s->cursor = get_u64(txn, s->runner, "cursor");
    s->now = (int64_t)get_u64(txn, s->runner, "time");
    s->alarms = get_u64(txn, s->runner, SCHAKEL_SERVICE_ALARMS_KEY);
    rc = ops->open(engine, txn, why);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", dir, mdb_strerror(rc)) : 0;
}

static void state_close(state_t *s)
{
    if (s->env) mdb_env_close(s->env);
    s->env = NULL;
}

/* Builds the engine's view of a record and advances the log's time. */
static void make_rec(state_t *s, schakel_logrec_t *rec, uint64_t seq, int64_t recorded_at,
                     const schakel_envelope_t *env, const char *source_org, schakel_logsrc_t *log)
{
    if (recorded_at > s->now) s->now = recorded_at;
    if (env && env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK &&
        env->clock_tick->at_ms > s->now)
        s->now = env->clock_tick->at_ms;
    rec->seq = seq;
    rec->recorded_at = recorded_at;
    rec->now = s->now;
    rec->env = env;
    rec->source_org = source_org ? source_org : env ? env->source_org : "";
    rec->log = log;
}

static int save_place(state_t *s, MDB_txn *txn, uint64_t cursor)
{
    uint64_t t = (uint64_t)s->now;
    int rc = schakel_kv_put(txn, s->runner, "cursor", 6, &cursor, 8);
    if (rc == 0) rc = schakel_kv_put(txn, s->runner, "time", 4, &t, 8);
    if (rc == 0 && s->alarms)
        rc = schakel_kv_put(txn, s->runner, SCHAKEL_SERVICE_ALARMS_KEY,
                            strlen(SCHAKEL_SERVICE_ALARMS_KEY), &s->alarms, 8);
    return rc;
}

/* ---- live ---- */

/* Publishes everything emitted until it is ACKed or stop is set. A final
 * reject of a derived event is a bug in an engine or the directory, or an
 * attack: an alarm. It is logged at level error with its reason, counted
 * in *rejected and in the service's durable alarm count (which `schakel
 * health` reads), never retried for ever and never skipped silently. */
static int publish_all(const char *name, schakel_client_t *c, schakel_emit_t *out,
                       atomic_int *stop, uint64_t *rejected, uint64_t *alarms)
{
    for (size_t at = 0; at < out->n;) {
        size_t n = out->n - at < PUBLISH_MAX ? out->n - at : PUBLISH_MAX;
        Schakel__V1__Ack *ack = NULL;
        int rc = schakel_client_publish(c, (const uint8_t *const *)&out->bufs[at], &out->lens[at], n,
                                        &ack, 10000);
        if (rc == SCHAKEL_ETIMEOUT || rc == SCHAKEL_EAUTH) {
            if (atomic_load(stop)) return SCHAKEL_ETIMEOUT;
            schakel_log(SCHAKEL_LOG_WARN, name, "event=publish_retry reason=\"%s\"",
                        schakel_strerror(rc));
            continue;
        }
        if (rc) return rc;
        if (ack->batch_code) {
            *rejected += n;
            *alarms += n;
            schakel_log(SCHAKEL_LOG_ERROR, name, "event=derived_rejected alarm=derived_refused "
                        "events=%zu code=%d reason=\"%s\" alarms=%llu", n, (int)ack->batch_code,
                        ack->batch_reason, (unsigned long long)*alarms);
        }
        for (size_t i = 0; i < ack->n_entries; i++) {
            if (!ack->entries[i]->code) continue;
            char id[33] = "";
            if (ack->entries[i]->event_id.len == 16)
                schakel_hex_encode(ack->entries[i]->event_id.data, 16, id);
            (*rejected)++;
            (*alarms)++;
            schakel_log(SCHAKEL_LOG_ERROR, name, "event=derived_rejected alarm=derived_refused id=%s "
                        "code=%d reason=\"%s\" alarms=%llu", id, (int)ack->entries[i]->code,
                        ack->entries[i]->reason, (unsigned long long)*alarms);
        }
        schakel__v1__ack__free_unpacked(ack, NULL);
        at += n;
    }
    return 0;
}

int schakel_service_run(void *ctx, const schakel_engine_ops_t *ops, void *engine,
                        const schakel_service_options_t *o, atomic_int *stop, char *why)
{
    state_t s;
    int rc = state_open(&s, o->state_dir, ops, engine, why);
    if (rc) { /* said at once: a node keeps running without this service */
        schakel_log(SCHAKEL_LOG_ERROR, ops->name, "event=cannot_start reason=\"%s\"", why);
        state_close(&s);
        return rc;
    }
    schakel_client_options_t co = {0};
    co.endpoint = o->endpoint;
    co.server_public = o->server_public;
    co.keys = o->keys;
    schakel_consumer_options_t so = {0};
    so.endpoint = o->endpoint;
    so.pub_endpoint = o->pub_endpoint;
    so.server_public = o->server_public;
    so.keys = o->keys;
    so.stream = "all";
    so.from_seq = s.cursor + 1;
    schakel_client_t *client = schakel_client_new(ctx, &co, why);
    schakel_consumer_t *cons = client ? schakel_consumer_new(ctx, &so, why) : NULL;
    if (!client || !cons) {
        schakel_client_destroy(&client);
        state_close(&s);
        return SCHAKEL_EZMQ;
    }
    schakel_log(SCHAKEL_LOG_INFO, ops->name, "event=started from_seq=%llu",
                (unsigned long long)so.from_seq);
    schakel_emit_t out = {0};
    uint64_t done = 0, rejected = 0;
    schakel_logsrc_t *log = calloc(1, sizeof *log);
    if (!log) {
        schakel_consumer_destroy(&cons);
        schakel_client_destroy(&client);
        state_close(&s);
        return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory", ops->name);
    }
    log->client = client;
    rc = 0;
    while (!atomic_load(stop) && rc == 0) {
        MDB_txn *txn;
        if (mdb_txn_begin(s.env, NULL, 0, &txn) != 0) {
            rc = schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot begin a transaction", ops->name);
            break;
        }
        int64_t saved_now = s.now;
        uint64_t last = 0;
        size_t n = 0;
        while (n < GROUP && !atomic_load(stop)) {
            const Schakel__V1__Delivered *d;
            int r = schakel_consumer_next(cons, &d, n ? 0 : 300, why);
            if (r == SCHAKEL_ETIMEOUT) break;
            if (r) {
                rc = r;
                break;
            }
            schakel_envelope_t *env =
                d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
            schakel_logrec_t rec;
            logsrc_remember(log, d->seq, d->event.data, d->event.len);
            make_rec(&s, &rec, d->seq, d->recorded_at, env, NULL, log);
            r = ops->process(engine, txn, &rec, &out, why);
            schakel_envelope_free(env);
            if (r) {
                rc = r;
                break;
            }
            last = d->seq;
            n++;
        }
        if (rc == 0 && n && (rc = publish_all(ops->name, client, &out, stop, &rejected, &s.alarms)) == 0 &&
            (rc = save_place(&s, txn, last)) == 0) {
            rc = mdb_txn_commit(txn) ? SCHAKEL_ESTORE : 0;
            s.cursor = last;
            done += n;
        } else {
            mdb_txn_abort(txn); /* nothing of the group counts: it replays */
            s.now = saved_now;
        }
        emit_clear(&out);
        if (rc == SCHAKEL_ETIMEOUT && atomic_load(stop)) rc = 0;
    }
    schakel_log(rc ? SCHAKEL_LOG_ERROR : SCHAKEL_LOG_INFO, ops->name,
                "event=stopped records=%llu cursor=%llu rejected=%llu%s%s%s",
                (unsigned long long)done, (unsigned long long)s.cursor,
                (unsigned long long)rejected, rc ? " reason=\"" : "", rc ? why : "", rc ? "\"" : "");
    emit_free(&out);
    logsrc_clear(log);
    free(log);
    schakel_consumer_destroy(&cons);
    schakel_client_destroy(&client);
    state_close(&s);
    return rc;
}

/* ---- replay check ---- */

typedef struct {
    schakel_store_t *log;
    schakel_logsrc_t src;         /* reads from log (no cache: it is local) */
    state_t *s;
    const schakel_engine_ops_t *ops;
    void *engine;
    MDB_txn *txn;
    schakel_emit_t out;
    schakel_replay_report_t *r;
    uint8_t (*ids)[16];
    size_t n_ids, cap_ids;
    const char *org;
    int rc;
    char why[SCHAKEL_ERRLEN];
} replay_t;

typedef struct {
    const uint8_t *want;
    size_t len;
    int same;
} compare_t;

static int compare_cb(void *arg, const schakel_record_t *rec)
{
    compare_t *c = arg;
    c->same = rec->event && rec->event_len == c->len && memcmp(rec->event, c->want, c->len) == 0;
    return 1;
}

static void replay_bad(replay_t *p, uint64_t seq, const char *what, const uint8_t *id)
{
    if (p->r->first_bad_seq) return;
    char hex[33];
    schakel_hex_encode(id, 16, hex);
    p->r->first_bad_seq = seq;
    snprintf(p->r->why, sizeof p->r->why, "%s %s", what, hex);
}

static int replay_record(void *arg, const schakel_record_t *rec)
{
    replay_t *p = arg;
    schakel_envelope_t *env = rec->event ? schakel_envelope_decode(rec->event, rec->event_len, NULL) : NULL;
    schakel_logrec_t lr;
    make_rec(p->s, &lr, rec->seq, rec->recorded_at, env, rec->source_org, &p->src);
    p->rc = p->ops->process(p->engine, p->txn, &lr, &p->out, p->why);
    schakel_envelope_free(env);
    p->r->records++;
    if (p->rc) return 1;
    for (size_t i = 0; i < p->out.n; i++) {
        schakel_envelope_t *e = schakel_envelope_decode(p->out.bufs[i], p->out.lens[i], NULL);
        if (!e) continue;
        uint8_t id[16];
        memcpy(id, e->event_id.data, 16);
        schakel_envelope_free(e);
        p->r->emitted++;
        if (p->n_ids == p->cap_ids) {
            size_t cap = p->cap_ids ? p->cap_ids * 2 : 4096;
            void *ni = realloc(p->ids, cap * 16);
            if (!ni) {
                p->rc = SCHAKEL_ENOMEM;
                return 1;
            }
            p->ids = ni;
            p->cap_ids = cap;
        }
        memcpy(p->ids[p->n_ids++], id, 16);
        uint64_t seq, next;
        if (schakel_store_lookup(p->log, p->org, id, &seq) != 0) {
            p->r->missing++;
            replay_bad(p, rec->seq, "not on the log:", id);
            continue;
        }
        compare_t c = {p->out.bufs[i], p->out.lens[i], 0};
        schakel_store_read(p->log, "all", seq, 1, 1, compare_cb, &c, &next);
        if (c.same) {
            p->r->same++;
        } else {
            p->r->differ++;
            replay_bad(p, seq, "differs from the log:", id);
        }
    }
    emit_clear(&p->out);
    if (p->r->records % 4096 == 0) { /* bound the transaction */
        if (mdb_txn_commit(p->txn) != 0 || mdb_txn_begin(p->s->env, NULL, 0, &p->txn) != 0) {
            p->txn = NULL;
            p->rc = SCHAKEL_ESTORE;
            return 1;
        }
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int extra_record(void *arg, const schakel_record_t *rec)
{
    replay_t *p = arg;
    if (!rec->source_org || strcmp(rec->source_org, p->org) != 0) return 0;
    if (!p->n_ids || !bsearch(rec->event_id, p->ids, p->n_ids, 16, cmp_id)) {
        p->r->extra++;
        replay_bad(p, rec->seq, "on the log but not derived:", rec->event_id);
    }
    return 0;
}

/* Reads the whole log through fn. */
static int walk_log(schakel_store_t *log, schakel_record_fn fn, replay_t *p)
{
    uint64_t from = 1, next = 1;
    for (;;) {
        int rc = schakel_store_read(log, "all", from, 1000, 4u << 20, fn, p, &next);
        if (rc < 0) return rc;
        if (rc > 0 || p->rc) return p->rc;
        if (next == from) return 0;
        from = next;
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int schakel_service_replay(const char *logdir, const uint8_t master_key[32],
                           const schakel_engine_ops_t *ops, void *engine, const char *org_id,
                           schakel_replay_report_t *r)
{
    memset(r, 0, sizeof *r);
    schakel_lmdb_options_t lo = {0};
    lo.dir = logdir;
    lo.read_only = 1;
    memcpy(lo.master_key, master_key, 32);
    replay_t *p = calloc(1, sizeof *p); /* the log source's cache is large for a stack */
    if (!p) {
        memset(lo.master_key, 0, 32);
        snprintf(r->why, sizeof r->why, "out of memory");
        return SCHAKEL_ENOMEM;
    }
    p->r = r;
    p->ops = ops;
    p->engine = engine;
    p->org = org_id;
    p->log = schakel_store_open_lmdb(&lo, p->why);
    p->src.store = p->log;
    memset(lo.master_key, 0, 32);
    if (!p->log) {
        snprintf(r->why, sizeof r->why, "%s", p->why);
        free(p);
        return SCHAKEL_EIO;
    }
    char dir[] = "/tmp/schakel-replay-XXXXXX";
    state_t s;
    int rc;
    if (!mkdtemp(dir)) {
        schakel_store_close(&p->log);
        free(p);
        snprintf(r->why, sizeof r->why, "cannot make a temp directory: %s", strerror(errno));
        return SCHAKEL_EIO;
    }
    p->s = &s;
    rc = state_open(&s, dir, ops, engine, p->why);
    if (rc == 0 && mdb_txn_begin(s.env, NULL, 0, &p->txn) != 0) rc = SCHAKEL_ESTORE;
    if (rc == 0) rc = walk_log(p->log, replay_record, p);
    if (p->txn) mdb_txn_abort(p->txn);
    if (rc == 0) {
        if (p->n_ids) qsort(p->ids, p->n_ids, 16, cmp_id);
        rc = walk_log(p->log, extra_record, p);
    }
    if (rc && !r->why[0]) snprintf(r->why, sizeof r->why, "%s", p->why[0] ? p->why : schakel_strerror(rc));
    emit_free(&p->out);
    free(p->ids);
    state_close(&s);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    schakel_store_close(&p->log);
    free(p);
    if (rc) return rc;
    return r->differ || r->missing || r->extra ? SCHAKEL_ECORRUPT : 0;
}

int schakel_service_alarms(const char *state_dir, uint64_t *alarms)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    *alarms = 0;
    if (mdb_env_create(&env) != 0) return SCHAKEL_EIO;
    mdb_env_set_maxdbs(env, 32);
    int rc = mdb_env_open(env, state_dir, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc == 0 && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_dbi_open(txn, "runner", 0, &dbi) == 0)
            *alarms = get_u64(txn, dbi, SCHAKEL_SERVICE_ALARMS_KEY);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc ? SCHAKEL_EIO : 0;
}
