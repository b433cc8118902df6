/* Services: routing, consent and the feedback loop are engines that read
 * the log in order and derive events from it. The runner here feeds an
 * engine from the broker (live) or from a log on disk (replay), keeps the
 * engine's state and its place in the log in one LMDB environment, and
 * publishes what the engine emits.
 *
 * The contract that makes replay exact: an engine's output depends only on
 * the records it was given, in order, and on its state, which it changes
 * only inside the transaction it is handed. No wall clock (rec->now is the
 * log's time), no random ids (derive them), no reading of anything else.
 *
 * Live: records are processed in groups (up to 16384; a group that has
 * read everything durable stays open 100 ms from its first record for
 * more), one LMDB write transaction per group, in which the engine's
 * state, the runner's cursor and the events the group emitted (table
 * "outbox", sealed under <state_dir>/outbox.key) commit together. The
 * events are put and published whenever the group has caught up with the
 * log (and every 256 events), asynchronously (a window of batches in
 * flight; they are sent before their transaction commits), and the runner
 * reads on at once; an ACK removes the entries it covers in a later
 * transaction, a timeout or "retry later" sends the same bytes again, and
 * on start everything still in the outbox is sent again before reading
 * on. While more than 16384 events wait for their ACK the runner stops
 * reading. A crash before the commit replays the group; after it, the
 * outbox resends: derived ids make a second copy a duplicate, so every
 * decision is stored once. The state environment commits with
 * MDB_NOMETASYNC: a system crash may undo the last commit (the group, its
 * cursor and its outbox entries together), which only replays it. */
#ifndef SCHAKEL_SERVICE_H
#define SCHAKEL_SERVICE_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stdint.h>

#include "codec.h"
#include "keys.h"

/* The log an engine reads from: the broker (live) or the log on disk
 * (replay). See schakel_log_event. */
typedef struct schakel_logsrc schakel_logsrc_t;

/* One record of the log as an engine sees it. */
typedef struct {
    uint64_t seq;
    int64_t recorded_at;           /* the broker's clock, unix ms */
    int64_t now;                   /* the log's time: max(recorded_at, clock ticks) so far */
    const schakel_envelope_t *env; /* NULL when the payload was erased */
    const char *source_org;        /* from the record, also when erased */
    schakel_logsrc_t *log;         /* to read earlier records back */
    /* the runner's write transaction the record is processed in: another
     * value for each one begun (also after one that aborted), so that what
     * an engine knows about its state from memory can be kept for one */
    uint64_t txn;
} schakel_logrec_t;

/* Reads the event at seq back from the log, so that an engine need not
 * keep a copy of what it decides about (the log is the truth, and it is
 * encrypted at rest; a copy in the engine's LMDB would be neither). The
 * record's own event (seq <= the current record's) is read from a cache
 * of the last 16384 records in memory (a decision comes thousands of
 * records after its event when the services are busy; a FETCH per
 * decision would halve their rate), else from the broker (FETCH "all",
 * which the service may read) or, in a replay, from the log on disk.
 * *env is the decoded event (caller frees; its source_org is the
 * publisher's, which the broker checked). Returns 0, SCHAKEL_ENOTFOUND (no
 * such record, or its payload was erased: the engine forgets it too), or
 * an error with the reason in why (the broker did not answer: the group
 * is not committed and is processed again). */
int schakel_log_event(schakel_logsrc_t *log, uint64_t seq, schakel_envelope_t **env, char *why);
/* The same without a copy or a decode, when the source holds the record
 * decoded already (a replay keeps its last batches in memory): returns 1
 * and sets *env to the source's own event (read-only; NULL when the
 * payload was erased), valid until the engine returns from the record
 * it is processing. Returns 0 when the source does not hold it: then
 * schakel_log_event reads it. */
int schakel_log_event_held(schakel_logsrc_t *log, uint64_t seq, const schakel_envelope_t **env);

typedef struct schakel_emit schakel_emit_t;

/* Emits a derived event (copied). Returns 0 or SCHAKEL_ENOMEM/ETOOBIG. */
int schakel_emit(schakel_emit_t *out, const schakel_envelope_t *env);

/* Raises an operator alarm about the event emitted last (call it right
 * after schakel_emit of the decision that shows the problem): something
 * the engine cannot do and nobody may miss (a report to Veilig Thuis that
 * has nowhere to go). The alarm is kept with that event in the outbox;
 * when the broker's ACK of the event is not "duplicate" (it stored it for
 * the first time, or refused it), the runner adds it to the service's durable alarm count
 * (SCHAKEL_SERVICE_ALARMS_KEY, which `schakel health` reports) in the
 * transaction that removes the entry, and then logs it at level error as
 * "event=<event> alarm=<alarm> <detail> alarms=N". A duplicate raises
 * nothing, so a state rebuilt from the log (whose events are all
 * duplicates) raises nothing again. An alarm raised before the group
 * emitted anything counts when the group commits. detail is
 * key=value pairs without personal data (ids of organisations, seqs,
 * types). A replay counts and logs nothing. Returns 0 or SCHAKEL_ENOMEM. */
int schakel_emit_alarm(schakel_emit_t *out, const char *event, const char *alarm, const char *detail);

typedef struct {
    const char *name; /* "routing": state under <state_dir>, log lines */
    /* Opens the engine's tables in txn (write) and loads what it caches. */
    int (*open)(void *engine, MDB_txn *txn, char *why);
    /* Handles one record; state changes go into txn. A non-zero return
     * stops the service (the group is not committed). */
    int (*process)(void *engine, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out, char *why);
    /* Optional: 1 when process does with a record of this event type
     * exactly what it does with one whose payload was erased (rec->env
     * NULL): the runner of a node may then hand it so, and the store
     * decrypts and the runner decodes nothing for it. A replay hands
     * every record whole, and must derive the same bytes. Never asked
     * for clock_tick or erasure, which the runner reads itself. */
    int (*ignores)(int type);
} schakel_engine_ops_t;

typedef struct {
    const char *state_dir;      /* created if missing: the engine's LMDB */
    const char *endpoint;       /* broker ROUTER */
    const char *pub_endpoint;   /* broker PUB (wake-ups); NULL: poll */
    const char *server_public;  /* broker CURVE key, Z85 */
    const schakel_keys_t *keys; /* the service's organisation (read_all) */
    /* The broker's own store, when the service runs in its process (a
     * node): the log is read from it directly, up to its durable head, with
     * no FETCH (schakel_consumer_local_new); what it derives is still
     * published, signed, through endpoint. NULL: read over FETCH. */
    struct schakel_store *store;
} schakel_service_options_t;

/* Runs the engine against the broker until *stop is set. ctx is the
 * process's ZeroMQ context. Returns 0 after a clean stop, or an error
 * code with the reason in why. */
int schakel_service_run(void *ctx, const schakel_engine_ops_t *ops, void *engine,
                        const schakel_service_options_t *opts, atomic_int *stop, char *why);

/* A derived event the broker refuses (any final reject) is an alarm, as
 * is every schakel_emit_alarm of the engine: an error log line
 * (event=derived_rejected alarm=derived_refused, or the engine's), and a
 * count kept durably in the service's state, table "runner", under this
 * key (u64, host order; absent = 0), counted in the transaction that
 * removes the refused entry from the outbox. `schakel health` reports it and exits
 * non-zero when it is not 0. */
/* Records a service may be behind the broker's head before it logs
 * event=lag_high (warn); event=lag_ok when it is back under half. */
#define SCHAKEL_SERVICE_LAG_WARN 10000

#define SCHAKEL_SERVICE_ALARMS_KEY "alarms"

/* The runner's place in the log is its key "cursor" (u64, host order) of
 * table "runner": every record up to it was processed and its state and
 * derived events committed (the events in the outbox until ACKed). Key
 * "published" says up to which seq everything derived is ACKed by the
 * broker, i.e. on the log: what a reader waits for. */
#define SCHAKEL_SERVICE_PUBLISHED_KEY "published"
/* Key "scrub_pending" of table "runner": the seqs (u64, host order) of the
 * broker's erasures whose pseudonym may still have copies in the state's
 * file. Written in the transaction that reads the erasure, removed once
 * those copies are overwritten; a service that stopped in between does
 * it when it starts (lib/service_scrub.c). Absent: nothing to do. */
#define SCHAKEL_SERVICE_SCRUB_KEY "scrub_pending"

/* The alarm count of the service whose state is in state_dir (read-only,
 * also while the service runs). 0 or SCHAKEL_EIO (no such state). */
int schakel_service_alarms(const char *state_dir, uint64_t *alarms);

/* The derived events the broker refused for good (the service's dead
 * letters: not on the log, not retried), by reject code: table "runner",
 * key "refused/<code>" (u64, host order), <code> the reject code's name in
 * lower case without REJECT_ ("not_allowed"); counted in the same
 * transaction as the alarm count (lib/service_refused.c). */
#define SCHAKEL_SERVICE_REFUSED_PREFIX "refused/"
#define SCHAKEL_REJECT_LABEL 32

/* A wire reject code's label: REJECT_NOT_ALLOWED -> "not_allowed". */
const char *schakel_reject_label(int code, char out[SCHAKEL_REJECT_LABEL]);

/* Calls fn for each refused/<code> count in the runner table, in key order. 0 or
 * SCHAKEL_ESTORE. */
typedef void (*schakel_refused_fn)(void *arg, const char *code, uint64_t count);
int schakel_service_refused_each(MDB_txn *txn, MDB_dbi runner, schakel_refused_fn fn, void *arg);

/* Replay check (for auditors): runs the engine with empty state in a temp
 * directory over the LMDB log in logdir (payloads decrypted with
 * master_key), and compares every event it emits with the event of the
 * same id on the log, byte for byte. Events on the log from org_id that
 * the replay does not emit are counted as extra. */
typedef struct {
    uint64_t records, emitted, same, differ, missing, extra;
    uint64_t first_bad_seq; /* log seq where the first difference shows */
    uint64_t head;          /* the last seq of the log read */
    uint64_t upto;          /* the engine ran over the records up to this seq (0: all of them) */
    char why[256];
} schakel_replay_report_t;

int schakel_service_replay(const char *logdir, const uint8_t master_key[32], const schakel_engine_ops_t *ops,
                           void *engine, const char *org_id, schakel_replay_report_t *report);

/* The same for n services at once, over one read of the log: each engine
 * in a thread of its own (engines share nothing), each with its own
 * report and result in rcs[i] (0, SCHAKEL_ECORRUPT when something
 * differs, or the error that stopped it, with the reason in its report).
 * Returns 0 when every rcs[i] is 0, else an error other than
 * SCHAKEL_ECORRUPT if there was one, else SCHAKEL_ECORRUPT. */
int schakel_service_replay_all(const char *logdir, const uint8_t master_key[32], size_t n,
                               const schakel_engine_ops_t *const *ops, void *const *engines,
                               const char *const *orgs, schakel_replay_report_t *reports, int *rcs);

/* The same, engine i run only over the records up to upto[i] (0: all), as
 * far as a live service had come: what it derives is compared with the
 * whole log, so a decision the live service had not reached yet is not
 * counted missing, and one on the log that it did not derive is extra. */
int schakel_service_replay_upto(const char *logdir, const uint8_t master_key[32], size_t n,
                                const schakel_engine_ops_t *const *ops, void *const *engines,
                                const char *const *orgs, const uint64_t *upto,
                                schakel_replay_report_t *reports, int *rcs);

/* ---- helpers for engines ---- */

/* Derives a 16-byte event id: SHA-256(label || parts...)[:16]. parts is
 * a list of (pointer, length) pairs ended by a NULL pointer. */
void schakel_derive_id(uint8_t out[16], const char *label, ...);

/* Opens (creating) an engine's n tables by name in txn. 0 or an error with
 * the table named in why. */
int schakel_engine_tables(MDB_txn *txn, const char *engine, const char *const *names, MDB_dbi *const *dbis,
                          size_t n, char *why);

/* The directory in force on the log, as engines keep it: key "directory"
 * of their table `state`. load reads it (leaves *dir NULL when there is
 * none yet); update takes a directory_update event and keeps it when it is
 * newer than *dir. Both return 0 or an error code. */
struct schakel_directory;
int schakel_engine_directory_load(MDB_txn *txn, MDB_dbi state, struct schakel_directory **dir);
int schakel_engine_directory_update(MDB_txn *txn, MDB_dbi state, const schakel_envelope_t *e,
                                    struct schakel_directory **dir);

/* The rules of the engine (routing rules, consent policy, feedback
 * deadlines) in force on the log, as engines keep them: key "rules" of
 * their table `state` holds the document_json of the last rules_update of
 * their set (a Schakel__V1__RuleSet) that they installed. install parses
 * a document and makes it the engine's rules, or returns an error with the
 * field that is wrong in why and changes nothing.
 * load installs the kept one (none kept: the rules the engine was made
 * with stay). update takes a rules_update record: of another set it is
 * passed over; from anyone but the bus itself (source_org "broker"),
 * with a version that is not the SHA-256 of its document, or with a
 * document that does not parse, it is refused: the rules in force stay,
 * the refusal is counted in key "rules_refused" of `state` (u64, host
 * order) and logged (event=rules_refused). Both return 0 or an error
 * code (storage). */
typedef int (*schakel_rules_install_fn)(void *engine, const char *text, size_t len, char *why);
int schakel_engine_rules_load(MDB_txn *txn, MDB_dbi state, schakel_rules_install_fn install, void *engine,
                              const char *name, char *why);
int schakel_engine_rules_update(MDB_txn *txn, MDB_dbi state, const schakel_logrec_t *rec, int set,
                                schakel_rules_install_fn install, void *engine, const char *name);

/* Small LMDB helpers: get returns 0, SCHAKEL_ENOTFOUND or SCHAKEL_ESTORE. */
int schakel_kv_get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, MDB_val *val);
int schakel_kv_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val, size_t vlen);
int schakel_kv_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen);

#endif
