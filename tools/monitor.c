/* schakel monitor: the node's HTTP endpoint beside a broker (or, started
 * by `schakel node --http`, beside its own): the collector thread, what it
 * publishes for the HTTP threads, and the command. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "client.h"
#include "error.h"
#include "monitor.h"
#include "service.h"
#include "tool.h"
#include "wire.h"

static const char usage[] =
    "usage: schakel monitor --node DIR [--http ADDR:PORT] [--http-token FILE] [--data DIR]\n"
    "                       [--lag-bound N] [connection options]\n"
    "\n"
    "Serves the bus's figures over HTTP (default 127.0.0.1:7480): a live dashboard at /,\n"
    "Prometheus metrics at /metrics, and /healthz (200 when the broker answers PING and\n"
    "every service is at most N records behind the log's head, default 10000; 503 with\n"
    "the reasons as JSON otherwise). Reads, once a second and read-only, the log and the\n"
    "services' state under DIR (or --data DIR, where a broker that runs alone keeps its\n"
    "log), and PINGs the broker as ORG (--as; default the node's operator, DIR/keys/broker.key,\n"
    "whose PONG carries the broker's own figures, else svc-audit). Counts only: no page\n"
    "or metric names a child, a case or an event. `schakel node --http` runs it for\n"
    "its own node. --http-token FILE: every page but /healthz wants the token in FILE\n"
    "(Authorization: Bearer TOKEN, or as a browser's password); an address that is not\n"
    "loopback is refused without it. docs/operations.md, \"Watching the bus\".\n"
    "Exit status: 0 after SIGTERM or Ctrl-C; 1 when it cannot listen; 2 usage.\n";

static atomic_int stopping;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, 1);
}

static void publish(mon_t *m, const mon_state_t *s)
{
    int healthy = 0;
    char *metrics = mon_render_metrics(s), *snap = mon_render_snapshot(s, m->lag_bound),
         *health = mon_render_health(s, m->lag_bound, &healthy);
    pthread_mutex_lock(&m->lock);
    if (metrics && snap && health) {
        free(m->metrics), free(m->snapshot), free(m->health);
        m->metrics = metrics, m->snapshot = snap, m->health = health;
        metrics = snap = health = NULL;
        m->healthy = healthy;
        m->published_ms = s->at_ms;
        m->version++;
        pthread_cond_broadcast(&m->changed);
    }
    pthread_mutex_unlock(&m->lock);
    free(metrics), free(snap), free(health); /* left when out of memory: the last round stays */
}

static void *collector(void *arg)
{
    mon_t *m = arg;
    mon_state_t *s = calloc(1, sizeof *s);
    if (s) s->adapters = adapter_health_new(); /* NULL: the adapter metrics are left out */
    void *ctx = zmq_ctx_new();
    schakel_client_t *cl = NULL;
    char why[SCHAKEL_ERRLEN] = "";
    if (m->conn.server_public[0]) {
        schakel_client_options_t o = {0};
        o.endpoint = m->conn.endpoint;
        o.server_public = m->conn.server_public;
        o.keys = &m->conn.keys;
        cl = schakel_client_new(ctx, &o, why);
    }
    for (int first = 1; s;) {
        struct timespec t0;
        clock_gettime(CLOCK_REALTIME, &t0);
        int64_t started_ms = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000;
        mon_collect_round(m, s, cl);
        publish(m, s);
        if (first) { /* mon_collect_start waits for the first round */
            first = 0;
            pthread_mutex_lock(&m->lock);
            pthread_cond_broadcast(&m->changed);
            pthread_mutex_unlock(&m->lock);
        }
        /* the next round at the next whole second after this one began */
        struct timespec until = {(time_t)(started_ms / 1000) + 1, 0}, now;
        pthread_mutex_lock(&m->lock);
        do (void)pthread_cond_timedwait(&m->changed, &m->lock, &until); /* woken early: checked below */
        while (!m->stop && clock_gettime(CLOCK_REALTIME, &now) == 0 && now.tv_sec < until.tv_sec);
        int stop = m->stop;
        pthread_mutex_unlock(&m->lock);
        if (stop) break;
    }
    schakel_client_destroy(&cl);
    schakel_wire_ctx_term(ctx);
    if (s) {
        mon_counts_free(&s->events), mon_counts_free(&s->edges), mon_counts_free(&s->held);
        mon_counts_free(&s->denied), mon_counts_free(&s->escalations), mon_counts_free(&s->refused);
        free(s->wanted);
        adapter_health_free(&s->adapters);
    }
    free(s);
    return NULL;
}

int mon_collect_start(mon_t *m, char *why)
{
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->ind_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&m->changed, &ca); /* CLOCK_REALTIME: the waits above use it */
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&m->thread, NULL, collector, m);
    if (err) return schakel_fail(why, SCHAKEL_EIO, "cannot start a thread: %s", strerror(err));
    pthread_mutex_lock(&m->lock);
    while (!m->version) pthread_cond_wait(&m->changed, &m->lock);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void mon_collect_stop(mon_t *m)
{
    pthread_mutex_lock(&m->lock);
    m->stop = 1;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    (void)pthread_join(m->thread, NULL); /* our own thread, joined once */
}

char *mon_current(mon_t *m, char which, int *healthy, uint64_t *version)
{
    pthread_mutex_lock(&m->lock);
    const char *t = which == 'm' ? m->metrics : which == 'h' ? m->health : m->snapshot;
    char *copy = t ? strdup(t) : NULL;
    if (healthy) *healthy = m->healthy;
    if (version) *version = m->version;
    pthread_mutex_unlock(&m->lock);
    return copy;
}

int mon_parse_listen(const char *text, char host[64], int *port, char *why)
{
    const char *colon = strrchr(text, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == text || (size_t)(colon - text) >= 64 || !colon[1] || *end || p < 1 || p > 65535)
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "--http wants ADDR:PORT (e.g. 127.0.0.1:7480) or off, not \"%s\"", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    if (!strcmp(host, "localhost")) snprintf(host, 64, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "--http wants an IPv4 address or localhost before the port, not \"%s\"", text);
    *port = (int)p;
    return 0;
}

int cmd_monitor(int argc, char **argv)
{
    static mon_t m; /* large; one per process */
    const char *listen = "127.0.0.1:7480", *data = NULL, *token = NULL;
    uint64_t bound = SCHAKEL_SERVICE_LAG_WARN;
    schakel_flag_t flags[] = {
        SCHAKEL_CONN_FLAGS(&m.conn),
        SCHAKEL_FLAG_S("--http", "ADDR:PORT", &listen),
        SCHAKEL_FLAG_S("--http-token", "FILE", &token),
        SCHAKEL_FLAG_S("--data", "DIR", &data),
        SCHAKEL_FLAG_U("--lag-bound", &bound, 1, INT64_MAX),
        SCHAKEL_FLAGS_END,
    };
    int rc = tool_flags("monitor", flags, argc, argv, 1, usage, schakel_conn_help, usage);
    if (rc >= 0) return rc;
    char host[64], why[SCHAKEL_ERRLEN] = "";
    int port = 0;
    if (mon_parse_listen(listen, host, &port, why) != 0) {
        fprintf(stderr, "schakel monitor: %s\n", why);
        return 2;
    }
    if ((rc = mon_http_guard("monitor", listen, host, token, m.token_hash, &m.have_token)) != 0) return rc;
    if (!m.conn.node_dir[0] && !data) {
        fprintf(stderr, "schakel monitor: give --node DIR (the node or the broker's data directory)\n");
        return 2;
    }
    snprintf(m.node_dir, sizeof m.node_dir, "%s", data ? data : m.conn.node_dir);
    if (!m.conn.as_org[0]) {
        /* the node's operator (DIR/keys/broker.key) is given the broker's own
         * figures in PONG; anyone else only whether it answers */
        char op[SCHAKEL_PATH_MAX];
        int operator= m.conn.node_dir[0] &&
                schakel_path_join(op, sizeof op, m.conn.node_dir, "keys/broker.key", NULL) == 0 &&
            access(op, R_OK) == 0;
        snprintf(m.conn.as_org, sizeof m.conn.as_org, "%s", operator? "broker" : "svc-audit");
    }
    if (tool_conn_finish(&m.conn, "monitor") != 0) return 2;
    m.lag_bound = bound;
    schakel_signals_on_stop(on_signal);
    if (mon_collect_start(&m, why) != 0) {
        fprintf(stderr, "schakel monitor: %s\n", why);
        return 1;
    }
    struct MHD_Daemon *d = mon_http_start(&m, host, port);
    if (!d) {
        mon_collect_stop(&m);
        return 1;
    }
    fprintf(stderr, "schakel monitor: http://%s:%d/ (dashboard; /metrics, /healthz, /indicators)\n", host,
            port);
    while (!atomic_load(&stopping)) usleep(100000);
    mon_collect_stop(&m); /* wakes the event streams, which then end */
    MHD_stop_daemon(d);
    free(m.ind[0]), free(m.ind[1]);
    schakel_keys_wipe(&m.conn.keys);
    return 0;
}

pid_t mon_spawn(const char *node_dir, const char *listen, const char *token_path)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* the child: ends with the node, also when the node is killed */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() == 1) _exit(1);
    if (token_path)
        execl("/proc/self/exe", "schakel", "monitor", "--node", node_dir, "--http", listen, "--http-token",
              token_path, (char *)NULL);
    else execl("/proc/self/exe", "schakel", "monitor", "--node", node_dir, "--http", listen, (char *)NULL);
    fprintf(stderr, "schakel node: cannot start the HTTP endpoint: %s\n", strerror(errno));
    _exit(1);
}

void mon_reap(pid_t pid)
{
    if (pid <= 0) return;
    (void)kill(pid, SIGTERM); /* our own child */
    for (int waited = 0; waited < 50; waited++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        usleep(100000);
    }
    (void)kill(pid, SIGKILL); /* stuck: it holds nothing that needs a clean stop */
    (void)waitpid(pid, NULL, 0);
}
