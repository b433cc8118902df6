/* Integration harness: real broker process, real sockets, real LMDB. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "bytes.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "json.h"
#include "store_audit.h"
#include "store_lmdb.h"

static int port_free(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0) close(s);
    return ok;
}

int harness_free_ports(int n)
{
    /* 20000..32767 lies below Linux's default ephemeral range (32768..60999);
     * each call starts at a random place, as the kernel's own choice would,
     * so that tests started together do not try the same ports */
    int span = 32768 - 20000 - n;
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (unsigned)getpid() * 7919u;
    for (int tries = 0; tries < 400; tries++) {
        int base = 20000 + (int)((r + (unsigned)(tries * n)) % (unsigned)span), ok = 1;
        for (int i = 0; i < n && ok; i++) ok = port_free(base + i);
        if (ok) return base;
    }
    return -1;
}

int harness_raw_send(void *s, const char *name, uint64_t req, const void *body, size_t len)
{
    uint8_t id[8];
    for (int i = 7; i >= 0; i--, req >>= 8) id[i] = (uint8_t)req;
    return zmq_send(s, name, strlen(name), ZMQ_SNDMORE) >= 0 && zmq_send(s, id, 8, ZMQ_SNDMORE) >= 0 &&
                   zmq_send(s, body, len, 0) >= 0
               ? 0
               : -1;
}

void harness_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* CPU time of a process so far, in clock ticks (-1 when unreadable). */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    for (int field = 2; p && field < 14; field++) p = strchr(p + 1, ' ');
    if (!p) return -1;
    char *end;
    long long ut = strtoll(p + 1, &end, 10);
    return ut + strtoll(end, NULL, 10);
}

void harness_wait_idle(pid_t busy, int limit_s)
{
    long long b = cpu_ticks(busy), me = cpu_ticks(getpid());
    for (int i = 0; i < limit_s * 2; i++) {
        harness_sleep_ms(500);
        long long b2 = cpu_ticks(busy), me2 = cpu_ticks(getpid());
        if (i >= 2 && b2 - b < 2 && me2 - me < 2) return;
        b = b2, me = me2;
    }
}

int harness_free_port(void)
{
    return harness_free_ports(1);
}

static json_t *org_entry(const harness_t *h, const char *id, const char *kind, const char *publish,
                         const char *rights)
{
    schakel_keys_t k;
    harness_keys(h, id, &k);
    char sign[65];
    schakel_hex_encode(k.sign_public, 32, sign);
    json_t *pub = json_array(), *rt = json_array();
    char buf[512];
    snprintf(buf, sizeof buf, "%s", publish);
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(pub, json_string(w));
    snprintf(buf, sizeof buf, "%s", rights);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(rt, json_string(w));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "kind", kind, "name",
                     "test organisation", "curve_public", k.curve_public, "sign_public", sign, "publish", pub,
                     "rights", rt);
}

harness_t *harness_new(void)
{
    harness_t *h = calloc(1, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/schakel-test-XXXXXX");
    if (!mkdtemp(h->dir)) abort();
    snprintf(h->data, sizeof h->data, "%s/data", h->dir);
    snprintf(h->keys, sizeof h->keys, "%s/keys", h->dir);
    snprintf(h->directory, sizeof h->directory, "%s/directory.json", h->dir);
    mkdir(h->keys, 0700);
    const char *ids[] = {"broker", "school-a", "smw-b", "svc-reader", "svc-decide", "stranger"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        schakel_keys_t k;
        if (schakel_keys_generate(&k, ids[i]) || schakel_keys_save(&k, h->keys)) abort();
    }
    json_t *orgs = json_array();
    json_array_append_new(orgs, org_entry(h, "school-a", "school", "signal referral consultation", ""));
    json_array_append_new(orgs, org_entry(h, "smw-b", "smw", "signal referral_received", ""));
    json_array_append_new(orgs, org_entry(h, "svc-reader", "service", "", "read_all"));
    json_array_append_new(orgs, org_entry(h, "svc-decide", "service", "consent_decision", "read_all decide"));
    json_t *d = json_pack("{s:i, s:o}", "version", 1, "organisations", orgs);
    if (json_dump_file(d, h->directory, JSON_INDENT(1))) abort();
    json_decref(d);
    snprintf(h->endpoint, sizeof h->endpoint, "tcp://127.0.0.1:%d", harness_free_port());
    snprintf(h->pub_endpoint, sizeof h->pub_endpoint, "tcp://127.0.0.1:%d", harness_free_port());
    schakel_keys_t b;
    harness_keys(h, "broker", &b);
    memcpy(h->server_public, b.curve_public, sizeof h->server_public);
    h->ctx = zmq_ctx_new();
    return h;
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

/* Copies sanitizer reports from the broker's log to stderr; returns how many. */
static int broker_log_problems(const harness_t *h)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/broker.log", h->dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
            fprintf(stderr, "broker: %s", line);
            n++;
        }
    }
    if (f) fclose(f);
    return n;
}

int harness_shutdown(harness_t *h)
{
    int bad = 0;
    if (h->broker > 0) {
        int st = harness_stop(h, SIGTERM);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "harness: broker did not stop cleanly on SIGTERM (status %d)\n", st);
            bad = 1;
        }
    }
    return broker_log_problems(h) + bad;
}

/* Writes the envelope of each record to file `seq`. */
static int dump_one(void *arg, const schakel_record_t *rec)
{
    FILE *f = arg;
    if (!rec->event) return 0; /* erased */
    uint8_t hdr[12];
    schakel_put_be64(hdr, rec->seq);
    schakel_put_be32(hdr + 8, (uint32_t)rec->event_len);
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr ||
        fwrite(rec->event, 1, rec->event_len, f) != rec->event_len)
        abort();
    return 0;
}

/* With SCHAKEL_TEST_EVENT_DUMP set, writes every event on the log, as
 * stored (decrypted), to one file <that dir>/<program>-<pid>-<n>.pbs for
 * the second parser (tests/second_parser): per record u64be(seq),
 * u32be(length), the envelope's bytes. One file per log, not per record:
 * the crash test alone stores some 100,000 events. A record that does not
 * read (the tamper test breaks one on purpose) is named on stderr and
 * skipped. */
static void dump_events(harness_t *h)
{
    const char *root = getenv("SCHAKEL_TEST_EVENT_DUMP");
    static int n_dumps;
    char path[512], logdir[512], why[SCHAKEL_ERRLEN];
    snprintf(logdir, sizeof logdir, "%s/log", h->data);
    schakel_lmdb_options_t o = {.dir = logdir, .read_only = 1};
    struct stat st;
    if (!root || stat(logdir, &st) != 0 || schakel_broker_master_key(h->data, o.master_key, why) != 0) return;
    schakel_store_t *s = schakel_store_open_lmdb(&o, why);
    if (!s) {
        fprintf(stderr, "harness: no event dump of %s: %s\n", logdir, why);
        return;
    }
    snprintf(path, sizeof path, "%s/%s-%d-%d.pbs", root, program_invocation_short_name, (int)getpid(),
             n_dumps++);
    mkdir(root, 0700);
    FILE *f = fopen(path, "wbx");
    if (!f) abort();
    schakel_head_t head;
    schakel_store_head(s, &head);
    for (uint64_t seq = 1; seq <= head.seq; seq++) {
        uint64_t next;
        int rc = schakel_store_read(s, "all", seq, 1, 0, dump_one, f, &next);
        if (rc < 0)
            fprintf(stderr, "harness: event dump: record %llu does not read: %s\n", (unsigned long long)seq,
                    schakel_strerror(rc));
    }
    if (fclose(f) != 0) abort();
    schakel_store_close(&s);
}

void harness_destroy(harness_t **hp)
{
    harness_t *h = *hp;
    if (!h) return;
    if (h->broker > 0) harness_stop(h, SIGKILL);
    dump_events(h);
    /* zmq_ctx_term would wait for ever for a socket that a failed assertion
     * left open; shut the context down and keep it reachable instead. */
    static void *spent[64];
    static size_t n_spent;
    zmq_ctx_shutdown(h->ctx);
    if (n_spent < sizeof spent / sizeof spent[0]) spent[n_spent++] = h->ctx;
    if (!getenv("SCHAKEL_TEST_KEEP")) nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(h);
    *hp = NULL;
}

void harness_keys(const harness_t *h, const char *org, schakel_keys_t *out)
{
    char path[512], why[SCHAKEL_ERRLEN];
    snprintf(path, sizeof path, "%s/%s.key", h->keys, org);
    if (schakel_keys_load(out, path, why) != 0) {
        fprintf(stderr, "harness: %s: %s\n", path, why);
        abort();
    }
}

harness_t *harness_new_node(void)
{
    harness_t *h = calloc(1, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/schakel-node-XXXXXX");
    if (!mkdtemp(h->dir)) abort();
    h->node = 1;
    snprintf(h->data, sizeof h->data, "%s/node", h->dir);
    if (snprintf(h->keys, sizeof h->keys, "%s/keys", h->data) >= (int)sizeof h->keys ||
        snprintf(h->directory, sizeof h->directory, "%s/directory.json", h->data) >= (int)sizeof h->directory)
        abort(); /* h->dir is a short mkdtemp name */
    snprintf(h->endpoint, sizeof h->endpoint, "tcp://127.0.0.1:%d", harness_free_port());
    snprintf(h->pub_endpoint, sizeof h->pub_endpoint, "tcp://127.0.0.1:%d", harness_free_port());
    snprintf(h->reader, sizeof h->reader, "svc-audit");
    h->ctx = zmq_ctx_new();
    return h;
}

/* A node writes its keys on first run: wait for the broker's. */
static int node_keys(harness_t *h)
{
    char path[600], done[600], why[SCHAKEL_ERRLEN];
    snprintf(path, sizeof path, "%s/broker.pub", h->keys);
    snprintf(done, sizeof done, "%s/node.json", h->data); /* written last */
    for (int i = 0; i < 200; i++) {
        schakel_keys_t b;
        if (access(done, F_OK) == 0 && schakel_keys_load(&b, path, why) == 0) {
            memcpy(h->server_public, b.curve_public, sizeof h->server_public);
            return 0;
        }
        usleep(25000);
    }
    return -1;
}

int harness_start(harness_t *h)
{
    char key[512], log[512];
    snprintf(key, sizeof key, "%s/broker.key", h->keys);
    snprintf(log, sizeof log, "%s/broker.log", h->dir);
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that crashes must not leave a broker holding ctest's pipe. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) dup2(fd, 2);
        const char *argv[32] = {SCHAKEL_BIN_DIR "/schakel-broker",
                                "--data",
                                h->data,
                                "--key",
                                key,
                                "--directory",
                                h->directory,
                                "--endpoint",
                                h->endpoint,
                                "--pub",
                                h->pub_endpoint};
        int n = 11;
        if (h->node) {
            const char *nv[] = {SCHAKEL_BIN_DIR "/schakel",
                                "node",
                                "--data",
                                h->data,
                                "--endpoint",
                                h->endpoint,
                                "--pub",
                                h->pub_endpoint,
                                "--tick-ms",
                                "0"};
            n = (int)(sizeof nv / sizeof nv[0]);
            memcpy(argv, nv, sizeof nv);
        }
        int http = 0; /* a node serves HTTP only when the test asks (--http) */
        for (int i = 0; i < h->n_extra && n < 30; i++) {
            http |= !strcmp(h->extra_args[i], "--http");
            argv[n++] = h->extra_args[i];
        }
        if (h->node && !http && n < 28) argv[n++] = "--http", argv[n++] = "off";
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    h->broker = pid;
    if (h->node && !h->server_public[0] && node_keys(h) != 0) return -1;
    schakel_keys_t k;
    harness_keys(h, h->reader[0] ? h->reader : "svc-reader", &k);
    schakel_client_options_t o = {0};
    o.endpoint = h->endpoint;
    o.server_public = h->server_public;
    o.keys = &k;
    schakel_client_t *c = schakel_client_new(h->ctx, &o, NULL);
    int ok = -1;
    for (int i = 0; i < 100 && ok != 0; i++) {
        Schakel__V1__Ping ping = SCHAKEL__V1__PING__INIT;
        ProtobufCMessage *reply = NULL;
        if (schakel_client_call(c, "PING", &ping.base, &schakel__v1__pong__descriptor, &reply, 100, NULL) ==
            0) {
            protobuf_c_message_free_unpacked(reply, NULL);
            ok = 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            h->broker = 0;
            break;
        }
    }
    schakel_client_destroy(&c);
    return ok;
}

int harness_stop(harness_t *h, int sig)
{
    int st = 0;
    if (h->broker <= 0) return -1;
    kill(h->broker, sig);
    waitpid(h->broker, &st, 0);
    h->broker = 0;
    return st;
}

schakel_client_t *harness_client(harness_t *h, const char *org)
{
    schakel_keys_t k;
    harness_keys(h, org, &k);
    schakel_client_options_t o = {0};
    o.endpoint = h->endpoint;
    o.server_public = h->server_public;
    o.keys = &k;
    o.retry_ms = 300;
    o.retry_max_ms = 1000;
    return schakel_client_new(h->ctx, &o, NULL);
}

schakel_consumer_t *harness_consumer(harness_t *h, const char *org, const char *stream, const char *name)
{
    schakel_keys_t k;
    harness_keys(h, org, &k);
    schakel_consumer_options_t o = {0};
    o.endpoint = h->endpoint;
    o.pub_endpoint = h->pub_endpoint;
    o.server_public = h->server_public;
    o.keys = &k;
    o.stream = stream;
    o.consumer = name;
    return schakel_consumer_new(h->ctx, &o, NULL);
}

harness_reader_t harness_read(harness_t *h, const char *org, const char *stream)
{
    char own[80];
    snprintf(own, sizeof own, "org/%s", org);
    harness_reader_t rd = {harness_consumer(h, org, stream ? stream : own, NULL), NULL, NULL, 0};
    if (!rd.c) abort();
    return rd;
}

int harness_next(harness_reader_t *rd)
{
    char why[SCHAKEL_ERRLEN];
    schakel_envelope_free(rd->e);
    rd->e = NULL;
    while (rd->c && schakel_consumer_next(rd->c, &rd->r, 0, why) == 0) {
        rd->e = schakel_envelope_decode(rd->r->event.data, rd->r->event.len, NULL);
        if (rd->e) return 1;
        rd->undecoded++;
    }
    harness_read_end(rd);
    return 0;
}

void harness_read_end(harness_reader_t *rd)
{
    schakel_envelope_free(rd->e);
    rd->e = NULL;
    schakel_consumer_destroy(&rd->c);
}

void harness_event_id(uint8_t id[16])
{
    if (schakel_random(id, 16) != 0) abort();
}

void harness_signal(const char *org, const uint8_t id[16], unsigned subject_no, uint8_t **buf, size_t *len)
{
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__Signal s = SCHAKEL__V1__SIGNAL__INIT;
    Schakel__V1__DataCategory concern = SCHAKEL__V1__DATA_CATEGORY__DATA_CATEGORY_BEHAVIOUR;
    char subject[65], label[32];
    uint8_t h[32];
    snprintf(label, sizeof label, "synthetic-child-%u", subject_no);
    schakel_sha256(label, strlen(label), h);
    schakel_hex_encode(h, 32, subject);
    e.event_id.data = (uint8_t *)id;
    e.event_id.len = 16;
    e.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL;
    e.source_org = (char *)org;
    e.occurred_at = 1795000000000LL;
    e.subject = subject;
    e.case_ref = "case-0001";
    e.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_SUPPORT;
    e.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT;
    e.n_categories = 1;
    e.categories = &concern;
    s.n_concerns = 1;
    s.concerns = &concern;
    s.urgency = SCHAKEL__V1__URGENCY__URGENCY_ROUTINE;
    s.observed_on = "2026-11-20";
    s.raised_by = SCHAKEL__V1__ROLE__ROLE_TEACHER;
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_SIGNAL;
    e.signal = &s;
    *len = schakel__v1__envelope__get_packed_size(&e);
    *buf = malloc(*len);
    schakel__v1__envelope__pack(&e, *buf);
}

void harness_publish_new(const harness_t *h, const char *org, size_t n, int good_sig, Schakel__V1__Publish *p)
{
    schakel_keys_t k;
    harness_keys(h, org, &k);
    ProtobufCBinaryData *evs = calloc(n, sizeof *evs);
    uint8_t(*hashes)[32] = calloc(n, 32);
    for (size_t i = 0; i < n; i++) {
        uint8_t id[16];
        harness_event_id(id);
        harness_signal(org, id, (unsigned)i, &evs[i].data, &evs[i].len);
        schakel_sha256(evs[i].data, evs[i].len, hashes[i]);
    }
    uint8_t digest[32], *sig = malloc(64);
    schakel_batch_digest((const uint8_t(*)[32])hashes, n, digest);
    if (schakel_ed25519_sign(k.sign_secret, digest, 32, sig) != 0) abort();
    if (!good_sig) sig[0] ^= 1;
    free(hashes);
    schakel__v1__publish__init(p);
    p->n_events = n;
    p->events = evs;
    p->signature.data = sig;
    p->signature.len = 64;
}

void harness_publish_free(Schakel__V1__Publish *p)
{
    for (size_t i = 0; i < p->n_events; i++) free(p->events[i].data);
    free(p->events);
    free(p->signature.data);
    p->events = NULL;
    p->signature.data = NULL;
    p->n_events = 0;
}

/* In a child: becomes `schakel args...`. */
static void exec_schakel(const char *const *args)
{
    const char *argv[32];
    argv[0] = SCHAKEL_BIN_DIR "/schakel";
    int n = 1;
    for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int harness_run_tool(const char *out_path, const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0) dup2(fd, 1);
        }
        exec_schakel(args);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* In a child: stdin from /dev/null (a command that waited for input would
 * hang the test), stdout and stderr into the two files. */
static void redirect(const char *out_path, const char *err_path)
{
    int i = open("/dev/null", O_RDONLY);
    int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (i < 0 || o < 0 || e < 0) _exit(126);
    dup2(i, 0), dup2(o, 1), dup2(e, 2);
}

int harness_run_captured(const char *dir, const char *const *args, char **out, char **err)
{
    char po[512], pe[512];
    snprintf(po, sizeof po, "%s/out", dir);
    snprintf(pe, sizeof pe, "%s/err", dir);
    *out = *err = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        redirect(po, pe);
        exec_schakel(args);
    }
    int st;
    waitpid(pid, &st, 0);
    size_t len;
    *out = schakel_file_read(po, 1 << 20, &len);
    *err = schakel_file_read(pe, 1 << 20, &len);
    if (!*out || !*err) {
        free(*out), free(*err);
        *out = *err = NULL;
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Schakel__V1__Ack *harness_publish1(schakel_client_t *c, const uint8_t *buf, size_t len)
{
    Schakel__V1__Ack *ack = NULL;
    const uint8_t *evs[1] = {buf};
    if (schakel_client_publish(c, evs, &len, 1, &ack, 10000) != 0) return NULL;
    return ack;
}

int harness_publish_signals(harness_t *h, const char *org, int n, unsigned salt)
{
    schakel_client_t *c = harness_client(h, org);
    int accepted = 0;
    for (; accepted < n; accepted++) {
        uint8_t id[16], *buf;
        size_t len;
        harness_event_id(id);
        harness_signal(org, id, salt + (unsigned)accepted, &buf, &len);
        Schakel__V1__Ack *a = harness_publish1(c, buf, len);
        free(buf);
        int ok = a && a->n_entries == 1 && a->entries[0]->code == 0;
        if (a) schakel__v1__ack__free_unpacked(a, NULL);
        if (!ok) break;
    }
    schakel_client_destroy(&c);
    return accepted;
}

uint64_t harness_head(harness_t *h)
{
    char log[512];
    snprintf(log, sizeof log, "%s/log", h->data);
    schakel_verify_report_t r;
    if (schakel_lmdb_verify(log, NULL, NULL, &r) != 0) return (uint64_t)-1;
    return r.head;
}

uint64_t harness_publish_json(harness_t *h, const char *org, const char *json, uint8_t id_out[16])
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *e = schakel_json_parse_envelope(json, strlen(json), why);
    if (!e) {
        fprintf(stderr, "harness: %s: %s\n", json, why);
        return 0;
    }
    uint8_t id[16];
    if (!e->event_id.len) {
        harness_event_id(id);
        e->event_id.data = id;
        e->event_id.len = 16;
    } else {
        memcpy(id, e->event_id.data, 16);
    }
    if (!e->source_org[0]) e->source_org = (char *)org;
    if (!e->occurred_at) e->occurred_at = 1795000000000LL;
    size_t len = schakel__v1__envelope__get_packed_size(e);
    uint8_t *buf = malloc(len);
    schakel__v1__envelope__pack(e, buf);
    if (e->event_id.data == id) e->event_id.data = NULL, e->event_id.len = 0;
    if (e->source_org == org) e->source_org = NULL;
    schakel_envelope_free(e);
    schakel_client_t *c = harness_client(h, org);
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    schakel_client_destroy(&c);
    free(buf);
    uint64_t seq = 0;
    if (a && a->n_entries == 1 && a->entries[0]->code == 0) seq = a->entries[0]->seq;
    else
        fprintf(stderr, "harness: %.100s... rejected: %s\n", json,
                a && a->n_entries ? a->entries[0]->reason : "no ACK");
    if (a) schakel__v1__ack__free_unpacked(a, NULL);
    if (id_out) memcpy(id_out, id, 16);
    return seq;
}

pid_t harness_spawn(const char *log_path, const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        exec_schakel(args);
    }
    return pid;
}

int harness_replay(harness_t *h, char *text, size_t cap)
{
    char out[600];
    snprintf(out, sizeof out, "%s/replay.json", h->dir);
    const char *args[] = {"audit", "replay", "--data", h->data, NULL};
    int status = harness_run_tool(out, args);
    text[0] = 0;
    FILE *f = fopen(out, "r");
    if (!f) return -1;
    size_t n = fread(text, 1, cap - 1, f);
    text[n] = 0;
    fclose(f);
    printf("%s", text);
    return status;
}
