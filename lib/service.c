/* The service runner, live against a broker (the replay check over a log
 * on disk is lib/service_replay*.c; what both share, lib/service_engine.c).
 * Workload: a steady stream of small records, most of which
 * an engine looks at and drops; a group of up to GROUP records shares one
 * LMDB write transaction and one publish round trip. See service.h for
 * the contract that makes replay exact. */
#include "service.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "client.h"
#include "clock.h"
#include "consumer.h"
#include "error.h"
#include "logging.h"
#include "service_impl.h"
#include "service_outbox.h"
#include "store_lmdb.h"

#define GROUP 16384      /* records per transaction, at most */
#define LINGER_MS 100    /* a caught-up group stays open this long for more */
#define FLUSH_AT 256     /* decided events put and published within a group */
#define OUTBOX_MAX 16384 /* events not yet ACKed before reading stops */

/* ---- reading the log back ---- */

/* Remembers the record just given to the engine (live). */
static void logsrc_remember(schakel_logsrc_t *l, uint64_t seq, const uint8_t *bytes, size_t len)
{
    size_t i = seq % RECENT;
    if (!len) { /* erased, or handed without its payload: read it again if asked */
        l->recent[i].seq = 0;
        return;
    }
    /* the slot's buffer is used again: a malloc and a free per record
     * were a few percent of each service's thread; one over 2 KiB is
     * kept only for a record as large (memory stays near the records') */
    if (len > l->recent[i].cap || (l->recent[i].cap > 2048 && len <= 2048)) {
        free(l->recent[i].bytes);
        l->recent[i].cap = len < 512 ? 512 : len;
        l->recent[i].bytes = malloc(l->recent[i].cap);
        if (!l->recent[i].bytes) l->recent[i].cap = 0;
    }
    l->recent[i].seq = seq;
    l->recent[i].len = len;
    if (len && l->recent[i].bytes) memcpy(l->recent[i].bytes, bytes, len);
    else if (len) l->recent[i].seq = 0; /* no memory: read it from the broker if asked */
}

static void logsrc_clear(schakel_logsrc_t *l)
{
    for (size_t i = 0; i < RECENT; i++) {
        free(l->recent[i].bytes);
        l->recent[i].bytes = NULL;
        l->recent[i].seq = 0;
        l->recent[i].len = l->recent[i].cap = 0;
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
        if (!l->recent[i].len) return SCHAKEL_ENOTFOUND; /* erased */
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
    int lagging;          /* said event=lag_high, not yet event=lag_ok */
    uint64_t *erased_seq; /* and those erasures' seqs */
    size_t n_erased, cap_erased;
} live_t;

/* The broker's erasure of a child: what the runner holds in memory about
 * it goes (the records kept for reads back), and its seq is noted: the
 * copies of its pseudonym in the state's file are overwritten once the
 * group is committed. */
static int note_erasure(live_t *l, const schakel_envelope_t *env, uint64_t seq)
{
    if (!service_erased_subject(env)) return 0;
    logsrc_clear(l->log);
    if (l->n_erased == l->cap_erased) {
        size_t cap = l->cap_erased ? l->cap_erased * 2 : 8;
        uint64_t *seqs = realloc(l->erased_seq, cap * sizeof *seqs);
        if (!seqs) return SCHAKEL_ENOMEM;
        l->erased_seq = seqs;
        l->cap_erased = cap;
    }
    l->erased_seq[l->n_erased++] = seq;
    return 0;
}

/* The alarm lines of a group, logged once it is committed. */
typedef struct {
    char lines[8][SERVICE_ALARM_LINE + 32];
    size_t k;
} group_lines_t;

/* Puts what the group decided so far into the outbox, in the group's
 * transaction, and publishes it at once: nothing waits for the commit.
 * (A crash before the commit replays the group, and its derived ids make
 * the copies duplicates, as for a single put per group.) */
static int flush_emitted(live_t *l, MDB_txn *txn, group_lines_t *g, char *why)
{
    g->k += group_alarms(&l->out, &l->s->alarms, g->lines + g->k, 8 - g->k);
    int rc = service_outbox_put(&l->ob, txn, l->client, &l->out, why);
    service_emit_clear(&l->out);
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

/* Reads the log into one transaction (up to GROUP records, none while the
 * outbox is over its bound) and lets the engine process it. Once it has
 * read all that is durable, what it decided is published at once, and the
 * group stays open up to LINGER_MS from its first record for what comes
 * next: a commit (a write of every dirty page and a fdatasync of the
 * state) per LINGER_MS at most, not one per wake-up, while no decision
 * waits for a commit. Returns the records read; *last is the seq of the
 * last. */
static size_t read_group(live_t *l, MDB_txn *txn, uint64_t *last, group_lines_t *g, int *rc, char *why)
{
    size_t n = 0;
    int64_t until = 0;
    if (l->ob.pending >= OUTBOX_MAX) return 0; /* back-pressure: ACKs drain it first */
    while (n < GROUP && !atomic_load(l->stop)) {
        const Schakel__V1__Delivered *d;
        int r = schakel_consumer_next(l->cons, &d, n ? 0 : first_wait(l->client, &l->ob), why);
        if (r == SCHAKEL_ETIMEOUT && n) { /* caught up: decisions out, then wait for more */
            if (l->out.n && (*rc = flush_emitted(l, txn, g, why)) != 0) break;
            int64_t left = until - schakel_mono_ms();
            if (left <= 0 || l->ob.pending >= OUTBOX_MAX) break;
            r = schakel_consumer_next(l->cons, &d, (int)left, why);
        }
        if (r == SCHAKEL_ETIMEOUT) break;
        if (r) {
            *rc = r;
            break;
        }
        if (!n) {
            until = schakel_mono_ms() + LINGER_MS;
            watch_lag(l); /* before a group that may be long: a service far behind says so first */
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
        if (r == 0) r = note_erasure(l, env, d->seq);
        schakel_arena_reset(l->arena);
        if (r == 0 && l->out.n >= FLUSH_AT) r = flush_emitted(l, txn, g, why); /* a long group */
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
    group_lines_t g;
    g.k = 0;
    size_t n = rc ? 0 : read_group(l, txn, &last, &g, &rc, why);
    if (rc == 0 && n) rc = flush_emitted(l, txn, &g, why);
    if (rc == 0 && (n || acks || s->alarms != before)) rc = save_place(s, txn, last);
    if (rc == 0 && (n || acks)) rc = save_published(l, txn, last);
    if (rc == 0 && l->n_erased && (rc = service_scrub_note(s, txn, l->erased_seq, l->n_erased)) != 0)
        rc = schakel_fail(why, rc, "%s: cannot note the erasures still to scrub", l->ops->name);
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
    if (rc == 0 && l->n_erased) {         /* these, and any an earlier try left (service_scrub.c) */
        char sw[SCHAKEL_ERRLEN] = "";
        int sr = service_scrub_pending(s, l->log, l->ops->name, 0, sw);
        if (sr && !s->env) rc = schakel_fail(why, sr, "%s", sw); /* no state to go on with: stop */
        else if (sr)
            schakel_log(SCHAKEL_LOG_ERROR, l->ops->name, "event=state_not_scrubbed reason=\"%s\"", sw);
    }
    l->n_erased = 0;
    for (size_t i = 0; rc == 0 && i < g.k; i++)
        schakel_log(SCHAKEL_LOG_ERROR, l->ops->name, "%s", g.lines[i]);
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
    /* in the broker's process: the log straight from its store, no FETCH */
    l->cons = !l->client ? NULL
              : o->store ? schakel_consumer_local_new(o->store, "all", so.from_seq, 0, why)
                         : schakel_consumer_new(ctx, &so, why);
    if (!l->client || !l->cons) return SCHAKEL_EZMQ;
    if (o->store && l->ops->ignores) { /* the runner reads ticks and erasures itself */
        schakel_type_set_t skip = {{0}};
        for (int t = 1; t < 256; t++)
            if (t != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK &&
                t != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE && l->ops->ignores(t))
                schakel_type_set_add(&skip, t);
        schakel_consumer_skip(l->cons, &skip);
    }
    l->log = calloc(1, sizeof *l->log);
    l->arena = schakel_arena_new(64 << 10);
    if (!l->log || !l->arena) return schakel_fail(why, SCHAKEL_ENOMEM, "%s: out of memory", l->ops->name);
    l->log->client = l->client;
    l->log->store = o->store; /* read backs (schakel_log_event) too */
    int rc = service_outbox_open(&l->ob, l->s->env, o->state_dir, l->ops->name, why);
    if (rc) return rc;
    l->ob.runner = l->s->runner;
    MDB_txn *txn;
    if (mdb_txn_begin(l->s->env, NULL, MDB_RDONLY, &txn) == 0) {
        l->published = service_get_u64(txn, l->s->runner, SCHAKEL_SERVICE_PUBLISHED_KEY);
        mdb_txn_abort(txn);
    }
    char sw[SCHAKEL_ERRLEN] = "";
    int sr = service_scrub_pending(l->s, l->log, l->ops->name, 1, sw); /* a stop between commit and scrub */
    if (sr && !l->s->env) return schakel_fail(why, sr, "%s", sw);
    if (sr) schakel_log(SCHAKEL_LOG_ERROR, l->ops->name, "event=state_not_scrubbed reason=\"%s\"", sw);
    schakel_log(SCHAKEL_LOG_INFO, l->ops->name, "event=started from_seq=%llu outbox=%zu reads=%s",
                (unsigned long long)so.from_seq, l->ob.pending, o->store ? "local" : "fetch");
    return service_outbox_resend(&l->ob, l->s->env, l->client, why);
}

static void live_close(live_t *l)
{
    service_outbox_close(&l->ob);
    service_emit_free(&l->out);
    free(l->erased_seq);
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
