/* Consumer: FETCH in batches from a cursor; SUB on the stream's topic to
 * wake up when the head moves. Or, in the broker's own process, the same
 * batches read from its store up to the durable head, woken when that
 * moves (schakel_consumer_local_new). */
#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "arena.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "store.h"
#include "wire.h"

/* As the broker's FETCH answers a FETCH with no max_bytes (its
 * FETCH_MAX_BYTES): batches end where FETCH's would. */
#define LOCAL_MAX_BYTES (4u << 20)

struct schakel_consumer {
    schakel_store_t *store; /* local: the broker's store; no client then */
    schakel_client_t *client;
    void *sub;
    char stream[96];
    char consumer[96];
    uint64_t next; /* 0: ask the broker to start after the cursor */
    uint32_t batch_size;
    Schakel__V1__Batch *batch; /* in arena */
    schakel_arena_t *arena;    /* the batch: one reset instead of a free per field */
    size_t pos;
    uint64_t head;
    int idle_ms;             /* the longest wait for a notification between FETCHes */
    schakel_type_set_t skip; /* local: types handed without their payload */
};

schakel_consumer_t *schakel_consumer_new(void *ctx, const schakel_consumer_options_t *o, char *why)
{
    schakel_consumer_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    schakel_client_options_t co = {0};
    co.endpoint = o->endpoint;
    co.server_public = o->server_public;
    co.keys = o->keys;
    co.window = 1;
    co.quiet_link = 1; /* a service's publishing client says it, once per process */
    c->client = schakel_client_new(ctx, &co, why);
    if (!c->client) goto fail;
    c->arena = schakel_arena_new(0);
    if (!c->arena) {
        schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(c->stream, sizeof c->stream, "%s", o->stream);
    if (o->consumer) snprintf(c->consumer, sizeof c->consumer, "%s", o->consumer);
    c->next = o->from_seq ? o->from_seq : (o->consumer ? 0 : 1);
    c->batch_size = o->batch ? o->batch : 500;
    c->idle_ms = o->idle_fetch_ms > 60000 ? 60000 : (int)o->idle_fetch_ms;
    if (o->pub_endpoint) {
        c->sub = zmq_socket(ctx, ZMQ_SUB);
        int zero = 0;
        if (!c->sub || zmq_setsockopt(c->sub, ZMQ_LINGER, &zero, sizeof zero) ||
            schakel_wire_curve_client(c->sub, o->keys, o->server_public) ||
            zmq_setsockopt(c->sub, ZMQ_SUBSCRIBE, c->stream, strlen(c->stream)) ||
            zmq_connect(c->sub, o->pub_endpoint)) {
            schakel_fail(why, SCHAKEL_EZMQ, "cannot subscribe to %s", o->pub_endpoint);
            goto fail;
        }
    }
    return c;
fail:
    schakel_consumer_destroy(&c);
    return NULL;
}

void schakel_consumer_destroy(schakel_consumer_t **self_p)
{
    schakel_consumer_t *c = *self_p;
    if (!c) return;
    schakel_arena_destroy(&c->arena);
    if (c->sub) (void)zmq_close(c->sub); /* fails only on a bad socket */
    schakel_client_destroy(&c->client);
    free(c);
    *self_p = NULL;
}

/* Drains notifications; returns 1 if any arrived. */
static int drain_sub(schakel_consumer_t *c, int timeout_ms)
{
    if (!c->sub) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        (void)nanosleep(&ts, NULL); /* a signal cutting the wait short is harmless */
        return 0;
    }
    zmq_pollitem_t it = {c->sub, 0, ZMQ_POLLIN, 0};
    int got = 0;
    if (zmq_poll(&it, 1, timeout_ms) <= 0) return 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc = zmq_msg_recv(&m, c->sub, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (rc < 0) break;
        got = 1;
    }
    return got;
}

schakel_consumer_t *schakel_consumer_local_new(schakel_store_t *store, const char *stream, uint64_t from_seq,
                                               uint32_t batch, char *why)
{
    schakel_consumer_t *c = calloc(1, sizeof *c);
    if (c) c->arena = schakel_arena_new(0);
    if (!c || !c->arena) {
        if (c) schakel_consumer_destroy(&c);
        schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        return NULL;
    }
    c->store = store;
    snprintf(c->stream, sizeof c->stream, "%s", stream);
    c->next = from_seq ? from_seq : 1;
    c->batch_size = batch ? batch : 500;
    return c;
}

void schakel_consumer_skip(schakel_consumer_t *c, const schakel_type_set_t *skip)
{
    c->skip = *skip;
}

typedef struct {
    schakel_consumer_t *c;
    Schakel__V1__Delivered **recs;
    size_t n;
} local_fill_t;

static void *arena_copy(schakel_arena_t *a, const void *p, size_t n)
{
    void *q = schakel_arena_alloc(a, n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

/* One record as FETCH puts it in a BATCH (serve.c, fetch_cb): an erased
 * record's event is empty. */
static int local_cb(void *arg, const schakel_record_t *rec)
{
    local_fill_t *f = arg;
    schakel_arena_t *a = f->c->arena;
    Schakel__V1__Delivered *d = schakel_arena_alloc(a, sizeof *d);
    if (!d) return SCHAKEL_ENOMEM;
    schakel__v1__delivered__init(d);
    d->seq = rec->seq;
    d->position = rec->position;
    d->recorded_at = rec->recorded_at;
    d->hash.data = arena_copy(a, rec->hash, 32);
    d->hash.len = 32;
    if (rec->event) {
        d->event.data = arena_copy(a, rec->event, rec->event_len);
        d->event.len = rec->event_len;
    }
    if (!d->hash.data || (rec->event && !d->event.data)) return SCHAKEL_ENOMEM;
    f->recs[f->n++] = d;
    return 0;
}

/* A batch from the store, no further than the durable head. */
static int fetch_local(schakel_consumer_t *c, char *why)
{
    c->batch = NULL;
    schakel_arena_reset(c->arena);
    Schakel__V1__Batch *b = schakel_arena_alloc(c->arena, sizeof *b);
    local_fill_t f = {c, schakel_arena_alloc(c->arena, c->batch_size * sizeof *f.recs), 0};
    if (!b || !f.recs) {
        schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        return SCHAKEL_ENOMEM;
    }
    schakel__v1__batch__init(b);
    uint64_t durable = schakel_store_durable_seq(c->store), next = c->next;
    int rc = schakel_store_read_upto_skip(c->store, c->stream, c->next, durable, c->batch_size,
                                          LOCAL_MAX_BYTES, &c->skip, local_cb, &f, &next);
    if (rc < 0) {
        schakel_fail(why, rc, "cannot read the log: %s", schakel_strerror(rc));
        return rc;
    }
    b->records = f.recs;
    b->n_records = f.n;
    b->next_seq = next;
    b->head = durable;
    c->batch = b;
    c->pos = 0;
    c->head = durable;
    if (next > c->next) c->next = next;
    return 0;
}

static int fetch(schakel_consumer_t *c, char *why)
{
    if (c->store) return fetch_local(c, why);
    Schakel__V1__Fetch f = SCHAKEL__V1__FETCH__INIT;
    f.stream = c->stream;
    f.from_seq = c->next;
    f.max_count = c->batch_size;
    f.consumer = c->consumer;
    ProtobufCMessage *reply = NULL;
    /* the records of the last batch were all handed out, and each is
     * valid only until the next call: the batch's arena is free again */
    c->batch = NULL;
    schakel_arena_reset(c->arena);
    int rc = schakel_client_call_with(c->client, "FETCH", &f.base, &schakel__v1__batch__descriptor,
                                      schakel_arena_allocator(c->arena), &reply, 5000, why);
    if (rc) return rc;
    c->batch = (Schakel__V1__Batch *)reply;
    c->pos = 0;
    c->head = c->batch->head;
    if (c->batch->next_seq > c->next) c->next = c->batch->next_seq;
    if (c->next == 0) c->next = 1;
    return 0;
}

int schakel_consumer_next(schakel_consumer_t *c, const Schakel__V1__Delivered **rec, int timeout_ms,
                          char *why)
{
    int64_t end = schakel_mono_ms() + timeout_ms;
    for (;;) {
        if (c->batch && c->pos < c->batch->n_records) {
            *rec = c->batch->records[c->pos++];
            return 0;
        }
        int rc = fetch(c, why);
        if (rc == 0 && c->batch->n_records > 0) continue;
        if (rc != 0 && rc != SCHAKEL_ETIMEOUT) return rc;
        int64_t left = end - schakel_mono_ms();
        if (left <= 0) return SCHAKEL_ETIMEOUT;
        /* Sleep until the head moves (or idle_ms, 250 ms by default, in case a wake-up was lost). */
        int idle = c->idle_ms > 0 ? c->idle_ms : 250;
        if (c->store) (void)schakel_store_wait_durable(c->store, c->head, (int)(left < 250 ? left : 250));
        else drain_sub(c, (int)(left < idle ? left : idle));
    }
}

int schakel_consumer_commit(schakel_consumer_t *c, uint64_t seq, char *why)
{
    if (!c->consumer[0])
        return schakel_fail(why, SCHAKEL_EINVAL, "consumer has no cursor name"); /* a local one has none */
    Schakel__V1__Commit m = SCHAKEL__V1__COMMIT__INIT;
    m.stream = c->stream;
    m.consumer = c->consumer;
    m.seq = seq;
    ProtobufCMessage *reply = NULL;
    int rc = schakel_client_call(c->client, "COMMIT", &m.base, &schakel__v1__commit__descriptor, &reply, 5000,
                                 why);
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
    return rc;
}

uint64_t schakel_consumer_head(const schakel_consumer_t *c)
{
    return c->head;
}
