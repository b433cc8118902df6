/* The reading side of the bus: follows a stream ("all" or "org/<id>") from
 * a cursor, fetching in batches, and sleeps on the broker's head
 * notifications (PUB/SUB, CURVE) when it has caught up. Notifications only
 * wake it; the data always comes through FETCH, so a lost notification
 * costs at most the fallback poll interval, never a record. */
#ifndef SCHAKEL_CONSUMER_H
#define SCHAKEL_CONSUMER_H

#include <stdint.h>

#include "keys.h"
#include "schakel/v1/bus.pb-c.h"
#include "error.h"

typedef struct schakel_consumer schakel_consumer_t;

typedef struct {
    const char *endpoint;       /* broker ROUTER */
    const char *pub_endpoint;   /* broker PUB; NULL: poll only */
    const char *server_public;  /* broker CURVE public key, Z85 */
    const schakel_keys_t *keys; /* this organisation's secret keys */
    const char *stream;         /* "all" or "org/<id>" */
    const char *consumer;       /* cursor name; NULL: no stored cursor */
    uint64_t from_seq;          /* start here (0: after the stored cursor, or 1) */
    uint32_t batch;             /* records per FETCH; 0: 500 */
    /* with pub_endpoint: how long to wait for a notification before
     * FETCHing again anyway (a notification may be lost); 0: 250 ms. A
     * consumer that is idle most of the time (an adapter's inbox) sets it
     * longer, so that it does not ask the broker several times a second */
    uint32_t idle_fetch_ms;
} schakel_consumer_options_t;

schakel_consumer_t *schakel_consumer_new(void *ctx, const schakel_consumer_options_t *opts, char *why);
/* The same reader inside the broker's process (the services of a node):
 * batches of stream from from_seq read from the broker's store in this
 * thread, with no FETCH and no connection, and exactly the records,
 * positions and bytes FETCH would give (an erased record: empty event).
 * It reads no further than the store's durable head
 * (schakel_store_durable_seq) and sleeps on its wake-up
 * (schakel_store_wait_durable). The store must stay open until the
 * consumer is destroyed. No cursor of its own (commit fails). */
struct schakel_store;
schakel_consumer_t *schakel_consumer_local_new(struct schakel_store *store, const char *stream,
                                               uint64_t from_seq, uint32_t batch, char *why);
/* A local consumer hands records of these types without their payload
 * (an empty event, as an erased one), and the store decrypts nothing for
 * them: for a reader that does nothing with them. Over FETCH every
 * record comes whole. */
struct schakel_type_set;
void schakel_consumer_skip(schakel_consumer_t *c, const struct schakel_type_set *skip);
void schakel_consumer_destroy(schakel_consumer_t **self_p);

/* The next record, waiting up to timeout_ms for one. *rec stays valid until
 * the next call. A record whose data key was erased has an empty event.
 * Returns 0, SCHAKEL_ETIMEOUT (nothing new), SCHAKEL_EREJECTED (not
 * allowed to read the stream: why says so) or another error. */
SCHAKEL_MUST_USE int schakel_consumer_next(schakel_consumer_t *c, const Schakel__V1__Delivered **rec,
                                           int timeout_ms, char *why);

/* Stores the cursor durably at seq (the last record fully handled). */
SCHAKEL_MUST_USE int schakel_consumer_commit(schakel_consumer_t *c, uint64_t seq, char *why);

/* The broker's head as of the last BATCH (local: the durable head as of
 * the last read). */
uint64_t schakel_consumer_head(const schakel_consumer_t *c);

#endif
