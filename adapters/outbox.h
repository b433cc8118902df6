/* The adapter's outbox: events are durable here (LMDB, fsynced) before any
 * input is acknowledged, and leave only when the broker ACKed them
 * (accepted or already stored) or rejected them for good, which moves
 * them, with the reason, to a dead-letter table an operator can read.
 * Event ids are derived from the source record, so putting the same event
 * twice is a no-op: re-importing a file changes nothing. A record that
 * comes back changed under the same id is refused, not dropped: the
 * broker keeps the first version, so a correction needs a new record.
 *
 * The same LMDB environment keeps the adapter's other state: the inbox
 * cursor, the last ACK and the last error, for `schakel adapter status`.
 * Safe for several threads (one write transaction at a time, LMDB's
 * rule). */
#ifndef SCHAKEL_OUTBOX_H
#define SCHAKEL_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct schakel_outbox schakel_outbox_t;

/* Opens (creating) the outbox in dir. read_only: for status. NULL on
 * failure with the reason in why. */
schakel_outbox_t *schakel_outbox_open(const char *dir, int read_only, char *why);
void schakel_outbox_close(schakel_outbox_t **self_p);

/* One event to put. */
typedef struct {
    const uint8_t *event;
    size_t len;
    const uint8_t *id; /* 16 bytes */
    int queued;        /* out: 1 new, 0 already known (the same bytes), -1 the id
                        * was put before with other bytes: not queued */
} schakel_outbox_item_t;

/* Puts events in one durable transaction. 0 or an error code. */
SCHAKEL_MUST_USE int schakel_outbox_put(schakel_outbox_t *self, schakel_outbox_item_t *items, size_t n,
                                        char *why);

/* The oldest pending events, up to max: copies into bufs/lens (caller
 * frees each buf), their keys into keys. Returns how many. */
size_t schakel_outbox_peek(schakel_outbox_t *self, size_t max, uint8_t **bufs, size_t *lens, uint64_t *keys);

/* After an ACK: key i was stored (reason NULL) or rejected for good
 * (reason given). One transaction for all n. */
SCHAKEL_MUST_USE int schakel_outbox_done(schakel_outbox_t *self, const uint64_t *keys,
                                         const char *const *reasons, size_t n, int64_t now_ms);

/* Notes the last error (no personal data: a code and a reason). */
void schakel_outbox_error(schakel_outbox_t *self, const char *reason, int64_t now_ms);

/* A u64 kept with the state (the inbox cursor). */
uint64_t schakel_outbox_get(schakel_outbox_t *self, const char *name);
SCHAKEL_MUST_USE int schakel_outbox_set(schakel_outbox_t *self, const char *name, uint64_t value);

typedef struct {
    uint64_t pending;          /* events waiting for the broker */
    int64_t oldest_pending_ms; /* when the oldest of them was put; 0 if none */
    uint64_t acked, dead;
    int64_t last_ack_ms; /* 0 if never */
    int64_t last_error_ms;
    char last_error[256];
    uint64_t inbox_cursor;
} schakel_outbox_status_t;

SCHAKEL_MUST_USE int schakel_outbox_status(schakel_outbox_t *self, schakel_outbox_status_t *out);

/* A dead letter: an event the broker refused for good. */
typedef struct {
    uint64_t n;         /* its place in the outbox */
    int64_t refused_ms; /* when the broker refused it; 0 when not kept (older outbox) */
    char reason[320];   /* the broker's reason, scrubbed of values */
} schakel_outbox_dead_t;

/* Called per dead letter, oldest first, with its event (NULL, len 0 when
 * it does not open: another key, or altered). Non-zero stops the walk and
 * is returned. */
typedef int (*schakel_outbox_dead_fn)(void *arg, const schakel_outbox_dead_t *d, const uint8_t *event,
                                      size_t len);

/* Walks the dead letters (needs an outbox opened with its key, not
 * read_only). 0, SCHAKEL_ESTORE, or what fn returned. */
int schakel_outbox_dead_letters(schakel_outbox_t *self, schakel_outbox_dead_fn fn, void *arg);

/* Puts dead letters ns[0..count) back at the end of the pending events,
 * as they were, in one durable transaction (all or none), and takes them
 * off the dead-letter count: the forwarder sends them again. Their ids
 * stay known, so a re-import still answers "known". 0, or an error code
 * with the reason in why. */
SCHAKEL_MUST_USE int schakel_outbox_requeue(schakel_outbox_t *self, const uint64_t *ns, size_t count,
                                            int64_t now_ms, char *why);

#endif
