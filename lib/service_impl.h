/* What the two halves of the service runner share (lib/service.c runs a
 * service live against a broker, lib/service_replay.c re-runs it over a
 * log on disk): the engine's LMDB environment with the runner's own table
 * (its place in the log, the log's time, the alarm count), the record
 * the engine is given, and the buffer of what it emits (all of it in
 * lib/service_engine.c). Both drive the engine through the same
 * service_make_rec, which is what makes a replay
 * see exactly what the live run saw. */
#ifndef SCHAKEL_SERVICE_IMPL_H
#define SCHAKEL_SERVICE_IMPL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "service.h"
#include "store.h"

#define RECENT 16384 /* records kept in memory for schakel_log_event */

struct schakel_logsrc {
    schakel_client_t *client; /* live: FETCH */
    schakel_store_t *store;   /* replay, and live in the broker's process */
    /* replay: the decoded record at seq if a batch held has it (1, *env
     * NULL when erased), else 0 (schakel_log_event_held) */
    int (*held)(void *arg, uint64_t seq, const schakel_envelope_t **env);
    void *held_arg;
    struct {
        uint64_t seq;
        uint8_t *bytes;  /* kept for the next record in the slot (cap bytes) */
        size_t len, cap; /* len 0: erased */
    } recent[RECENT];
};

#define SERVICE_ALARM_LINE 256

/* An alarm an engine raised (schakel_emit_alarm), about the event it
 * emitted last. */
typedef struct {
    size_t event; /* index of the emitted event it is about; (size_t)-1: none */
    char line[SERVICE_ALARM_LINE];
} alarm_t;

struct schakel_emit {
    uint8_t **bufs;
    size_t *lens;
    uint8_t *stored_before; /* per event: the broker had it (ACK duplicate) */
    size_t n, cap;
    alarm_t *alarms; /* raised while handling the group: counted and logged at commit */
    size_t n_alarms, cap_alarms;
};

typedef struct {
    MDB_env *env;
    MDB_dbi runner; /* "cursor" -> u64 seq, "time" -> i64 ms, "alarms" -> u64 */
    uint64_t cursor;
    int64_t now;
    uint64_t alarms; /* derived events the broker refused, ever */
    uint64_t txn;    /* write transactions begun: schakel_logrec_t.txn (runners count) */
} state_t;

/* Opens (creating) the engine's environment in dir and lets the engine
 * open its tables; reads the runner's place, time and alarms. */
int service_state_open(state_t *s, const char *dir, const schakel_engine_ops_t *ops, void *engine, char *why);
/* The same with other LMDB flags than the live state's (MDB_NOMETASYNC;
 * MDB_NOTLS is always added): the replay's throwaway state asks for
 * MDB_NOSYNC | MDB_WRITEMAP, which the live state must never use. */
int service_state_open_flags(state_t *s, const char *dir, unsigned flags, const schakel_engine_ops_t *ops,
                             void *engine, char *why);
void service_state_close(state_t *s);
/* After a committed transaction that read the broker's erasure of these
 * subjects: overwrites every copy of their pseudonyms left in the state's
 * file, unless an entry still holds one (lib/service_scrub.c). The
 * environment is opened again; on a failure s->env may be NULL. */
int service_state_scrub(state_t *s, const char *name, const char (*subjects)[65], size_t n, char *why);
/* The child the broker's erasure event env erases; NULL for any other event. */
const char *service_erased_subject(const schakel_envelope_t *env);
/* Adds the seqs of a group's erasures to SCHAKEL_SERVICE_SCRUB_KEY in
 * the group's transaction, before the commit. */
int service_scrub_note(state_t *s, MDB_txn *txn, const uint64_t *seqs, size_t n);
/* Every scrub the key holds: the erasures read back from the log, their
 * pseudonyms' copies overwritten (service_state_scrub), then the seqs
 * leave the key. After a committed group that read an erasure, and on
 * start (at_start: a stop between commit and scrub; logged
 * event=scrub_resumed). 0, or an error: the key stays for the next try. */
int service_scrub_pending(state_t *s, schakel_logsrc_t *log, const char *name, int at_start, char *why);
uint64_t service_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key);

/* Adds n to the refused count of a reject code (SCHAKEL_SERVICE_REFUSED_PREFIX)
 * in txn. 0 or a storage error. */
int service_refused_add(MDB_txn *txn, MDB_dbi runner, int code, uint64_t n);
/* Builds the engine's view of a record and advances the log's time. */
void service_make_rec(state_t *s, schakel_logrec_t *rec, uint64_t seq, int64_t recorded_at,
                      const schakel_envelope_t *env, const char *source_org, schakel_logsrc_t *log);
void service_emit_clear(schakel_emit_t *out);
void service_emit_free(schakel_emit_t *out);

#endif
