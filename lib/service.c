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

#include "arena.h"
#include "client.h"
#include "consumer.h"
#include "crypto.h"
#include "directory.h"
#include "error.h"
#include "logging.h"
#include "service_impl.h"
#include "service_outbox.h"
#include "store_lmdb.h"

#define GROUP 1024                   /* records per transaction, at most */
#define OUTBOX_MAX 16384             /* events not yet ACKed before reading stops */
#define STATE_MAP ((size_t)16 << 30) /* sparse; state is small next to the log */

/* ---- reading the log back ---- */

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
        rc = schakel_client_call(l->client, "FETCH", &f.base, &schakel__v1__batch__descriptor, &reply, 5000,
                                 why);
        if (rc) continue;
        const Schakel__V1__Batch *b = (const Schakel__V1__Batch *)reply;
        if (b->n_records && b->records[0]->seq == seq && b->records[0]->event.len)
            *env = schakel_envelope_decode(b->records[0]->event.data, b->records[0]->event.len, NULL);
        schakel__v1__batch__free_unpacked((Schakel__V1__Batch *)reply, NULL);
        return *env ? 0 : SCHAKEL_ENOTFOUND;
    }
    char reason[SCHAKEL_ERRLEN];
    snprintf(reason, sizeof reason, "%s", why);
    return schakel_fail(why, rc, "cannot read seq %llu back from the broker: %s", (unsigned long long)seq,
                        reason);
}

int schakel_log_event_held(schakel_logsrc_t *l, uint64_t seq, const schakel_envelope_t **env)
{
    *env = NULL;
    return l && seq && l->held ? l->held(l->held_arg, seq, env) : 0;
}

int schakel_emit_alarm(schakel_emit_t *out, const char *event, const char *alarm, const char *detail)
{
    if (out->n_alarms == out->cap_alarms) {
        size_t cap = out->cap_alarms ? out->cap_alarms * 2 : 8;
        void *a = realloc(out->alarms, cap * sizeof *out->alarms);
        if (!a) return SCHAKEL_ENOMEM;
        out->alarms = a;
        out->cap_alarms = cap;
    }
    alarm_t *a = &out->alarms[out->n_alarms++];
    a->event = out->n ? out->n - 1 : (size_t)-1;
    snprintf(a->line, SERVICE_ALARM_LINE, "event=%s alarm=%s%s%s", event, alarm,
             detail && detail[0] ? " " : "", detail ? detail : "");
    return 0;
}

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
        uint8_t *d = realloc(out->stored_before, cap);
        if (!d) return SCHAKEL_ENOMEM;
        out->stored_before = d;
        out->cap = cap;
    }
    int rc = schakel_envelope_encode(env, &out->bufs[out->n], &out->lens[out->n]);
    if (rc == 0) out->stored_before[out->n++] = 0;
    return rc;
}

void service_emit_clear(schakel_emit_t *out)
{
    for (size_t i = 0; i < out->n; i++) free(out->bufs[i]);
    out->n = 0;
    out->n_alarms = 0;
}

void service_emit_free(schakel_emit_t *out)
{
    service_emit_clear(out);
    free(out->bufs);
    free(out->lens);
    free(out->stored_before);
    free(out->alarms);
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

int schakel_kv_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val, size_t vlen)
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

int schakel_engine_tables(MDB_txn *txn, const char *engine, const char *const *names, MDB_dbi *const *dbis,
                          size_t n, char *why)
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

int schakel_engine_rules_load(MDB_txn *txn, MDB_dbi state, schakel_rules_install_fn install, void *engine,
                              const char *name, char *why)
{
    MDB_val v;
    char inner[SCHAKEL_ERRLEN] = "";
    if (schakel_kv_get(txn, state, "rules", 5, &v) != 0) return 0;
    if (install(engine, v.mv_data, v.mv_size, inner) != 0)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "%s: the rules this state took from the log no longer parse (%s): stop the "
                            "service, delete its state directory (it is rebuilt from the log) and start "
                            "it again",
                            name, inner);
    return 0;
}

/* A rules_update that is not used: counted and logged, never fatal. */
static int rules_refused(MDB_txn *txn, MDB_dbi state, const char *name, uint64_t seq, const char *reason)
{
    uint64_t n = service_get_u64(txn, state, "rules_refused") + 1;
    schakel_log(SCHAKEL_LOG_ERROR, "service",
                "event=rules_refused service=%s seq=%llu reason=\"%s\" action=kept_previous refused=%llu",
                name, (unsigned long long)seq, reason, (unsigned long long)n);
    return schakel_kv_put(txn, state, "rules_refused", 13, &n, sizeof n);
}

int schakel_engine_rules_update(MDB_txn *txn, MDB_dbi state, const schakel_logrec_t *rec, int set,
                                schakel_rules_install_fn install, void *engine, const char *name)
{
    const Schakel__V1__RulesUpdate *u = rec->env->rules_update;
    if (!u || (int)u->set != set) return 0;
    if (strcmp(rec->source_org, "broker") != 0)
        return rules_refused(txn, state, name, rec->seq, "not the bus's own: only source broker sets rules");
    const char *doc = u->document_json;
    size_t len = strlen(doc);
    uint8_t h[SCHAKEL_SHA256_LEN];
    schakel_sha256(doc, len, h);
    if (u->version.len != sizeof h || memcmp(u->version.data, h, sizeof h) != 0)
        return rules_refused(txn, state, name, rec->seq, "version is not the SHA-256 of document_json");
    char inner[SCHAKEL_ERRLEN] = "";
    if (install(engine, doc, len, inner) != 0) return rules_refused(txn, state, name, rec->seq, inner);
    schakel_log(SCHAKEL_LOG_INFO, "service", "event=rules_installed service=%s seq=%llu", name,
                (unsigned long long)rec->seq);
    return schakel_kv_put(txn, state, "rules", 5, doc, len);
}

/* ---- the engine's environment and the runner's own table ---- */

uint64_t service_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val v;
    uint64_t x = 0;
    if (schakel_kv_get(txn, dbi, key, strlen(key), &v) == 0 && v.mv_size == 8) memcpy(&x, v.mv_data, 8);
    return x;
}

int service_state_open(state_t *s, const char *dir, const schakel_engine_ops_t *ops, void *engine, char *why)
{
    /* MDB_NOMETASYNC: a commit writes its pages and fsyncs them, the meta
     * page is flushed by the next commit's fsync. A system crash may undo
     * the last commit, never leave a torn one (LMDB keeps two meta pages):
     * the group, its cursor and its outbox entries go back together and
     * the group is processed again; its events, if sent, are duplicates.
     * That saves one of a commit's two fsyncs. Not MDB_NOSYNC/WRITEMAP:
     * those may lose integrity, not just the last commit. */
    return service_state_open_flags(s, dir, MDB_NOMETASYNC, ops, engine, why);
}

int service_state_open_flags(state_t *s, const char *dir, unsigned flags, const schakel_engine_ops_t *ops,
                             void *engine, char *why)
{
    memset(s, 0, sizeof *s);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", dir, strerror(errno));
    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(s->env, 32);
    if (rc == 0) rc = mdb_env_set_mapsize(s->env, STATE_MAP);
    if (rc == 0) rc = mdb_env_open(s->env, dir, MDB_NOTLS | flags, 0600);
    if (rc) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", dir, mdb_strerror(rc));
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", dir, mdb_strerror(rc));
    rc = mdb_dbi_open(txn, "runner", MDB_CREATE, &s->runner);
    if (rc) {
        mdb_txn_abort(txn);
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", dir, mdb_strerror(rc));
    }
    s->cursor = service_get_u64(txn, s->runner, "cursor");
    s->now = (int64_t)service_get_u64(txn, s->runner, "time");
    s->alarms = service_get_u64(txn, s->runner, SCHAKEL_SERVICE_ALARMS_KEY);
    rc = ops->open(engine, txn, why);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", dir, mdb_strerror(rc)) : 0;
}

void service_state_close(state_t *s)
{
    if (s->env) mdb_env_close(s->env);
    s->env = NULL;
}

/* Builds the engine's view of a record and advances the log's time. */
void service_make_rec(state_t *s, schakel_logrec_t *rec, uint64_t seq, int64_t recorded_at,
                      const schakel_envelope_t *env, const char *source_org, schakel_logsrc_t *log)
{
    if (recorded_at > s->now) s->now = recorded_at;
    if (env && env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK && env->clock_tick->at_ms > s->now)
        s->now = env->clock_tick->at_ms;
    rec->seq = seq;
    rec->recorded_at = recorded_at;
    rec->now = s->now;
    rec->env = env;
    rec->source_org = source_org ? source_org : env ? env->source_org : "";
    rec->log = log;
    rec->txn = s->txn;
}

static int save_place(state_t *s, MDB_txn *txn, uint64_t cursor)
{
    uint64_t t = (uint64_t)s->now;
    int rc = schakel_kv_put(txn, s->runner, "cursor", 6, &cursor, 8);
    if (rc == 0) rc = schakel_kv_put(txn, s->runner, "time", 4, &t, 8);
    if (rc == 0 && s->alarms)
        rc = schakel_kv_put(txn, s->runner, SCHAKEL_SERVICE_ALARMS_KEY, strlen(SCHAKEL_SERVICE_ALARMS_KEY),
                            &s->alarms, 8);
    return rc;
}

/* ---- live ---- */

/* An engine's alarm about no event (raised before the group emitted
 * anything) counts with its group; one about an event counts with that
 * event's ACK (service_outbox.c). */
static size_t group_alarms(const schakel_emit_t *out, uint64_t *alarms,
                           char (*lines)[SERVICE_ALARM_LINE + 32], size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < out->n_alarms; i++) {
        if (out->alarms[i].event != (size_t)-1) continue;
        ++*alarms;
        if (k < cap)
            snprintf(lines[k++], SERVICE_ALARM_LINE + 32, "%s alarms=%llu", out->alarms[i].line,
                     (unsigned long long)*alarms);
    }
    return k;
}

/* How long to wait for the first record of a group (a wake-up from the
 * broker ends the wait at once): none while ACKs wait to be applied, 50 ms
 * while batches are in flight (their ACKs are applied between groups),
 * else 300 ms. */
static int first_wait(schakel_client_t *c, const outbox_t *ob)
{
    if (service_outbox_has_acks(ob)) return 0;
    return schakel_client_inflight(c) ? 50 : 300;
}

typedef struct {
    const schakel_engine_ops_t *ops;
    void *engine;
    state_t *s;
    schakel_consumer_t *cons;
    schakel_client_t *client;
    schakel_logsrc_t *log;
    outbox_t ob;
    schakel_emit_t out;
    schakel_arena_t *arena; /* the record being processed, decoded */
    uint64_t done, rejected;
    uint64_t published; /* SCHAKEL_SERVICE_PUBLISHED_KEY */
    atomic_int *stop;
    int lagging; /* said event=lag_high, not yet event=lag_ok */
} live_t;

/* Reads what the broker has right now (up to GROUP records, none while
 * the outbox is over its bound) and lets the engine process it in txn.
 * Returns the records read; *last is the seq of the last. */
static size_t read_group(live_t *l, MDB_txn *txn, uint64_t *last, int *rc, char *why)
{
    size_t n = 0;
    if (l->ob.pending >= OUTBOX_MAX) return 0; /* back-pressure: ACKs drain it first */
    while (n < GROUP && !atomic_load(l->stop)) {
        const Schakel__V1__Delivered *d;
        int r = schakel_consumer_next(l->cons, &d, n ? 0 : first_wait(l->client, &l->ob), why);
        if (r == SCHAKEL_ETIMEOUT) break;
        if (r) {
            *rc = r;
            break;
        }
        /* into an arena: protobuf-c's mallocs and frees per field cost
         * more than the decoding (the engine keeps nothing of rec->env) */
        schakel_envelope_t *env = d->event.len
                                      ? schakel_envelope_decode_with(d->event.data, d->event.len,
                                                                     schakel_arena_allocator(l->arena), NULL)
                                      : NULL;
        schakel_logrec_t rec;
        logsrc_remember(l->log, d->seq, d->event.data, d->event.len);
        service_make_rec(l->s, &rec, d->seq, d->recorded_at, env, NULL, l->log);
        r = l->ops->process(l->engine, txn, &rec, &l->out, why);
        schakel_arena_reset(l->arena);
        if (r) {
            *rc = r;
            break;
        }
        *last = d->seq;
        n++;
    }
    return n;
}

/* The runner's "published" (SCHAKEL_SERVICE_PUBLISHED_KEY): the seq up to
 * which everything derived is on the log. */
static int save_published(live_t *l, MDB_txn *txn, uint64_t cursor)
{
    uint64_t was = l->published;
    int rc = service_outbox_published(&l->ob, txn, cursor, &l->published);
    if (rc == 0 && l->published != was)
        rc = schakel_kv_put(txn, l->s->runner, SCHAKEL_SERVICE_PUBLISHED_KEY,
                            strlen(SCHAKEL_SERVICE_PUBLISHED_KEY), &l->published, 8);
    return rc;
}

/* One transaction: the ACKs received so far leave the outbox, a group of
 * records is processed, and its state, cursor and emitted events commit
 * together. Nothing waits for the broker's ACK of what the group emitted.
 * A failure stops the service: nothing of the transaction counts, and
 * the next start replays the group and resends the outbox. */
static int live_step(live_t *l, char *why)
{
    state_t *s = l->s;
    /* over the bound, nothing is read: wait for ACKs rather than spin */
    int full = l->ob.pending >= OUTBOX_MAX && !service_outbox_has_acks(&l->ob);
    service_outbox_poll(&l->ob, l->client, full ? 100 : 0);
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot begin a transaction", l->ops->name);
    s->txn++;
    int64_t saved_now = s->now;
    uint64_t before = s->alarms, last = s->cursor;
    int acks = service_outbox_has_acks(&l->ob);
    int rc = service_outbox_apply(&l->ob, txn, &s->alarms, &l->rejected, why);
    size_t n = rc ? 0 : read_group(l, txn, &last, &rc, why);
    char lines[8][SERVICE_ALARM_LINE + 32];
    size_t k = rc ? 0 : group_alarms(&l->out, &s->alarms, lines, 8);
    if (rc == 0 && n) rc = service_outbox_put(&l->ob, txn, l->client, &l->out, why);
    if (rc == 0 && (n || acks || s->alarms != before)) rc = save_place(s, txn, last);
    if (rc == 0 && (n || acks)) rc = save_published(l, txn, last);
    if (rc == 0 && (n || acks || s->alarms != before)) {
        rc = mdb_txn_commit(txn) ? schakel_fail(why, SCHAKEL_ESTORE, "%s: cannot commit", l->ops->name) : 0;
    } else {
        mdb_txn_abort(txn);
    }
    if (rc == 0) {
        s->cursor = last;
        l->done += n;
    } else {
        s->now = saved_now;
        s->alarms = before;
    }
    service_outbox_said(&l->ob, rc == 0); /* said once they are kept */
    for (size_t i = 0; rc == 0 && i < k; i++) schakel_log(SCHAKEL_LOG_ERROR, l->ops->name, "%s", lines[i]);
    service_emit_clear(&l->out);
    return rc;
}

/* On a clean stop: waits a little for the ACKs of what is in flight, so
 * that the outbox is empty when nothing more comes (what is left is sent
 * again on the next start). */
static int live_drain(live_t *l, char *why)
{
    for (int i = 0; i < 50 && schakel_client_inflight(l->client); i++)
        service_outbox_poll(&l->ob, l->client, 100);
    atomic_int stop = 1;
    atomic_int *keep = l->stop;
    l->stop = &stop; /* apply the ACKs, read nothing */
    int rc = live_step(l, why);
    l->stop = keep;
    return rc;
}

/* Says once when the records behind the broker's head pass
 * SCHAKEL_SERVICE_LAG_WARN, and once when they are back under half of it. */
static void watch_lag(live_t *l)
{
    uint64_t head = schakel_consumer_head(l->cons), lag = head > l->s->cursor ? head - l->s->cursor : 0;
    if (!l->lagging && lag > SCHAKEL_SERVICE_LAG_WARN) {
        schakel_log(SCHAKEL_LOG_WARN, l->ops->name, "event=lag_high lag=%llu head=%llu cursor=%llu bound=%d",
                    (unsigned long long)lag, (unsigned long long)head, (unsigned long long)l->s->cursor,
                    SCHAKEL_SERVICE_LAG_WARN);
        l->lagging = 1;
    } else if (l->lagging && lag < SCHAKEL_SERVICE_LAG_WARN / 2) {
        schakel_log(SCHAKEL_LOG_INFO, l->ops->name, "event=lag_ok lag=%llu", (unsigned long long)lag);
        l->lagging = 0;
    }
}

static int live_open(live_t *l, void *ctx, const schakel_service_options_t *o, char *why)
{
    schakel_client_options_t co = {0};
    co.endpoint = o->endpoint;
    co.server_public = o->server_public;
    co.keys = o->keys;
    /* A PUBLISH is answered unless the connection broke; resending a
     * window of batches after 1 s of a busy broker would only double its
     * work. A restarted broker is caught up with after 5 s. */
    co.retry_ms = 5000;
    co.retry_max_ms = 30000;
    schakel_consumer_options_t so = {0};
    so.endpoint = o->endpoint;
    so.pub_endpoint = o->pub_endpoint;
    so.server_public = o->server_public;
    so.keys = o->keys;
    so.stream = "all";
    so.from_seq = l->s->cursor + 1;
    l->client = schakel_client_new(ctx, &co, why);
    l->cons = l->client ? schakel_consumer_new(ctx, &so, why) : NULL;
    if (!l->client || !l->cons) return SCHAKEL_EZMQ;
    l->log = calloc(1, sizeof *l->log);
    l->arena = schakel_arena_new(64 << 10);
    if (!l->log || !l->arena) return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory", l->ops->name);
    l->log->client = l->client;
    int rc = service_outbox_open(&l->ob, l->s->env, o->state_dir, l->ops->name, why);
    if (rc) return rc;
    MDB_txn *txn;
    if (mdb_txn_begin(l->s->env, NULL, MDB_RDONLY, &txn) == 0) {
        l->published = service_get_u64(txn, l->s->runner, SCHAKEL_SERVICE_PUBLISHED_KEY);
        mdb_txn_abort(txn);
    }
    schakel_log(SCHAKEL_LOG_INFO, l->ops->name, "event=started from_seq=%llu outbox=%zu",
                (unsigned long long)so.from_seq, l->ob.pending);
    return service_outbox_resend(&l->ob, l->s->env, l->client, why);
}

static void live_close(live_t *l)
{
    service_outbox_close(&l->ob);
    service_emit_free(&l->out);
    if (l->log) logsrc_clear(l->log);
    free(l->log);
    schakel_arena_destroy(&l->arena);
    schakel_consumer_destroy(&l->cons);
    schakel_client_destroy(&l->client);
}

int schakel_service_run(void *ctx, const schakel_engine_ops_t *ops, void *engine,
                        const schakel_service_options_t *o, atomic_int *stop, char *why)
{
    state_t s;
    int rc = service_state_open(&s, o->state_dir, ops, engine, why);
    if (rc) { /* said at once: a node keeps running without this service */
        schakel_log(SCHAKEL_LOG_ERROR, ops->name, "event=cannot_start reason=\"%s\"", why);
        service_state_close(&s);
        return rc;
    }
    live_t l = {0};
    l.ops = ops;
    l.engine = engine;
    l.s = &s;
    l.stop = stop;
    rc = live_open(&l, ctx, o, why);
    while (rc == 0 && !atomic_load(stop)) {
        rc = live_step(&l, why);
        watch_lag(&l);
    }
    if (rc == 0) rc = live_drain(&l, why);
    schakel_log(rc ? SCHAKEL_LOG_ERROR : SCHAKEL_LOG_INFO, ops->name,
                "event=stopped records=%llu cursor=%llu rejected=%llu outbox=%zu%s%s%s",
                (unsigned long long)l.done, (unsigned long long)s.cursor, (unsigned long long)l.rejected,
                l.ob.pending, rc ? " reason=\"" : "", rc ? why : "", rc ? "\"" : "");
    live_close(&l);
    service_state_close(&s);
    return rc;
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
            *alarms = service_get_u64(txn, dbi, SCHAKEL_SERVICE_ALARMS_KEY);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc ? SCHAKEL_EIO : 0;
}
