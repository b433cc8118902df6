/* Three nats-server processes as one JetStream cluster (nats_cluster.h). */
#include "nats_cluster.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int write_config(nats_cluster_t *c, int i)
{
    char path[320], store[300];
    snprintf(path, sizeof path, "%s/n%d.conf", c->dir, i + 1);
    snprintf(store, sizeof store, "%s/n%d", c->dir, i + 1);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "server_name: n%d\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
            "jetstream { store_dir: \"%s\" }\n"
            "cluster {\n  name: schakel-test\n  listen: 127.0.0.1:%d\n  routes: [\n",
            i + 1, c->port[i], c->http[i], store, c->route[i]);
    for (int j = 0; j < NATS_NODES; j++)
        if (j != i) fprintf(f, "    nats-route://127.0.0.1:%d\n", c->route[j]);
    fprintf(f, "  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

static pid_t spawn(nats_cluster_t *c, int i)
{
    char conf[320], log[320];
    snprintf(conf, sizeof conf, "%s/n%d.conf", c->dir, i + 1);
    snprintf(log, sizeof log, "%s/n%d.log", c->dir, i + 1);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("nats-server", "nats-server", "-c", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A JetStream context on server i alone (NULL: not reachable). */
static natsConnection *connect_one(nats_cluster_t *c, int i, jsCtx **js)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", c->port[i]);
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    if (natsOptions_Create(&o) != NATS_OK) return NULL;
    natsOptions_SetURL(o, url);
    natsOptions_SetTimeout(o, 500);
    natsOptions_SetMaxReconnect(o, 0);
    natsStatus s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) return NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    if (natsConnection_JetStream(js, nc, &jo) != NATS_OK) {
        natsConnection_Destroy(nc);
        return NULL;
    }
    return nc;
}

/* Ready for a three-replica stream: a meta leader alone is not enough.
 * nats-server elects one before it has heard from every peer, and a
 * stream of three replicas created then fails ("no suitable peers for
 * placement", JetStream error 10005: seen when a broker started right
 * after the meta leader). So a probe stream of three replicas is created
 * and deleted again. */
static int can_place_three_replicas(nats_cluster_t *c)
{
    for (int i = 0; i < NATS_NODES; i++) {
        if (!c->pid[i]) continue;
        jsCtx *js = NULL;
        natsConnection *nc = connect_one(c, i, &js);
        if (!nc) continue;
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const char *subjects[] = {"schakel-test.ready"};
        cfg.Name = "SCHAKEL_TEST_READY";
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_MemoryStorage;
        cfg.Replicas = NATS_NODES;
        jsStreamInfo *si = NULL;
        jsErrCode e = 0;
        natsStatus s = js_AddStream(&si, js, &cfg, NULL, &e);
        if (si) jsStreamInfo_Destroy(si);
        if (s == NATS_OK) s = js_DeleteStream(js, cfg.Name, NULL, &e);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        return s == NATS_OK;
    }
    return 0;
}

nats_cluster_t *nats_cluster_start(void)
{
    nats_cluster_t *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/schakel-nats-XXXXXX");
    if (!mkdtemp(c->dir)) abort();
    int base = harness_free_ports(3 * NATS_NODES);
    if (base < 0) {
        fprintf(stderr, "nats cluster: no free ports\n");
        nats_cluster_destroy(&c);
        return NULL;
    }
    size_t o = (size_t)snprintf(c->url, sizeof c->url, "nats://");
    for (int i = 0; i < NATS_NODES; i++) {
        c->port[i] = base + i;
        c->route[i] = base + NATS_NODES + i;
        c->http[i] = base + 2 * NATS_NODES + i;
        o += (size_t)snprintf(c->url + o, sizeof c->url - o, "%s127.0.0.1:%d", i ? "," : "", c->port[i]);
    }
    for (int i = 0; i < NATS_NODES; i++)
        if (write_config(c, i) != 0 || (c->pid[i] = spawn(c, i)) <= 0) {
            fprintf(stderr, "nats cluster: cannot start n%d\n", i + 1);
            nats_cluster_destroy(&c);
            return NULL;
        }
    long long t0 = now_ms();
    while (!can_place_three_replicas(c)) {
        if (now_ms() - t0 > 20000) {
            fprintf(stderr,
                    "nats cluster: no stream of three replicas could be placed in 20 s (logs in %s)\n",
                    c->dir);
            nats_cluster_destroy(&c);
            return NULL;
        }
        usleep(100000);
    }
    printf("nats cluster: 3 servers at %s, ready for three replicas after %lld ms\n", c->url, now_ms() - t0);
    return c;
}

void nats_cluster_kill(nats_cluster_t *c, int i)
{
    if (!c->pid[i]) return;
    kill(c->pid[i], SIGKILL);
    (void)waitpid(c->pid[i], NULL, 0); /* our own child */
    c->pid[i] = 0;
}

int nats_cluster_restart(nats_cluster_t *c, int i)
{
    if (c->pid[i]) return 0;
    c->pid[i] = spawn(c, i);
    long long t0 = now_ms();
    while (now_ms() - t0 < 10000) {
        jsCtx *js = NULL;
        natsConnection *nc = connect_one(c, i, &js);
        if (nc) {
            jsCtx_Destroy(js);
            natsConnection_Destroy(nc);
            return 0;
        }
        usleep(100000);
    }
    return -1;
}

/* One question to the live servers: the leader of stream (-1: none
 * answers), and whether both other replicas are current and online. */
static int stream_ask(nats_cluster_t *c, const char *stream, int *all_current)
{
    *all_current = 0;
    for (int i = 0; i < NATS_NODES; i++) {
        if (!c->pid[i]) continue;
        jsCtx *js = NULL;
        natsConnection *nc = connect_one(c, i, &js);
        if (!nc) continue;
        jsStreamInfo *si = NULL;
        jsErrCode e = 0;
        int leader = -1;
        if (js_GetStreamInfo(&si, js, stream, NULL, &e) == NATS_OK && si->Cluster && si->Cluster->Leader &&
            si->Cluster->Leader[0] == 'n') {
            leader = atoi(si->Cluster->Leader + 1) - 1;
            int current = si->Cluster->ReplicasLen == NATS_NODES - 1;
            for (int r = 0; r < si->Cluster->ReplicasLen; r++)
                current = current && si->Cluster->Replicas[r]->Current && !si->Cluster->Replicas[r]->Offline;
            *all_current = current;
        }
        if (si) jsStreamInfo_Destroy(si);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        if (leader >= 0 && leader < NATS_NODES && c->pid[leader]) return leader;
    }
    return -1;
}

int nats_cluster_stream_leader(nats_cluster_t *c, const char *stream, int wait_ms)
{
    long long t0 = now_ms();
    do {
        int current, leader = stream_ask(c, stream, &current);
        if (leader >= 0) return leader;
        usleep(100000);
    } while (now_ms() - t0 < wait_ms);
    return -1;
}

long long nats_cluster_stream_current(nats_cluster_t *c, const char *stream, int wait_ms)
{
    long long t0 = now_ms();
    do {
        int current;
        if (stream_ask(c, stream, &current) >= 0 && current) return now_ms() - t0;
        usleep(100000);
    } while (now_ms() - t0 < wait_ms);
    return -1;
}

unsigned long long nats_cluster_stream_last(nats_cluster_t *c, const char *stream)
{
    for (int i = 0; i < NATS_NODES; i++) {
        if (!c->pid[i]) continue;
        jsCtx *js = NULL;
        natsConnection *nc = connect_one(c, i, &js);
        if (!nc) continue;
        jsStreamInfo *si = NULL;
        jsErrCode e = 0;
        unsigned long long last = (unsigned long long)-1;
        if (js_GetStreamInfo(&si, js, stream, NULL, &e) == NATS_OK) last = si->State.LastSeq;
        if (si) jsStreamInfo_Destroy(si);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        if (last != (unsigned long long)-1) return last;
    }
    return (unsigned long long)-1;
}

typedef struct {
    char buf[16384];
    size_t n;
} text_t;

static size_t gather_text(char *p, size_t size, size_t n, void *arg)
{
    text_t *t = arg;
    size_t len = size * n, room = sizeof t->buf - 1 - t->n;
    memcpy(t->buf + t->n, p, len < room ? len : room);
    t->n += len < room ? len : room;
    t->buf[t->n] = 0;
    return len;
}

void nats_cluster_dump(nats_cluster_t *c, const char *stream)
{
    const char *paths[] = {"jsz?streams=true&config=false&consumers=false", "routez"};
    for (int i = 0; i < NATS_NODES; i++) {
        if (!c->pid[i]) {
            fprintf(stderr, "nats cluster: n%d is down\n", i + 1);
            continue;
        }
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            char url[160];
            snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", c->http[i], paths[p]);
            text_t t = {.n = 0};
            t.buf[0] = 0;
            CURL *h = curl_easy_init();
            if (!h) return;
            curl_easy_setopt(h, CURLOPT_URL, url);
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, gather_text);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
            CURLcode rc = curl_easy_perform(h);
            curl_easy_cleanup(h);
            /* one line each: the stream's part of /jsz (leader, this server's
             * last seq, the replicas' lag), the routes of /routez */
            char *w = t.buf; /* one line: each run of blanks as one space */
            for (const char *q = t.buf; *q; q++)
                if (!(*q == ' ' || *q == '\n') || (w > t.buf && w[-1] != ' ')) *w++ = *q == '\n' ? ' ' : *q;
            *w = 0;
            const char *from = p == 0 ? strstr(t.buf, "\"account_details\"") : t.buf;
            fprintf(stderr, "nats cluster: n%d %s (stream %s): %s\n", i + 1, paths[p], stream,
                    rc == CURLE_OK ? (from ? from : t.buf) : curl_easy_strerror(rc));
        }
    }
}

void nats_cluster_destroy(nats_cluster_t **cp)
{
    nats_cluster_t *c = *cp;
    if (!c) return;
    for (int i = 0; i < NATS_NODES; i++) nats_cluster_kill(c, i);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (!getenv("SCHAKEL_TEST_KEEP") && system(cmd) != 0)
        fprintf(stderr, "nats cluster: could not remove %s\n", c->dir);
    free(c);
    *cp = NULL;
}
