/* The wire: how commands travel over ZeroMQ. A command is three frames,
 * [name][request id: 8 bytes big-endian][protobuf body]; a ROUTER sees the
 * peer's routing id in front. Also the CURVE set-up every socket needs. */
#ifndef SCHAKEL_WIRE_H
#define SCHAKEL_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdint.h>
#include <zmq.h>

#include "keys.h"
#include "error.h"

#define SCHAKEL_CMD_MAX 16

/* Makes sock a CURVE server with the broker's keys and ZAP domain
 * "schakel". Call before bind. 0 or SCHAKEL_EZMQ. */
SCHAKEL_MUST_USE int schakel_wire_curve_server(void *sock, const schakel_keys_t *keys);

/* Makes sock a CURVE client of the server with public key server_z85.
 * Call before connect. 0 or SCHAKEL_EZMQ. */
SCHAKEL_MUST_USE int schakel_wire_curve_client(void *sock, const schakel_keys_t *keys,
                                               const char *server_z85);

/* Sends [routing id if rid][name][req id][packed msg]. flags may hold
 * ZMQ_DONTWAIT. Returns 0, SCHAKEL_ENOMEM, or SCHAKEL_EZMQ (errno set:
 * EAGAIN when it would block). */
SCHAKEL_MUST_USE int schakel_wire_send(void *sock, zmq_msg_t *rid, const char *name, uint64_t req_id,
                                       const ProtobufCMessage *msg, int flags);

/* As schakel_wire_send, and counts the reply while ZeroMQ holds it:
 * *unread goes up by one now and down by one when ZeroMQ lets go of the
 * body (the connection's I/O thread took it to encode and write, or the
 * connection went away). So *unread is how many of these replies wait in
 * the send queue of their connection, not yet taken by the peer. The
 * counter must outlive the message (it is decremented from ZeroMQ's I/O
 * thread). */
SCHAKEL_MUST_USE int schakel_wire_send_counted(void *sock, zmq_msg_t *rid, const char *name, uint64_t req_id,
                                               const ProtobufCMessage *msg, int flags, atomic_uint *unread);

/* One received command. body stays valid until schakel_wire_close(). */
typedef struct {
    zmq_msg_t rid; /* routing id (ROUTER only) */
    int has_rid;
    char name[SCHAKEL_CMD_MAX + 1];
    uint64_t req_id;
    zmq_msg_t body;
    int has_body;
    char user[SCHAKEL_ID_MAX];         /* ZAP User-Id of the peer: the org id */
    char key[SCHAKEL_Z85_KEY_LEN + 1]; /* the peer's CURVE key (Z85) as ZAP saw it, "" if none */
    int frames;                        /* how many frames came (after the routing id) */
} schakel_wire_msg_t;

/* Receives one whole multipart message. with_rid: the socket is a ROUTER.
 * Returns 0 when it has the right shape; SCHAKEL_EDECODE when the frame
 * count or the name/id frames are wrong (the message was consumed; rid is
 * kept so that the caller can answer); SCHAKEL_EZMQ on a socket error
 * (EAGAIN with ZMQ_DONTWAIT, EINTR on a signal). Always call
 * schakel_wire_close() afterwards, whatever it returned. */
SCHAKEL_MUST_USE int schakel_wire_recv(void *sock, int with_rid, schakel_wire_msg_t *m, int flags);
void schakel_wire_close(schakel_wire_msg_t *m);

/* Ends a ZeroMQ context on the way out of a command: zmq_ctx_term, again
 * when a signal cut it short (EINTR, as SIGTERM does); any other failure
 * (EFAULT: not a context) is a bug and logged. */
void schakel_wire_ctx_term(void *ctx);

#endif
