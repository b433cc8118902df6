/* The publisher side of the bus: signs batches of events with the
 * organisation's key, sends them over CURVE, and matches ACKs to batches.
 * Batches are retried with exponential backoff until ACKed, so a broker
 * restart or a "retry later" costs time, never an event; event ids make
 * every retry idempotent (a duplicate is ACKed with the first copy's seq).
 * A client is used by one thread. */
#ifndef SCHAKEL_CLIENT_H
#define SCHAKEL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "schakel/v1/bus.pb-c.h"
#include "error.h"

typedef struct schakel_client schakel_client_t;

typedef struct {
    const char *endpoint;       /* broker ROUTER, e.g. tcp://127.0.0.1:7400 */
    const char *server_public;  /* broker CURVE public key, Z85 */
    const schakel_keys_t *keys; /* this organisation's secret keys */
    int retry_ms;               /* first resend after this; 0: 1000 */
    int retry_max_ms;           /* backoff cap; 0: 8000 */
    size_t window;              /* batches in flight; 0: 64 */
    int quiet_link;             /* do not log the link to the broker (see below) */
} schakel_client_options_t;

/* Connects (lazily, as ZeroMQ does). ctx is the process's ZeroMQ context.
 * NULL on failure, reason in why. A thread of the client's own watches the
 * link to the broker and logs it (unless quiet_link) as it happens:
 * event=broker_lost (warn) when a connection drops, event=broker_back
 * with gone_ms when a handshake succeeds again, and event=broker_unreachable
 * (warn, once) when no handshake succeeded in the client's first 5 s. */
schakel_client_t *schakel_client_new(void *ctx, const schakel_client_options_t *opts, char *why);
void schakel_client_destroy(schakel_client_t **self_p);

/* Called once per batch when its final ACK arrived: every entry accepted,
 * a duplicate, or rejected for good (a reject other than retry-later).
 * ack is valid during the call. */
typedef void (*schakel_ack_fn)(void *arg, void *batch_user, const Schakel__V1__Ack *ack);

/* Signs and sends n serialized envelopes as one batch (it copies them).
 * Waits first while the window is full, calling on_ack for batches that
 * complete. Returns 0, SCHAKEL_ETOOBIG (n or a size over the limits),
 * SCHAKEL_ECRYPTO, SCHAKEL_ENOMEM. */
SCHAKEL_MUST_USE int schakel_client_submit(schakel_client_t *c, const uint8_t *const *events,
                                           const size_t *lens, size_t n, void *batch_user,
                                           schakel_ack_fn on_ack, void *arg);

/* Receives ACKs for up to timeout_ms (0: only what is waiting), resends
 * batches whose ACK is overdue or that were told to retry later, and calls
 * on_ack for completed ones. Returns the number of batches still in
 * flight. */
size_t schakel_client_poll(schakel_client_t *c, int timeout_ms, schakel_ack_fn on_ack, void *arg);

/* Batches in flight. */
size_t schakel_client_inflight(const schakel_client_t *c);

/* Submits one batch and waits until it is ACKed or timeout_ms passes
 * (retrying meanwhile). On success *ack_out is a copy the caller frees
 * with schakel__v1__ack__free_unpacked(ack, NULL). Returns 0 or
 * SCHAKEL_ETIMEOUT (the batch may still be stored: publish it again with
 * the same event ids, never new ones). */
SCHAKEL_MUST_USE int schakel_client_publish(schakel_client_t *c, const uint8_t *const *events,
                                            const size_t *lens, size_t n, Schakel__V1__Ack **ack_out,
                                            int timeout_ms);

/* A request/reply round trip for FETCH, COMMIT and PING on the same
 * connection (no retries: the caller decides). name is the command; the
 * reply's body is unpacked into *reply with reply_desc (NULL on an ERROR
 * reply, whose code and reason go to err/why). Returns 0,
 * SCHAKEL_EREJECTED, SCHAKEL_ETIMEOUT, SCHAKEL_EDECODE. */
SCHAKEL_MUST_USE int schakel_client_call(schakel_client_t *c, const char *name, const ProtobufCMessage *req,
                                         const ProtobufCMessageDescriptor *reply_desc,
                                         ProtobufCMessage **reply, int timeout_ms, char *why);
/* The same with the reply unpacked by alloc (e.g. an arena's: then the
 * reply is never freed one by one, the arena is reset). */
SCHAKEL_MUST_USE int schakel_client_call_with(schakel_client_t *c, const char *name,
                                              const ProtobufCMessage *req,
                                              const ProtobufCMessageDescriptor *reply_desc,
                                              ProtobufCAllocator *alloc, ProtobufCMessage **reply,
                                              int timeout_ms, char *why);

#endif
