/* schakel-broker: authenticates organisations (CURVE + ZAP against the
 * directory), validates what they publish, appends it to the hash-chained
 * log with group commit, answers FETCH/COMMIT/PING, and announces new heads
 * on a PUB socket. One thread runs the command loop, a second checks what
 * is published, a third answers ZAP (docs/architecture.md). The same code
 * runs as its own process and inside `schakel node`. */
#ifndef SCHAKEL_BROKER_H
#define SCHAKEL_BROKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *data_dir;       /* log/, master.key, checkpoints.jsonl */
    const char *key_path;       /* the broker's .key file */
    const char *directory_path; /* directory JSON; reloaded when it changes */
    const char *rules_dir;      /* routing.json, consent.json, feedback.json: on the log; NULL: none */
    const char *endpoint;       /* ROUTER; default tcp://127.0.0.1:7400 */
    const char *pub_endpoint;   /* PUB; default tcp://127.0.0.1:7401 */
    const char *log_url;        /* nats://host:port[,...][/region]: the jetstream log; NULL: LMDB alone */
    int64_t lease_ms;           /* the jetstream log's writer lease; 0: 10000 */
    size_t map_max;             /* bytes; 0: 1 TiB */
    size_t map_initial;         /* bytes; 0: 64 MiB */
    uint64_t checkpoint_every;  /* events; 0: 1000 */
    int64_t checkpoint_ms;      /* 0: 1000 */
    size_t group_max;           /* events per commit; 0: 8192 */
    int64_t tick_ms;            /* a clock_tick on the log this often; 0: 60000; <0: never */
    size_t checkers;            /* checker threads; 0: one per core, at most 4 */
    int lock_held;              /* the caller holds data_dir's broker.lock (schakel_dir_lock) */
    int lock_fd;                /* on this descriptor; the broker closes it when destroyed */
} schakel_broker_config_t;

typedef struct schakel_broker schakel_broker_t;

/* Opens the log, loads keys and directory, starts the ZAP handler and binds
 * both endpoints (ZAP first, so that no connection is ever accepted without
 * it). ctx is the process's ZeroMQ context. NULL on failure, reason in why
 * (SCHAKEL_ERRLEN bytes). */
schakel_broker_t *schakel_broker_new(void *ctx, const schakel_broker_config_t *cfg, char *why);

/* Runs the command loop until schakel_broker_stop(). Returns 0 after a
 * clean stop (every ACKed event durable, log closed cleanly). */
int schakel_broker_run(schakel_broker_t *self);

/* Asks the loop to stop; safe from another thread or a signal handler. */
void schakel_broker_stop(schakel_broker_t *self);

void schakel_broker_destroy(schakel_broker_t **self_p);

/* The broker's log, for readers in its process (the services of a node):
 * only what store.h says any thread may call (read_upto, durable_seq,
 * wait_durable, ...), and only until schakel_broker_destroy. */
struct schakel_store;
struct schakel_store *schakel_broker_store(schakel_broker_t *self);

/* Loads <data_dir>/master.key (hex, 0600), creating it if absent. */
int schakel_broker_master_key(const char *data_dir, uint8_t key[32], char *why);

#endif
