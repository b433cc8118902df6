/* The monitor's collector: once a second, one thread reads what the bus
 * shows to an onlooker, read-only, and renders it for every HTTP client at
 * once: the broker by PING, the log (LMDB, opened read-only and closed
 * again each round, one environment at a time: LMDB must not have a file
 * open twice in one process), the consumers' cursors, the services' state
 * directories and the feedback service's loops. Only counts by
 * organisation, event type, service and reason code are kept. */
#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "bytes.h"
#include "client.h"
#include "codec.h"
#include "directory.h"
#include "enums.h"
#include "error.h"
#include "feedback.h"
#include "fileio.h"
#include "monitor.h"
#include "runner.h"
#include "store_audit.h"
#include "store_lmdb.h"
#include "wire.h"

#define READ_MAX 20000        /* records of "all" counted per round: catches up over rounds */
#define CATCHUP_MAX 100000    /* the same while the log before the start is read */
#define STREAM_LAG_MAX 100000 /* entries counted behind a consumer's cursor */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mon_counts_add(mon_counts_t *c, const char *a, const char *b, uint64_t k)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].a, a) && !strcmp(c->v[i].b, b)) {
            c->v[i].n += k;
            return 0;
        }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        mon_count_t *v = realloc(c->v, cap * sizeof *v);
        if (!v) return -1;
        c->v = v;
        c->cap = cap;
    }
    mon_count_t *x = &c->v[c->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->a, sizeof x->a, "%.63s", a);
    snprintf(x->b, sizeof x->b, "%.63s", b);
    x->n = k;
    return 0;
}

void mon_counts_free(mon_counts_t *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* ---- the directory: which organisations there are ---- */

static void load_orgs(const mon_t *m, mon_state_t *s)
{
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN];
    if (schakel_path_join(path, sizeof path, m->node_dir, "directory.json", NULL) != 0) return;
    schakel_directory_t *d = schakel_directory_load(path, why);
    if (!d) return; /* keep the organisations known so far */
    for (size_t i = 0; i < schakel_directory_count(d) && s->n_orgs < MON_ORGS; i++) {
        const schakel_org_t *o = schakel_directory_at(d, i);
        size_t j = 0;
        while (j < s->n_orgs && strcmp(s->org[j].id, o->id) != 0) j++;
        if (j < s->n_orgs) continue;
        memset(&s->org[j], 0, sizeof s->org[j]);
        snprintf(s->org[j].id, sizeof s->org[j].id, "%.63s", o->id);
        const char *kind = schakel_org_kind_name(o->kind);
        snprintf(s->org[j].kind, sizeof s->org[j].kind, "%.23s", kind ? kind : "?");
        s->org[j].stream_pos = 1; /* every delivery: the totals are the log's */
        s->n_orgs++;
    }
    schakel_directory_destroy(&d);
}

/* ---- raw LMDB: the consumers' cursors and the map ---- */

/* Cursors are named "<org>/<consumer>/<stream>": the furthest consumer
 * of an organisation on its own stream "org/<org>" is its cursor. */
static void take_cursor(mon_state_t *s, const char *name, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < s->n_orgs; i++) {
        size_t il = strlen(s->org[i].id);
        if (len < 2 * il + 6 || memcmp(name, s->org[i].id, il) != 0 || name[il] != '/') continue;
        const char *tail = name + len - il - 4;
        if (tail[-1] != '/' || memcmp(tail, "org/", 4) != 0 || memcmp(tail + 4, s->org[i].id, il) != 0)
            continue;
        if (seq > s->org[i].cursor) s->org[i].cursor = seq;
    }
}

static void read_raw(const char *logdir, mon_state_t *s)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    for (size_t i = 0; i < s->n_orgs; i++) s->org[i].cursor = 0;
    if (mdb_env_create(&env) != 0) return;
    (void)mdb_env_set_maxdbs(env, 32); /* fails only on an open env */
    if (mdb_env_open(env, logdir, MDB_RDONLY | MDB_NOTLS, 0600) != 0) {
        mdb_env_close(env);
        return;
    }
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &st) == 0) {
        s->map_bytes = info.me_mapsize;
        s->log_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
        s->have_log = 1;
    }
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_dbi_open(txn, "cursors", 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
            for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0;
                 g = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
                if (v.mv_size == 8) take_cursor(s, k.mv_data, k.mv_size, schakel_get_be64(v.mv_data));
            mdb_cursor_close(cur);
        }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
}

/* ---- the log through the store: counts, flows, lags ---- */

static int count_event(void *arg, const schakel_record_t *r)
{
    mon_state_t *s = arg;
    const char *type = schakel_event_type_name(r->type);
    (void)mon_counts_add(&s->events, r->source_org ? r->source_org : "", type ? type : "unknown", 1);
    /* only these are decrypted, later (read_decisions): decrypting every
     * record would cost the machine the broker ingests on */
    if (r->type != SCHAKEL_EVENT(CONSENT_DECISION) && r->type != SCHAKEL_EVENT(LOOP_REMINDER) &&
        r->type != SCHAKEL_EVENT(ADAPTER_STATUS))
        return 0;
    if (s->n_wanted == s->cap_wanted) {
        size_t cap = s->cap_wanted ? s->cap_wanted * 2 : 1024;
        uint64_t *w = cap <= 2 * CATCHUP_MAX ? realloc(s->wanted, cap * sizeof *w) : NULL;
        if (!w) return 0; /* more than a round reads: not counted */
        s->wanted = w;
        s->cap_wanted = cap;
    }
    s->wanted[s->n_wanted++] = r->seq;
    return 0;
}

typedef struct {
    mon_state_t *s;
    const char *to;
    uint64_t n;
} edge_arg_t;

static int count_edge(void *arg, const schakel_record_t *r)
{
    edge_arg_t *e = arg;
    (void)mon_counts_add(&e->s->edges, r->source_org ? r->source_org : "", e->to, 1);
    e->n++;
    return 0;
}

typedef struct {
    uint64_t n, below; /* entries counted; positions counted are below this */
} upto_t;

static int count_upto(void *arg, const schakel_record_t *r)
{
    upto_t *u = arg;
    if (r->position >= u->below) return 1; /* the next round's new entries */
    u->n++;
    return 0;
}

static int first_time(void *arg, const schakel_record_t *r)
{
    *(int64_t *)arg = r->recorded_at;
    return 1;
}

static void read_log(const char *logdir, mon_state_t *s)
{
    schakel_lmdb_options_t o = {0}; /* no master key: nothing is decrypted here */
    o.dir = logdir;
    o.read_only = 1;
    char why[SCHAKEL_ERRLEN];
    schakel_store_t *st = schakel_store_open_lmdb(&o, why);
    if (!st) return;
    schakel_head_t h;
    schakel_store_head(st, &h);
    s->head = h.seq;
    if (s->read_seq > h.seq) s->read_seq = h.seq; /* another log under the same directory */
    uint64_t next = 0;
    size_t max = s->caught_up ? READ_MAX : CATCHUP_MAX;
    if (s->read_seq < h.seq &&
        schakel_store_read(st, "all", s->read_seq + 1, max, SIZE_MAX, count_event, s, &next) == 0)
        s->read_seq = next - 1;
    if (s->read_seq >= h.seq) s->caught_up = 1; /* the totals hold the whole log: served from now on */
    for (size_t i = 0; i < s->n_orgs; i++) {
        char stream[SCHAKEL_STREAM_MAX];
        snprintf(stream, sizeof stream, "org/%.60s", s->org[i].id);
        edge_arg_t e = {s, s->org[i].id, 0};
        if (schakel_store_read(st, stream, s->org[i].stream_pos, max, SIZE_MAX, count_edge, &e, &next) == 0 &&
            next > s->org[i].stream_pos)
            s->org[i].stream_pos = next;
        /* counted again only when the reader moved: a stream nobody reads
         * would otherwise be walked whole every second */
        if (s->org[i].counted && s->org[i].counted_at == s->org[i].cursor) {
            s->org[i].lag += e.n;
            continue;
        }
        upto_t u = {0, s->org[i].stream_pos};
        if (schakel_store_read(st, stream, s->org[i].cursor + 1, STREAM_LAG_MAX, SIZE_MAX, count_upto, &u,
                               &next) < 0)
            continue; /* counted next round */
        uint64_t lag = u.n;
        s->org[i].lag = lag;
        s->org[i].lag_capped = lag >= STREAM_LAG_MAX;
        s->org[i].counted = 1;
        s->org[i].counted_at = s->org[i].cursor;
    }
    for (size_t i = 0; i < s->n_services; i++) {
        s->svc[i].oldest_unread_ms = 0;
        if (s->svc[i].present && s->svc[i].cursor < h.seq &&
            schakel_store_read(st, "all", s->svc[i].cursor + 1, 1, SIZE_MAX, first_time,
                               &s->svc[i].oldest_unread_ms, &next) < 0)
            s->svc[i].oldest_unread_ms = 0;
    }
    schakel_store_close(&st);
}

/* Consent decisions that hold or deny, by rule; escalations, by the
 * organisation that is late. Needs the master key (the payloads are
 * encrypted); without it these counts are left out. */
static int count_decision(void *arg, const schakel_record_t *r)
{
    mon_state_t *s = arg;
    if (!r->event || (r->type != SCHAKEL_EVENT(CONSENT_DECISION) && r->type != SCHAKEL_EVENT(LOOP_REMINDER) &&
                      r->type != SCHAKEL_EVENT(ADAPTER_STATUS)))
        return 0;
    schakel_envelope_t *env = schakel_envelope_decode(r->event, r->event_len, NULL);
    if (!env) return 0;
    /* the body is a oneof (a union): only the member of its case may be read */
    if (env->body_case == SCHAKEL__V1__ENVELOPE__BODY_ADAPTER_STATUS && s->adapters &&
        adapter_health_note_envelope(s->adapters, env, r->seq, r->recorded_at) < 0) {
        /* out of memory: the organisation's earlier status stays */
    }
    const Schakel__V1__ConsentDecision *d =
        env->body_case == SCHAKEL__V1__ENVELOPE__BODY_CONSENT_DECISION ? env->consent_decision : NULL;
    const Schakel__V1__LoopReminder *l =
        env->body_case == SCHAKEL__V1__ENVELOPE__BODY_LOOP_REMINDER ? env->loop_reminder : NULL;
    if (d && d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD)
        (void)mon_counts_add(&s->held, d->rule_id[0] ? d->rule_id : "none", "", 1);
    if (d && d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DENY)
        (void)mon_counts_add(&s->denied, d->rule_id[0] ? d->rule_id : "none", "", 1);
    if (l && l->level == SCHAKEL_LEVEL(ESCALATION))
        (void)mon_counts_add(&s->escalations, l->overdue_org[0] ? l->overdue_org : "none", "", 1);
    schakel_envelope_free(env);
    return 0;
}

static void read_decisions(const mon_t *m, const char *logdir, mon_state_t *s)
{
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN];
    struct stat sb;
    /* schakel_broker_master_key makes a key where there is none: look first */
    s->have_decisions = schakel_path_join(path, sizeof path, m->node_dir, "master.key", NULL) == 0 &&
                        stat(path, &sb) == 0 && access(path, R_OK) == 0;
    if (!s->have_decisions || !s->n_wanted) {
        s->n_wanted = 0;
        return;
    }
    schakel_lmdb_options_t o = {0};
    if (schakel_broker_master_key(m->node_dir, o.master_key, why) != 0) return;
    o.dir = logdir;
    o.read_only = 1;
    schakel_store_t *st = schakel_store_open_lmdb(&o, why);
    memset(o.master_key, 0, sizeof o.master_key);
    if (!st) return; /* counted next round */
    uint64_t next = 0;
    for (size_t i = 0; i < s->n_wanted; i++)
        if (schakel_store_read(st, "all", s->wanted[i], 1, SIZE_MAX, count_decision, s, &next) != 0) {
            /* an erased or unreadable record: not counted */
        }
    s->n_wanted = 0;
    schakel_store_close(&st);
}

static int take_checkpoint(void *arg, const schakel_checkpoint_t *cp)
{
    mon_state_t *s = arg;
    s->checkpoint_at_ms = cp->at;
    s->checkpoint_seq = cp->seq;
    return 0;
}

/* ---- the services' state directories ---- */

static uint64_t get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    uint64_t n = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof n) memcpy(&n, v.mv_data, sizeof n);
    return n;
}

typedef struct {
    mon_state_t *s;
    const char *service;
} refused_arg_t;

static void take_refused(void *arg, const char *code, uint64_t count)
{
    refused_arg_t *r = arg;
    (void)mon_counts_add(&r->s->refused, r->service, code, count);
}

/* The final reject codes of a PUBLISH (RETRY_LATER is sent again): each
 * present service shows all of them, 0 until one happens, so that a
 * rate or increase sees the first one. */
static void refused_zeros(mon_state_t *s, const char *service)
{
    for (int code = SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED;
         code <= SCHAKEL__V1__REJECT_CODE__REJECT_BAD_SIGNATURE; code++) {
        char label[SCHAKEL_REJECT_LABEL];
        (void)mon_counts_add(&s->refused, service, schakel_reject_label(code, label), 0);
    }
}

static void read_services(const mon_t *m, mon_state_t *s)
{
    s->n_services = 0;
    s->refused.n = 0; /* counted whole again below */
    for (size_t i = 0; schakel_service_names[i] && i < MON_SERVICES; i++) {
        char dir[SCHAKEL_PATH_MAX];
        s->svc[i].name = schakel_service_names[i];
        s->svc[i].present = 0;
        s->n_services = i + 1;
        struct stat sb;
        if (schakel_path_fmt(dir, sizeof dir, NULL, "%s/services/%s", m->node_dir,
                             schakel_service_names[i]) ||
            stat(dir, &sb) != 0)
            continue; /* not run on this node */
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        if (mdb_env_create(&env) != 0) continue;
        (void)mdb_env_set_maxdbs(env, 32); /* fails only on an open env */
        if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
            mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
            if (mdb_dbi_open(txn, "runner", 0, &dbi) == 0) {
                s->svc[i].present = 1;
                s->svc[i].cursor = get_u64(txn, dbi, "cursor");
                s->svc[i].alarms = get_u64(txn, dbi, SCHAKEL_SERVICE_ALARMS_KEY);
                refused_zeros(s, s->svc[i].name);
                refused_arg_t r = {s, s->svc[i].name};
                if (schakel_service_refused_each(txn, dbi, take_refused, &r) != 0) {
                    /* a cursor on a read-only table: the zeros stand, counted next round */
                }
            }
            mdb_txn_abort(txn);
        }
        mdb_env_close(env);
    }
}

static void read_loops(const mon_t *m, mon_state_t *s)
{
    char dir[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN];
    for (size_t i = 0; i < s->n_orgs; i++) s->org[i].open = s->org[i].overdue = 0;
    s->have_loops = 0;
    if (schakel_path_join(dir, sizeof dir, m->node_dir, "services/feedback", NULL) != 0) return;
    struct stat sb;
    if (stat(dir, &sb) != 0) return;
    json_t *loops = schakel_feedback_loops(dir, NULL, why);
    if (!loops) return;
    s->have_loops = 1;
    size_t k;
    json_t *l;
    json_array_foreach(loops, k, l) {
        const char *to = json_string_value(json_object_get(l, "receiver"));
        for (size_t i = 0; to && i < s->n_orgs; i++)
            if (!strcmp(s->org[i].id, to)) {
                s->org[i].open++;
                if (json_is_true(json_object_get(l, "overdue"))) s->org[i].overdue++;
            }
    }
    json_decref(loops);
}

/* PONG's stats, when the broker gave them (to its operator's key). */
static void take_stats(mon_state_t *s, const Schakel__V1__BrokerStats *st)
{
    s->have_stats = st != NULL;
    if (!st) return;
    s->active_orgs = st->active_orgs;
    s->n_rejects = 0;
    for (size_t i = 0; i < st->n_rejects && i < 16; i++, s->n_rejects++)
        s->reject_code[i] = (uint64_t)st->rejects[i]->code, s->reject_n[i] = st->rejects[i]->count;
    s->commits = st->commits;
    s->commit_us_sum = st->commit_us_sum;
    s->n_commit = s->n_group = 0;
    for (size_t i = 0; i < st->n_commit_us_le && i < st->n_commit_le_count && i < 16; i++, s->n_commit++)
        s->commit_bound[i] = st->commit_us_le[i], s->commit_le[i] = st->commit_le_count[i];
    s->group_sum = st->group_events_sum;
    for (size_t i = 0; i < st->n_group_le && i < st->n_group_le_count && i < 16; i++, s->n_group++)
        s->group_bound[i] = st->group_le[i], s->group_le[i] = st->group_le_count[i];
}

static void ping(mon_state_t *s, void *client)
{
    Schakel__V1__Ping p = SCHAKEL__V1__PING__INIT;
    ProtobufCMessage *reply = NULL;
    char why[SCHAKEL_ERRLEN] = "";
    int rc = client ? schakel_client_call(client, "PING", &p.base, &schakel__v1__pong__descriptor, &reply,
                                          1000, why)
                    : SCHAKEL_EZMQ;
    s->broker_up = rc == 0 && reply;
    if (s->broker_up) {
        const Schakel__V1__Pong *pong = (const Schakel__V1__Pong *)reply;
        s->alarms = pong->alarms;
        s->broker_reason[0] = 0;
        take_stats(s, pong->stats);
    } else {
        snprintf(s->broker_reason, sizeof s->broker_reason, "%s",
                 client ? "the broker did not answer PING within 1 s" : "no connection to the broker");
    }
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
}

void mon_collect_round(mon_t *m, mon_state_t *s, void *client)
{
    char logdir[SCHAKEL_PATH_MAX];
    s->at_ms = wall_ms();
    ping(s, client);
    if (schakel_path_join(logdir, sizeof logdir, m->node_dir, "log", NULL) != 0) return;
    if (!s->started_ms) s->started_ms = s->at_ms; /* the totals count the log from its start (read_seq 0) */
    load_orgs(m, s);
    read_services(m, s);
    read_raw(logdir, s);
    read_log(logdir, s);
    read_decisions(m, logdir, s);
    if (schakel_lmdb_checkpoints(logdir, s->checkpoint_seq, take_checkpoint, s) != 0) {
        /* no log yet, or one being made: the age stays unknown */
    }
    read_loops(m, s);
}
