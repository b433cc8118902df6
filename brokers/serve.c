/* Serving reads, the last step of the data path: FETCH returns a range
 * of a stream the connection may read ("all" for an auditor, org/<id> for
 * its own organisation), COMMIT stores a consumer's cursor, PING answers
 * with the head, the clock and the alarm count. Runs in the command
 * loop's thread; reads the log in its own short read transactions. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_impl.h"
#include "validate.h"

static int may_read(schakel_broker_t *b, const char *user, const char *stream)
{
    const schakel_org_t *org = schakel_directory_by_id(b->dir, user);
    if (!org) return 0;
    if (org->rights & SCHAKEL_RIGHT_READ_ALL) return 1;
    return strncmp(stream, "org/", 4) == 0 && strcmp(stream + 4, user) == 0;
}

typedef struct {
    Schakel__V1__Delivered *recs;
    Schakel__V1__Delivered **ptrs;
    uint8_t **bufs;
    size_t n, cap;
} fetch_acc_t;

static int fetch_cb(void *arg, const schakel_record_t *rec)
{
    fetch_acc_t *a = arg;
    if (a->n == a->cap) return 1;
    Schakel__V1__Delivered *d = &a->recs[a->n];
    schakel__v1__delivered__init(d);
    d->seq = rec->seq;
    d->position = rec->position;
    d->recorded_at = rec->recorded_at;
    d->hash.data = (uint8_t *)malloc(32);
    if (!d->hash.data) return SCHAKEL_ENOMEM;
    memcpy(d->hash.data, rec->hash, 32);
    d->hash.len = 32;
    if (rec->event) {
        d->event.data = malloc(rec->event_len ? rec->event_len : 1);
        if (!d->event.data) return SCHAKEL_ENOMEM;
        memcpy(d->event.data, rec->event, rec->event_len);
        d->event.len = rec->event_len;
    }
    a->ptrs[a->n++] = d;
    return 0;
}

/* A command body over its cap is REJECT_TOO_LARGE, one that does not decode
 * REJECT_MALFORMED (protocol.md §2). Returns 0 when the body may be decoded. */
static int body_over_cap(schakel_broker_t *b, schakel_wire_msg_t *m, const char *cmd, size_t cap)
{
    size_t len = zmq_msg_size(&m->body);
    if (len <= cap) return 0;
    char r[SCHAKEL_ERRLEN];
    snprintf(r, sizeof r, "%s body is %zu bytes; the limit is %zu", cmd, len, cap);
    broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE, r);
    return 1;
}

void broker_serve_fetch(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (body_over_cap(b, m, "FETCH", FETCH_BODY_MAX)) return;
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Fetch *f = schakel__v1__fetch__unpack(NULL, len, zmq_msg_data(&m->body));
    if (!f) {
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                          "FETCH body does not decode as schakel.v1.Fetch");
        return;
    }
    if (strlen(f->consumer) > 80 || strchr(f->consumer, '/')) { /* as COMMIT: never another's cursor */
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                          "FETCH consumer name: use a name of 1 to 80 bytes without '/'");
        schakel__v1__fetch__free_unpacked(f, NULL);
        return;
    }
    if (strlen(f->stream) >= SCHAKEL_STREAM_MAX || !may_read(b, m->user, f->stream)) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "%s may not read stream \"%.80s\": own stream is org/%s", m->user, f->stream,
                 m->user);
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, r);
        schakel__v1__fetch__free_unpacked(f, NULL);
        return;
    }
    /* Before any work: a connection, or an organisation over all its
     * connections, that has not taken its last BATCHes from the broker
     * gets no more of them until it does. */
    peer_t *peer = broker_peer_find(b, &m->rid, m->user);
    int org_full = peer && atomic_load(&peer->batches) < FETCH_UNREAD_MAX &&
                   broker_org_held(b, m->user).batches >= ORG_FETCH_UNREAD_MAX;
    if (!peer || atomic_load(&peer->batches) >= FETCH_UNREAD_MAX || org_full) {
        char r[SCHAKEL_ERRLEN];
        if (org_full)
            snprintf(r, sizeof r,
                     "%d BATCH replies to all connections of %s together are not read yet: "
                     "read them, then FETCH again",
                     ORG_FETCH_UNREAD_MAX, m->user);
        else
            snprintf(r, sizeof r,
                     "%d BATCH replies to this connection are not read yet: read them, "
                     "then FETCH again",
                     FETCH_UNREAD_MAX);
        b->stat_fetch_refused++;
        if (org_full) broker_org_refused(b, m->user, "batches");
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER,
                          peer ? r : "broker out of memory");
        schakel__v1__fetch__free_unpacked(f, NULL);
        return;
    }
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    uint64_t from = f->from_seq;
    if (from == 0 && f->consumer[0]) {
        char name[256];
        snprintf(name, sizeof name, "%s/%.80s/%s", m->user, f->consumer, f->stream);
        if (schakel_store_cursor_get(b->store, name, &from) != 0) {
            /* never start the stream over from 1 on a read that failed */
            b->stat_fetch_refused++;
            schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=cursor_read_failed consumer_of=%s", m->user);
            broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER,
                              "the committed cursor cannot be read now: FETCH again later");
            schakel__v1__fetch__free_unpacked(f, NULL);
            return;
        }
        if (from > h.seq) { /* stored before cursors were checked: never wrap */
            char r[SCHAKEL_ERRLEN];
            snprintf(r, sizeof r,
                     "the committed cursor of consumer \"%.80s\" is %llu, beyond the "
                     "head %llu: COMMIT a seq of at most %llu, or FETCH with from_seq",
                     f->consumer, (unsigned long long)from, (unsigned long long)h.seq,
                     (unsigned long long)h.seq);
            broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, r);
            schakel__v1__fetch__free_unpacked(f, NULL);
            return;
        }
        from++;
    }
    size_t max = f->max_count ? f->max_count : 100;
    if (max > FETCH_MAX_COUNT) max = FETCH_MAX_COUNT;
    size_t max_bytes = f->max_bytes && f->max_bytes < FETCH_MAX_BYTES ? f->max_bytes : FETCH_MAX_BYTES;
    fetch_acc_t a = {0};
    a.cap = max;
    a.recs = calloc(max, sizeof *a.recs);
    a.ptrs = calloc(max, sizeof *a.ptrs);
    Schakel__V1__Batch out = SCHAKEL__V1__BATCH__INIT;
    uint64_t next = from;
    /* only what is durable (the loop flushed before this FETCH; a flush
     * that failed leaves records readable that a power cut can take back) */
    uint64_t durable = schakel_store_durable_seq(b->store);
    int rc = a.recs && a.ptrs ? schakel_store_read_upto(b->store, f->stream, from, durable, max, max_bytes,
                                                        fetch_cb, &a, &next)
                              : SCHAKEL_ENOMEM;
    if (rc < 0) {
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, schakel_strerror(rc));
    } else {
        out.stream = f->stream;
        out.records = a.ptrs;
        out.n_records = a.n;
        out.next_seq = next;
        out.head = durable;
        if (schakel_wire_send_counted(b->router, &m->rid, "BATCH", m->req_id, &out.base, ZMQ_DONTWAIT,
                                      &peer->batches) != 0)
            broker_reply_dropped(b, "BATCH", m->req_id);
    }
    for (size_t i = 0; i < a.n; i++) {
        free(a.recs[i].hash.data);
        free(a.recs[i].event.data);
    }
    free(a.recs);
    free(a.ptrs);
    schakel__v1__fetch__free_unpacked(f, NULL);
}

void broker_serve_commit(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (body_over_cap(b, m, "COMMIT", COMMIT_BODY_MAX)) return;
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Commit *c = schakel__v1__commit__unpack(NULL, len, zmq_msg_data(&m->body));
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    /* the cursor's key is org/consumer/stream: a consumer name without '/'
     * and no organisation id under another's (the directory) keep it one
     * organisation's own */
    if (!c || !c->consumer[0] || strlen(c->consumer) > 80 || strchr(c->consumer, '/')) {
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                          "COMMIT needs a schakel.v1.Commit with a consumer name of 1 to 80 bytes "
                          "without '/'");
    } else if (strlen(c->stream) >= SCHAKEL_STREAM_MAX || !may_read(b, m->user, c->stream)) {
        /* as FETCH: no stream name is that long, and a cut one could share another's cursor */
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                          "cursor for a stream this organisation may not read");
    } else if (c->seq > h.seq) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r,
                 "seq %llu is beyond the head of the log, %llu: commit the last seq "
                 "you handled",
                 (unsigned long long)c->seq, (unsigned long long)h.seq);
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, r);
    } else {
        char name[256];
        snprintf(name, sizeof name, "%s/%s/%s", m->user, c->consumer, c->stream);
        int rc = schakel_store_cursor_set(b->store, name, c->seq);
        if (rc) broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, schakel_strerror(rc));
        else broker_send_reply(b, m, "COMMITTED", &c->base);
    }
    if (c) schakel__v1__commit__free_unpacked(c, NULL);
}

void broker_serve_ping(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (body_over_cap(b, m, "PING", PING_BODY_MAX)) return;
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Ping *p = schakel__v1__ping__unpack(NULL, len, zmq_msg_data(&m->body));
    if (!p) {
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                          "PING body does not decode as schakel.v1.Ping");
        return;
    }
    Schakel__V1__Pong pong = SCHAKEL__V1__PONG__INIT;
    pong.nonce = p->nonce;
    pong.head = schakel_store_durable_seq(b->store); /* never a record a power cut can take back */
    pong.now = schakel_wall_ms();
    pong.alarms = b->alarms;
    /* the broker's figures for the node's operator only: how many refusals
     * and how busy the bus is is not another organisation's business */
    Schakel__V1__BrokerStats stats = SCHAKEL__V1__BROKER_STATS__INIT;
    broker_stats_store_t store;
    if (strcmp(m->user, "broker") == 0) {
        broker_stats_fill(b, &stats, &store);
        pong.stats = &stats;
    }
    broker_send_reply(b, m, "PONG", &pong.base);
    schakel__v1__ping__free_unpacked(p, NULL);
}

/* Is the connection's CURVE key still its organisation's key in the
 * directory in force? ZAP checked it once, at the handshake; a
 * directory_update that replaced the key (or removed the organisation)
 * must also close the connections already open with the old one. Returns
 * 1 when it may go on, 0 when an ERROR was sent. */
int broker_key_current(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (strcmp(m->user, "broker") == 0) return 1; /* the node's own key: fixed while it runs */
    const schakel_org_t *org = schakel_directory_by_id(b->dir, m->user);
    if (org && strcmp(org->curve_public, m->key) == 0) return 1;
    char r[SCHAKEL_ERRLEN];
    unsigned long long v = (unsigned long long)schakel_directory_version(b->dir);
    if (!org)
        snprintf(r, sizeof r,
                 "%s is not in the directory in force (version %llu): its connections are closed", m->user,
                 v);
    else
        snprintf(r, sizeof r,
                 "the directory in force (version %llu) gives %s another CURVE key: connect again with it", v,
                 m->user);
    broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, r);
    return 0;
}

/* Checks the body of a FETCH, COMMIT, PING or ERASE over its full length before
 * it is unpacked (unknown fields, a NUL in a stream or consumer name);
 * larger bodies are left to the size check of each command. Returns 1 when
 * it may go on, 0 when an ERROR was sent. */
int broker_body_checked(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    const ProtobufCMessageDescriptor *d = !strcmp(m->name, "FETCH")    ? &schakel__v1__fetch__descriptor
                                          : !strcmp(m->name, "COMMIT") ? &schakel__v1__commit__descriptor
                                          : !strcmp(m->name, "PING")   ? &schakel__v1__ping__descriptor
                                          : !strcmp(m->name, "ERASE")  ? &schakel__v1__erase__descriptor
                                                                       : NULL;
    size_t len = zmq_msg_size(&m->body);
    /* over its cap, the command's handler answers REJECT_TOO_LARGE; an
     * ERASE from an organisation is refused for its sender, whatever its body */
    if (!d || len > (d == &schakel__v1__ping__descriptor ? 64u : 4096u) ||
        (d == &schakel__v1__erase__descriptor && strcmp(m->user, "broker") != 0))
        return 1;
    char why[SCHAKEL_ERRLEN], r[SCHAKEL_ERRLEN];
    int rc = schakel_codec_check(d, zmq_msg_data(&m->body), len, why);
    if (!rc) return 1;
    schakel_textf(r, sizeof r, "%s body: %s", m->name, why); /* a reason: cut to fit the reply */
    broker_send_error(b, m,
                      rc == SCHAKEL_EINVAL ? SCHAKEL__V1__REJECT_CODE__REJECT_INVALID
                                           : SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                      r);
    return 0;
}
