/* bench/common: see common.h. */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include <lmdb.h>

const char *const bench_publisher_orgs[BENCH_N_ORGS] = {"school-12ab00", "school-34cd01",  "smw-farent",
                                                        "ggd-jgz",       "wijkteam-noord", "wijkteam-zuid"};

volatile sig_atomic_t bench_interrupted;

void bench_on_signal(int sig)
{
    (void)sig;
    bench_interrupted = 1;
}

void bench_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int bench_free_ports(int *ports, size_t n)
{
    int fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, rc = 0;
    for (size_t i = 0; i < n && i < 8 && rc == 0; i++) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t l = sizeof a;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &l) != 0)
            rc = -1;
        else ports[i] = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < 8; i++)
        if (fds[i] >= 0) close(fds[i]);
    return rc;
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    remove(p);
    return 0;
}

void bench_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int bench_on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[BENCH_PATH_LEN], full[BENCH_PATH_LEN + 64];
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n > 0 && n < sizeof dir) {
            memcpy(dir, path, n);
            dir[n] = 0;
            snprintf(full, sizeof full, "%s/%s", dir, prog);
            if (access(full, X_OK) == 0) return 1;
        }
        path = colon ? colon + 1 : NULL;
    }
    return 0;
}

pid_t bench_spawn(char *const argv[], const char *log_path, int out_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid; /* -1 on failure */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        dup2(fd, 2);
        if (out_fd < 0) dup2(fd, 1);
        close(fd);
    }
    if (out_fd >= 0) {
        dup2(out_fd, 1);
        close(out_fd);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int bench_stop_child(pid_t *pid)
{
    int st = -1;
    if (*pid <= 0) return -1;
    kill(*pid, SIGTERM);
    for (int waited = 0; waited < BENCH_STOP_GRACE_MS; waited += 10) {
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            *pid = 0;
            return st;
        }
        bench_sleep_ms(10);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
    *pid = 0;
    return st;
}

int bench_child_gone(pid_t *pid, int *status)
{
    if (*pid <= 0) return 1;
    if (waitpid(*pid, status, WNOHANG) == *pid) {
        *pid = 0;
        return 1;
    }
    return 0;
}

void bench_show_log_tail(const char *label, const char *path)
{
    char line[1024], ring[12][1024];
    size_t n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) snprintf(ring[n++ % 12], sizeof ring[0], "%s", line);
    fclose(f);
    fprintf(stderr, "bench: last lines of %s (%s):\n", label, path);
    for (size_t i = n > 12 ? n - 12 : 0; i < n; i++) fprintf(stderr, "  | %s", ring[i % 12]);
}

static void cpu_model(char *out, size_t cap)
{
    char line[512];
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon += strspn(colon + 1, " \t") + 1;
            colon[strcspn(colon, "\n")] = 0;
            snprintf(out, cap, "%s", colon);
            break;
        }
    }
    if (f) fclose(f);
}

void bench_print_machine(void)
{
    char model[256];
    struct utsname u;
    cpu_model(model, sizeof model);
    if (uname(&u) != 0) snprintf(u.release, sizeof u.release, "?");
    printf("machine: %ld cores online, %s, Linux %s\n", sysconf(_SC_NPROCESSORS_ONLN), model, u.release);
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_percentile(const double *v, size_t n, double pct)
{
    if (n == 0) return 0;
    size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

void bench_summarize(double *v, size_t n, double *p50, double *p99, double *max)
{
    *p50 = *p99 = *max = 0;
    if (!v || !n) return;
    qsort(v, n, sizeof *v, bench_cmp_double);
    *p50 = bench_percentile(v, n, 50);
    *p99 = bench_percentile(v, n, 99);
    *max = v[n - 1];
}

int bench_parse_size(const char *prog, const char *flag, const char *v, size_t lo, size_t hi, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi) {
        fprintf(stderr, "%s: %s wants a whole number from %zu to %zu, not \"%s\"\n", prog, flag, lo, hi, v);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

void bench_subjects(char (*subjects)[65], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char label[48];
        uint8_t h[SCHAKEL_SHA256_LEN];
        snprintf(label, sizeof label, "synthetic-child-%zu", i);
        schakel_sha256(label, strlen(label), h);
        schakel_hex_encode(h, sizeof h, subjects[i]);
    }
}

/* ---- the node ---- */

schakel_client_t *bench_client(void *zmq, const bench_node_t *n, const char *org, size_t window, int retry_ms,
                               int retry_max_ms, char *why)
{
    char path[BENCH_PATH_LEN + 64];
    schakel_keys_t k;
    snprintf(path, sizeof path, "%s/keys/%s.key", n->dir, org);
    if (schakel_keys_load(&k, path, why) != 0) return NULL;
    schakel_client_options_t co = {0};
    co.endpoint = n->endpoint;
    co.server_public = n->server_public;
    co.keys = &k;
    co.window = window;
    co.retry_ms = retry_ms;
    co.retry_max_ms = retry_max_ms;
    schakel_client_t *c = schakel_client_new(zmq, &co, why);
    schakel_keys_wipe(&k);
    return c;
}

int bench_ping(schakel_client_t *c, int timeout_ms, uint64_t *head, char *why)
{
    Schakel__V1__Ping req = SCHAKEL__V1__PING__INIT;
    ProtobufCMessage *reply = NULL;
    int rc =
        schakel_client_call(c, "PING", &req.base, &schakel__v1__pong__descriptor, &reply, timeout_ms, why);
    if (rc == 0) {
        if (head) *head = ((Schakel__V1__Pong *)reply)->head;
        protobuf_c_message_free_unpacked(reply, NULL);
    }
    return rc;
}

int bench_node_start(void *zmq, const char *schakel_bin, bench_node_t *n, int services, size_t checkers)
{
    char pubkey[BENCH_PATH_LEN + 64], nodejson[BENCH_PATH_LEN + 64], n_checkers[24];
    char why[SCHAKEL_ERRLEN] = "";
    snprintf(pubkey, sizeof pubkey, "%s/keys/broker.pub", n->dir);
    snprintf(nodejson, sizeof nodejson, "%s/node.json", n->dir);
    snprintf(n_checkers, sizeof n_checkers, "%zu", checkers);
    /* with services: as `schakel node` runs (a clock_tick a minute); the
     * broker alone: no services and no clock ticks, whose decisions and
     * ticks would add their own records to the log */
    char *argv[16] = {(char *)schakel_bin,  (char *)"node", (char *)"--data", n->dir,
                      (char *)"--endpoint", n->endpoint,    (char *)"--pub",  n->pub_endpoint};
    size_t argc = 8;
    if (!services) {
        argv[argc++] = (char *)"--no-services";
        argv[argc++] = (char *)"--tick-ms";
        argv[argc++] = (char *)"0";
    }
    if (checkers) {
        argv[argc++] = (char *)"--checkers";
        argv[argc++] = n_checkers;
    }
    argv[argc++] = (char *)"--http"; /* no dashboard unless the benchmark asks */
    argv[argc++] = n->http[0] ? n->http : (char *)"off";
    argv[argc] = NULL;
    n->pid = bench_spawn(argv, n->log, -1);
    if (n->pid < 0) {
        fprintf(stderr, "bench: fork: %s\n", strerror(errno));
        return -1;
    }
    int64_t end = schakel_mono_ns() + (int64_t)BENCH_READY_MS * 1000000;
    int st;
    while (access(nodejson, F_OK) != 0) { /* written last on first run */
        if (bench_child_gone(&n->pid, &st) || schakel_mono_ns() > end || bench_interrupted) goto fail;
        bench_sleep_ms(20);
    }
    schakel_keys_t k;
    if (schakel_keys_load(&k, pubkey, why) != 0) goto fail;
    snprintf(n->server_public, sizeof n->server_public, "%s", k.curve_public);
    schakel_client_t *c = bench_client(zmq, n, "svc-audit", 1, 5000, 20000, why);
    int rc = -1;
    while (c && rc != 0 && schakel_mono_ns() < end && !bench_interrupted) {
        rc = bench_ping(c, 200, NULL, why);
        if (bench_child_gone(&n->pid, &st)) break;
    }
    schakel_client_destroy(&c);
    if (rc == 0) return 0;
fail:
    fprintf(stderr, "bench: %s did not come up within %d ms%s%s\n", n->name, BENCH_READY_MS,
            why[0] ? ": " : "", why);
    bench_show_log_tail(n->name, n->log);
    return -1;
}

/* ---- redis ---- */

int bench_redis_say(int port, const char *cmd, size_t len, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, cmd, len) == (ssize_t)len) {
        struct pollfd pf = {fd, POLLIN, 0};
        size_t got = 0;
        while (got + 1 < cap && poll(&pf, 1, 2000) > 0) {
            ssize_t n = read(fd, out + got, cap - 1 - got);
            if (n <= 0) break;
            got += (size_t)n;
            out[got] = 0;
            if (memchr(out, '\n', got)) {
                rc = 0;
                break;
            }
        }
    }
    close(fd);
    return rc;
}

int bench_redis_start(const char *dir, const char *log, int port, pid_t *pid, char *why, size_t cap)
{
    char port_s[16], reply[256];
    snprintf(port_s, sizeof port_s, "%d", port);
    if (mkdir(dir, 0700) != 0) {
        snprintf(why, cap, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    /* AOF rewrite off: the peer gets its steady-state append path. */
    char *argv[] = {(char *)"redis-server",
                    (char *)"--port",
                    port_s,
                    (char *)"--bind",
                    (char *)"127.0.0.1",
                    (char *)"--dir",
                    (char *)dir,
                    (char *)"--appendonly",
                    (char *)"yes",
                    (char *)"--appendfsync",
                    (char *)"always",
                    (char *)"--save",
                    (char *)"",
                    (char *)"--daemonize",
                    (char *)"no",
                    (char *)"--auto-aof-rewrite-percentage",
                    (char *)"0",
                    NULL};
    *pid = bench_spawn(argv, log, -1);
    if (*pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        return -1;
    }
    int64_t end = schakel_mono_ns() + (int64_t)BENCH_READY_MS * 1000000;
    int st;
    while (bench_redis_say(port, "PING\r\n", 6, reply, sizeof reply) != 0 ||
           strncmp(reply, "+PONG", 5) != 0) {
        if (bench_child_gone(pid, &st) || schakel_mono_ns() > end || bench_interrupted) {
            snprintf(why, cap, "redis-server did not answer PING");
            bench_show_log_tail("redis-server", log);
            return -1;
        }
        bench_sleep_ms(20);
    }
    return 0;
}

/* ---- options, the start, publishers ---- */

void bench_opts_default(bench_opts_t *c)
{
    c->schakel_bin = SCHAKEL_BIN_DIR "/schakel";
    c->tmp_base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    c->keep = c->no_redis = 0;
}

int bench_opt(const char *prog, const char *usage, int argc, char **argv, int *i, bench_opts_t *c)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        fputs(usage, stdout);
        return BENCH_OPT_HELP;
    }
    if (!strcmp(a, "--no-redis")) c->no_redis = 1;
    else if (!strcmp(a, "--keep")) c->keep = 1;
    else if (*i + 1 >= argc) {
        fprintf(stderr, "%s: unknown option or missing value: %s (see --help)\n", prog, a);
        return -1;
    } else if (!strcmp(a, "--schakel")) c->schakel_bin = argv[++*i];
    else if (!strcmp(a, "--tmp")) c->tmp_base = argv[++*i];
    else return 0;
    return 1;
}

int bench_begin(const char *prog, const bench_opts_t *c, const char *prefix, char *dir, size_t cap)
{
    if (access(c->schakel_bin, X_OK) != 0) {
        fprintf(stderr,
                "%s: %s: %s (build it: cmake --build build --target schakel, or give --schakel PATH)\n", prog,
                c->schakel_bin, strerror(errno));
        return 2;
    }
    schakel_signals_on_stop(bench_on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and stderr in order */
    snprintf(dir, cap, "%s/%s-XXXXXX", c->tmp_base, prefix);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", prog, dir, strerror(errno));
        dir[0] = 0; /* nothing to remove */
        return 1;
    }
    return 0;
}

void bench_ack_batch(const Schakel__V1__Ack *ack, size_t want, uint64_t *missing, char *first_reject,
                     size_t cap)
{
    if (ack->n_entries < want) *missing += want - ack->n_entries;
    if (ack->batch_code && !first_reject[0])
        snprintf(first_reject, cap, "batch code %d: %s", ack->batch_code,
                 ack->batch_reason ? ack->batch_reason : "");
}

void bench_publisher_end(schakel_client_t *c, schakel_ack_fn on_ack, void *p, int (*stop)(void *, int64_t),
                         int64_t deadline, int *failed, atomic_int *abort, atomic_int *finished)
{
    while (!*failed && schakel_client_inflight(c) > 0) {
        if (stop(p, deadline)) *failed = 1;
        else schakel_client_poll(c, 1, on_ack, p);
    }
    if (*failed) atomic_store(abort, 1);
    atomic_store(finished, 1);
}

void bench_publisher_free(schakel_client_t **c, uint8_t *arena, const uint8_t **ptrs, size_t *lens)
{
    schakel_client_destroy(c);
    free(arena);
    free((void *)ptrs); /* its own array: the pointers in it point into arena */
    free(lens);
}

json_t *bench_org_json(const char *id, const char *kind, const char *publish, const char *rights,
                       schakel_keys_t *keys)
{
    schakel_keys_t k;
    if (schakel_keys_generate(&k, id) != 0) return NULL;
    char sign[65], buf[512], *save = NULL;
    schakel_hex_encode(k.sign_public, 32, sign);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:[]}", "id", id, "kind", kind, "name", "synthetic",
                  "curve_public", k.curve_public, "sign_public", sign, "publish", "rights");
    if (keys) *keys = k;
    else schakel_keys_wipe(&k);
    snprintf(buf, sizeof buf, "%s", publish);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "publish"), json_string(w));
    snprintf(buf, sizeof buf, "%s", rights);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "rights"), json_string(w));
    return o;
}

double bench_raw_walk(const char *logdir, uint64_t *n, uint64_t *bytes)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    *n = *bytes = 0;
    if (mdb_env_create(&env)) return -1;
    mdb_env_set_maxdbs(env, 16);
    double t0 = schakel_mono_secs();
    if (mdb_env_open(env, logdir, MDB_RDONLY | MDB_NOTLS, 0600) ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
        mdb_env_close(env);
        return -1;
    }
    if (mdb_dbi_open(txn, "events", 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
        volatile uint8_t sink = 0;
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
            (*n)++;
            *bytes += v.mv_size;
            sink ^= ((const uint8_t *)v.mv_data)[v.mv_size - 1]; /* touch the page */
        }
        (void)sink;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return schakel_mono_secs() - t0;
}

/* ---- dashboards: clients of the node's event stream ---- */

#define MAX_DASHBOARDS 1000
static pthread_t dash_threads[MAX_DASHBOARDS];
static int dash_fds[MAX_DASHBOARDS];
static size_t dash_n;
static atomic_int dash_stop;
static _Atomic uint64_t dash_bytes;
static char dash_req[128]; /* the request, with the Host the monitor wants */
static int dash_req_len;

static void *dashboard(void *arg)
{
    int fd = *(int *)arg;
    if (send(fd, dash_req, (size_t)dash_req_len, MSG_NOSIGNAL) != (ssize_t)dash_req_len) return NULL;
    char buf[16384];
    while (!atomic_load(&dash_stop)) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        atomic_fetch_add(&dash_bytes, (uint64_t)n);
    }
    return NULL;
}

size_t bench_dashboards_open(int port, size_t n)
{
    atomic_store(&dash_stop, 0);
    dash_req_len =
        snprintf(dash_req, sizeof dash_req,
                 "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n", port);
    for (dash_n = 0; dash_n < n && dash_n < MAX_DASHBOARDS; dash_n++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
            if (fd >= 0) (void)close(fd); /* never connected */
            break;
        }
        dash_fds[dash_n] = fd;
        if (pthread_create(&dash_threads[dash_n], NULL, dashboard, &dash_fds[dash_n]) != 0) {
            (void)close(fd); /* no thread reads it */
            break;
        }
    }
    return dash_n;
}

uint64_t bench_dashboards_close(void)
{
    atomic_store(&dash_stop, 1);
    for (size_t i = 0; i < dash_n; i++) {
        (void)pthread_join(dash_threads[i], NULL); /* our own threads, joined once */
        (void)close(dash_fds[i]);                  /* read only */
    }
    dash_n = 0;
    return atomic_load(&dash_bytes);
}
