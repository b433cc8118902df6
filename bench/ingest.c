/* bench/ingest: durable ingest throughput and ACK latency of a real broker,
 * side by side with the machine's limit and a peer, all in one run.
 *
 *  1. schakel: a real `schakel node` process on loopback (CURVE, signed
 *     batches, full validation, encryption at rest, fsync before ACK);
 *     N publisher threads, each its own client and organisation, keep a
 *     window of batches of ~300-byte signal envelopes in flight. Every ACK
 *     entry must be code 0 and the broker's head must equal the number of
 *     events sent; per-batch latency is submit -> final ACK.
 *  2. raw LMDB: the same bytes appended to a fresh environment with
 *     MDB_APPEND on u64 big-endian keys, durable commits (no MDB_NOSYNC),
 *     one commit per group: what the disk and LMDB allow at best.
 *  3. Redis Streams: redis-server with appendfsync always, fed by
 *     redis-benchmark XADD with the same in-flight depth per connection.
 *
 * It prints a table with the ratios and exits non-zero on any reject,
 * timeout, lost event or dead child. See bench/README.md. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
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
#include <zmq.h>

#include "bytes.h"
#include "client.h"
#include "clock.h"
#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "keys.h"
#include "validate.h"

#include "common.h"

#define MAX_PUBLISHERS 64
#define PATH_LEN BENCH_PATH_LEN

typedef struct {
    size_t events, publishers, batch, window, event_size, lmdb_group, subjects;
    size_t redis_clients, redis_pipeline;
    int timeout_s, retry_ms, naive;
    size_t checkers;   /* passed to the node; 0: its default */
    size_t dashboards; /* dashboards open on the node's HTTP endpoint while it ingests */
    bench_opts_t c;    /* --schakel, --tmp, --keep, --no-redis */
} opts_t;

typedef struct {
    opts_t o;
    char dir[PATH_LEN]; /* temp root, removed at the end */
    bench_node_t node;  /* the broker: `schakel node --no-services` */
    int redis_port;
    void *zmq;
    pid_t redis;
    atomic_int abort; /* a publisher failed or the broker died */
    pthread_barrier_t start;
    int stuck; /* a publisher thread never came back */
} bench_t;

typedef struct {
    bench_t *b;
    size_t idx;
    const char *org;
    schakel_client_t *client;
    uint8_t *arena; /* the serialized events, back to back */
    const uint8_t **ptrs;
    size_t *lens;
    size_t n_events, n_batches;
    int64_t *submit_ns; /* per batch; the batch's user pointer points here */
    double *lat_ms;     /* per batch, filled by on_ack */
    size_t acked_batches;
    uint64_t accepted, rejected, duplicates, missing;
    char first_reject[SCHAKEL_ERRLEN];
    int64_t first_submit, last_ack;
    int failed;
    char why[SCHAKEL_ERRLEN];
    atomic_int finished; /* the thread is done: the rest may be read */
} publisher_t;

typedef struct {
    double cpu_s;                   /* user + system */
    unsigned long long write_bytes; /* to storage, from /proc/<pid>/io */
    int ok;
} proc_sample_t;

/* From /proc/<pid>/status, in kB: the peak resident set, and the resident
 * set now split into the process's own memory and mapped files (LMDB's
 * map: pages the kernel may drop at any time, and shares with the page
 * cache). */
typedef struct {
    unsigned long long hwm_kb, anon_kb, file_kb;
    int ok;
} mem_sample_t;

typedef struct {
    int ran, ok;
    double events_s, wall_s, p50, p99, max_ms, mean_size;
    uint64_t acked, rejected, duplicates, head;
    proc_sample_t broker_cpu, self_cpu; /* deltas over the run */
    double monitor_cpu_s;               /* the node's children (its monitor) over the run */
    mem_sample_t broker_mem;            /* the broker's memory at the end */
    double lmdb_s, lmdb_commits_s, lmdb_commit_ms;
    proc_sample_t lmdb_proc;
    long long log_growth; /* bytes data.mdb grew during the schakel part */
    struct {
        const char *name;
        double bytes, entries; /* pages * page size, entries: per record on the log */
    } tables[8];
    size_t n_tables;
    double redis_s;
    long long aof_bytes; /* the AOF files after the run */
    proc_sample_t redis_proc;
    int redis_skipped;
    char redis_cmd[1024];
} results_t;

/* ---- small helpers ---- */

/* CPU seconds and storage bytes written of a process, from /proc. */
static proc_sample_t proc_sample(pid_t pid)
{
    proc_sample_t s = {0, 0, 0};
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return s;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, stt = 0;
    for (int field = 2; p && field < 14; field++) p = strchr(p + 1, ' ');
    if (p) {
        char *end;
        ut = strtoull(p + 1, &end, 10);
        stt = strtoull(end, NULL, 10);
        s.cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
        s.ok = 1;
    }
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    f = fopen(path, "r");
    while (f && fgets(buf, sizeof buf, f))
        if (strncmp(buf, "write_bytes:", 12) == 0) s.write_bytes = strtoull(buf + 12, NULL, 10);
    if (f) fclose(f);
    return s;
}

/* CPU seconds of pid's child processes (a node's monitor, --dashboards). */
static double children_cpu(pid_t pid)
{
    char path[80], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    double cpu = 0;
    if (f && fgets(buf, sizeof buf, f)) {
        char *p = buf, *end;
        for (long c = strtol(p, &end, 10); end != p; c = strtol(p, &end, 10)) {
            cpu += proc_sample((pid_t)c).cpu_s;
            p = end;
        }
    }
    if (f) fclose(f);
    return cpu;
}

static mem_sample_t mem_sample(pid_t pid)
{
    mem_sample_t m = {0, 0, 0, 0};
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, "VmHWM:", 6) == 0) {
            m.hwm_kb = strtoull(buf + 6, NULL, 10);
            m.ok = 1;
        } else if (strncmp(buf, "RssAnon:", 8) == 0) m.anon_kb = strtoull(buf + 8, NULL, 10);
        else if (strncmp(buf, "RssFile:", 8) == 0) m.file_kb = strtoull(buf + 8, NULL, 10);
    }
    if (f) fclose(f);
    return m;
}

static proc_sample_t proc_delta(proc_sample_t a, proc_sample_t b)
{
    proc_sample_t d = {b.cpu_s - a.cpu_s, b.write_bytes - a.write_bytes, a.ok && b.ok};
    return d;
}

/* ---- events ---- */

/* Packs signal number g of publisher p into buf (cap bytes) with a
 * case_ref of ref_len characters; returns the packed size, or the size it
 * would need if it does not fit (nothing written then). */
static size_t pack_signal(const publisher_t *p, const uint8_t run_id[8], size_t i, char (*subjects)[65],
                          size_t ref_len, uint8_t *buf, size_t cap)
{
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__Signal s = SCHAKEL__V1__SIGNAL__INIT;
    Schakel__V1__ContactRef contact = SCHAKEL__V1__CONTACT_REF__INIT;
    Schakel__V1__DataCategory cats[2] = {SCHAKEL__V1__DATA_CATEGORY__DATA_CATEGORY_BEHAVIOUR,
                                         SCHAKEL__V1__DATA_CATEGORY__DATA_CATEGORY_WELLBEING};
    char *addressees[2] = {(char *)"smw-farent", (char *)"ggd-jgz"};
    uint8_t id[16], corr[SCHAKEL_SHA256_LEN], seed[8];
    char case_ref[129], hex[2 * SCHAKEL_SHA256_LEN + 1];
    uint64_t g = (uint64_t)p->idx << 32 | i;

    memcpy(id, run_id, 8); /* unique per run, publisher and event */
    schakel_put_be32(id + 8, (uint32_t)p->idx);
    schakel_put_be32(id + 12, (uint32_t)i);
    schakel_put_be64(seed, g);
    schakel_sha256(seed, sizeof seed, corr);
    schakel_hex_encode(corr, sizeof corr, hex);
    /* an opaque reference at the source, as long as the size target asks */
    int full = snprintf(case_ref, sizeof case_ref, "%s/2026/leerlingzorg/%07zu/%s%s", p->org, i, hex, hex);
    if (full < 0) case_ref[0] = 0; /* longer than any ref_len is meant: cut here */
    if (ref_len < sizeof case_ref) case_ref[ref_len] = 0;

    e.event_id.data = id;
    e.event_id.len = sizeof id;
    e.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL;
    e.source_org = (char *)p->org;
    e.occurred_at = 1795000000000LL + (int64_t)i * 1000;
    e.subject = subjects[(p->idx * 7919 + i) % p->b->o.subjects];
    e.case_ref = case_ref;
    e.correlation_id.data = corr;
    e.correlation_id.len = 16;
    e.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_SUPPORT;
    e.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT;
    e.n_categories = 2;
    e.categories = cats;
    e.n_addressees = 2;
    e.addressees = addressees;
    contact.org_id = (char *)p->org;
    contact.role = SCHAKEL__V1__ROLE__ROLE_INTERN_BEGELEIDER;
    contact.ref = (char *)"desk/intern-begeleider";
    s.n_concerns = 2;
    s.concerns = cats;
    s.urgency = SCHAKEL__V1__URGENCY__URGENCY_SOON;
    s.observed_on = (char *)"2026-11-20";
    s.raised_by = SCHAKEL__V1__ROLE__ROLE_TEACHER;
    s.follow_up_requested = 1;
    s.contact = &contact;
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_SIGNAL;
    e.signal = &s;
    size_t len = schakel__v1__envelope__get_packed_size(&e);
    if (buf && len <= cap) schakel__v1__envelope__pack(&e, buf);
    return len;
}

/* Builds every event of publisher p, sized near event_size, and checks
 * the first one with the validator the broker uses. */
static int build_events(publisher_t *p, const opts_t *o, const uint8_t run_id[8], char (*subjects)[65],
                        char *why)
{
    size_t base = pack_signal(p, run_id, 0, subjects, 0, NULL, 0);
    size_t ref_len = o->event_size > base + 2 ? o->event_size - base - 2 : 8;
    if (ref_len > 127) ref_len = 127; /* strings on the bus are codes: <= 128 bytes */
    size_t slot = pack_signal(p, run_id, 0, subjects, ref_len, NULL, 0) + 16;
    p->arena = malloc(p->n_events * slot);
    p->ptrs = calloc(p->n_events, sizeof *p->ptrs);
    p->lens = calloc(p->n_events, sizeof *p->lens);
    if (!p->arena || !p->ptrs || !p->lens) return schakel_fail(why, SCHAKEL_ENOMEM, "events");
    for (size_t i = 0; i < p->n_events; i++) {
        uint8_t *at = p->arena + i * slot;
        p->lens[i] = pack_signal(p, run_id, i, subjects, ref_len, at, slot);
        if (p->lens[i] > slot) return schakel_fail(why, SCHAKEL_ETOOBIG, "event %zu grew", i);
        p->ptrs[i] = at;
    }
    char vwhy[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *env = schakel_envelope_decode(p->ptrs[0], p->lens[0], vwhy);
    int rc = env ? schakel_envelope_validate_bytes(env, p->ptrs[0], p->lens[0], vwhy) : SCHAKEL_EDECODE;
    schakel_envelope_free(env);
    if (rc) return schakel_fail(why, rc, "the sample signal is not valid: %s", vwhy);
    return 0;
}

/* ---- the broker ---- */

static schakel_client_t *client_for(bench_t *b, const char *org, char *why)
{
    return bench_client(b->zmq, &b->node, org, b->o.window, b->o.retry_ms, b->o.retry_ms * 4, why);
}

/* ---- publishers ---- */

static void on_ack(void *arg, void *user, const Schakel__V1__Ack *ack)
{
    publisher_t *p = arg;
    int64_t t = schakel_mono_ns();
    size_t i = (size_t)((int64_t *)user - p->submit_ns);
    size_t want = i + 1 < p->n_batches ? p->b->o.batch : p->n_events - i * p->b->o.batch;
    p->lat_ms[i] = (double)(t - p->submit_ns[i]) / 1e6;
    p->acked_batches++;
    p->last_ack = t;
    bench_ack_batch(ack, want, &p->missing, p->first_reject, sizeof p->first_reject);
    for (size_t k = 0; k < ack->n_entries; k++) {
        const Schakel__V1__AckEntry *e = ack->entries[k];
        if (e->code || ack->batch_code) {
            p->rejected++;
            if (!p->first_reject[0])
                snprintf(p->first_reject, sizeof p->first_reject, "code %d: %s", e->code,
                         e->reason ? e->reason : "");
        } else if (e->duplicate) {
            p->duplicates++;
        } else {
            p->accepted++;
        }
    }
}

static int publisher_stop(void *arg, int64_t deadline)
{
    publisher_t *p = arg;
    if (bench_interrupted) return schakel_fail(p->why, SCHAKEL_ETIMEOUT, "interrupted");
    if (atomic_load(&p->b->abort)) return schakel_fail(p->why, SCHAKEL_ETIMEOUT, "aborted");
    if (schakel_mono_ns() > deadline)
        return schakel_fail(p->why, SCHAKEL_ETIMEOUT, "no final ACK within %d s (%zu of %zu batches ACKed)",
                            p->b->o.timeout_s, p->acked_batches, p->n_batches);
    return 0;
}

/* Keeps `window` batches in flight until every one has its final ACK.
 * schakel_client_poll() returns only when nothing is in flight or its
 * timeout passed, so waiting for one free slot is a 1 ms poll (see
 * bench/README.md); --naive lets schakel_client_submit() wait instead. */
static void *publisher_main(void *arg)
{
    publisher_t *p = arg;
    bench_t *b = p->b;
    pthread_barrier_wait(&b->start);
    int64_t deadline = schakel_mono_ns() + (int64_t)b->o.timeout_s * 1000000000LL;
    size_t next = 0;
    while (next < p->n_batches && !p->failed) {
        if (publisher_stop(p, deadline)) {
            p->failed = 1;
            break;
        }
        if (!b->o.naive && schakel_client_inflight(p->client) >= b->o.window) {
            schakel_client_poll(p->client, 1, on_ack, p);
            continue;
        }
        size_t first = next * b->o.batch;
        size_t n = first + b->o.batch <= p->n_events ? b->o.batch : p->n_events - first;
        p->submit_ns[next] = schakel_mono_ns();
        if (next == 0) p->first_submit = p->submit_ns[0];
        int rc = schakel_client_submit(p->client, p->ptrs + first, p->lens + first, n, &p->submit_ns[next],
                                       on_ack, p);
        if (rc) {
            schakel_fail(p->why, rc, "submit: %s", schakel_strerror(rc));
            p->failed = 1;
            break;
        }
        next++;
        schakel_client_poll(p->client, 0, on_ack, p);
    }
    bench_publisher_end(p->client, on_ack, p, publisher_stop, deadline, &p->failed, &b->abort, &p->finished);
    return NULL;
}

static void publishers_free(publisher_t *pubs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bench_publisher_free(&pubs[i].client, pubs[i].arena, pubs[i].ptrs, pubs[i].lens);
        free(pubs[i].submit_ns);
        free(pubs[i].lat_ms);
    }
    free(pubs);
}

/* Phase 1: publishes every event through the broker. */
static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* What the log holds per record, table by table (LMDB pages in use,
 * entries), read from a read-only view of the node's log. */
static void log_tables(const bench_t *b, uint64_t head, results_t *r)
{
    static const char *names[] = {"events", "ids", "streams", "proofs", "keys", "checkpoints"};
    char dir[PATH_LEN + 32];
    snprintf(dir, sizeof dir, "%s/log", b->node.dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    if (!head || mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
        mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
        if (env) mdb_env_close(env);
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        MDB_dbi dbi;
        MDB_stat ms;
        if (mdb_dbi_open(txn, names[i], 0, &dbi) || mdb_stat(txn, dbi, &ms)) continue;
        double pages = (double)(ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages);
        r->tables[r->n_tables].name = names[i];
        r->tables[r->n_tables].bytes = pages * ms.ms_psize / (double)head;
        r->tables[r->n_tables].entries = (double)ms.ms_entries / (double)head;
        r->n_tables++;
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* The AOF files of the Redis peer (one file, or Redis 7's directory). */
static long long aof_size(const bench_t *b)
{
    char path[PATH_LEN + 64];
    snprintf(path, sizeof path, "%s/redis/appendonly.aof", b->dir);
    long long n = file_size(path);
    snprintf(path, sizeof path, "%s/redis/appendonlydir", b->dir);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        char f[PATH_LEN + 400];
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        if (e->d_name[0] != '.') n += file_size(f);
    }
    if (d) closedir(d);
    return n;
}

static int run_schakel(bench_t *b, publisher_t *pubs, results_t *r)
{
    const opts_t *o = &b->o;
    pthread_t threads[MAX_PUBLISHERS];
    size_t started = 0;
    int rc = -1;
    char why[SCHAKEL_ERRLEN] = "";

    uint64_t base = 0; /* the broker's own records: the directory it put on the log */
    for (size_t i = 0; i < o->publishers; i++) {
        publisher_t *p = &pubs[i];
        p->client = client_for(b, p->org, why);
        if (!p->client || bench_ping(p->client, 5000, i ? NULL : &base, why) != 0) {
            fprintf(stderr, "bench: publisher %zu (%s): %s\n", i, p->org, why);
            return -1;
        }
    }
    char logfile[PATH_LEN + 64];
    snprintf(logfile, sizeof logfile, "%s/log/data.mdb", b->node.dir);
    long long size0 = file_size(logfile);
    if (pthread_barrier_init(&b->start, NULL, (unsigned)o->publishers + 1) != 0) return -1;
    for (; started < o->publishers; started++)
        if (pthread_create(&threads[started], NULL, publisher_main, &pubs[started]) != 0) break;
    if (started < o->publishers) {
        fprintf(stderr, "bench: cannot start publisher threads\n");
        atomic_store(&b->abort, 1);
    }
    proc_sample_t broker0 = proc_sample(b->node.pid), self0 = proc_sample(getpid());
    double monitor0 = children_cpu(b->node.pid);
    if (started == o->publishers) pthread_barrier_wait(&b->start);

    /* Watch the broker while they run. */
    int64_t give_up = schakel_mono_ns() + ((int64_t)o->timeout_s + 5) * 1000000000LL;
    int done = started < o->publishers, st;
    while (!done) {
        bench_sleep_ms(20);
        done = 1;
        for (size_t i = 0; i < o->publishers; i++)
            if (!atomic_load(&pubs[i].finished)) done = 0;
        if (b->node.pid > 0 && waitpid(b->node.pid, &st, WNOHANG) == b->node.pid) {
            b->node.pid = 0;
            fprintf(stderr, "bench: the broker died during the run (status %d)\n", st);
        }
        if (b->node.pid <= 0 || bench_interrupted || schakel_mono_ns() > give_up) {
            atomic_store(&b->abort, 1);
            done = 1;
        }
    }
    r->broker_cpu = proc_delta(broker0, proc_sample(b->node.pid));
    r->monitor_cpu_s = children_cpu(b->node.pid) - monitor0;
    r->broker_mem = mem_sample(b->node.pid);
    r->self_cpu = proc_delta(self0, proc_sample(getpid()));
    /* A thread inside schakel_client_submit() (--naive) waits for window
     * space without a time limit: do not wait for it for ever. */
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 5;
    for (size_t i = 0; i < started; i++) {
        if (pthread_timedjoin_np(threads[i], NULL, &limit) != 0) {
            fprintf(stderr,
                    "bench: publisher %zu is stuck in schakel_client_submit(); "
                    "leaving it behind\n",
                    i);
            b->stuck = 1;
        }
    }
    if (b->stuck) return -1;
    if (started < o->publishers) goto out;

    size_t n_lat = 0, total_batches = 0;
    int64_t t0 = INT64_MAX, t1 = 0;
    int failed = b->node.pid <= 0;
    for (size_t i = 0; i < o->publishers; i++) total_batches += pubs[i].n_batches;
    double *lat = malloc(total_batches * sizeof *lat);
    for (size_t i = 0; i < o->publishers; i++) {
        publisher_t *p = &pubs[i];
        if (p->failed) {
            fprintf(stderr, "bench: publisher %zu (%s): %s\n", i, p->org, p->why);
            failed = 1;
        }
        if (p->first_reject[0])
            fprintf(stderr, "bench: publisher %zu (%s): first reject: %s\n", i, p->org, p->first_reject);
        r->acked += p->accepted;
        r->rejected += p->rejected + p->missing;
        r->duplicates += p->duplicates;
        if (p->first_submit && p->first_submit < t0) t0 = p->first_submit;
        if (p->last_ack > t1) t1 = p->last_ack;
        for (size_t k = 0; lat && k < p->acked_batches && k < p->n_batches; k++) lat[n_lat++] = p->lat_ms[k];
    }
    bench_summarize(lat, n_lat, &r->p50, &r->p99, &r->max_ms);
    free(lat);
    r->ran = 1;
    r->wall_s = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    r->events_s = r->wall_s > 0 ? (double)r->acked / r->wall_s : 0;
    if (!failed) {
        schakel_client_t *c = client_for(b, "svc-audit", why);
        if (!c || bench_ping(c, 5000, &r->head, why) != 0) {
            fprintf(stderr, "bench: PING after the run: %s\n", why);
            failed = 1;
        }
        schakel_client_destroy(&c);
    }
    r->log_growth = file_size(logfile) - size0;
    if (!failed) log_tables(b, r->head, r);
    if (r->rejected)
        fprintf(stderr, "bench: %llu events were rejected or missing from ACKs\n",
                (unsigned long long)r->rejected);
    if (!failed && r->head != base + o->events) {
        fprintf(stderr, "bench: the broker's head is %llu after %zu events (and %llu of its own)\n",
                (unsigned long long)r->head, o->events, (unsigned long long)base);
        failed = 1;
    }
    if (!failed && !r->rejected && r->acked + r->duplicates == o->events) rc = 0;
    r->ok = rc == 0;
out:
    pthread_barrier_destroy(&b->start);
    return rc;
}

/* ---- phase 2: raw LMDB ---- */

#define LMDB_CHECK(call, what)                                                 \
    do {                                                                       \
        int lrc_ = (call);                                                     \
        if (lrc_) {                                                            \
            fprintf(stderr, "bench: lmdb %s: %s\n", what, mdb_strerror(lrc_)); \
            goto out_env;                                                      \
        }                                                                      \
    } while (0)

/* Appends the same event bytes to a fresh LMDB environment, one durable
 * commit per lmdb_group values. */
static int run_lmdb(bench_t *b, const publisher_t *pubs, results_t *r)
{
    const opts_t *o = &b->o;
    char dir[PATH_LEN + 16];
    snprintf(dir, sizeof dir, "%s/lmdb", b->dir);
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "bench: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = -1;
    size_t commits = 0;
    LMDB_CHECK(mdb_env_create(&env), "env_create");
    LMDB_CHECK(mdb_env_set_mapsize(env, (size_t)o->events * (o->event_size * 2 + 64) + (256u << 20)),
               "set_mapsize");
    LMDB_CHECK(mdb_env_open(env, dir, 0, 0600), "env_open"); /* durable: no MDB_NOSYNC */
    LMDB_CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
    LMDB_CHECK(mdb_dbi_open(txn, NULL, 0, &dbi), "dbi_open");
    LMDB_CHECK(mdb_txn_commit(txn), "commit");
    txn = NULL;

    proc_sample_t s0 = proc_sample(getpid());
    int64_t t0 = schakel_mono_ns();
    uint64_t seq = 0;
    size_t pi = 0, ei = 0;
    while (seq < o->events && !bench_interrupted) {
        LMDB_CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
        for (size_t k = 0; k < o->lmdb_group && seq < o->events; k++) {
            while (ei >= pubs[pi].n_events) pi++, ei = 0;
            uint8_t key[8];
            schakel_put_be64(key, ++seq);
            MDB_val kv = {8, key}, vv = {pubs[pi].lens[ei], (void *)pubs[pi].ptrs[ei]};
            ei++;
            LMDB_CHECK(mdb_put(txn, dbi, &kv, &vv, MDB_APPEND), "put");
        }
        LMDB_CHECK(mdb_txn_commit(txn), "commit"); /* fsync */
        txn = NULL;
        commits++;
    }
    double s = (double)(schakel_mono_ns() - t0) / 1e9;
    r->lmdb_proc = proc_delta(s0, proc_sample(getpid()));
    if (seq == o->events && s > 0) {
        r->lmdb_s = (double)seq / s;
        r->lmdb_commits_s = (double)commits / s;
        r->lmdb_commit_ms = s * 1000 / (double)commits;
        rc = 0;
    }
out_env:
    if (txn) mdb_txn_abort(txn);
    if (env) mdb_env_close(env);
    return rc;
}

/* ---- phase 3: Redis Streams ---- */

/* Parses the requests/s of redis-benchmark --csv: the row after the
 * header is "<test>","<rps>",... */
static double parse_rps(const char *out)
{
    const char *line = strstr(out, "\n\"");
    while (line) {
        const char *q = line + 2;
        const char *close_q = strchr(q, '"');
        if (close_q && strncmp(line + 2, "test\"", 5) != 0 && strncmp(close_q, "\",\"", 3) == 0)
            return strtod(close_q + 3, NULL);
        line = strstr(line + 1, "\n\"");
    }
    return 0;
}

static int run_redis(bench_t *b, double mean_size, results_t *r)
{
    const opts_t *o = &b->o;
    if (!bench_on_path("redis-server") || !bench_on_path("redis-benchmark")) {
        printf("redis: SKIPPED: redis-server and redis-benchmark are not installed "
               "(apt-get install -y redis-server redis-tools)\n");
        r->redis_skipped = 1;
        return 0;
    }
    char dir[PATH_LEN + 16], log[PATH_LEN + 32], port[16], reply[4096];
    char clients[24], total[24], pipeline[24];
    char *payload = NULL, *out = NULL;
    int pipefd[2] = {-1, -1}, rc = -1, st;
    pid_t bench_pid = 0;
    size_t size = mean_size > 1 ? (size_t)(mean_size + 0.5) : o->event_size;

    snprintf(dir, sizeof dir, "%s/redis", b->dir);
    snprintf(log, sizeof log, "%s/redis/redis.log", b->dir);
    snprintf(port, sizeof port, "%d", b->redis_port);
    char why[160] = "";
    if (bench_redis_start(dir, log, b->redis_port, &b->redis, why, sizeof why) != 0) {
        fprintf(stderr, "bench: %s\n", why);
        goto out;
    }

    payload = malloc(size + 1);
    out = calloc(1, 1 << 16);
    if (!payload || !out || pipe(pipefd) != 0) goto out;
    memset(payload, 'x', size);
    payload[size] = 0;
    snprintf(clients, sizeof clients, "%zu", o->redis_clients);
    /* redis-benchmark issues whole pipelines: ask for a multiple of -P so
     * that it sends exactly what it counts. */
    size_t n_req = (o->events + o->redis_pipeline - 1) / o->redis_pipeline * o->redis_pipeline;
    snprintf(total, sizeof total, "%zu", n_req);
    snprintf(pipeline, sizeof pipeline, "%zu", o->redis_pipeline);
    char *bench_argv[] = {(char *)"redis-benchmark",
                          (char *)"-p",
                          port,
                          (char *)"-c",
                          clients,
                          (char *)"-n",
                          total,
                          (char *)"-P",
                          pipeline,
                          (char *)"--csv",
                          (char *)"XADD",
                          (char *)"benchstream",
                          (char *)"*",
                          (char *)"f",
                          payload,
                          NULL};
    snprintf(r->redis_cmd, sizeof r->redis_cmd,
             "redis-benchmark -p %s -c %s -n %s -P %s --csv XADD benchstream '*' f "
             "\"$(head -c %zu /dev/zero | tr '\\0' x)\"",
             port, clients, total, pipeline, size);
    printf("redis: %s\n", r->redis_cmd);
    fflush(stdout);
    proc_sample_t s0 = proc_sample(b->redis);
    bench_pid = bench_spawn(bench_argv, log, pipefd[1]);
    close(pipefd[1]);
    pipefd[1] = -1;
    if (bench_pid < 0) goto out;
    size_t got = 0;
    int64_t end = schakel_mono_ns() + (int64_t)o->timeout_s * 1000000000LL;
    for (;;) {
        struct pollfd pf = {pipefd[0], POLLIN, 0};
        if (bench_interrupted || schakel_mono_ns() > end) {
            fprintf(stderr, "bench: redis-benchmark %s\n", bench_interrupted ? "interrupted" : "timed out");
            goto out;
        }
        if (poll(&pf, 1, 200) <= 0) continue;
        ssize_t n = read(pipefd[0], out + got, (1 << 16) - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        if (got >= (1 << 16) - 1) got = 0; /* progress lines: keep the tail */
        out[got] = 0;
    }
    waitpid(bench_pid, &st, 0);
    bench_pid = 0;
    r->redis_proc = proc_delta(s0, proc_sample(b->redis));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench: redis-benchmark failed (status %d)\n", st);
        goto out;
    }
    r->redis_s = parse_rps(out);
    char xlen[64];
    int xl = snprintf(xlen, sizeof xlen, "*2\r\n$4\r\nXLEN\r\n$11\r\nbenchstream\r\n");
    if (bench_redis_say(b->redis_port, xlen, (size_t)xl, reply, sizeof reply) != 0 || reply[0] != ':' ||
        strtoull(reply + 1, NULL, 10) != n_req) {
        reply[strcspn(reply, "\r\n")] = 0;
        fprintf(stderr, "bench: redis stream holds %.30s entries, expected %zu\n", reply, n_req);
        goto out;
    }
    if (r->redis_s <= 0) {
        fprintf(stderr, "bench: could not read requests/s from redis-benchmark:\n%s\n", out);
        goto out;
    }
    r->aof_bytes = aof_size(b);
    rc = 0;
out:
    if (bench_pid > 0) bench_stop_child(&bench_pid);
    if (b->redis > 0) bench_stop_child(&b->redis);
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    free(payload);
    free(out);
    return rc;
}

/* ---- report ---- */

static void print_machine(const bench_t *b)
{
    bench_print_machine();
    printf("params:  --events %zu --publishers %zu --batch %zu --window %zu --event-size %zu "
           "--subjects %zu --lmdb-group %zu --redis-clients %zu --redis-pipeline %zu --checkers %zu%s\n",
           b->o.events, b->o.publishers, b->o.batch, b->o.window, b->o.event_size, b->o.subjects,
           b->o.lmdb_group, b->o.redis_clients, b->o.redis_pipeline, b->o.checkers,
           b->o.naive ? " --naive" : "");
    printf("tmp:     %s (every figure here is durable on this filesystem)\n", b->dir);
}

static void print_table(const bench_t *b, const results_t *r)
{
    const opts_t *o = &b->o;
    printf("\n%-46s %12s %9s %9s %9s\n", "", "events/s", "p50 ms", "p99 ms", "max ms");
    if (r->ran && r->ok)
        printf("%-46s %12.0f %9.2f %9.2f %9.2f\n", "schakel broker (CURVE, signed, fsync)", r->events_s,
               r->p50, r->p99, r->max_ms);
    else if (r->ran) printf("%-46s %12s\n", "schakel broker (CURVE, signed, fsync)", "FAILED");
    if (r->lmdb_s > 0) {
        char label[64];
        snprintf(label, sizeof label, "raw LMDB append (%zu per commit)", o->lmdb_group);
        printf("%-46s %12.0f\n", label, r->lmdb_s);
    }
    if (r->redis_s > 0) printf("%-46s %12.0f\n", "Redis XADD (appendfsync always)", r->redis_s);
    else if (r->redis_skipped) printf("%-46s %12s\n", "Redis XADD (appendfsync always)", "skipped");
    printf("\n");
    if (r->ran && r->ok && r->redis_s > 0) printf("schakel / redis     %6.2f\n", r->events_s / r->redis_s);
    if (r->ran && r->ok && r->lmdb_s > 0) printf("schakel / raw LMDB  %6.2f\n", r->events_s / r->lmdb_s);
    if (r->ran) {
        printf("\nschakel: %llu events ACKed, %llu rejected, %llu duplicates, head %llu, "
               "%.2f s, mean event %.1f bytes\n",
               (unsigned long long)r->acked, (unsigned long long)r->rejected,
               (unsigned long long)r->duplicates, (unsigned long long)r->head, r->wall_s, r->mean_size);
        if (r->broker_cpu.ok && r->wall_s > 0)
            printf("         broker CPU %.2f s (%.0f%% of one core), %.0f bytes written per event;"
                   " publishers' CPU %.2f s\n",
                   r->broker_cpu.cpu_s, 100 * r->broker_cpu.cpu_s / r->wall_s,
                   (double)r->broker_cpu.write_bytes / (double)o->events, r->self_cpu.cpu_s);
        if (r->broker_mem.ok)
            printf("         broker memory: peak RSS %.1f MB; at the end %.1f MB own (heap, stacks) "
                   "+ %.1f MB of the log's file map\n",
                   (double)r->broker_mem.hwm_kb / 1024, (double)r->broker_mem.anon_kb / 1024,
                   (double)r->broker_mem.file_kb / 1024);
    }
    if (r->ran && r->ok) {
        printf("         log file grew %.0f bytes per event; per record in use:",
               (double)r->log_growth / (double)o->events);
        for (size_t i = 0; i < r->n_tables; i++)
            printf("%s %s %.0f B (%.2f entries)", i ? "," : "", r->tables[i].name, r->tables[i].bytes,
                   r->tables[i].entries);
        printf("\n");
    }
    if (r->lmdb_s > 0)
        printf("raw LMDB: %.0f commits/s, %.2f ms per commit, CPU %.2f s, %.0f bytes written "
               "per event\n",
               r->lmdb_commits_s, r->lmdb_commit_ms, r->lmdb_proc.cpu_s,
               (double)r->lmdb_proc.write_bytes / (double)o->events);
    if (r->redis_s > 0 && r->redis_proc.ok)
        printf("redis:    server CPU %.2f s, %.0f bytes written per event, AOF %.0f bytes per entry\n",
               r->redis_proc.cpu_s, (double)r->redis_proc.write_bytes / (double)o->events,
               (double)r->aof_bytes / (double)o->events);
}

/* ---- options ---- */

static const char usage[] =
    "usage: ingest [options]\n"
    "\n"
    "Measures durable ingest of a real `schakel node` (CURVE, signatures, fsync),\n"
    "the raw LMDB append limit and Redis Streams XADD with appendfsync always, in\n"
    "one run, and prints events/s, ACK latency and the ratios. See bench/README.md.\n"
    "\n"
    "  --events N          events per system (default 200000)\n"
    "  --publishers N      publisher threads, one client each (default 4, max 64)\n"
    "  --batch N           events per signed batch (default 100, max 1024)\n"
    "  --window N          batches in flight per publisher (default 16)\n"
    "  --event-size N      serialized envelope size to aim for (default 300)\n"
    "  --subjects N        distinct children (pseudonyms) the events are about\n"
    "                      (default 10000; the broker keeps a data key per child)\n"
    "  --lmdb-group N      raw LMDB: values per commit (default batch * publishers)\n"
    "  --redis-clients N   redis-benchmark -c (default: publishers)\n"
    "  --redis-pipeline N  redis-benchmark -P (default: batch * window, the events\n"
    "                      one schakel publisher may have in flight)\n"
    "  --no-redis          skip the Redis peer\n"
    "  --naive             let schakel_client_submit() wait for window space itself\n"
    "  --retry-ms N        client resend timer (default 5000)\n"
    "  --checkers N        the node's checker threads (default: its own, one per core)\n"
    "  --dashboards N      serve HTTP from the node and hold N dashboards' event\n"
    "                      streams open while it ingests (default 0: --http off)\n"
    "  --timeout S         give up on a phase after S seconds (default 120)\n"
    "  --schakel PATH      the schakel binary (default " SCHAKEL_BIN_DIR "/schakel)\n"
    "  --tmp DIR           where the temp dir goes (default $TMPDIR or /tmp)\n"
    "  --keep              keep the temp dir (logs, LMDB files) for a look\n";

/* 0: run; 1: --help shown; -1: bad usage. */
static int parse_args(int argc, char **argv, opts_t *o)
{
    o->events = 200000;
    o->publishers = 4;
    o->batch = 100;
    o->window = 16;
    o->event_size = 300;
    o->subjects = 10000;
    o->timeout_s = 120;
    o->retry_ms = 5000;
    bench_opts_default(&o->c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t v = 0;
        int taken;
        if (!strcmp(a, "--naive")) o->naive = 1; /* takes no value */
        else if ((taken = bench_opt("ingest", usage, argc, argv, &i, &o->c)) != 0) {
            if (taken < 0) return -1;
            if (taken == BENCH_OPT_HELP) return 1;
        } else {
            const char *val = argv[++i];
            int rc;
            if (!strcmp(a, "--events")) rc = bench_parse_size("ingest", a, val, 1, 100000000, &o->events);
            else if (!strcmp(a, "--publishers"))
                rc = bench_parse_size("ingest", a, val, 1, MAX_PUBLISHERS, &o->publishers);
            else if (!strcmp(a, "--batch"))
                rc = bench_parse_size("ingest", a, val, 1, SCHAKEL_MAX_BATCH_EVENTS, &o->batch);
            else if (!strcmp(a, "--window")) rc = bench_parse_size("ingest", a, val, 1, 4096, &o->window);
            else if (!strcmp(a, "--event-size"))
                rc = bench_parse_size("ingest", a, val, 100, 400, &o->event_size);
            else if (!strcmp(a, "--subjects"))
                rc = bench_parse_size("ingest", a, val, 1, 10000000, &o->subjects);
            else if (!strcmp(a, "--lmdb-group"))
                rc = bench_parse_size("ingest", a, val, 1, 1000000, &o->lmdb_group);
            else if (!strcmp(a, "--redis-clients"))
                rc = bench_parse_size("ingest", a, val, 1, 10000, &o->redis_clients);
            else if (!strcmp(a, "--redis-pipeline"))
                rc = bench_parse_size("ingest", a, val, 1, 100000, &o->redis_pipeline);
            else if (!strcmp(a, "--checkers")) rc = bench_parse_size("ingest", a, val, 1, 4, &o->checkers);
            else if (!strcmp(a, "--dashboards"))
                rc = bench_parse_size("ingest", a, val, 0, 1000, &o->dashboards);
            else if (!strcmp(a, "--retry-ms")) {
                rc = bench_parse_size("ingest", a, val, 10, 600000, &v);
                o->retry_ms = (int)v;
            } else if (!strcmp(a, "--timeout")) {
                rc = bench_parse_size("ingest", a, val, 1, 3600, &v);
                o->timeout_s = (int)v;
            } else {
                fprintf(stderr, "ingest: unknown option %s (see --help)\n", a);
                return -1;
            }
            if (rc) return -1;
        }
    }
    if (o->events < o->publishers) {
        fprintf(stderr, "ingest: --events must be at least --publishers\n");
        return -1;
    }
    if (!o->lmdb_group) o->lmdb_group = o->batch * o->publishers;
    if (!o->redis_clients) o->redis_clients = o->publishers;
    if (!o->redis_pipeline) o->redis_pipeline = o->batch * o->window;
    return 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    bench_t b;
    results_t r;
    publisher_t *pubs = NULL;
    char(*subjects)[65] = NULL;
    int rc = 1, ports[4], st;
    memset(&b, 0, sizeof b);
    memset(&r, 0, sizeof r);

    int pa = parse_args(argc, argv, &b.o);
    if (pa) return pa > 0 ? 0 : 2;
    int begun = bench_begin("ingest", &b.o.c, "schakel-bench", b.dir, sizeof b.dir);
    if (begun) return begun;
    b.node.name = "broker";
    snprintf(b.node.dir, sizeof b.node.dir, "%s/node", b.dir);
    snprintf(b.node.log, sizeof b.node.log, "%s/broker.log", b.dir);
    if (bench_free_ports(ports, 4) != 0) {
        fprintf(stderr, "ingest: no free loopback ports\n");
        goto out;
    }
    snprintf(b.node.endpoint, sizeof b.node.endpoint, "tcp://127.0.0.1:%d", ports[0]);
    snprintf(b.node.pub_endpoint, sizeof b.node.pub_endpoint, "tcp://127.0.0.1:%d", ports[1]);
    b.redis_port = ports[2];
    if (b.o.dashboards) snprintf(b.node.http, sizeof b.node.http, "127.0.0.1:%d", ports[3]);
    b.zmq = zmq_ctx_new();
    if (!b.zmq) goto out;
    print_machine(&b);

    /* Events first, outside every timed part. */
    uint8_t run_id[8];
    char why[SCHAKEL_ERRLEN] = "";
    subjects = calloc(b.o.subjects, sizeof *subjects);
    pubs = calloc(b.o.publishers, sizeof *pubs);
    if (!subjects || !pubs || schakel_random(run_id, sizeof run_id) != 0) goto out;
    bench_subjects(subjects, b.o.subjects);
    size_t total_bytes = 0;
    for (size_t i = 0; i < b.o.publishers; i++) {
        publisher_t *p = &pubs[i];
        p->b = &b;
        p->idx = i;
        p->org = bench_publisher_orgs[i % BENCH_N_ORGS];
        p->n_events = b.o.events / b.o.publishers + (i < b.o.events % b.o.publishers);
        p->n_batches = (p->n_events + b.o.batch - 1) / b.o.batch;
        p->submit_ns = calloc(p->n_batches, sizeof *p->submit_ns);
        p->lat_ms = calloc(p->n_batches, sizeof *p->lat_ms);
        if (!p->submit_ns || !p->lat_ms || build_events(p, &b.o, run_id, subjects, why) != 0) {
            fprintf(stderr, "ingest: building events: %s\n", why[0] ? why : "out of memory");
            goto out;
        }
        for (size_t k = 0; k < p->n_events; k++) total_bytes += p->lens[k];
    }
    r.mean_size = (double)total_bytes / (double)b.o.events;
    printf("events:  %zu signal envelopes, mean %.1f bytes serialized, about %zu children\n", b.o.events,
           r.mean_size, b.o.subjects);
    fflush(stdout);

    /* 1. schakel */
    if (bench_node_start(b.zmq, b.o.c.schakel_bin, &b.node, 0, b.o.checkers) != 0) goto out;
    char orgs[512] = "";
    for (size_t i = 0, used = 0; i < b.o.publishers && i < BENCH_N_ORGS; i++) {
        int n = snprintf(orgs + used, sizeof orgs - used, "%s%s", i ? " " : "", pubs[i].org);
        if (n < 0 || (size_t)n >= sizeof orgs - used) break;
        used += (size_t)n;
    }
    printf("schakel: broker up at %s; %zu publishers as %s%s...\n", b.node.endpoint, b.o.publishers, orgs,
           b.o.publishers > BENCH_N_ORGS ? " (and again)" : "");
    fflush(stdout);
    size_t dashboards = 0;
    for (int waited = 0; b.o.dashboards && waited < 100 && !dashboards; waited++) {
        bench_sleep_ms(100); /* the node's monitor comes up beside it */
        dashboards = bench_dashboards_open(ports[3], b.o.dashboards);
        if (dashboards && dashboards < b.o.dashboards) break;
    }
    if (b.o.dashboards) {
        printf("schakel: %zu dashboards open on http://%s/events\n", dashboards, b.node.http);
        fflush(stdout);
    }
    int schakel_rc = run_schakel(&b, pubs, &r);
    if (b.o.dashboards)
        printf("schakel: the dashboards read %llu bytes while it ingested; the monitor used %.2f s of CPU "
               "(%.0f%% of the broker's %.2f s)\n",
               (unsigned long long)bench_dashboards_close(), r.monitor_cpu_s,
               r.broker_cpu.cpu_s > 0 ? 100 * r.monitor_cpu_s / r.broker_cpu.cpu_s : 0, r.broker_cpu.cpu_s);
    if (b.node.pid > 0) {
        st = bench_stop_child(&b.node.pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "ingest: the broker did not stop cleanly (status %d)\n", st);
            schakel_rc = -1;
        }
    }
    if (schakel_rc != 0) {
        char log[PATH_LEN + 16];
        snprintf(log, sizeof log, "%s/broker.log", b.dir);
        bench_show_log_tail("broker", log);
    }
    if (b.stuck || bench_interrupted) goto out;
    for (size_t i = 0; i < b.o.publishers; i++) schakel_client_destroy(&pubs[i].client);

    /* 2. raw LMDB, 3. Redis */
    printf("lmdb:    raw append, %zu values per commit...\n", b.o.lmdb_group);
    fflush(stdout);
    int lmdb_rc = run_lmdb(&b, pubs, &r);
    int redis_rc = 0;
    if (b.o.c.no_redis) {
        printf("redis: SKIPPED (--no-redis)\n");
        r.redis_skipped = 1;
    } else if (!bench_interrupted) {
        redis_rc = run_redis(&b, r.mean_size, &r);
    }
    print_table(&b, &r);
    rc = schakel_rc || lmdb_rc || redis_rc || bench_interrupted ? 1 : 0;
    if (rc) fprintf(stderr, "\ningest: FAILED (see the messages above)\n");
out:
    if (b.node.pid > 0) bench_stop_child(&b.node.pid);
    if (b.redis > 0) bench_stop_child(&b.redis);
    /* With a thread stuck in the client, its sockets stay open: exiting
     * ends it; freeing under it or zmq_ctx_term() would not. */
    if (pubs && !b.stuck) publishers_free(pubs, b.o.publishers);
    free(subjects);
    if (b.zmq && !b.stuck) zmq_ctx_term(b.zmq);
    if (b.o.c.keep) printf("kept %s\n", b.dir);
    else if (b.dir[0]) bench_rmtree(b.dir);
    if (bench_interrupted) fprintf(stderr, "ingest: interrupted\n");
    return rc;
}
