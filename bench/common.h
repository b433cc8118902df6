/* bench/common: what bench/ingest and bench/e2e both need around the
 * measuring itself: the temp dir and child processes, a real `schakel
 * node` started and answering PING, a redis-server with appendfsync
 * always, percentiles, option numbers and the machine line. Every
 * message keeps the "bench: " prefix both benchmarks always printed. */
#ifndef SCHAKEL_BENCH_COMMON_H
#define SCHAKEL_BENCH_COMMON_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "client.h"
#include "keys.h"

#define BENCH_PATH_LEN 512
#define BENCH_READY_MS 15000     /* a node or redis must answer within this */
#define BENCH_STOP_GRACE_MS 5000 /* SIGTERM, then SIGKILL after this */

/* Organisations of the sample region that `schakel node` writes on first
 * run (tools/region.c) and that may publish "signal". */
extern const char *const bench_publisher_orgs[];
#define BENCH_N_ORGS 6

extern volatile sig_atomic_t bench_interrupted; /* set by SIGINT/SIGTERM only */

/* A `schakel node` child: its data dir, log, endpoints and key. */
typedef struct {
    const char *name; /* in messages: "broker", "node", ... */
    char dir[BENCH_PATH_LEN + 16], log[BENCH_PATH_LEN + 32];
    char endpoint[64], pub_endpoint[64];
    char server_public[SCHAKEL_Z85_KEY_LEN + 1];
    char http[32]; /* the node's --http ADDR:PORT; "": off */
    pid_t pid;
} bench_node_t;

/* The options both benchmarks take: --help, --keep, --no-redis,
 * --schakel PATH, --tmp DIR. */
typedef struct {
    const char *schakel_bin, *tmp_base;
    int keep, no_redis;
} bench_opts_t;

#define BENCH_OPT_HELP 2 /* --help was shown */

void bench_opts_default(bench_opts_t *c);
/* Takes argv[*i] if it is one of bench_opts_t's (moving *i past a value):
 * 1 taken, BENCH_OPT_HELP after showing usage, 0 when it is not one of
 * them and a value follows it (the caller's to read), -1 (said on
 * stderr, prefixed with prog) when it is not one of them and no value
 * follows. */
int bench_opt(const char *prog, const char *usage, int argc, char **argv, int *i, bench_opts_t *c);

/* What every run does first: checks that the schakel binary is there,
 * stops on SIGINT/SIGTERM (bench_interrupted), keeps stdout and stderr in
 * order, and makes the temp root <tmp_base>/<prefix>-XXXXXX in dir. 0, or
 * the exit code (said on stderr, prefixed with prog). */
int bench_begin(const char *prog, const bench_opts_t *c, const char *prefix, char *dir, size_t cap);

/* The end of an ACK: counts the entries missing from it and keeps the
 * first batch-wide reject's text. */
void bench_ack_batch(const Schakel__V1__Ack *ack, size_t want, uint64_t *missing, char *first_reject,
                     size_t cap);

/* The end of a publisher thread: polls for the final ACK of what is still
 * in flight while stop(p, deadline) allows (it says why not), then marks
 * the run aborted if the publisher failed, and the thread finished. */
void bench_publisher_end(schakel_client_t *c, schakel_ack_fn on_ack, void *p, int (*stop)(void *, int64_t),
                         int64_t deadline, int *failed, atomic_int *abort, atomic_int *finished);

/* Frees what every publisher has: its client and its events (arena,
 * pointers into it, lengths). */
void bench_publisher_free(schakel_client_t **c, uint8_t *arena, const uint8_t **ptrs, size_t *lens);

void bench_on_signal(int sig);
void bench_sleep_ms(int ms);

/* Picks n (<= 8) distinct free loopback ports (all bound at once, then released). */
int bench_free_ports(int *ports, size_t n);

/* n dashboards on the node's HTTP endpoint (127.0.0.1:port): a thread each
 * holding GET /events open and reading what comes, until closed. Returns
 * how many opened; bench_dashboards_close returns the bytes they read. */
size_t bench_dashboards_open(int port, size_t n);
uint64_t bench_dashboards_close(void);
/* Removes dir and everything below it. */
void bench_rmtree(const char *dir);
/* Is prog an executable somewhere on PATH? */
int bench_on_path(const char *prog);

/* Starts argv as a child in its own process group that dies with us.
 * stdout goes to out_fd if >= 0, else with stderr to log_path. */
pid_t bench_spawn(char *const argv[], const char *log_path, int out_fd);
/* SIGTERM, up to BENCH_STOP_GRACE_MS, then SIGKILL. Returns the wait
 * status, or -1 if *pid was not running. Clears *pid. */
int bench_stop_child(pid_t *pid);
/* 1 if the child exited (and reaps it, clearing *pid). */
int bench_child_gone(pid_t *pid, int *status);
/* Shows the last lines of a child's log after a failure. */
void bench_show_log_tail(const char *label, const char *path);

/* The "machine:" line both benchmarks print first. */
void bench_print_machine(void);

int bench_cmp_double(const void *a, const void *b);
/* Nearest-rank percentile of sorted v. */
double bench_percentile(const double *v, size_t n, double pct);
/* Sorts v and fills p50, p99, max (all 0 when n is 0). */
void bench_summarize(double *v, size_t n, double *p50, double *p99, double *max);

/* Parses a whole number from lo to hi for flag; prog names the benchmark
 * in the message. 0 or -1. */
int bench_parse_size(const char *prog, const char *flag, const char *v, size_t lo, size_t hi, size_t *out);

/* The pseudonyms of n synthetic children: sha256("synthetic-child-<i>"). */
void bench_subjects(char (*subjects)[65], size_t n);

/* A client of node n as org (its key from the node's keys dir). */
schakel_client_t *bench_client(void *zmq, const bench_node_t *n, const char *org, size_t window, int retry_ms,
                               int retry_max_ms, char *why);
/* PING; fills *head if head. 0 or an error code. */
int bench_ping(schakel_client_t *c, int timeout_ms, uint64_t *head, char *why);

/* Starts `schakel node` in n->dir (fresh: the first run writes the sample
 * region's keys, directory and rules) and waits until it answers PING.
 * services 0: --no-services --tick-ms 0 (the broker alone); checkers > 0:
 * --checkers N. */
int bench_node_start(void *zmq, const char *schakel_bin, bench_node_t *n, int services, size_t checkers);

/* Sends one inline or RESP command to redis on port and reads the first
 * reply line into out. 0 or -1. */
int bench_redis_say(int port, const char *cmd, size_t len, char *out, size_t cap);
/* Starts redis-server (appendfsync always, AOF rewrite off) with its data
 * in dir (made here) and its output in log, and waits for PING. 0, or -1
 * with the reason in why. */
int bench_redis_start(const char *dir, const char *log, int port, pid_t *pid, char *why, size_t cap);

/* The directory entry of a synthetic organisation with new keys (kept in
 * *keys when keys is not NULL, else wiped): id, kind, the event types it
 * may publish and its rights (both space-separated). NULL when no keys. */
json_t *bench_org_json(const char *id, const char *kind, const char *publish, const char *rights,
                       schakel_keys_t *keys);

/* Every value of the events table of the LMDB log in logdir through one
 * read-only cursor (each value's last byte touched): the machine's limit
 * for reading the log. Seconds, or -1; *n values of *bytes in all. */
double bench_raw_walk(const char *logdir, uint64_t *n, uint64_t *bytes);

#endif
