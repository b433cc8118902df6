/* The demo's processes: the node and one adapter per organisation, each
 * a real `schakel` process in its own process group (so that Ctrl-C
 * reaches the demo alone, which stops them in order), and the node's
 * /metrics for the summary line. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

static char self[SCHAKEL_PATH_MAX];

static const char *exe(void)
{
    if (!self[0]) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) snprintf(self, sizeof self, "schakel");
        else self[n] = 0;
    }
    return self;
}

pid_t demo_spawn(const char *const *argv, const char *out, const char *err, int *stdin_fd)
{
    int p[2] = {-1, -1};
    /* close-on-exec: a child started later must not hold the write end, or
     * this one never reads the end of its input */
    if (stdin_fd && pipe2(p, O_CLOEXEC) != 0) return -1;
    const char *path = exe();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        (void)setpgid(0, 0);
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* a demo killed hard takes its children along */
        int i = stdin_fd ? p[0] : open("/dev/null", O_RDONLY);
        int o = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (i < 0 || o < 0 || e < 0) _exit(126);
        if (dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
        if (stdin_fd) (void)close(p[1]);
        const char *args[32] = {path};
        for (int n = 1; n < 31 && argv[n - 1]; n++) args[n] = argv[n - 1];
        execv(path, (char *const *)args);
        _exit(127);
    }
    if (stdin_fd) {
        (void)close(p[0]); /* the child's end */
        *stdin_fd = p[1];
    }
    return pid;
}

pid_t demo_start_node(demo_region_t *r)
{
    char log[SCHAKEL_PATH_MAX];
    if (schakel_path_fmt(log, sizeof log, NULL, "%s/node.log", r->dir)) return -1;
    const char *argv[] = {"node", "--data", r->node, "--tick-ms", "1000", NULL};
    return demo_spawn(argv, log, log, NULL);
}

int demo_start_adapters(demo_region_t *r)
{
    char cfg[SCHAKEL_PATH_MAX], log[SCHAKEL_PATH_MAX], out[SCHAKEL_PATH_MAX];
    for (int i = 0; i < r->norgs; i++) {
        demo_org_t *o = &r->orgs[i];
        if (schakel_path_fmt(cfg, sizeof cfg, NULL, "%s/orgs/%s/adapter.json", r->dir, o->id) ||
            schakel_path_fmt(log, sizeof log, NULL, "%s/orgs/%s/adapter.log", r->dir, o->id) ||
            schakel_path_fmt(out, sizeof out, NULL, "%s/orgs/%s/stdout.jsonl", r->dir, o->id))
            return -1;
        const char *argv[] = {"adapter", "--config", cfg, o->input == DEMO_IN_STDIN ? "--stdin" : NULL, NULL};
        o->pid = demo_spawn(argv, out, log, o->input == DEMO_IN_STDIN ? &o->stdin_fd : NULL);
        if (o->pid < 0) {
            fprintf(stderr, "schakel demo: cannot start the adapter of %s: %s\n", o->id, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int demo_stop(pid_t pid, const char *what, int timeout_s, int term)
{
    if (pid <= 0) return 0;
    if (term) (void)kill(pid, SIGTERM); /* our own child */
    int status = 0;
    for (int i = 0; i < timeout_s * 20; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
        if (w == pid) {
            fprintf(stderr, "schakel demo: %s %s %d\n", what,
                    WIFEXITED(status) ? "exited with status" : "was ended by signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            return -1;
        }
        if (w < 0) return -1;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "schakel demo: %s did not stop within %d s: killed\n", what, timeout_s);
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, &status, 0); /* reaped; it failed to stop cleanly either way */
    return -1;
}

int demo_run(const char *const *args, char *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0) return -1;
    const char *path = exe();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int i = open("/dev/null", O_RDONLY);
        if (i < 0 || dup2(i, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0) _exit(126);
        (void)close(p[0]);
        const char *argv[32] = {path};
        for (int n = 1; n < 31 && args[n - 1]; n++) argv[n] = args[n - 1];
        execv(path, (char *const *)argv);
        _exit(127);
    }
    (void)close(p[1]); /* the child's end */
    size_t n = 0;
    for (;;) {
        char buf[4096];
        ssize_t k = read(p[0], buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        size_t take = cap > n + 1 ? cap - n - 1 : 0;
        if ((size_t)k < take) take = (size_t)k;
        memcpy(out + n, buf, take);
        n += take;
    }
    out[cap ? n : 0] = 0;
    (void)close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct {
    char *out;
    size_t n, cap;
} sink_t;

static size_t take(char *p, size_t size, size_t n, void *arg)
{
    sink_t *s = arg;
    size_t k = size * n;
    if (s->n + k + 1 > s->cap) return 0; /* too much: the metrics are read without the rest */
    memcpy(s->out + s->n, p, k);
    s->n += k;
    s->out[s->n] = 0;
    return k;
}

int demo_metrics(const demo_region_t *r, char *out, size_t cap)
{
    CURL *cu = curl_easy_init();
    if (!cu || cap == 0) return -1;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", r->port + 2);
    sink_t s = {out, 0, cap};
    out[0] = 0;
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, take);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 5L);
    long status = 0;
    if (curl_easy_perform(cu) == CURLE_OK) curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(cu);
    return status == 200 ? 0 : -1;
}

double demo_metric_sum(const char *text, const char *name, int *nonzero)
{
    double sum = 0;
    size_t n = strlen(name);
    if (nonzero) *nonzero = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, name, n) || (l[n] != ' ' && l[n] != '{')) continue;
        const char *end = strchr(l, '\n'), *sp = l + n;
        for (const char *q = l + n; *q && q != end; q++)
            if (*q == ' ') sp = q;
        double v = strtod(sp, NULL);
        sum += v;
        if (nonzero && v != 0) (*nonzero)++;
    }
    return sum;
}
