/* Publisher client: a window of signed batches in flight on one DEALER
 * socket, each resent with exponential backoff until its final ACK. A
 * socket monitor turns a refused CURVE handshake into SCHAKEL_EAUTH instead
 * of an endless silent retry. */
#include "client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "clock.h"
#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "logging.h"
#include "wire.h"

typedef struct {
    uint64_t req_id;
    uint8_t *frame; /* packed Publish */
    size_t len;
    int64_t due;
    int backoff;
    void *user;
    int used;
    int sent; /* ZeroMQ has taken the frame at least once */
} slot_t;

struct schakel_client {
    void *ctx, *sock, *call_sock, *mon;
    schakel_keys_t keys;
    char endpoint[256];
    char server[SCHAKEL_Z85_KEY_LEN + 1];
    int retry_ms, retry_max_ms;
    slot_t *slots;
    size_t window, inflight;
    uint64_t next_req;
    /* The socket monitor, read by a thread of its own (it alone touches
     * mon) so that the link to the broker is watched, and said in the log
     * when it happens, whatever the caller is doing: event=broker_lost
     * when a connection drops, event=broker_back with how long it was
     * gone, event=broker_unreachable once when no handshake succeeded in
     * SILENT_MS after the start. auth_failed is its verdict on the key. */
    pthread_t mon_thread;
    int mon_running, quiet_link;
    atomic_int mon_stop, auth_failed;
    int connected, ever_connected, said_silent;
    int64_t started_at, lost_at; /* mono ms; lost_at 0: not lost */
};

#define SILENT_MS 5000

static void *make_socket(schakel_client_t *c, int with_monitor)
{
    void *s = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!s) return NULL;
    int zero = 0, one = 1, hwm = 10000;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        schakel_wire_curve_client(s, &c->keys, c->server) != 0)
        goto fail;
    if (with_monitor) {
        /* A fresh name each time: an address of a destroyed client may
         * still be bound while ZeroMQ tears its monitor down. */
        static atomic_ulong monitors;
        char addr[64];
        snprintf(addr, sizeof addr, "inproc://schakel-client-mon-%lu", atomic_fetch_add(&monitors, 1));
        if (zmq_socket_monitor(s, addr,
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                   ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_MONITOR_STOPPED) != 0)
            goto fail;
        c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
        if (!c->mon || zmq_connect(c->mon, addr) != 0 ||
            zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero) != 0)
            goto fail;
    }
    if (zmq_connect(s, c->endpoint) != 0) goto fail;
    return s;
fail:
    (void)zmq_close(s); /* fails only on a bad socket */
    return NULL;
}

static void *monitor_main(void *arg);

schakel_client_t *schakel_client_new(void *ctx, const schakel_client_options_t *o, char *why)
{
    if (!o->keys || !o->keys->has_secret) {
        schakel_fail(why, SCHAKEL_EINVAL, "client needs an organisation's secret key file");
        return NULL;
    }
    if (!o->server_public || strlen(o->server_public) != SCHAKEL_Z85_KEY_LEN) {
        schakel_fail(why, SCHAKEL_EINVAL, "broker public key must be 40 Z85 characters");
        return NULL;
    }
    schakel_client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ctx = ctx;
    c->keys = *o->keys;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", o->endpoint);
    snprintf(c->server, sizeof c->server, "%s", o->server_public);
    c->retry_ms = o->retry_ms ? o->retry_ms : 1000;
    c->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : 8000;
    c->window = o->window ? o->window : 64;
    c->slots = calloc(c->window, sizeof *c->slots);
    if (schakel_random(&c->next_req, sizeof c->next_req) != 0) c->next_req = (uint64_t)schakel_mono_ms();
    c->next_req >>= 1;
    c->started_at = schakel_mono_ms();
    c->quiet_link = o->quiet_link;
    c->sock = c->slots ? make_socket(c, 1) : NULL;
    if (!c->sock) {
        schakel_fail(why, SCHAKEL_EZMQ, "cannot connect to %s: %s", o->endpoint, zmq_strerror(errno));
        schakel_client_destroy(&c);
        return NULL;
    }
    int err = pthread_create(&c->mon_thread, NULL, monitor_main, c);
    if (err) {
        schakel_fail(why, SCHAKEL_ENOMEM, "cannot start a thread: %s", strerror(err));
        schakel_client_destroy(&c);
        return NULL;
    }
    c->mon_running = 1;
    return c;
}

void schakel_client_destroy(schakel_client_t **self_p)
{
    schakel_client_t *c = *self_p;
    if (!c) return;
    if (c->mon_running) {
        atomic_store(&c->mon_stop, 1);
        /* its last event (MONITOR_STOPPED) wakes the monitor thread at once */
        if (c->sock) (void)zmq_socket_monitor(c->sock, NULL, 0); /* our own socket: cannot fail */
        (void)pthread_join(c->mon_thread, NULL);                 /* our own thread, joined once */
    }
    if (c->sock) {
        /* our own sockets: these fail only on a bad one */
        (void)zmq_socket_monitor(c->sock, NULL, 0);
        (void)zmq_close(c->sock);
    }
    if (c->mon) (void)zmq_close(c->mon);
    if (c->call_sock) (void)zmq_close(c->call_sock);
    for (size_t i = 0; c->slots && i < c->window; i++) free(c->slots[i].frame);
    free(c->slots);
    schakel_keys_wipe(&c->keys);
    free(c);
    *self_p = NULL;
}

size_t schakel_client_inflight(const schakel_client_t *c)
{
    return c->inflight;
}

/* Sends one slot's frame: 0, or -1 on EAGAIN (ZMQ_IMMEDIATE: no
 * connection has finished its handshake yet), and then it stays due. */
static int slot_send(schakel_client_t *c, slot_t *s, int64_t now)
{
    uint8_t id[8];
    schakel_put_be64(id, s->req_id);
    if (zmq_send(c->sock, "PUBLISH", 7, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        s->due = now + 50;
        return -1;
    }
    /* the first part was taken: ZeroMQ takes the rest of the message */
    (void)zmq_send(c->sock, id, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    (void)zmq_send(c->sock, s->frame, s->len, ZMQ_DONTWAIT);
    s->due = now + s->backoff;
    s->sent = 1;
    return 0;
}

/* Sends the batches ZeroMQ has not taken yet, oldest first, and stops at
 * the first it refuses: on a fresh connection the first batches wait for
 * the handshake, and a batch submitted after it must not overtake them
 * (the broker stores one connection's batches in the order they arrive). */
static void send_unsent(schakel_client_t *c, int64_t now)
{
    for (;;) {
        slot_t *first = NULL;
        for (size_t i = 0; i < c->window; i++) {
            slot_t *s = &c->slots[i];
            if (s->used && !s->sent && (!first || s->req_id < first->req_id)) first = s;
        }
        if (!first) return;
        if (slot_send(c, first, now) != 0) {
            for (size_t i = 0; i < c->window; i++) /* all wait for the same retry */
                if (c->slots[i].used && !c->slots[i].sent) c->slots[i].due = first->due;
            return;
        }
    }
}

static void slot_done(schakel_client_t *c, slot_t *s)
{
    free(s->frame);
    memset(s, 0, sizeof *s);
    c->inflight--;
}

static void check_monitor(schakel_client_t *c)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2) memcpy(&event, zmq_msg_data(&ev), 2);
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) { /* the address frame */
            zmq_msg_init(&ev);
            (void)zmq_msg_recv(&ev, c->mon, 0); /* the address: not needed, closed either way */
            zmq_msg_close(&ev);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            if (!atomic_load(&c->auth_failed))
                schakel_log(
                    SCHAKEL_LOG_ERROR, "client",
                    "event=auth_refused org=%s endpoint=%s hint=\"key not in the broker's directory\"",
                    c->keys.id, c->endpoint);
            atomic_store(&c->auth_failed, 1);
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            atomic_store(&c->auth_failed, 0);
            int64_t now = schakel_mono_ms();
            if ((c->lost_at || c->said_silent) && !c->quiet_link)
                schakel_log(SCHAKEL_LOG_INFO, "client", "event=broker_back org=%s endpoint=%s gone_ms=%lld",
                            c->keys.id, c->endpoint,
                            (long long)(now - (c->lost_at ? c->lost_at : c->started_at)));
            c->connected = c->ever_connected = 1;
            c->said_silent = 0;
            c->lost_at = 0;
        } else if (event == ZMQ_EVENT_DISCONNECTED && c->connected) {
            if (!c->quiet_link)
                schakel_log(SCHAKEL_LOG_WARN, "client", "event=broker_lost org=%s endpoint=%s", c->keys.id,
                            c->endpoint);
            c->connected = 0;
            c->lost_at = schakel_mono_ms();
        }
    }
}

/* A client that never reached the broker (a wrong endpoint, a broker not
 * started) says so once, instead of waiting in silence. */
static void check_silent(schakel_client_t *c)
{
    if (c->ever_connected || c->said_silent || c->quiet_link) return;
    int64_t waited = schakel_mono_ms() - c->started_at;
    if (waited < SILENT_MS) return;
    schakel_log(
        SCHAKEL_LOG_WARN, "client",
        "event=broker_unreachable org=%s endpoint=%s waited_ms=%lld hint=\"is the broker running at this "
        "endpoint?\"",
        c->keys.id, c->endpoint, (long long)waited);
    c->said_silent = 1;
}

static void *monitor_main(void *arg)
{
    schakel_client_t *c = arg;
    while (!atomic_load(&c->mon_stop)) {
        zmq_pollitem_t it = {c->mon, 0, ZMQ_POLLIN, 0};
        /* events wake it; the second is for check_silent (a client idles
         * most of the time: ten wake-ups a second in each of a region's
         * hundred adapters cost the node's cores) */
        int rc = zmq_poll(&it, 1, 1000);
        if (rc < 0 && errno == ETERM) break;
        if (rc > 0) check_monitor(c);
        check_silent(c);
    }
    return NULL;
}

static int is_retry(const Schakel__V1__Ack *a)
{
    if (a->batch_code == SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER) return 1;
    for (size_t i = 0; i < a->n_entries; i++)
        if (a->entries[i]->code == SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER) return 1;
    return 0;
}

static slot_t *find_slot(schakel_client_t *c, uint64_t req)
{
    for (size_t i = 0; i < c->window; i++)
        if (c->slots[i].used && c->slots[i].req_id == req) return &c->slots[i];
    return NULL;
}

static void handle_reply(schakel_client_t *c, schakel_wire_msg_t *m, schakel_ack_fn on_ack, void *arg)
{
    slot_t *s = find_slot(c, m->req_id);
    if (!s) return; /* a late answer to a batch already settled */
    Schakel__V1__Ack *ack = NULL;
    if (strcmp(m->name, "ACK") == 0) {
        ack = schakel__v1__ack__unpack(NULL, zmq_msg_size(&m->body), zmq_msg_data(&m->body));
    } else if (strcmp(m->name, "ERROR") == 0) {
        Schakel__V1__Error *e =
            schakel__v1__error__unpack(NULL, zmq_msg_size(&m->body), zmq_msg_data(&m->body));
        Schakel__V1__Ack fake = SCHAKEL__V1__ACK__INIT;
        fake.batch_code = e ? e->code : SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED;
        fake.batch_reason = e ? e->reason : (char *)"unreadable ERROR from broker";
        if (is_retry(&fake)) {
            s->due = schakel_mono_ms() + s->backoff;
        } else if (on_ack) {
            on_ack(arg, s->user, &fake);
            slot_done(c, s);
        } else {
            slot_done(c, s);
        }
        if (e) schakel__v1__error__free_unpacked(e, NULL);
        return;
    }
    if (!ack) return; /* unreadable: the resend timer will ask again */
    if (is_retry(ack)) {
        s->backoff = s->backoff * 2 > c->retry_max_ms ? c->retry_max_ms : s->backoff * 2;
        s->due = schakel_mono_ms() + s->backoff;
    } else {
        if (on_ack) on_ack(arg, s->user, ack);
        slot_done(c, s);
    }
    schakel__v1__ack__free_unpacked(ack, NULL);
}

/* Polls until nothing is in flight, the time is up, or (with
 * want_slot) the window has room again. */
static size_t poll_until(schakel_client_t *c, int timeout_ms, int want_slot, schakel_ack_fn on_ack, void *arg)
{
    int64_t end = schakel_mono_ms() + timeout_ms;
    for (;;) {
        int64_t now = schakel_mono_ms();
        int64_t wait = end - now;
        send_unsent(c, now);
        for (size_t i = 0; i < c->window; i++) {
            slot_t *s = &c->slots[i];
            if (!s->used) continue;
            if (s->sent && s->due <= now) { /* a resend: the broker answers a stored batch as duplicates */
                (void)slot_send(c, s, now); /* refused: due again in 50 ms */
                s->backoff = s->backoff * 2 > c->retry_max_ms ? c->retry_max_ms : s->backoff * 2;
            }
            if (s->due - now < wait) wait = s->due - now;
        }
        if (wait < 0) wait = 0;
        zmq_pollitem_t it[1] = {{c->sock, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(it, 1, (long)wait);
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN)) {
            for (;;) {
                schakel_wire_msg_t m;
                int r = schakel_wire_recv(c->sock, 0, &m, ZMQ_DONTWAIT);
                if (r == 0) handle_reply(c, &m, on_ack, arg);
                schakel_wire_close(&m);
                if (r == SCHAKEL_EZMQ) break;
            }
        }
        if (c->inflight == 0 || schakel_mono_ms() >= end) break;
        if (want_slot && c->inflight < c->window) break;
        if (rc < 0 && errno == ETERM) break;
    }
    return c->inflight;
}

size_t schakel_client_poll(schakel_client_t *c, int timeout_ms, schakel_ack_fn on_ack, void *arg)
{
    return poll_until(c, timeout_ms, 0, on_ack, arg);
}

int schakel_client_submit(schakel_client_t *c, const uint8_t *const *events, const size_t *lens, size_t n,
                          void *batch_user, schakel_ack_fn on_ack, void *arg)
{
    if (n == 0 || n > SCHAKEL_MAX_BATCH_EVENTS) return SCHAKEL_ETOOBIG;
    while (c->inflight >= c->window) poll_until(c, 100, 1, on_ack, arg);
    uint8_t(*hashes)[SCHAKEL_SHA256_LEN] = malloc(n * sizeof *hashes);
    ProtobufCBinaryData *evs = malloc(n * sizeof *evs);
    if (!hashes || !evs) {
        free(hashes);
        free(evs);
        return SCHAKEL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > SCHAKEL_MAX_DIRECTORY_BYTES) { /* the broker checks per type */
            free(hashes);
            free(evs);
            return SCHAKEL_ETOOBIG;
        }
        schakel_sha256(events[i], lens[i], hashes[i]);
        evs[i].data = (uint8_t *)events[i];
        evs[i].len = lens[i];
    }
    uint8_t digest[SCHAKEL_SHA256_LEN], sig[SCHAKEL_ED25519_SIG_LEN];
    schakel_batch_digest((const uint8_t(*)[SCHAKEL_SHA256_LEN])hashes, n, digest);
    free(hashes);
    if (schakel_ed25519_sign(c->keys.sign_secret, digest, sizeof digest, sig) != 0) {
        free(evs);
        return SCHAKEL_ECRYPTO;
    }
    Schakel__V1__Publish pub = SCHAKEL__V1__PUBLISH__INIT;
    pub.n_events = n;
    pub.events = evs;
    pub.signature.data = sig;
    pub.signature.len = sizeof sig;
    size_t len = schakel__v1__publish__get_packed_size(&pub);
    if (len > SCHAKEL_MAX_FRAME_BYTES) {
        free(evs);
        return SCHAKEL_ETOOBIG;
    }
    slot_t *s = NULL;
    for (size_t i = 0; i < c->window && !s; i++)
        if (!c->slots[i].used) s = &c->slots[i];
    if (!s) { /* the callers wait for a free slot first; never write past the window */
        free(evs);
        return SCHAKEL_EINVAL;
    }
    s->frame = malloc(len);
    if (!s->frame) {
        free(evs);
        return SCHAKEL_ENOMEM;
    }
    schakel__v1__publish__pack(&pub, s->frame);
    free(evs);
    s->len = len;
    s->req_id = ++c->next_req;
    s->user = batch_user;
    s->used = 1;
    s->backoff = c->retry_ms;
    s->sent = 0;
    c->inflight++;
    send_unsent(c, schakel_mono_ms());
    return 0;
}

typedef struct {
    void *want;
    Schakel__V1__Ack *copy;
} sync_t;

static void sync_ack(void *arg, void *user, const Schakel__V1__Ack *ack)
{
    sync_t *st = arg;
    if (user != st->want) return;
    size_t len = schakel__v1__ack__get_packed_size(ack);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return;
    schakel__v1__ack__pack(ack, buf);
    st->copy = schakel__v1__ack__unpack(NULL, len, buf);
    free(buf);
}

int schakel_client_publish(schakel_client_t *c, const uint8_t *const *events, const size_t *lens, size_t n,
                           Schakel__V1__Ack **ack_out, int timeout_ms)
{
    sync_t st = {&st, NULL};
    int rc = schakel_client_submit(c, events, lens, n, &st, sync_ack, &st);
    if (rc) return rc;
    int64_t end = schakel_mono_ms() + timeout_ms;
    while (!st.copy && schakel_mono_ms() < end) {
        schakel_client_poll(c, (int)(end - schakel_mono_ms() > 100 ? 100 : end - schakel_mono_ms()), sync_ack,
                            &st);
        if (atomic_load(&c->auth_failed)) break;
    }
    if (!st.copy) {
        /* give up on this batch: drop it from the window */
        for (size_t i = 0; i < c->window; i++)
            if (c->slots[i].used && c->slots[i].user == &st) slot_done(c, &c->slots[i]);
        return atomic_load(&c->auth_failed) ? SCHAKEL_EAUTH : SCHAKEL_ETIMEOUT;
    }
    *ack_out = st.copy;
    return 0;
}

int schakel_client_call(schakel_client_t *c, const char *name, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                        int timeout_ms, char *why)
{
    return schakel_client_call_with(c, name, req, reply_desc, NULL, reply, timeout_ms, why);
}

int schakel_client_call_with(schakel_client_t *c, const char *name, const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *reply_desc, ProtobufCAllocator *alloc,
                             ProtobufCMessage **reply, int timeout_ms, char *why)
{
    *reply = NULL;
    if (!c->call_sock && !(c->call_sock = make_socket(c, 0)))
        return schakel_fail(why, SCHAKEL_EZMQ, "cannot connect to %s", c->endpoint);
    uint64_t id = ++c->next_req;
    int64_t end = schakel_mono_ms() + timeout_ms;
    int sent = 0;
    while (schakel_mono_ms() < end) {
        if (!sent) {
            if (schakel_wire_send(c->call_sock, NULL, name, id, req, ZMQ_DONTWAIT) == 0) sent = 1;
        }
        zmq_pollitem_t it = {c->call_sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, sent ? 100 : 20) <= 0) {
            if (atomic_load(&c->auth_failed))
                return schakel_fail(why, SCHAKEL_EAUTH, "broker refused key of %s", c->keys.id);
            continue;
        }
        schakel_wire_msg_t m;
        int r = schakel_wire_recv(c->call_sock, 0, &m, ZMQ_DONTWAIT);
        int ret = -1;
        if (r == 0 && m.req_id == id) {
            const uint8_t *d = zmq_msg_data(&m.body);
            size_t len = zmq_msg_size(&m.body);
            if (strcmp(m.name, "ERROR") == 0) {
                Schakel__V1__Error *e = schakel__v1__error__unpack(NULL, len, d);
                ret = schakel_fail(why, SCHAKEL_EREJECTED, "%s", e ? e->reason : "unreadable ERROR");
                if (e) schakel__v1__error__free_unpacked(e, NULL);
            } else {
                *reply = protobuf_c_message_unpack(reply_desc, alloc, len, d);
                ret = *reply ? 0 : schakel_fail(why, SCHAKEL_EDECODE, "%s reply does not decode", m.name);
            }
        }
        schakel_wire_close(&m);
        if (ret != -1) return ret;
    }
    return schakel_fail(why, SCHAKEL_ETIMEOUT, "no answer to %s from %s within %d ms", name, c->endpoint,
                        timeout_ms);
}
