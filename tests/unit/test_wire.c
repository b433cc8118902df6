/* The wire (lib/wire.c, docs/protocol.md) over a real ZeroMQ inproc pair,
 * DEALER to ROUTER as a client talks to the broker: a command is exactly
 * [name][8-byte big-endian request id][body]. Hostile shapes (too few or
 * too many frames, an empty, oversized or NUL-bearing name, a request id
 * of the wrong length) are refused with SCHAKEL_EDECODE, consumed whole,
 * and the routing id kept so that the broker can answer; the next command
 * on the socket is read as if nothing had happened. The framing carries no
 * version of its own: an unknown command name is passed up as it is, for
 * the broker to answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "error.h"
#include "schakel/v1/bus.pb-c.h"
#include "wire.h"

typedef struct {
    void *ctx, *router, *dealer;
} pair_t;

static int setup(void **state)
{
    static int n;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-wire-%d", n++);
    pair_t *p = calloc(1, sizeof *p);
    p->ctx = zmq_ctx_new();
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    int timeout = 2000; /* a test that waits for a frame that never comes fails, not hangs */
    zmq_setsockopt(p->router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(p->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_bind(p->router, ep) || zmq_connect(p->dealer, ep)) return -1;
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    pair_t *p = *state;
    int zero = 0;
    zmq_setsockopt(p->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
    free(p);
    return 0;
}

/* Sends raw frames from the dealer: n frames of the given bytes. */
static void send_frames(pair_t *p, size_t n, const void *const *data, const size_t *len)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(zmq_send(p->dealer, data[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0), (int)len[i]);
}

/* A well-formed PING from the dealer, read at the router: the socket is
 * still in step after whatever came before. */
static void ping_is_read(pair_t *p, uint64_t req_id)
{
    Schakel__V1__Ping ping = SCHAKEL__V1__PING__INIT;
    assert_int_equal(schakel_wire_send(p->dealer, NULL, "PING", req_id, &ping.base, 0), 0);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(p->router, 1, &m, 0), 0);
    assert_string_equal(m.name, "PING");
    assert_true(m.req_id == req_id);
    assert_int_equal(m.frames, 3);
    schakel_wire_close(&m);
}

/* Sends raw frames and expects them refused as a whole, the routing id
 * kept; then a good command still reads. */
static void refused(pair_t *p, size_t n, const void *const *data, const size_t *len, int frames)
{
    send_frames(p, n, data, len);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(p->router, 1, &m, 0), SCHAKEL_EDECODE);
    assert_int_equal(m.frames, frames);
    assert_true(zmq_msg_size(&m.rid) > 0); /* the broker can still answer who sent it */
    schakel_wire_close(&m);
    ping_is_read(p, 77);
}

static void a_command_travels_whole_both_ways(void **state)
{
    pair_t *p = *state;
    Schakel__V1__Fetch f = SCHAKEL__V1__FETCH__INIT;
    f.stream = "org/wijkteam-noord";
    f.from_seq = 42;
    f.max_count = 7;
    uint64_t id = 0x0102030405060708ULL;
    assert_int_equal(schakel_wire_send(p->dealer, NULL, "FETCH", id, &f.base, 0), 0);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(p->router, 1, &m, 0), 0);
    assert_string_equal(m.name, "FETCH");
    assert_true(m.req_id == id);
    assert_int_equal(m.frames, 3);
    Schakel__V1__Fetch *back = schakel__v1__fetch__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    assert_non_null(back);
    assert_string_equal(back->stream, "org/wijkteam-noord");
    assert_true(back->from_seq == 42 && back->max_count == 7);
    schakel__v1__fetch__free_unpacked(back, NULL);

    /* the answer goes back to that peer by its routing id */
    Schakel__V1__Ping pong = SCHAKEL__V1__PING__INIT;
    assert_int_equal(schakel_wire_send(p->router, &m.rid, "PONG", id, &pong.base, 0), 0);
    schakel_wire_close(&m);
    assert_int_equal(schakel_wire_recv(p->dealer, 0, &m, 0), 0);
    assert_string_equal(m.name, "PONG");
    assert_true(m.req_id == id);
    assert_int_equal(zmq_msg_size(&m.body), 0); /* an empty message packs to no bytes */
    schakel_wire_close(&m);
}

static void the_request_id_is_big_endian_on_the_wire(void **state)
{
    pair_t *p = *state;
    const uint8_t id[8] = {0x80, 0, 0, 0, 0, 0, 0x01, 0xff};
    const void *data[] = {"PING", id, ""};
    const size_t len[] = {4, 8, 0};
    send_frames(p, 3, data, len);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(p->router, 1, &m, 0), 0);
    assert_true(m.req_id == 0x80000000000001ffULL);
    schakel_wire_close(&m);
    /* and the sender writes it so */
    Schakel__V1__Ping ping = SCHAKEL__V1__PING__INIT;
    assert_int_equal(schakel_wire_send(p->dealer, NULL, "PING", 0x0a0b0c0d0e0f1011ULL, &ping.base, 0), 0);
    zmq_msg_t f;
    zmq_msg_init(&f);
    assert_true(zmq_msg_recv(&f, p->router, 0) > 0); /* routing id */
    assert_true(zmq_msg_recv(&f, p->router, 0) == 4);
    assert_true(zmq_msg_recv(&f, p->router, 0) == 8);
    const uint8_t want[8] = {0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11};
    assert_memory_equal(zmq_msg_data(&f), want, 8);
    assert_true(zmq_msg_recv(&f, p->router, 0) == 0);
    zmq_msg_close(&f);
}

static void truncated_commands_are_refused(void **state)
{
    pair_t *p = *state;
    const uint8_t id[8] = {0};
    const void *one[] = {"PING"};
    const size_t one_len[] = {4};
    refused(p, 1, one, one_len, 1);
    const void *two[] = {"PING", id};
    const size_t two_len[] = {4, 8};
    refused(p, 2, two, two_len, 2);
    /* a routing id alone, no frame after it, cannot come from a DEALER;
     * an empty single frame can */
    const void *empty[] = {""};
    const size_t empty_len[] = {0};
    refused(p, 1, empty, empty_len, 1);
}

static void extra_frames_are_drained_and_refused(void **state)
{
    pair_t *p = *state;
    const uint8_t id[8] = {0};
    const void *four[] = {"PING", id, "", "smuggled"};
    const size_t four_len[] = {4, 8, 0, 8};
    refused(p, 4, four, four_len, 4);
    const void *many[12];
    size_t many_len[12];
    for (int i = 0; i < 12; i++) {
        many[i] = i == 0 ? "PING" : (const void *)id;
        many_len[i] = i == 0 ? 4 : 8;
    }
    refused(p, 12, many, many_len, 12);
}

static void bad_names_are_refused(void **state)
{
    pair_t *p = *state;
    const uint8_t id[8] = {0};
    /* empty */
    const void *a[] = {"", id, ""};
    const size_t a_len[] = {0, 8, 0};
    refused(p, 3, a, a_len, 3);
    /* one byte over SCHAKEL_CMD_MAX, and far over */
    char big[4096];
    memset(big, 'P', sizeof big);
    const void *b[] = {big, id, ""};
    size_t b_len[] = {SCHAKEL_CMD_MAX + 1, 8, 0};
    refused(p, 3, b, b_len, 3);
    b_len[0] = sizeof big;
    refused(p, 3, b, b_len, 3);
    /* a NUL inside would make "PING\0xx" read as PING */
    const void *c[] = {"PING\0xx", id, ""};
    const size_t c_len[] = {7, 8, 0};
    refused(p, 3, c, c_len, 3);
    /* exactly SCHAKEL_CMD_MAX bytes fits, and an unknown name is the
     * broker's to answer, not the wire's */
    b_len[0] = SCHAKEL_CMD_MAX;
    send_frames(p, 3, b, b_len);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(p->router, 1, &m, 0), 0);
    assert_int_equal(strlen(m.name), SCHAKEL_CMD_MAX);
    schakel_wire_close(&m);
}

static void request_ids_of_the_wrong_length_are_refused(void **state)
{
    pair_t *p = *state;
    const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const size_t lens[] = {0, 1, 7, 9, 16};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const void *d[] = {"PING", id, ""};
        const size_t l[] = {4, lens[i], 0};
        refused(p, 3, d, l, 3);
    }
}

/* The wire does not cap the body: the broker does, per command, before it
 * decodes (docs/protocol.md). It must arrive whole and unchanged. */
static void a_large_body_arrives_whole(void **state)
{
    pair_t *p = *state;
    size_t n = 9u << 20;
    uint8_t *body = malloc(n);
    for (size_t i = 0; i < n; i++) body[i] = (uint8_t)(i * 7);
    const uint8_t id[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    const void *d[] = {"PUBLISH", id, body};
    const size_t l[] = {7, 8, n};
    send_frames(p, 3, d, l);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(p->router, 1, &m, 0), 0);
    assert_string_equal(m.name, "PUBLISH");
    assert_int_equal(zmq_msg_size(&m.body), n);
    assert_memory_equal(zmq_msg_data(&m.body), body, n);
    schakel_wire_close(&m);
    free(body);
}

/* schakel_wire_send_counted: the counter says how many replies ZeroMQ
 * still holds, and falls back to 0 once the peer has taken them. */
static void counted_replies_are_uncounted_when_taken(void **state)
{
    pair_t *p = *state;
    ping_is_read(p, 1); /* the router knows the dealer's routing id now */
    Schakel__V1__Ping ping = SCHAKEL__V1__PING__INIT;
    assert_int_equal(schakel_wire_send(p->dealer, NULL, "PING", 2, &ping.base, 0), 0);
    schakel_wire_msg_t in;
    assert_int_equal(schakel_wire_recv(p->router, 1, &in, 0), 0);
    atomic_uint unread = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            schakel_wire_send_counted(p->router, &in.rid, "PONG", (uint64_t)i, &ping.base, 0, &unread), 0);
    schakel_wire_close(&in);
    assert_int_equal(atomic_load(&unread), 3);
    for (int i = 0; i < 3; i++) {
        schakel_wire_msg_t m;
        assert_int_equal(schakel_wire_recv(p->dealer, 0, &m, 0), 0);
        assert_true(m.req_id == (uint64_t)i);
        schakel_wire_close(&m);
    }
    assert_int_equal(atomic_load(&unread), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_command_travels_whole_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(the_request_id_is_big_endian_on_the_wire, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_commands_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(extra_frames_are_drained_and_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_names_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(request_ids_of_the_wrong_length_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_large_body_arrives_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(counted_replies_are_uncounted_when_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
