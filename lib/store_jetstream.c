/* The jetstream backend (store_jetstream.h): the LMDB log stays the local
 * index every read uses, and every append goes to the region's replicated
 * stream first (store_lmdb_repl.c builds the messages): each record is
 * published at stream sequence = its seq, with expected-last-sequence
 * seq - 1 (a writer whose head is not the stream's can never extend the
 * chain) and its event id as Nats-Msg-Id, and the local commit follows
 * only once a quorum acknowledged them all. What the stream holds and the
 * index does not (a crash between the two, a failed group) is applied at
 * open and before the next append. A broker appends only while it holds
 * the writer lease (store_jetstream_lease.c). The writer's thread only. */
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "fileio.h"
#include "logging.h"
#include "store_jetstream.h"
#include "store_jetstream_lease.h"
#include "store_lmdb_impl.h"

/* The acknowledgments of the group being published, filled by on_ack on
 * the client library's thread. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t first, n; /* seqs first .. first + n - 1 */
    uint64_t acked, answered;
    int failed;
    char err[200];
} acks_t;

typedef struct {
    schakel_store_ops_t ops;         /* LMDB's, but for what this file does */
    const schakel_store_ops_t *lmdb; /* LMDB's own */
    natsOptions *no;
    natsConnection *nc;
    jsCtx *js;
    char stream[8 + SCHAKEL_JS_REGION_MAX + 1];
    char subject[12 + SCHAKEL_JS_REGION_MAX + 1];
    int64_t wait_ms;
    int behind;                /* a publish failed: the stream may hold records the index has not */
    int opened;                /* the index was this stream's at open: all its records were on a quorum */
    long long stepped_down_ms; /* when step_down last asked */
    js_lease_t *lease;         /* NULL: no lease asked for (log copy, a reader) */
    acks_t acks;
} js_t;

/* The client library keeps the server's own words for the calling
 * thread's last error ("replicas > 1 not supported in non-clustered
 * mode"): better than the status's text alone ("Error"). */
static int nats_fail(char *why, int code, const char *what, natsStatus s, jsErrCode e)
{
    const char *last = nats_GetLastError(NULL);
    const char *text = last && last[0] ? last : natsStatus_GetText(s);
    const char *where = text[0] == '(' ? strstr(text, "): ") : NULL; /* "(jsm.c:1033): " */
    if (where) text = where + 3;
    if (e) return schakel_fail(why, code, "%s: %s (JetStream error %d)", what, text, (int)e);
    return schakel_fail(why, code, "%s: %s", what, text);
}

/* The seq a message was published for: expected last sequence + 1. */
static uint64_t seq_of(natsMsg *m)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, "Nats-Expected-Last-Sequence", &v) != NATS_OK || !v) return 1;
    return strtoull(v, NULL, 10) + 1;
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    acks_t *a = closure;
    uint64_t seq = seq_of(msg);
    pthread_mutex_lock(&a->lock);
    if (seq >= a->first && seq < a->first + a->n) { /* else a late answer to an abandoned group */
        a->answered++;
        if (pa && !pa->Duplicate && pa->Sequence == seq) {
            a->acked++;
        } else if (!a->failed) {
            a->failed = 1;
            if (pa)
                snprintf(a->err, sizeof a->err, "the stream put record %llu at %llu: not this index's head",
                         (unsigned long long)seq, (unsigned long long)pa->Sequence);
            else if (pae && pae->ErrCode == JSStreamWrongLastSequenceErr)
                snprintf(
                    a->err, sizeof a->err,
                    "record %llu: the stream's head is not this broker's (another writer, or records not "
                    "applied here yet)",
                    (unsigned long long)seq);
            else if (pae && pae->ErrCode)
                snprintf(a->err, sizeof a->err, "record %llu: %s (JetStream error %d)",
                         (unsigned long long)seq, natsStatus_GetText(pae->Err), (int)pae->ErrCode);
            else
                snprintf(a->err, sizeof a->err, "record %llu: %s", (unsigned long long)seq,
                         pae ? natsStatus_GetText(pae->Err) : "no answer");
        }
        pthread_cond_broadcast(&a->cond);
    }
    pthread_mutex_unlock(&a->lock);
    natsMsg_Destroy(msg);
}

/* Every record of the group is published at once (each with its expected
 * last sequence, so the stream takes them only in this order, right after
 * the index's head), then the answers are awaited: at most wait_ms. */
static int js_replicate(void *arg, const lmdb_repl_msg_t *m, size_t n, char *why)
{
    js_t *j = arg;
    if (j->lease && js_lease_hold(j->lease, why) != 0) return SCHAKEL_ESTORE; /* standing by */
    acks_t *a = &j->acks;
    pthread_mutex_lock(&a->lock);
    a->first = m[0].seq;
    a->n = n;
    a->acked = a->answered = 0;
    a->failed = 0;
    a->err[0] = 0;
    pthread_mutex_unlock(&a->lock);
    natsStatus s = NATS_OK;
    size_t sent = 0;
    for (; sent < n && s == NATS_OK; sent++) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = m[sent].msg_id;
        po.ExpectStream = j->stream;
        po.ExpectLastSeq = m[sent].seq - 1;    /* 0 is "no expectation", so for record 1: */
        po.ExpectNoMessage = m[sent].seq == 1; /* nothing yet on the stream's one subject */
        po.MaxWait = j->wait_ms;
        natsMsg *msg = NULL;
        s = natsMsg_Create(&msg, j->subject, NULL, (const char *)m[sent].data, (int)m[sent].len);
        if (s == NATS_OK) s = js_PublishMsgAsync(j->js, &msg, &po);
        natsMsg_Destroy(msg); /* NULL once the library took it */
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(j->wait_ms / 1000) + 1;
    pthread_mutex_lock(&a->lock);
    while (s == NATS_OK && !a->failed && a->answered < n &&
           pthread_cond_timedwait(&a->cond, &a->lock, &until) == 0) {
    }
    int ok = s == NATS_OK && !a->failed && a->acked == n;
    char err[sizeof a->err];
    memcpy(err, a->err, sizeof err);
    a->n = 0; /* answers from here on are for no group */
    pthread_mutex_unlock(&a->lock);
    if (ok) return 0;
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, j->js) == NATS_OK) natsMsgList_Destroy(&pending);
    j->behind = 1; /* some of the group may be on the stream: applied before the next append */
    if (j->lease) js_lease_doubt(j->lease); /* refused: another writer may hold the lease now */
    if (s != NATS_OK)
        return nats_fail(why, SCHAKEL_ESTORE, "the replicated log did not take the records", s, 0);
    if (!err[0])
        return schakel_fail(why, SCHAKEL_ETIMEOUT, "the replicated log did not answer in %lld ms: no quorum?",
                            (long long)j->wait_ms);
    return schakel_fail(why, SCHAKEL_ESTORE, "the replicated log did not store %s", err);
}

static long long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Asks the stream's leader to hand over to another server (at most once
 * in 5 s). nats-server 2.9 can elect a server that was restarted and had
 * not yet copied the stream's messages from the old leader when that one
 * died: its Raft log is current, its store ends hundreds of records
 * before the records the cluster acknowledged, and as leader it never
 * copies them from its followers, which hold them. Handing over to one of
 * those is the way back (seen in crash_test_jetstream_failover: leader n1
 * with 301 records, n2 with 3361, this index 3361). */
static void step_down(js_t *j, const char *leader)
{
    if (j->stepped_down_ms && mono_ms() - j->stepped_down_ms < 5000) return;
    j->stepped_down_ms = mono_ms();
    char subj[64 + sizeof j->stream];
    snprintf(subj, sizeof subj, "$JS.API.STREAM.LEADER.STEPDOWN.%s", j->stream);
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, j->nc, subj, NULL, 0, j->wait_ms);
    const char *answer = s == NATS_OK ? natsMsg_GetData(reply) : NULL;
    int done = answer && strstr(answer, "\"success\":true") != NULL;
    schakel_log(done ? SCHAKEL_LOG_WARN : SCHAKEL_LOG_ERROR, "store",
                "event=stream_leader_stepdown stream=%s leader=%s result=%s", j->stream, leader,
                done ? "asked" : "refused");
    natsMsg_Destroy(reply);
}

/* Applies every record the stream holds after the index's head. */
static int catch_up(lmdb_store_t *st, js_t *j, char *why)
{
    jsStreamInfo *si = NULL;
    jsErrCode e = 0;
    natsStatus s = js_GetStreamInfo(&si, j->js, j->stream, NULL, &e);
    if (s != NATS_OK) return nats_fail(why, SCHAKEL_ESTORE, "stream info", s, e);
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    char leader[64];
    snprintf(leader, sizeof leader, "%.60s", si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
    jsStreamInfo_Destroy(si);
    /* with no leader, a replica answers with its own store: wait for one */
    if (last < st->head.seq && j->opened && !leader[0])
        return schakel_fail(why, SCHAKEL_ESTORE,
                            "stream %s has no leader (a replica holds %llu records, this index %llu)",
                            j->stream, (unsigned long long)last, (unsigned long long)st->head.seq);
    if (last < st->head.seq && j->opened) {
        step_down(j, leader);
        return schakel_fail(why, SCHAKEL_ESTORE,
                            "stream %s's leader %s holds %llu records, this index %llu that the cluster "
                            "stored: a server that had not caught up leads; asked to hand over",
                            j->stream, leader, (unsigned long long)last, (unsigned long long)st->head.seq);
    }
    if (last < st->head.seq)
        return schakel_fail(
            why, SCHAKEL_ECORRUPT,
            "the local index holds %llu records, stream %s (leader %s) only %llu: a server that had "
            "not caught up may lead after a failover (start again in a few seconds), else another "
            "region's index or a lost stream (docs/scale-out.md)",
            (unsigned long long)st->head.seq, j->stream, leader[0] ? leader : "none",
            (unsigned long long)last);
    if (last && (first != 1 || msgs != last))
        return schakel_fail(why, SCHAKEL_ECORRUPT, "stream %s lost records (first %llu, %llu of %llu)",
                            j->stream, (unsigned long long)first, (unsigned long long)msgs,
                            (unsigned long long)last);
    uint64_t from = st->head.seq;
    for (uint64_t seq = st->head.seq + 1; seq <= last; seq++) {
        natsMsg *m = NULL;
        s = js_GetMsg(&m, j->js, j->stream, seq, NULL, &e);
        if (s != NATS_OK) return nats_fail(why, SCHAKEL_ESTORE, "read the stream", s, e);
        int rc =
            lmdb_repl_apply(st, (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), why);
        natsMsg_Destroy(m);
        if (rc) return rc;
    }
    if (last > from)
        schakel_log(SCHAKEL_LOG_INFO, "store", "event=stream_applied stream=%s from=%llu to=%llu", j->stream,
                    (unsigned long long)from + 1, (unsigned long long)last);
    j->behind = 0;
    return 0;
}

static int js_append_deferred(schakel_store_t *s, schakel_append_batch_t *b, size_t n, int64_t now_ms,
                              char *why)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    js_t *j = st->repl_arg;
    if (j->behind) {
        int rc = catch_up(st, j, why);
        if (rc) return rc;
    }
    return j->lmdb->append_deferred(s, b, n, now_ms, why);
}

/* Durable on the quorum when the append returns: nothing to flush. */
static int js_append(schakel_store_t *s, schakel_append_batch_t *b, size_t n, int64_t now_ms, char *why)
{
    return js_append_deferred(s, b, n, now_ms, why);
}

/* Not yet: the stream keeps each data key in the messages of the records
 * it encrypted, so destroying the local copy would erase nothing. */
static int js_erase_subject(schakel_store_t *s, const char *subject)
{
    (void)s;
    (void)subject;
    schakel_log(SCHAKEL_LOG_ERROR, "store", "event=erase_refused reason=\"not yet on the jetstream log\"");
    return SCHAKEL_EPERM;
}

static void js_free(js_t *j)
{
    if (j->nc) natsConnection_Close(j->nc); /* no ack handler runs after this */
    js_lease_free(j->lease);
    if (j->js) jsCtx_Destroy(j->js);
    if (j->nc) natsConnection_Destroy(j->nc);
    if (j->no) natsOptions_Destroy(j->no);
    pthread_mutex_destroy(&j->acks.lock);
    pthread_cond_destroy(&j->acks.cond);
    free(j);
}

static void js_close(schakel_store_t *s)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    js_t *j = st->repl_arg;
    const schakel_store_ops_t *lmdb = j->lmdb;
    st->replicate = NULL;
    st->repl_arg = NULL;
    js_free(j);
    lmdb->close(s);
}

static int js_connect(js_t *j, const schakel_js_url_t *u, const char *url, char *why)
{
    const char *servers[SCHAKEL_JS_MAX_SERVERS];
    for (int i = 0; i < u->n; i++) servers[i] = u->servers[i];
    natsStatus s = natsOptions_Create(&j->no);
    if (s == NATS_OK) s = natsOptions_SetServers(j->no, servers, u->n);
    if (s == NATS_OK) s = natsOptions_SetTimeout(j->no, j->wait_ms);
    if (s == NATS_OK) s = natsOptions_SetName(j->no, "schakel-broker");
    /* a server that dies is left for another: reconnect for ever */
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(j->no, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(j->no, 100);
    if (s != NATS_OK) return nats_fail(why, SCHAKEL_ECONFIG, "NATS options", s, 0);
    s = natsConnection_Connect(&j->nc, j->no);
    if (s != NATS_OK) {
        char what[300];
        snprintf(what, sizeof what, "the JetStream cluster at %.200s is not reachable", url);
        return nats_fail(why, SCHAKEL_ECONFIG, what, s, 0);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = j->wait_ms;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = &j->acks;
    s = natsConnection_JetStream(&j->js, j->nc, &jo);
    return s == NATS_OK ? 0 : nats_fail(why, SCHAKEL_ECONFIG, "JetStream context", s, 0);
}

static int ensure_stream(js_t *j, int replicas, char *why)
{
    jsStreamInfo *si = NULL;
    jsErrCode e = 0;
    natsStatus s = js_GetStreamInfo(&si, j->js, j->stream, NULL, &e);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (e != JSStreamNotFoundErr) return nats_fail(why, SCHAKEL_ECONFIG, "JetStream stream info", s, e);
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    const char *subjects[] = {j->subject};
    c.Name = j->stream;
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    c.Replicas = replicas;
    c.DenyDelete = true; /* one record out of the chain breaks it */
    s = js_AddStream(&si, j->js, &c, NULL, &e);
    if (s != NATS_OK) {
        char what[128];
        snprintf(what, sizeof what, "cannot create stream %s with %d replicas", j->stream, replicas);
        return nats_fail(why, SCHAKEL_ECONFIG, what, s, e);
    }
    jsStreamInfo_Destroy(si);
    schakel_log(SCHAKEL_LOG_INFO, "store", "event=stream_created stream=%s replicas=%d", j->stream, replicas);
    return 0;
}

/* dir/stream names the stream dir is the index of: one stream per index,
 * and a broker without --log refuses it (schakel_js_index_of). check: 0
 * when dir is this stream's index or none yet (*marked says which). */
static int index_check(const char *dir, const char *stream, int *marked, char *why)
{
    char have[SCHAKEL_JS_REGION_MAX + 9];
    int rc = schakel_js_index_of(dir, have, why);
    *marked = rc == 0;
    if (rc == 0 && strcmp(have, stream) != 0)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "%s is the local index of stream %s, not %s: give that region, "
                            "or another data directory",
                            dir, have, stream);
    return rc == SCHAKEL_ENOTFOUND ? 0 : rc;
}

static int index_mark(const char *dir, const char *stream, char *why)
{
    char path[SCHAKEL_PATH_MAX], line[SCHAKEL_JS_REGION_MAX + 10];
    int rc = schakel_path_join(path, sizeof path, dir, "stream", why);
    if (rc) return rc;
    int n = snprintf(line, sizeof line, "%s\n", stream);
    if (schakel_file_write_atomic(path, line, (size_t)n) != 0)
        return schakel_fail(why, SCHAKEL_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* The region's stream, SCHAKEL_<REGION>, and its one subject. */
static void stream_names(js_t *j, const char *region)
{
    snprintf(j->stream, sizeof j->stream, "SCHAKEL_%s", region);
    for (char *c = j->stream; *c; c++) /* the region is [a-z0-9-]: one stream name per region */
        *c = *c == '-' ? '_' : (*c >= 'a' && *c <= 'z') ? (char)(*c - 'a' + 'A') : *c;
    snprintf(j->subject, sizeof j->subject, "schakel.%s.log", region);
}

/* A js_t with its PubAck lock and monotonic condvar, for region. */
static js_t *js_new(int wait_ms, const char *region, char *why)
{
    js_t *j = calloc(1, sizeof *j);
    if (!j) {
        schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&j->acks.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->acks.cond, &ca);
    pthread_condattr_destroy(&ca);
    j->wait_ms = wait_ms;
    stream_names(j, region);
    return j;
}

schakel_store_t *schakel_store_open_jetstream(const schakel_jetstream_options_t *opts, char *why)
{
    schakel_js_url_t u;
    if (schakel_js_url_parse(opts->url, &u, why) != 0) return NULL;
    if (opts->local.read_only) {
        schakel_fail(why, SCHAKEL_EINVAL, "the jetstream log is opened for writing");
        return NULL;
    }
    js_t *j = js_new(opts->wait_ms > 0 ? opts->wait_ms : 5000, u.region, why);
    if (!j) return NULL;
    schakel_store_t *s = NULL;
    int marked = 0;
    if (index_check(opts->local.dir, j->stream, &marked, why) != 0 ||
        js_connect(j, &u, opts->url, why) != 0 ||
        ensure_stream(j, opts->replicas > 0 ? opts->replicas : 3, why) != 0)
        goto fail;
    if (opts->writer && !(j->lease = js_lease_open(j->js, j->stream, opts->writer,
                                                   opts->lease_ms > 0 ? opts->lease_ms : 10000,
                                                   opts->replicas > 0 ? opts->replicas : 3, why)))
        goto fail;
    s = schakel_store_open_lmdb(&opts->local, why);
    if (!s) goto fail;
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (catch_up(st, j, why) != 0 || (!marked && index_mark(opts->local.dir, j->stream, why) != 0)) goto fail;
    j->lmdb = s->ops;
    j->ops = *s->ops;
    j->ops.append = js_append;
    j->ops.append_deferred = js_append_deferred;
    j->ops.erase_subject = js_erase_subject;
    j->ops.close = js_close;
    st->repl_arg = j;
    st->replicate = js_replicate;
    j->opened = 1;
    s->ops = &j->ops;
    schakel_log(SCHAKEL_LOG_INFO, "store", "event=jetstream_open stream=%s head=%llu", j->stream,
                (unsigned long long)st->head.seq);
    return s;
fail:
    if (s) s->ops->close(s);
    js_free(j);
    return NULL;
}

int schakel_jetstream_available(void)
{
    return 1;
}

/* `schakel log copy` (store_jetstream.h). One connection, no store. */
static js_t *copy_connect(const char *url, char *why)
{
    schakel_js_url_t u;
    if (schakel_js_url_parse(url, &u, why) != 0) return NULL;
    js_t *j = js_new(5000, u.region, why);
    if (!j) return NULL;
    if (js_connect(j, &u, url, why) != 0) {
        js_free(j);
        return NULL;
    }
    return j;
}

/* The stream's last sequence; SCHAKEL_ENOTFOUND when there is no stream. */
static int stream_last(js_t *j, uint64_t *last, char *why)
{
    jsStreamInfo *si = NULL;
    jsErrCode e = 0;
    natsStatus s = js_GetStreamInfo(&si, j->js, j->stream, NULL, &e);
    if (s != NATS_OK && e == JSStreamNotFoundErr)
        return schakel_fail(why, SCHAKEL_ENOTFOUND, "there is no stream %s on the cluster", j->stream);
    if (s != NATS_OK) return nats_fail(why, SCHAKEL_ESTORE, "stream info", s, e);
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

typedef struct {
    uint64_t seq;
    size_t at; /* the cursor's order, for a stable sort */
    lmdb_repl_entry_t e;
} found_t;

static int found_cmp(const void *a, const void *b)
{
    const found_t *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Every entry of table streams (stream name || 0 || u64be(seq)), in the
 * order of the records they were written with; pointers into txn. */
static int stream_entries(lmdb_store_t *st, MDB_txn *txn, found_t **out, size_t *n, char *why)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->streams, &c);
    if (rc) return lmdb_err(rc, why, "read the stream index");
    size_t cap = 1024;
    found_t *f = malloc(cap * sizeof *f);
    MDB_val k, v;
    *n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); f && rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 10) continue;
        if (*n == cap) {
            found_t *g = realloc(f, 2 * cap * sizeof *f);
            if (!g) break;
            f = g;
            cap *= 2;
        }
        f[*n] = (found_t){schakel_get_be64((const uint8_t *)k.mv_data + k.mv_size - 8), *n, {k, v}};
        (*n)++;
    }
    mdb_cursor_close(c);
    if (!f || rc == 0) {
        free(f);
        return schakel_fail(why, SCHAKEL_ENOMEM, "out of memory reading the stream index");
    }
    if (rc != MDB_NOTFOUND) {
        free(f);
        return lmdb_err(rc, why, "read the stream index");
    }
    qsort(f, *n, sizeof *f, found_cmp);
    *out = f;
    return 0;
}

#define COPY_GROUP 256

/* Publishes records 1..head of st, COPY_GROUP at a time. */
static int copy_records(lmdb_store_t *st, MDB_txn *txn, js_t *j, char *why)
{
    found_t *f = NULL;
    size_t nf = 0, at = 0;
    int rc = stream_entries(st, txn, &f, &nf, why);
    if (rc) return rc;
    lmdb_repl_msg_t *msgs = calloc(COPY_GROUP, sizeof *msgs);
    lmdb_repl_entry_t *ents = calloc(nf ? nf : 1, sizeof *ents);
    if (!msgs || !ents || !f) {
        free(msgs);
        free(ents);
        free(f);
        return schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
    }
    for (uint64_t seq = 1; rc == 0 && seq <= st->head.seq;) {
        size_t n = 0;
        for (; rc == 0 && n < COPY_GROUP && seq <= st->head.seq; n++, seq++) {
            size_t first = at;
            for (; at < nf && f[at].seq == seq; at++) ents[at - first] = f[at].e;
            rc = lmdb_repl_message(st, txn, seq, ents, at - first, &msgs[n], why);
        }
        if (rc == 0) rc = js_replicate(j, msgs, n, why);
        for (size_t i = 0; i < n; i++) {
            free(msgs[i].data);
            msgs[i].data = NULL;
        }
    }
    free(msgs);
    free(ents);
    free(f);
    return rc;
}

int schakel_js_copy_to_stream(const char *log_dir, const char *url, schakel_head_t *head, char *why)
{
    schakel_lmdb_options_t lo = {0};
    lo.dir = log_dir;
    lo.read_only = 1; /* no data key is opened: the messages carry them wrapped */
    schakel_store_t *s = schakel_store_open_lmdb(&lo, why);
    if (!s) return SCHAKEL_ESTORE;
    lmdb_store_t *st = (lmdb_store_t *)s;
    js_t *j = copy_connect(url, why);
    uint64_t last = 0;
    int rc = j ? stream_last(j, &last, why) : SCHAKEL_ECONFIG;
    if (rc == SCHAKEL_ENOTFOUND) rc = ensure_stream(j, 3, why);
    else if (rc == 0 && last)
        rc = schakel_fail(why, SCHAKEL_EEXIST,
                          "stream %s already holds %llu records: copy only to an empty stream", j->stream,
                          (unsigned long long)last);
    MDB_txn *txn = NULL;
    if (rc == 0 && (rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
        rc = lmdb_err(rc, why, "begin reading the log");
    if (rc == 0) rc = copy_records(st, txn, j, why);
    if (txn) mdb_txn_abort(txn);
    if (rc == 0 && (rc = stream_last(j, &last, why)) == 0 && last != st->head.seq)
        rc = schakel_fail(why, SCHAKEL_ESTORE, "stream %s holds %llu records after the copy of %llu",
                          j->stream, (unsigned long long)last, (unsigned long long)st->head.seq);
    if (rc == 0) *head = st->head;
    if (j) js_free(j);
    s->ops->close(s);
    return rc;
}

int schakel_js_copy_from_stream(const char *url, const char *log_dir, schakel_head_t *head, char *why)
{
    char have[SCHAKEL_JS_REGION_MAX + 9];
    int rc = schakel_js_index_of(log_dir, have, why);
    if (rc == 0)
        return schakel_fail(why, SCHAKEL_EEXIST,
                            "%s is the local index of stream %s: copy to a new directory", log_dir, have);
    if (rc != SCHAKEL_ENOTFOUND) return rc;
    js_t *j = copy_connect(url, why);
    if (!j) return SCHAKEL_ECONFIG;
    uint64_t last = 0;
    rc = stream_last(j, &last, why);
    schakel_lmdb_options_t lo = {0};
    lo.dir = log_dir; /* the master key only opens payloads: none is opened here */
    schakel_store_t *s = rc == 0 ? schakel_store_open_lmdb(&lo, why) : NULL;
    if (rc == 0 && !s) rc = SCHAKEL_ESTORE;
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (rc == 0 && st->head.seq)
        rc = schakel_fail(why, SCHAKEL_EEXIST, "%s already holds %llu records: copy only to an empty log",
                          log_dir, (unsigned long long)st->head.seq);
    if (rc == 0) rc = catch_up(st, j, why); /* each record must link to the one before and hash right */
    if (rc == 0) rc = schakel_store_sync(s, why);
    if (rc == 0 && st->head.seq != last)
        rc = schakel_fail(why, SCHAKEL_ESTORE, "%s holds %llu records after the copy of %llu", log_dir,
                          (unsigned long long)st->head.seq, (unsigned long long)last);
    if (rc == 0) *head = st->head;
    if (s) s->ops->close(s);
    js_free(j);
    return rc;
}
