/* What an engine and both runners share: the buffer of what an engine
 * emits, derived ids, the small LMDB helpers engines use, the directory
 * and rules they keep from the log, and the engine's environment with the
 * runner's own table (lib/service.c runs it live, lib/service_replay*.c
 * over a log on disk). */
#include "service.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "directory.h"
#include "error.h"
#include "logging.h"
#include "service_impl.h"

#define STATE_MAP ((size_t)16 << 30) /* sparse; state is small next to the log */

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
