/* A real three-node NATS JetStream cluster for the tests of the jetstream
 * log backend: three `nats-server` processes on loopback ports below the
 * ephemeral range (harness_free_ports), each with its own store in a temp
 * dir, routes between all three. Servers are named n1, n2, n3. */
#ifndef SCHAKEL_TEST_NATS_CLUSTER_H
#define SCHAKEL_TEST_NATS_CLUSTER_H

#include <sys/types.h>

#define NATS_NODES 3

typedef struct {
    char dir[256];
    int port[NATS_NODES];  /* client ports */
    int route[NATS_NODES]; /* cluster ports */
    int http[NATS_NODES];  /* monitoring ports (/jsz, /routez: for a person looking at a stalled run) */
    pid_t pid[NATS_NODES]; /* 0: not running */
    char url[160];         /* nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3 (no region) */
} nats_cluster_t;

/* Starts the three servers and waits (up to 20 s) until a stream of three
 * replicas can be placed (a probe stream, created and deleted: a meta
 * leader alone may not yet know every peer). NULL (with the reason on
 * stderr) when it does not come up. */
nats_cluster_t *nats_cluster_start(void);
/* SIGKILLs server i (0..2) and reaps it. */
void nats_cluster_kill(nats_cluster_t *c, int i);
/* Starts server i again on its store; 0, or -1 when it does not listen
 * within 10 s. */
int nats_cluster_restart(nats_cluster_t *c, int i);
/* The index (0..2) of the server leading stream, -1 when none answers
 * (within about wait_ms). */
int nats_cluster_stream_leader(nats_cluster_t *c, const char *stream, int wait_ms);
/* Waits until stream has a leader and both other replicas are current
 * and online (a restarted server has caught up): the ms waited, or -1
 * after about wait_ms. Killing a leader before that may leave no current
 * majority. */
long long nats_cluster_stream_current(nats_cluster_t *c, const char *stream, int wait_ms);
/* The last sequence of stream, asked of any live server; (uint64_t)-1
 * when none answers. */
unsigned long long nats_cluster_stream_last(nats_cluster_t *c, const char *stream);
/* Each live server's own view on stderr, for a run that stalled: the
 * stream's part of its /jsz (its leader, this server's last seq, the
 * replicas' lag and last activity) and its /routez. */
void nats_cluster_dump(nats_cluster_t *c, const char *stream);
/* Kills every server, removes the temp dir, frees. */
void nats_cluster_destroy(nats_cluster_t **c);

#endif
