/* The live runner's transactional outbox (private to lib/service.c and
 * lib/service_outbox.c). What a group of records emits is put into the
 * table "outbox" of the service's own LMDB in the same transaction as the
 * engine's state and the runner's cursor, and published asynchronously
 * (schakel_client_submit, a window of batches in flight). An ACK removes
 * the entries it covers in a later transaction; until then an entry is
 * sent again after a restart. So a crash can neither lose a decision (it
 * is in the outbox, or its record is after the cursor and is processed
 * again) nor store one twice (derived ids: the broker ACKs the second copy
 * as a duplicate).
 *
 *   outbox  u64be(n) -> u32be(a) || a bytes of alarm lines || sealed event
 *
 * The alarm lines are the engine's schakel_emit_alarm about that event
 * ('\n' between them): they count when the ACK of the event is not
 * "duplicate" (stored for the first time, or refused). A sealed event is nonce(12) ||
 * AES-256-GCM(key, event, aad = u64be(n)) || tag(16) under the key in
 * <state_dir>/outbox.key (0600, made on first open): the service's state
 * holds no event in clear, not even in pages LMDB freed. The nonces of a
 * group's entries are a random base drawn for the group, plus the entry's
 * place in the group. */
#ifndef SCHAKEL_SERVICE_OUTBOX_H
#define SCHAKEL_SERVICE_OUTBOX_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "crypto.h"
#include "service_impl.h"

typedef struct outbox_acked outbox_acked_t;

typedef struct {
    const char *name; /* the service, for log lines */
    MDB_dbi dbi;
    MDB_dbi runner; /* the runner's table: refused counts (service_refused_add) */
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    uint64_t next;                 /* key of the next entry */
    size_t pending;                /* entries put and not yet removed */
    outbox_acked_t *acked;         /* final ACKs not yet applied, in arrival order */
    struct outbox_batch *inflight; /* batches submitted and not yet ACKed */
    char **said;                   /* log lines to write once their transaction committed */
    size_t n_said, cap_said;
    int broken; /* out of memory in an ACK callback: stop, the outbox resends */
    struct {    /* per committed group: its last entry, its last record */
        uint64_t last_key, cursor;
    } * marks;
    size_t n_marks, cap_marks;
} outbox_t;

/* Opens (creating) the table and the key in dir, in env. */
int service_outbox_open(outbox_t *o, MDB_env *env, const char *dir, const char *name, char *why);
/* Frees what is in memory (entries stay in the table). */
void service_outbox_close(outbox_t *o);

/* Puts what out holds into the outbox in txn (entries and the alarms about
 * them) and submits it to c. The group's transaction may commit after the
 * submit: an ACK is applied only in a later transaction. */
int service_outbox_put(outbox_t *o, MDB_txn *txn, schakel_client_t *c, const schakel_emit_t *out, char *why);

/* On start: submits every entry again (same bytes) before reading on. */
int service_outbox_resend(outbox_t *o, MDB_env *env, schakel_client_t *c, char *why);

/* Receives ACKs for up to timeout_ms. Returns batches in flight. */
size_t service_outbox_poll(outbox_t *o, schakel_client_t *c, int timeout_ms);

/* Whether ACKs wait to be applied. */
int service_outbox_has_acks(const outbox_t *o);

/* Applies the ACKs received so far in txn: removes their entries, counts
 * final rejects and the new engine alarms in *alarms (and rejects in
 * *rejected, and by code in the runner's table, o->runner). The log lines
 * wait for outbox_said. */
int service_outbox_apply(outbox_t *o, MDB_txn *txn, uint64_t *alarms, uint64_t *rejected, char *why);

/* Notes in txn that what the log holds up to cursor was processed and
 * its events are in the outbox (entries below o->next), and returns in
 * *published the seq up to which all of that is ACKed: a group is
 * published once no entry up to its last is left. 0 or SCHAKEL_ENOMEM. */
int service_outbox_published(outbox_t *o, MDB_txn *txn, uint64_t cursor, uint64_t *published);

/* After the transaction: commit != 0 writes the lines it kept, else drops
 * them. */
void service_outbox_said(outbox_t *o, int commit);

#endif
