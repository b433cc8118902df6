/* Fuzzes the wire as the broker reads it (lib/wire.c, docs/protocol.md):
 * the input is cut into frames ([u16 little-endian length][bytes] each,
 * the last frame taking what is left), sent from a DEALER to a ROUTER
 * over a real ZeroMQ inproc pair, received with schakel_wire_recv (frame
 * count and name/id shape), and the body decoded as the broker decodes
 * it: Publish (8 MiB cap, 1..1024 events, each event decoded into an
 * arena and validated), Fetch and Commit (4096 bytes), Ping (64 bytes).
 * An ERROR answer goes back with schakel_wire_send and is read. CURVE is
 * left out: inproc has no handshake to fuzz, and what reaches the broker
 * after it is these frames. Property: no crash or sanitizer report; a
 * malformed command is refused, never half taken. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "arena.h"
#include "codec.h"
#include "error.h"
#include "validate.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *ctx, *router, *dealer;
static schakel_arena_t *arena;

static void setup(void)
{
    ctx = zmq_ctx_new();
    router = zmq_socket(ctx, ZMQ_ROUTER);
    dealer = zmq_socket(ctx, ZMQ_DEALER);
    if (!ctx || !router || !dealer || zmq_bind(router, "inproc://fuzz-wire") ||
        zmq_connect(dealer, "inproc://fuzz-wire"))
        abort();
    arena = schakel_arena_new(0);
}

static void body_as_broker(const schakel_wire_msg_t *m)
{
    size_t len = zmq_msg_size((zmq_msg_t *)&m->body);
    const uint8_t *body = zmq_msg_data((zmq_msg_t *)&m->body);
    char why[SCHAKEL_ERRLEN];
    if (!strcmp(m->name, "PUBLISH")) {
        if (len > SCHAKEL_MAX_FRAME_BYTES) return;
        Schakel__V1__Publish *p = schakel__v1__publish__unpack(schakel_arena_allocator(arena), len, body);
        if (!p || p->n_events == 0 || p->n_events > SCHAKEL_MAX_BATCH_EVENTS) return;
        uint8_t(*hashes)[SCHAKEL_SHA256_LEN] = calloc(p->n_events, sizeof *hashes);
        if (!hashes) abort();
        for (size_t i = 0; i < p->n_events; i++) {
            schakel_sha256(p->events[i].data, p->events[i].len, hashes[i]);
            schakel_envelope_t *e = schakel_envelope_decode_with(p->events[i].data, p->events[i].len,
                                                                 schakel_arena_allocator(arena), why);
            if (e && schakel_envelope_validate(e, why) != 0 && !why[0]) abort();
        }
        uint8_t digest[SCHAKEL_SHA256_LEN];
        schakel_batch_digest((const uint8_t(*)[SCHAKEL_SHA256_LEN])hashes, p->n_events, digest);
        free(hashes);
    } else if (!strcmp(m->name, "FETCH")) {
        Schakel__V1__Fetch *f = len <= 4096 ? schakel__v1__fetch__unpack(NULL, len, body) : NULL;
        if (f && strlen(f->stream) + strlen(f->consumer) == SIZE_MAX) abort();
        if (f) schakel__v1__fetch__free_unpacked(f, NULL);
    } else if (!strcmp(m->name, "COMMIT")) {
        Schakel__V1__Commit *c = len <= 4096 ? schakel__v1__commit__unpack(NULL, len, body) : NULL;
        if (c && strlen(c->stream) + strlen(c->consumer) == SIZE_MAX) abort();
        if (c) schakel__v1__commit__free_unpacked(c, NULL);
    } else if (!strcmp(m->name, "PING")) {
        Schakel__V1__Ping *p = len <= 64 ? schakel__v1__ping__unpack(NULL, len, body) : NULL;
        if (p) schakel__v1__ping__free_unpacked(p, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) setup();
    /* cut into at most 8 frames */
    size_t off = 0;
    int frames = 0;
    do {
        size_t n = size - off;
        if (frames < 7 && n >= 2) {
            size_t want = (size_t)data[off] | (size_t)data[off + 1] << 8;
            off += 2;
            n = size - off;
            if (want < n) n = want;
        }
        int last = off + n >= size || frames == 7;
        if (last) n = size - off;
        if (zmq_send(dealer, data + off, n, last ? 0 : ZMQ_SNDMORE) < 0) abort();
        off += n;
        frames++;
        if (last) break;
    } while (1);

    schakel_wire_msg_t m;
    int rc = schakel_wire_recv(router, 1, &m, 0);
    if (rc == SCHAKEL_EZMQ) abort();
    if (rc == 0) {
        if (m.frames != 3 || !m.name[0]) abort(); /* the shape the broker relies on: a name, no NUL */
        body_as_broker(&m);
    }
    /* the answer: ERROR to the routing id that came */
    Schakel__V1__Error err = SCHAKEL__V1__ERROR__INIT;
    err.reason = "fuzz";
    if (schakel_wire_send(router, &m.rid, "ERROR", m.req_id, &err.base, 0) != 0) abort();
    schakel_wire_close(&m);
    schakel_wire_msg_t back;
    if (schakel_wire_recv(dealer, 0, &back, 0) != 0 || strcmp(back.name, "ERROR") != 0) abort();
    schakel_wire_close(&back);
    schakel_arena_reset(arena);
    return 0;
}
