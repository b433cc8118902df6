/* Framing of schakel commands on ZeroMQ sockets and CURVE set-up. Frames
 * are checked for count and size here so that the broker never decodes a
 * body that came with a malformed envelope of frames. */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "logging.h"

int schakel_wire_curve_server(void *sock, const schakel_keys_t *keys)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "schakel", 7) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, keys->curve_secret, SCHAKEL_Z85_KEY_LEN + 1))
        return SCHAKEL_EZMQ;
    return 0;
}

int schakel_wire_curve_client(void *sock, const schakel_keys_t *keys, const char *server_z85)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_z85, SCHAKEL_Z85_KEY_LEN + 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, keys->curve_public, SCHAKEL_Z85_KEY_LEN + 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, keys->curve_secret, SCHAKEL_Z85_KEY_LEN + 1))
        return SCHAKEL_EZMQ;
    return 0;
}

static void free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Frees a counted body and says so to its counter. Runs in whichever
 * thread drops the last reference: ZeroMQ's I/O thread, or the sender's on
 * a failed send. */
static void free_counted(void *data, void *hint)
{
    free(data);
    atomic_fetch_sub((atomic_uint *)hint, 1);
}

static int send_msg(void *sock, zmq_msg_t *rid, const char *name, uint64_t req_id,
                    const ProtobufCMessage *msg, int flags, atomic_uint *unread)
{
    uint8_t id[8];
    schakel_put_be64(id, req_id);
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return SCHAKEL_ENOMEM;
    protobuf_c_message_pack(msg, buf);
    zmq_msg_t body;
    if (unread) {
        atomic_fetch_add(unread, 1);
        if (zmq_msg_init_data(&body, buf, len, free_counted, unread) != 0) {
            atomic_fetch_sub(unread, 1);
            free(buf);
            return SCHAKEL_ENOMEM;
        }
    } else if (zmq_msg_init_data(&body, buf, len, free_buf, NULL) != 0) {
        free(buf);
        return SCHAKEL_ENOMEM;
    }
    if (rid) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        if (zmq_msg_copy(&copy, rid) != 0 || zmq_msg_send(&copy, sock, ZMQ_SNDMORE | flags) < 0) {
            int e = errno;
            zmq_msg_close(&copy);
            zmq_msg_close(&body);
            errno = e;
            return SCHAKEL_EZMQ;
        }
    }
    if (zmq_send(sock, name, strlen(name), ZMQ_SNDMORE | flags) < 0 ||
        zmq_send(sock, id, 8, ZMQ_SNDMORE | flags) < 0 || zmq_msg_send(&body, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&body);
        errno = e;
        return SCHAKEL_EZMQ;
    }
    return 0;
}

int schakel_wire_send(void *sock, zmq_msg_t *rid, const char *name, uint64_t req_id,
                      const ProtobufCMessage *msg, int flags)
{
    return send_msg(sock, rid, name, req_id, msg, flags, NULL);
}

int schakel_wire_send_counted(void *sock, zmq_msg_t *rid, const char *name, uint64_t req_id,
                              const ProtobufCMessage *msg, int flags, atomic_uint *unread)
{
    return send_msg(sock, rid, name, req_id, msg, flags, unread);
}

static int more(void *sock)
{
    int m = 0;
    size_t sz = sizeof m;
    (void)zmq_getsockopt(sock, ZMQ_RCVMORE, &m, &sz); /* fails on a closed socket only: no more parts */
    return m;
}

int schakel_wire_recv(void *sock, int with_rid, schakel_wire_msg_t *m, int flags)
{
    memset(m, 0, sizeof *m);
    zmq_msg_init(&m->rid);
    zmq_msg_init(&m->body);
    m->has_rid = m->has_body = 1;
    int rc = 0;
    if (with_rid && zmq_msg_recv(&m->rid, sock, flags) < 0) return SCHAKEL_EZMQ;
    if (with_rid && !more(sock)) return SCHAKEL_EDECODE;
    /* The remaining frames: name, id, body; anything else is drained. */
    for (int i = 0;; i++) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, with_rid ? 0 : flags) < 0) {
            zmq_msg_close(&f);
            return SCHAKEL_EZMQ;
        }
        int has_more = zmq_msg_more(&f);
        m->frames++;
        if (i == 0) {
            const char *u = zmq_msg_gets(&f, "User-Id");
            if (u) {
                size_t ul = strnlen(u, SCHAKEL_ID_MAX - 1);
                memcpy(m->user, u, ul);
                m->user[ul] = 0;
            }
            const char *k = zmq_msg_gets(&f, "X-Curve-Key");
            if (k && strlen(k) == SCHAKEL_Z85_KEY_LEN) memcpy(m->key, k, SCHAKEL_Z85_KEY_LEN + 1);
            size_t n = zmq_msg_size(&f);
            /* a NUL inside would make "PING\0xx" read as PING */
            if (n == 0 || n > SCHAKEL_CMD_MAX || memchr(zmq_msg_data(&f), 0, n)) rc = SCHAKEL_EDECODE;
            else memcpy(m->name, zmq_msg_data(&f), n);
            zmq_msg_close(&f);
        } else if (i == 1) {
            if (zmq_msg_size(&f) != 8) rc = SCHAKEL_EDECODE;
            else {
                const uint8_t *d = zmq_msg_data(&f);
                m->req_id = schakel_get_be64(d);
            }
            zmq_msg_close(&f);
        } else if (i == 2) {
            (void)zmq_msg_move(&m->body, &f); /* both initialised: cannot fail */
            zmq_msg_close(&f);
        } else {
            zmq_msg_close(&f);
        }
        if (!has_more) break;
    }
    if (m->frames != 3) rc = SCHAKEL_EDECODE;
    (void)errno;
    return rc;
}

void schakel_wire_ctx_term(void *ctx)
{
    int rc;
    while ((rc = zmq_ctx_term(ctx)) != 0 && errno == EINTR) continue;
    if (rc != 0)
        schakel_log(SCHAKEL_LOG_ERROR, "wire", "event=ctx_term_failed reason=\"%s\"", zmq_strerror(errno));
}

void schakel_wire_close(schakel_wire_msg_t *m)
{
    if (m->has_rid) zmq_msg_close(&m->rid);
    if (m->has_body) zmq_msg_close(&m->body);
    m->has_rid = m->has_body = 0;
}
