/* What the files of the broker share, and nobody else sees: the broker's
 * struct, a PUBLISH on its way (pending_t), the per-connection table
 * (peer_t), the limits, and the functions one step of the data path calls
 * in another. Listed in the order an event meets them:
 *   zap.c -> broker.c (the loop) -> check.c (+ system.c) -> commit.c
 *   -> serve.c, with peer.c for what is held per connection; erase.c
 *   serves the operator's ERASE.
 * Threads: the command loop owns the ROUTER and PUB sockets, the log's
 * write transactions and the peer table; a checker thread touches a
 * pending_t only while it checks it (it is on the checking list); the
 * ZAP thread owns the ZAP socket. The directory is read by all three and
 * replaced by the loop, under dir_lock. */
#ifndef SCHAKEL_BROKER_IMPL_H
#define SCHAKEL_BROKER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "arena.h"
#include "broker.h"
#include "clock.h"
#include "codec.h"
#include "crypto.h"
#include "directory.h"
#include "error.h"
#include "keys.h"
#include "logging.h"
#include "store_lmdb.h"
#include "wire.h"

#define FETCH_MAX_COUNT 2000
#define BROKER_RULE_SETS 3                  /* routing, consent, feedback (rules.c) */
#define DIRECTORY_CURSOR "broker/directory" /* seq of the last directory_update */
#define FETCH_MAX_BYTES (4u << 20)
#define ZMQ_HARD_MAX_MSG \
    (16LL << 20) /* past this libzmq drops the peer: 8 MiB frames and room to say "too large" */
/* Bounded memory per connection (protocol.md, "Limits"): replies waiting
 * for a peer that does not read them are what grows a node. */
#define SEND_HWM 1000      /* replies queued per connection, then EAGAIN */
#define RECV_HWM 64        /* commands queued per connection, then TCP waits */
#define FETCH_UNREAD_MAX 4 /* BATCH replies per connection not yet taken */
#define ACK_UNREAD_MAX 128 /* PUBLISHes per connection not ACKed or ACK not yet taken */
/* The same, summed over every connection of one organisation (the key's,
 * as ZAP named it): an organisation opening more connections does not make
 * the broker hold more of these. */
#define ORG_FETCH_UNREAD_MAX 16
#define ORG_ACK_UNREAD_MAX 256
#define FETCH_BODY_MAX 4096
#define COMMIT_BODY_MAX 4096
#define PING_BODY_MAX 64
#define READER_CHECK_MS 60000 /* stale LMDB readers (killed auditors) */
#define MAX_IN_FLIGHT 512     /* PUBLISHes between receipt and ACK; then ZeroMQ queues */
#define MAX_CHECKERS 4        /* checker threads at most, whatever the cores */
#define GROUP_WAIT_MS 5       /* the longest a checked batch waits for company, or a held ACK for a flush */

/* A wire reject: the code and reason a client reads in an ACK or ERROR
 * (protocol.md). It is never an internal error: a function that rejects
 * returns SCHAKEL_EREJECTED (lib/error.h) and fills a reject_t, so the
 * int a function returns is always SCHAKEL_OK or a SCHAKEL_E* code, and a
 * wire code lives only in a Schakel__V1__RejectCode. */
typedef struct {
    Schakel__V1__RejectCode code; /* REJECT_NONE: not rejected */
    char reason[SCHAKEL_ERRLEN];
} reject_t;

/* Fills r with code and the formatted reason; returns SCHAKEL_EREJECTED,
 * so that a checker can write `return broker_reject(r, CODE, "...")`. */
__attribute__((format(printf, 3, 4))) int broker_reject(reject_t *r, Schakel__V1__RejectCode code,
                                                        const char *fmt, ...);

/* A connection with BATCH or ACK replies still in its send queue, by
 * routing id, and the organisation it runs as. ZeroMQ's I/O thread counts
 * them down as it takes them, or drops them when the connection goes
 * away; only the command loop counts up, finds, adds and frees. */
typedef struct peer {
    struct peer *next;
    atomic_uint batches, acks;
    unsigned publishing; /* PUBLISHes received, not yet ACKed */
    size_t rid_len;
    uint8_t rid[256];
    char org[SCHAKEL_ID_MAX];
} peer_t;

/* What the broker holds for all connections of one organisation. */
typedef struct {
    unsigned batches; /* BATCH replies not yet taken */
    unsigned held;    /* PUBLISHes not ACKed, or ACKs not yet taken */
} org_held_t;

/* One PUBLISH on its way: received by the command loop, checked by the
 * checker thread, appended and ACKed by the command loop. Everything it
 * decodes lives in its own arena. */
typedef struct pending {
    struct pending *next;
    zmq_msg_t rid, body;
    char user[SCHAKEL_ID_MAX];
    schakel_arena_t *arena;
    uint64_t req_id;
    Schakel__V1__Publish *pub;
    Schakel__V1__AckEntry *entries;
    size_t n;
    uint8_t (*hashes)[SCHAKEL_SHA256_LEN];
    schakel_envelope_t **envs;
    schakel_append_item_t *items;
    size_t *item_entry;
    size_t n_items;
    const char *signer;
    uint64_t need;                      /* ACKed once the log is durable up to this seq */
    int checked;                        /* its checker is done with it (under q_lock) */
    Schakel__V1__RejectCode batch_code; /* the whole batch rejected: a wire code */
    char batch_reason[SCHAKEL_ERRLEN];
} pending_t;

/* The broker's own figures since it started (stats.c), given to the node's
 * operator in PONG (protocol.md): counts only. The command loop's alone. */
#define BROKER_STAT_BOUNDS 12
#define BROKER_ACTIVE_SLOTS 512 /* organisations told apart for active_orgs */
#define BROKER_ACTIVE_MS 60000
typedef struct {
    uint64_t rejects[16]; /* by wire reject code */
    uint64_t commits, commit_us_sum, commit_le[BROKER_STAT_BOUNDS];
    uint64_t group_events_sum, group_le[BROKER_STAT_BOUNDS];
    struct {
        char id[SCHAKEL_ID_MAX];
        int64_t seen_ms;
    } active[BROKER_ACTIVE_SLOTS];
} broker_stats_t;

struct schakel_broker {
    void *ctx, *router, *pub, *zap;
    pthread_t zap_thread;
    int zap_running;
    pthread_rwlock_t dir_lock; /* read by checkers and ZAP, replaced by the loop */
    schakel_directory_t *dir;
    char *dir_path;
    struct timespec dir_mtime;
    char *rules_dir; /* <name>.json of each service; NULL: no rules on the log */
    struct timespec rules_mtime[BROKER_RULE_SETS];
    schakel_keys_t keys;
    schakel_store_t *store;
    int lock_fd; /* DATA/broker.lock, held for the broker's life: one broker per data directory */
    atomic_int stop;
    size_t group_max;
    /* Checker threads decode, validate and verify PUBLISHes while the
     * command loop appends and flushes the previous group. Batches leave
     * checking in the order they came (the checking list), whichever
     * checker finishes first. */
    pthread_t checkers[MAX_CHECKERS];
    size_t n_checkers;
    int checker_stop;
    pending_t *chk_head, *chk_tail; /* being checked, in arrival order */
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    pending_t *in_head, *in_tail;   /* received, not yet checked */
    pending_t *out_head, *out_tail; /* checked, waiting for a commit */
    size_t in_flight;               /* in either queue or being checked */
    size_t out_events;              /* accepted events waiting for a commit */
    size_t checking;                /* batches a checker is on now */
    int64_t out_since;              /* when the oldest checked batch came out */
    void *wake_tx, *wake_rx;        /* inproc PAIR: "something is checked" */
    schakel_arena_t *spare[32];     /* arenas to reuse (under q_lock) */
    size_t n_spare;
    /* Committed, ACKs held until the log is durable up to each one's
     * need (commit.c): the next group's flush or a sync releases them. */
    pending_t *held_head, *held_tail;
    int64_t held_since;
    uint64_t stat_acked, stat_rejected;
    uint64_t alarms; /* own appends refused, checkpoint outages: in every PONG; the operator's alert */
    int64_t tick_ms, last_tick;
    peer_t *peers; /* connections with PUBLISHes or replies held */
    uint64_t stat_fetch_refused, stat_publish_refused, stat_replies_dropped;
    uint64_t stat_org_refused; /* of those, refused at an organisation's limit */
    int64_t last_org_refused_log;
    int checkpoint_failing; /* the last checkpoint attempt failed (logged once per outage) */
    int64_t last_drop_log, last_reader_check;
    struct broker_retention *retention; /* retention.c */
    int replicated_log;                 /* the jetstream log: no erasure yet (docs/scale-out.md) */
    broker_stats_t stats;
};

/* ---- one step calls another (grouped by the file that defines them) ---- */

/* stats.c: an event refused with code; a group commit of events that took
 * us microseconds (append and flush); a command from org (the
 * authenticated id); the figures as PONG carries them (out's arrays point
 * into store, which must outlive out). */
void broker_stats_reject(schakel_broker_t *b, int code);
void broker_stats_commit(schakel_broker_t *b, uint64_t us, size_t events);
void broker_stats_seen(schakel_broker_t *b, const char *org);
typedef struct {
    Schakel__V1__RejectCount counts[16], *count_ptrs[16];
    uint64_t commit_bounds[BROKER_STAT_BOUNDS], group_bounds[BROKER_STAT_BOUNDS];
} broker_stats_store_t;
void broker_stats_fill(const schakel_broker_t *b, Schakel__V1__BrokerStats *out, broker_stats_store_t *store);

/* zap.c: the ZAP thread's body. */
void *broker_zap_main(void *arg);

/* check.c: queue a PUBLISH for the checker, or answer it at once. */
void broker_publish_receive(schakel_broker_t *b, schakel_wire_msg_t *m);
/* check.c: starts the checker threads; a checker's body; their clean stop. */
int broker_checkers_start(schakel_broker_t *b, size_t n, char *why);
void *broker_checker_main(void *arg);
void broker_checker_finish(schakel_broker_t *b);
/* check.c: the next group of checked batches for commit (NULL: not due). */
pending_t *broker_take_checked(schakel_broker_t *b, int all);
/* check.c: rejects event i of p with code and reason. */
void broker_entry_reject(pending_t *p, size_t i, Schakel__V1__RejectCode code, const char *reason);
void broker_pending_free(schakel_broker_t *b, pending_t *p);

/* system.c: what a new system event needs and does: SCHAKEL_OK, or
 * SCHAKEL_EREJECTED with the reject in rej. */
int broker_plan_system(schakel_broker_t *b, const schakel_org_t *org, const schakel_envelope_t *env,
                       schakel_append_item_t *it, reject_t *rej);
/* system.c: does broker_plan_system do anything for this type? */
int broker_is_planned(int type);
/* The reason a directory_update's version is refused with (REJECT_INVALID),
 * whether the checker or the commit (a second update in one group) finds
 * it: the version given, the one in force. */
#define DIRECTORY_VERSION_REASON \
    "directory_update.version: %llu must equal the document's and be above the version in force, %llu"
/* system.c: the broker's own events. own_envelope makes one with an id
 * derived from label and data; append_own signs and appends it between
 * groups (an alarm when that fails), its seq in *seq when not NULL;
 * own_at is the event of that type at seq (caller frees; NULL: none). */
void broker_own_envelope(schakel_envelope_t *env, int type, const char *label, const void *data, size_t len,
                         uint8_t id[16]);
int broker_append_own(schakel_broker_t *b, schakel_envelope_t *env, uint64_t *seq);
/* The same, the record also indexed into each of the n_fanout streams
 * named (an erasure into every org/<id>), whose readers are woken. */
int broker_append_own_to(schakel_broker_t *b, schakel_envelope_t *env, const char *const *fanout,
                         size_t n_fanout, uint64_t *seq);
schakel_envelope_t *broker_own_at(schakel_broker_t *b, uint64_t seq, int type);
void broker_directory_sync(schakel_broker_t *b);
void broker_directory_install(schakel_broker_t *b, const char *doc, uint64_t seq);
void broker_directory_maybe_reload(schakel_broker_t *b);
void broker_clock_tick(schakel_broker_t *b, int64_t now);
/* system.c: an envelope of the broker's own (source "broker") whose id
 * derives from label and data; appending one, signed with the broker's
 * key: 0 with *seq (may be NULL) its seq, or an error code (an alarm). */
void broker_own_envelope(schakel_envelope_t *env, int type, const char *label, const void *data, size_t len,
                         uint8_t id[16]);
int broker_append_own(schakel_broker_t *b, schakel_envelope_t *env, uint64_t *seq);
/* The same, the record also indexed into each of the n_fanout streams
 * named (an erasure into every org/<id>), whose readers are woken. */
int broker_append_own_to(schakel_broker_t *b, schakel_envelope_t *env, const char *const *fanout,
                         size_t n_fanout, uint64_t *seq);

/* erase.c: ERASE, from the broker's own key only. */
void broker_serve_erase(schakel_broker_t *b, schakel_wire_msg_t *m);
/* erase.c: erases req->subject (checked before) and logs its erasure
 * event: 0 with out filled (out->no_key: nothing to erase; out->seq 0:
 * erased, the event not logged, an alarm), or an error code when nothing
 * was erased. id: room for the event's id, which out points to. */
int broker_erase(schakel_broker_t *b, const Schakel__V1__Erase *req, Schakel__V1__Erased *out,
                 uint8_t id[16]);

/* retention.c: the retention rules applied by the log's clock, as the
 * last rules_update of set retention on the log says (DATA/retention.json
 * goes on the log when it changes and parses). open: its state in
 * DATA/retention/ (0 or an error code); pass: reads what the log holds
 * since the last pass and erases every child that is due (at most once a
 * second, in the loop's thread). */
int broker_retention_open(schakel_broker_t *b, const char *data_dir, char *why);
void broker_retention_pass(schakel_broker_t *b, int64_t wall_now);
void broker_retention_close(schakel_broker_t *b);

/* rules.c: the services' rule files on the log (rules_update), as the
 * directory is: at start (an error in why when a file does not parse)
 * and when a file changes. */
int broker_rules_sync(schakel_broker_t *b, char *why);
void broker_rules_maybe_reload(schakel_broker_t *b);
/* The retention rules in force: the document of the last rules_update of
 * set retention on the log (caller frees; NULL: none) and its seq in
 * *seq. put: text (retention.c checked it) goes on the log when it
 * differs from those; 0, or the append's error (an alarm). */
char *broker_rules_retention(schakel_broker_t *b, uint64_t *seq);
int broker_rules_put_retention(schakel_broker_t *b, const char *text, size_t len);

/* commit.c: appends a group and holds its ACKs; ACKs and announces what
 * has become durable; makes everything durable now (a flush) and ACKs. */
void broker_commit_group(schakel_broker_t *b, pending_t *list);
void broker_release_durable(schakel_broker_t *b);
void broker_sync(schakel_broker_t *b);
void broker_publish_head(schakel_broker_t *b, const char *stream, uint64_t seq);

/* serve.c: the read commands, and the body check every command passes. */
int broker_body_checked(schakel_broker_t *b, schakel_wire_msg_t *m);
int broker_key_current(schakel_broker_t *b, schakel_wire_msg_t *m);
void broker_serve_fetch(schakel_broker_t *b, schakel_wire_msg_t *m);
void broker_serve_commit(schakel_broker_t *b, schakel_wire_msg_t *m);
void broker_serve_ping(schakel_broker_t *b, schakel_wire_msg_t *m);

/* peer.c: the per-connection table and replies: the connection's entry,
 * made for org when there is none (org NULL: found only); what all
 * connections of org hold; a refusal for an organisation at one of its
 * limits, counted and logged (at most once a second). */
peer_t *broker_peer_find(schakel_broker_t *b, const zmq_msg_t *rid, const char *org);
org_held_t broker_org_held(const schakel_broker_t *b, const char *org);
void broker_org_refused(schakel_broker_t *b, const char *org, const char *limit);
void broker_peers_free(schakel_broker_t *b);
void broker_send_reply(schakel_broker_t *b, schakel_wire_msg_t *m, const char *name,
                       const ProtobufCMessage *msg);
void broker_send_error(schakel_broker_t *b, schakel_wire_msg_t *m, Schakel__V1__RejectCode code,
                       const char *reason);
void broker_reply_dropped(schakel_broker_t *b, const char *name, uint64_t req_id);

#endif
