/* The node's HTTP endpoint (`schakel monitor`, and `schakel node --http`,
 * which runs it as a child process): a collector thread that gathers the
 * bus's figures once a second, read-only, and an HTTP server that hands
 * every client the same rendered result (/metrics, /healthz, the
 * dashboard and its event stream). Counts and organisation ids only:
 * nothing about a child is collected. */
#ifndef SCHAKEL_TOOL_MONITOR_H
#define SCHAKEL_TOOL_MONITOR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "adapter_health.h"
#include "conn.h"
#include "crypto.h"

/* A count with up to two labels (org and type, from and to, code). */
typedef struct {
    char a[64], b[64];
    uint64_t n;
} mon_count_t;

typedef struct {
    mon_count_t *v;
    size_t n, cap;
} mon_counts_t;

/* Adds k to the count labelled (a, b) (b may be ""); 0 or -1 (memory). */
int mon_counts_add(mon_counts_t *c, const char *a, const char *b, uint64_t k);
void mon_counts_free(mon_counts_t *c);

#define MON_SERVICES 8
#define MON_ORGS 256

/* What one round of collecting found; the collector thread's alone. */
typedef struct {
    int64_t at_ms; /* wall clock of the round */
    int broker_up;
    char broker_reason[160];
    uint64_t head, alarms;
    int have_log;
    uint64_t log_bytes, map_bytes;
    int64_t checkpoint_at_ms; /* 0: none seen */
    size_t n_services;
    struct {
        const char *name;
        int present;
        uint64_t cursor, alarms;
        int64_t oldest_unread_ms; /* log time of the record after the cursor; 0: none unread */
    } svc[MON_SERVICES];
    size_t n_orgs;
    struct {
        char id[64], kind[24];
        uint64_t stream_pos; /* where the next read of org/<id> starts */
        uint64_t lag;        /* entries of org/<id> after its consumer's cursor */
        uint64_t cursor;     /* the furthest cursor committed on org/<id> (0: none) */
        uint64_t counted_at; /* the cursor lag was counted from; since then only new entries are added */
        int counted, lag_capped;
        uint64_t open, overdue; /* feedback loops by receiving organisation */
    } org[MON_ORGS];
    int have_loops, have_decisions;
    uint64_t read_seq; /* records of "all" counted up to here (from the log's start) */
    int caught_up;     /* read_seq reached the head once: the totals are served */
    uint64_t *wanted;  /* seqs of decisions and reminders seen, to decrypt and count */
    size_t n_wanted, cap_wanted;
    mon_counts_t events;        /* org, type */
    mon_counts_t edges;         /* from, to */
    mon_counts_t held, denied;  /* code */
    mon_counts_t escalations;   /* receiving org */
    mon_counts_t refused;       /* service, code: read whole from each service's state each round */
    adapter_health_t *adapters; /* the latest adapter_status of each org (NULL: out of memory) */
    /* the broker's own figures (PONG's stats: only when the monitor PINGs
     * with the broker's key, i.e. as the node's operator) */
    int have_stats;
    uint64_t active_orgs, n_rejects, reject_code[16], reject_n[16];
    uint64_t commits, commit_us_sum, commit_bound[16], commit_le[16], n_commit;
    uint64_t group_sum, group_bound[16], group_le[16], n_group;
    uint64_t checkpoint_seq; /* where the next checkpoint search starts */
    int64_t started_ms;
} mon_state_t;

typedef struct {
    /* set before start */
    char node_dir[SCHAKEL_PATH_MAX];
    schakel_conn_t conn;
    uint64_t lag_bound;
    int have_token;                         /* --http-token: every page but /healthz wants it */
    uint8_t token_hash[SCHAKEL_SHA256_LEN]; /* its SHA-256 (monitor_auth.c) */
    char http_host[64];                     /* the address it listens on (mon_http_start) */
    int http_port;
    /* the collector's result, under lock; strings replaced whole each round */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    uint64_t version;
    char *metrics, *snapshot, *health;
    int healthy;
    int64_t published_ms;
    int stop;
    pthread_t thread;
    size_t sse_clients;
    /* /indicators and /indicators.csv: rendered at most once a minute (they
     * read the whole log), shared by every request in between */
    pthread_mutex_t ind_lock;
    char *ind[2];
    size_t ind_len[2];
    int64_t ind_at_ms[2];
} mon_t;

/* Starts the collector thread (it does one round before returning, so the
 * first request finds figures). 0 or -1 with why. */
int mon_collect_start(mon_t *m, char *why);
void mon_collect_stop(mon_t *m);

/* One round of reading the log, the services and the broker into s. */
void mon_collect_round(mon_t *m, mon_state_t *s, void *client);

/* Renders s as Prometheus text, the dashboard's JSON and /healthz's JSON
 * (each malloc'd; NULL when out of memory); *healthy: 1 or 0. */
char *mon_render_metrics(const mon_state_t *s);
char *mon_render_snapshot(const mon_state_t *s, uint64_t lag_bound);
char *mon_render_health(const mon_state_t *s, uint64_t lag_bound, int *healthy);

/* Copies the current text (which: 'm' metrics, 's' snapshot, 'h' health)
 * and, for 'h', whether healthy; NULL when none yet or out of memory. */
char *mon_current(mon_t *m, char which, int *healthy, uint64_t *version);

/* The HTTP server on host:port (libmicrohttpd, its own threads). NULL,
 * said on stderr, when it cannot listen. */
struct MHD_Daemon *mon_http_start(mon_t *m, const char *host, int port);

/* Splits "ADDR:PORT" (an IPv4 address or "localhost") into host and port.
 * 0, or -1 with why. */
int mon_parse_listen(const char *text, char host[64], int *port, char *why);

/* `schakel node --http`: runs `schakel monitor --node node_dir --http
 * listen [--http-token token_path]` as a child process (its own process:
 * LMDB must not open the node's files twice in one process), which ends
 * with the node. Its pid, or -1. mon_reap stops it (SIGTERM, after 5 s
 * SIGKILL) and reaps it. */
pid_t mon_spawn(const char *node_dir, const char *listen, const char *token_path);

/* --http-token (monitor_auth.c). mon_token_load reads the token file
 * (one token of 32 to 512 printable characters, a final newline allowed;
 * the file this user's, mode 0600 or 0400) into its SHA-256; 0, or an
 * error with why. mon_is_loopback: whether
 * host (IPv4) is 127.x.x.x. mon_http_guard, for `schakel cmd`: loads
 * token_path when given; refuses a listen address that is not loopback
 * without one. 0, or 2 (said on stderr: a wrong argument). */
int mon_token_load(const char *path, uint8_t hash[SCHAKEL_SHA256_LEN], char *why);
/* The token itself (malloc'd; the caller wipes and frees it), for a client
 * (schakel top); NULL with why. */
char *mon_token_read(const char *path, char *why);
int mon_is_loopback(const char *host);
int mon_http_guard(const char *cmd, const char *listen, const char *host, const char *token_path,
                   uint8_t hash[SCHAKEL_SHA256_LEN], int *have_token);
/* Whether the request shows the token (always, when there is none). */
struct MHD_Connection;
int mon_authorized(const mon_t *m, struct MHD_Connection *c);
void mon_reap(pid_t pid);

/* The page and its assets, embedded at build time (monitor_assets.c). */
typedef struct {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
} mon_asset_t;
extern const mon_asset_t mon_assets[];
extern const size_t mon_n_assets;

#endif
