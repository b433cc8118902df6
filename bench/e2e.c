/* bench/e2e: end-to-end latency and sustained rate of the whole bus, side by
 * side with its own ingest rate and a peer, all in one run.
 *
 *  0. ingest: a `schakel node --no-services` (the broker alone), fed as fast
 *     as the publishers' windows allow: the rate the broker ACKs.
 *  1. schakel: a `schakel node` WITH its services (routing, consent,
 *     feedback). Publisher threads send signals, referrals and consents at
 *     a fixed offered rate (open loop: on a schedule, never waiting for an
 *     ACK to send the next) for a fixed time per rate. Afterwards the log
 *     is read as svc-audit (FETCH "all") and every event is matched to the
 *     first consent decision about it (about_seq): the latency is the
 *     decision's recorded_at minus the event's, both the broker's clock.
 *  2. Redis Streams (appendfsync always): the same two stages. Publishers
 *     XADD at the same offered rate, a reader XREADGROUPs, XADDs a decision
 *     to a second stream and XACKs; the latency is the decision's stream id
 *     minus the event's (the server's clock).
 *
 * It prints a table per rate and the highest rate each sustains, and exits
 * non-zero on any reject, lost event, dead child, or a pipeline that does
 * not drain at the lowest rate. See bench/README.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <ftw.h>
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
#ifdef SCHAKEL_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include "bytes.h"
#include "client.h"
#include "clock.h"
#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "json.h"
#include "keys.h"
#include "validate.h"

#include "common.h"

#define MAX_PUBLISHERS 64
#define MAX_RATES 16
#define PATH_LEN BENCH_PATH_LEN
#define WARMUP_EVENTS 60 /* before the first rate: the services are live */
#define QUIET_MS 1000    /* the services are idle when the head stays put this long */

/* The publishers are the sample region's organisations (common.h). The
 * schools also send referrals and consents; the others send signals only
 * (a referral from a wijkteam to "the wijkteam" would reach nobody: a
 * publisher never gets its own event back). */

enum { EV_SIGNAL, EV_REFERRAL, EV_CONSENT, EV_KINDS };
static const char *const kind_names[EV_KINDS] = {"signal", "referral", "consent_given"};

typedef struct {
    size_t rates[MAX_RATES], n_rates;
    size_t publishers, batch, window, subjects, ingest_events;
    int seconds, interval_ms, drain_s, timeout_s, no_ingest;
    bench_opts_t c; /* --schakel, --tmp, --keep, --no-redis */
} opts_t;

typedef struct {
    opts_t o;
    char dir[PATH_LEN]; /* temp root, removed at the end */
    bench_node_t ingest, node;
    int redis_port;
    pid_t redis;
    void *zmq;
    uint8_t run_id[6];
    char (*subjects)[65];
    atomic_int abort; /* a publisher failed or a child died */
    int64_t t0;       /* the phase's start on the monotonic clock */
    int stuck;        /* a publisher thread never came back */
} bench_t;

typedef struct {
    size_t first, n; /* its events */
} batch_t;

typedef struct {
    bench_t *b;
    size_t idx;
    const char *org, *district;
    int school;
    schakel_client_t *client;
    /* the current phase's events, back to back in arena */
    uint8_t *arena;
    const uint8_t **ptrs;
    size_t *lens;
    uint8_t *kinds;
    uint64_t *seqs; /* from the ACKs */
    size_t n_events;
    batch_t *batches; /* a batch's user pointer points to its own */
    size_t n_batches;
    double rate; /* events/s of this publisher; 0: as fast as the window allows */
    size_t batch, window;
    uint64_t accepted, rejected, duplicates, missing;
    char first_reject[SCHAKEL_ERRLEN];
    int64_t first_submit, last_ack;
    double behind_ms; /* the most the sending fell behind its schedule */
    int failed;
    char why[SCHAKEL_ERRLEN];
    atomic_int finished;
} publisher_t;

/* What the log says, indexed by seq. */
typedef struct {
    int64_t *rec_at, *routed_at, *decided_at;
    size_t cap;
    uint64_t next, head;
    uint64_t outcomes[6], notices, unrouted;
} logidx_t;

typedef struct {
    size_t rate, events, kinds[EV_KINDS];
    int ran, sustained, drained;
    double acked_s, behind_ms, p50, p99, max_ms, r_p50, r_p99;
    double decided_s;      /* events decided / (last decision - first event) */
    double lag_s, drain_s; /* backlog at the end in seconds of events; time to the last decision */
    uint64_t backlog_routing, backlog_consent, undecided;
    /* the peer */
    int r_ran, r_sustained, r_drained;
    double r_acked_s, r_decided_s, r_behind_ms, rp50, rp99, rmax, r_lag_s, r_drain_s;
    uint64_t r_backlog, r_undecided;
} step_t;

typedef struct {
    double ingest_s;
    size_t ingest_events;
    double mean_size;
    step_t steps[MAX_RATES];
    int redis_skipped;
    char redis_why[128];
} results_t;

/* ---- events ---- */

static void hex_id(const uint8_t id[16], const char *salt, char out[33])
{
    uint8_t buf[32], h[SCHAKEL_SHA256_LEN];
    size_t sl = strlen(salt);
    memcpy(buf, id, 16);
    memcpy(buf + 16, salt, sl < 16 ? sl : 16);
    schakel_sha256(buf, 16 + (sl < 16 ? sl : 16), h);
    schakel_hex_encode(h, 16, out);
}

/* The JSON of event i of publisher p (docs/events.md); kind chosen by i. */
static int event_json(const publisher_t *p, const uint8_t id[16], size_t i, const char *subject, char *out,
                      size_t cap)
{
    int kind = !p->school ? EV_SIGNAL : i % 5 == 1 ? EV_REFERRAL : i % 5 == 3 ? EV_CONSENT : EV_SIGNAL;
    char rid[33];
    const char *a1 = strcmp(p->org, "smw-farent") ? "smw-farent" : "wijkteam-noord";
    const char *a2 = strcmp(p->org, "ggd-jgz") ? "ggd-jgz" : "wijkteam-zuid";
    if (kind == EV_SIGNAL)
        snprintf(out, cap,
                 "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\","
                 "\"legal_basis\":\"consent\",\"categories\":[\"behaviour\",\"wellbeing\"],"
                 "\"addressees\":[\"%s\",\"%s\"],\"district\":\"%s\",\"age_band\":\"under_12\","
                 "\"signal\":{\"concerns\":[\"behaviour\",\"wellbeing\"],\"urgency\":\"soon\","
                 "\"observed_on\":\"2026-11-20\",\"raised_by\":\"teacher\",\"follow_up_requested\":true}}",
                 subject, a1, a2, p->district);
    else if (kind == EV_REFERRAL) {
        hex_id(id, "referral", rid);
        snprintf(out, cap,
                 "{\"type\":\"referral\",\"subject\":\"%s\",\"purpose\":\"support\","
                 "\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],\"district\":\"%s\","
                 "\"age_band\":\"under_12\",\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"wijkteam\","
                 "\"reasons\":[\"home_situation\"],\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
                 subject, p->district, rid);
    } else {
        hex_id(id, "consent", rid);
        snprintf(
            out, cap,
            "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
            "\"legal_basis\":\"consent\",\"district\":\"%s\",\"age_band\":\"under_12\","
            "\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\",\"age_band\":\"under_12\","
            "\"recipient_kind\":\"wijkteam\",\"purposes\":[\"support\",\"feedback\"],"
            "\"categories\":[\"home_situation\",\"behaviour\"],\"valid_from\":\"2020-01-01\"}}",
            subject, p->district, rid);
    }
    return kind;
}

/* Packs event i of phase `phase` into buf; returns its size, 0 on error. */
static size_t pack_event(publisher_t *p, unsigned phase, size_t i, uint8_t *buf, size_t cap, char *why)
{
    bench_t *b = p->b;
    uint8_t id[16];
    char json[2048];
    memcpy(id, b->run_id, 6); /* unique per run, phase, publisher and event */
    id[6] = (uint8_t)phase;
    id[7] = (uint8_t)p->idx;
    schakel_put_be64(id + 8, i);
    /* children drawn evenly (a hash, not a walk: publishers walking
     * neighbouring ranges would all signal about the same children) */
    uint64_t h =
        ((uint64_t)phase << 48 ^ (uint64_t)p->idx << 40 ^ i) + 0x9E3779B97F4A7C15ULL; /* splitmix64 */
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    const char *subject = b->subjects[(h ^ (h >> 31)) % b->o.subjects];
    p->kinds[i] = (uint8_t)event_json(p, id, i, subject, json, sizeof json);
    schakel_envelope_t *e = schakel_json_parse_envelope(json, strlen(json), why);
    if (!e) return 0;
    e->event_id.data = id;
    e->event_id.len = sizeof id;
    e->source_org = (char *)p->org;
    e->occurred_at = 1795000000000LL + (int64_t)i * 100;
    size_t len = schakel__v1__envelope__get_packed_size(e);
    if (len <= cap) schakel__v1__envelope__pack(e, buf);
    e->event_id.data = NULL, e->event_id.len = 0, e->source_org = NULL;
    schakel_envelope_free(e);
    if (len > cap) {
        schakel_fail(why, SCHAKEL_ETOOBIG, "event %zu is %zu bytes", i, len);
        return 0;
    }
    return len;
}

/* Builds the n events of publisher p for one phase, each checked with the
 * validator the broker uses. */
static int build_events(publisher_t *p, unsigned phase, size_t n, char *why)
{
    enum { SLOT = 640 };
    free(p->arena);
    free(p->ptrs);
    free(p->lens);
    free(p->kinds);
    free(p->seqs);
    free(p->batches);
    p->arena = malloc(n * SLOT + 1);
    p->ptrs = calloc(n + 1, sizeof *p->ptrs);
    p->lens = calloc(n + 1, sizeof *p->lens);
    p->kinds = calloc(n + 1, 1);
    p->seqs = calloc(n + 1, sizeof *p->seqs);
    p->batches = calloc(n + 1, sizeof *p->batches);
    p->n_events = n;
    if (!p->arena || !p->ptrs || !p->lens || !p->kinds || !p->seqs || !p->batches)
        return schakel_fail(why, SCHAKEL_ENOMEM, "events");
    for (size_t i = 0; i < n; i++) {
        uint8_t *at = p->arena + i * SLOT;
        char vwhy[SCHAKEL_ERRLEN] = "";
        p->lens[i] = pack_event(p, phase, i, at, SLOT, vwhy);
        p->ptrs[i] = at;
        schakel_envelope_t *env = p->lens[i] ? schakel_envelope_decode(at, p->lens[i], vwhy) : NULL;
        int rc = env ? schakel_envelope_validate_bytes(env, at, p->lens[i], vwhy) : SCHAKEL_EDECODE;
        schakel_envelope_free(env);
        if (rc) return schakel_fail(why, rc, "%s %zu is not valid: %s", kind_names[p->kinds[i]], i, vwhy);
    }
    return 0;
}

/* ---- the node ---- */

static schakel_client_t *client_for(bench_t *b, const bench_node_t *n, const char *org, size_t window,
                                    char *why)
{
    return bench_client(b->zmq, n, org, window, 5000, 20000, why);
}

/* Stops a node; 0 if it stopped cleanly on SIGTERM. */
static int node_stop(bench_node_t *n)
{
    if (n->pid <= 0) return 0;
    int st = bench_stop_child(&n->pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    fprintf(stderr, "bench: %s did not stop cleanly (status %d)\n", n->name, st);
    bench_show_log_tail(n->name, n->log);
    return -1;
}

/* ---- publishers ---- */

static void on_ack(void *arg, void *user, const Schakel__V1__Ack *ack)
{
    publisher_t *p = arg;
    int64_t t = schakel_mono_ns();
    const batch_t *bt = user;
    size_t first = bt->first, want = bt->n;
    p->last_ack = t;
    bench_ack_batch(ack, want, &p->missing, p->first_reject, sizeof p->first_reject);
    for (size_t j = 0; j < ack->n_entries && j < want; j++) {
        const Schakel__V1__AckEntry *e = ack->entries[j];
        if (e->code || ack->batch_code) {
            p->rejected++;
            if (!p->first_reject[0])
                snprintf(p->first_reject, sizeof p->first_reject, "%s: code %d: %s",
                         kind_names[p->kinds[first + j]], e->code, e->reason ? e->reason : "");
        } else {
            p->seqs[first + j] = e->seq;
            if (e->duplicate) p->duplicates++;
            else p->accepted++;
        }
    }
}

static int publisher_stop(void *arg, int64_t deadline)
{
    publisher_t *p = arg;
    if (bench_interrupted) return schakel_fail(p->why, SCHAKEL_ETIMEOUT, "interrupted");
    if (atomic_load(&p->b->abort)) return schakel_fail(p->why, SCHAKEL_ETIMEOUT, "aborted");
    if (schakel_mono_ns() > deadline)
        return schakel_fail(p->why, SCHAKEL_ETIMEOUT, "no final ACK within %d s", p->b->o.timeout_s);
    return 0;
}

/* Sends every event on its schedule: event i is due rate*i seconds after
 * the phase's start. Every interval it submits what is due (in batches of
 * up to `batch`), never waiting for ACKs unless the window is full: then
 * it falls behind, and behind_ms says by how much. rate 0: everything is
 * due at once (the ingest phase). */
static void *publisher_main(void *arg)
{
    publisher_t *p = arg;
    bench_t *b = p->b;
    int64_t t0 = b->t0;
    while (schakel_mono_ns() < t0) bench_sleep_ms(1);
    int64_t deadline = t0 + (int64_t)b->o.timeout_s * 1000000000LL;
    size_t sent = 0;
    p->first_submit = schakel_mono_ns();
    while (sent < p->n_events && !p->failed) {
        if (publisher_stop(p, deadline)) {
            p->failed = 1;
            break;
        }
        int64_t now = schakel_mono_ns();
        size_t due = p->n_events;
        if (p->rate > 0) {
            double d = (double)(now - t0) / 1e9 * p->rate + 1;
            due = d < (double)p->n_events ? (size_t)d : p->n_events;
        }
        while (sent < due && schakel_client_inflight(p->client) < p->window) {
            size_t n = due - sent < p->batch ? due - sent : p->batch;
            batch_t *user = &p->batches[p->n_batches++];
            user->first = sent;
            user->n = n;
            int rc = schakel_client_submit(p->client, p->ptrs + sent, p->lens + sent, n, user, on_ack, p);
            if (rc) {
                schakel_fail(p->why, rc, "submit: %s", schakel_strerror(rc));
                p->failed = 1;
                break;
            }
            sent += n;
        }
        if (sent < due && p->rate > 0) {
            double late = (double)(now - t0) / 1e6 - (double)sent / p->rate * 1e3;
            if (late > p->behind_ms) p->behind_ms = late;
        }
        int wait = p->rate > 0 ? b->o.interval_ms : 1;
        schakel_client_poll(p->client, sent < due ? 1 : wait, on_ack, p);
    }
    bench_publisher_end(p->client, on_ack, p, publisher_stop, deadline, &p->failed, &b->abort, &p->finished);
    return NULL;
}

static void publishers_free(publisher_t *pubs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bench_publisher_free(&pubs[i].client, pubs[i].arena, pubs[i].ptrs, pubs[i].lens);
        free(pubs[i].kinds);
        free(pubs[i].seqs);
        free(pubs[i].batches);
    }
    free(pubs);
}

/* Builds each publisher's share of `total` events for phase `phase`. */
static int build_phase(bench_t *b, publisher_t *pubs, unsigned phase, size_t total, double *mean_size)
{
    char why[SCHAKEL_ERRLEN] = "";
    size_t bytes = 0;
    for (size_t i = 0; i < b->o.publishers; i++) {
        size_t n = total / b->o.publishers + (i < total % b->o.publishers);
        if (build_events(&pubs[i], phase, n, why) != 0) {
            fprintf(stderr, "bench: building events of %s: %s\n", pubs[i].org, why);
            return -1;
        }
        for (size_t k = 0; k < n; k++) bytes += pubs[i].lens[k];
    }
    if (mean_size && total) *mean_size = (double)bytes / (double)total;
    return 0;
}

/* Runs one phase: every publisher sends its events at rate/publishers
 * (0: as fast as the window allows) to node n; waits for every final ACK.
 * 0 when every event was ACKed with code 0. */
static int run_phase(bench_t *b, bench_node_t *n, publisher_t *pubs, double rate, size_t batch, size_t window)
{
    const opts_t *o = &b->o;
    pthread_t threads[MAX_PUBLISHERS];
    size_t started = 0;
    char why[SCHAKEL_ERRLEN] = "";
    for (size_t i = 0; i < o->publishers; i++) {
        publisher_t *p = &pubs[i];
        p->rate = rate / (double)o->publishers;
        p->batch = batch;
        p->window = window;
        p->n_batches = 0;
        p->accepted = p->rejected = p->duplicates = p->missing = 0;
        p->first_reject[0] = p->why[0] = 0;
        p->first_submit = p->last_ack = 0;
        p->behind_ms = 0;
        p->failed = 0;
        atomic_store(&p->finished, 0);
        if (!p->client) p->client = client_for(b, n, p->org, window, why);
        if (!p->client || bench_ping(p->client, 5000, NULL, why) != 0) {
            fprintf(stderr, "bench: publisher %zu (%s): %s\n", i, p->org, why);
            return -1;
        }
    }
    b->t0 = schakel_mono_ns() + 50 * 1000000LL;
    for (; started < o->publishers; started++)
        if (pthread_create(&threads[started], NULL, publisher_main, &pubs[started]) != 0) break;
    if (started < o->publishers) {
        fprintf(stderr, "bench: cannot start publisher threads\n");
        atomic_store(&b->abort, 1);
    }
    int64_t give_up = schakel_mono_ns() + ((int64_t)o->timeout_s + 5) * 1000000000LL;
    int done = 0, st;
    while (!done) {
        bench_sleep_ms(20);
        done = 1;
        for (size_t i = 0; i < started; i++)
            if (!atomic_load(&pubs[i].finished)) done = 0;
        if (bench_child_gone(&n->pid, &st))
            fprintf(stderr, "bench: %s died during the run (status %d)\n", n->name, st);
        if (n->pid <= 0 || bench_interrupted || schakel_mono_ns() > give_up) {
            atomic_store(&b->abort, 1);
            done = 1;
        }
    }
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 5;
    for (size_t i = 0; i < started; i++)
        if (pthread_timedjoin_np(threads[i], NULL, &limit) != 0) {
            fprintf(stderr, "bench: publisher %zu does not come back; leaving it behind\n", i);
            b->stuck = 1;
        }
    if (b->stuck || started < o->publishers || n->pid <= 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < o->publishers; i++) {
        publisher_t *p = &pubs[i];
        if (p->failed) fprintf(stderr, "bench: publisher %zu (%s): %s\n", i, p->org, p->why);
        if (p->first_reject[0])
            fprintf(stderr, "bench: publisher %zu (%s): first reject: %s\n", i, p->org, p->first_reject);
        if (p->failed || p->rejected || p->missing || p->accepted + p->duplicates != p->n_events) {
            fprintf(stderr,
                    "bench: publisher %zu (%s): %llu of %zu events ACKed, %llu rejected, %llu missing "
                    "from ACKs\n",
                    i, p->org, (unsigned long long)(p->accepted + p->duplicates), p->n_events,
                    (unsigned long long)p->rejected, (unsigned long long)p->missing);
            rc = -1;
        }
    }
    return rc;
}

/* Events ACKed per second from the first submit to the last ACK. */
static double phase_rate(const publisher_t *pubs, size_t n, double *behind_ms)
{
    int64_t t0 = INT64_MAX, t1 = 0;
    uint64_t acked = 0;
    *behind_ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (pubs[i].first_submit && pubs[i].first_submit < t0) t0 = pubs[i].first_submit;
        if (pubs[i].last_ack > t1) t1 = pubs[i].last_ack;
        if (pubs[i].behind_ms > *behind_ms) *behind_ms = pubs[i].behind_ms;
        acked += pubs[i].accepted;
    }
    return t1 > t0 ? (double)acked / ((double)(t1 - t0) / 1e9) : 0;
}

/* ---- reading the decisions back from the log ---- */

static int logidx_grow(logidx_t *x, uint64_t seq)
{
    if (seq < x->cap) return 0;
    size_t cap = x->cap ? x->cap : 65536;
    while (cap <= seq) cap *= 2;
    int64_t *a = realloc(x->rec_at, cap * sizeof *a);
    if (a) x->rec_at = a;
    int64_t *r = realloc(x->routed_at, cap * sizeof *r);
    if (r) x->routed_at = r;
    int64_t *d = realloc(x->decided_at, cap * sizeof *d);
    if (d) x->decided_at = d;
    if (!a || !r || !d) return -1;
    memset(x->rec_at + x->cap, 0, (cap - x->cap) * sizeof *a);
    memset(x->routed_at + x->cap, 0, (cap - x->cap) * sizeof *r);
    memset(x->decided_at + x->cap, 0, (cap - x->cap) * sizeof *d);
    x->cap = cap;
    return 0;
}

/* Notes one record: its time, and for a decision the first of its kind
 * about the event at about_seq. An event counts as decided at its first
 * consent decision that is not a verwijsindex notice (a notice about a
 * signal is made from the signal alone, without routing), or at its
 * routing decision when that names nobody (then consent has nothing to
 * decide). */
static int logidx_note(logidx_t *x, const Schakel__V1__Delivered *r)
{
    if (logidx_grow(x, r->seq) != 0) return -1;
    x->rec_at[r->seq] = r->recorded_at;
    if (!r->event.len) return 0;
    schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
    if (!e) return 0;
    uint64_t about = 0;
    if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION && e->routing_decision) {
        about = e->routing_decision->about_seq;
        if (about < x->cap && !x->routed_at[about]) {
            x->routed_at[about] = r->recorded_at;
            if (!e->routing_decision->n_recipients && !x->decided_at[about]) {
                x->decided_at[about] = r->recorded_at;
                x->unrouted++;
            }
        }
    } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION && e->consent_decision) {
        const Schakel__V1__ConsentDecision *d = e->consent_decision;
        about = d->about_seq;
        if (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY) x->notices++;
        else if (about < x->cap && !x->decided_at[about]) {
            x->decided_at[about] = r->recorded_at;
            if ((unsigned)d->outcome < 6) x->outcomes[d->outcome]++;
        }
    }
    schakel_envelope_free(e);
    return 0;
}

/* One FETCH of "all" from where the last one ended. Returns the number of
 * records read, or -1. */
static int log_read(schakel_client_t *c, logidx_t *x, char *why)
{
    Schakel__V1__Fetch f = SCHAKEL__V1__FETCH__INIT;
    ProtobufCMessage *reply = NULL;
    f.stream = (char *)"all";
    f.from_seq = x->next ? x->next : 1;
    f.max_count = 2000;
    int rc = schakel_client_call(c, "FETCH", &f.base, &schakel__v1__batch__descriptor, &reply, 10000, why);
    if (rc) return -1;
    Schakel__V1__Batch *bt = (Schakel__V1__Batch *)reply;
    int n = (int)bt->n_records;
    for (size_t i = 0; i < bt->n_records; i++)
        if (logidx_note(x, bt->records[i]) != 0) {
            n = -1;
            schakel_fail(why, SCHAKEL_ENOMEM, "log index");
            break;
        }
    if (bt->next_seq > x->next) x->next = bt->next_seq;
    x->head = bt->head;
    protobuf_c_message_free_unpacked(reply, NULL);
    return n;
}

/* How many of the phase's events have no decision yet (0 also when an
 * event has no seq: that was a failed phase, reported elsewhere). */
static size_t undecided(const logidx_t *x, const publisher_t *pubs, size_t n_pubs)
{
    size_t n = 0;
    for (size_t i = 0; i < n_pubs; i++)
        for (size_t k = 0; k < pubs[i].n_events; k++) {
            uint64_t s = pubs[i].seqs[k];
            if (s && (s >= x->cap || !x->decided_at[s])) n++;
        }
    return n;
}

/* Waits until the log's head has not moved for QUIET_MS (the services are
 * idle: caught up, or stuck) or until end. PING only: reading the log
 * while the services catch up would slow them and lengthen what is
 * measured. 0, or -1 when the node stops answering. */
static int wait_quiet(bench_t *b, schakel_client_t *c, int64_t end)
{
    char why[SCHAKEL_ERRLEN] = "";
    uint64_t head = 0, last = UINT64_MAX;
    int64_t since = schakel_mono_ns();
    while (!bench_interrupted && schakel_mono_ns() < end) {
        if (bench_ping(c, 5000, &head, why) != 0) {
            fprintf(stderr, "bench: PING the node: %s\n", why);
            return -1;
        }
        if (head != last) last = head, since = schakel_mono_ns();
        else if (schakel_mono_ns() - since >= (int64_t)QUIET_MS * 1000000) break;
        if (b->node.pid <= 0 || bench_child_gone(&b->node.pid, &(int){0})) {
            fprintf(stderr, "bench: the node died while the services caught up\n");
            return -1;
        }
        bench_sleep_ms(100);
    }
    return 0;
}

/* Once the services are idle, reads the log up to its head; again until
 * every event of the phase has its decision or drain_s passes. Returns
 * the number still undecided, or -1. */
static long drain(bench_t *b, schakel_client_t *c, logidx_t *x, publisher_t *pubs, int drain_s)
{
    char why[SCHAKEL_ERRLEN] = "";
    int64_t end = schakel_mono_ns() + (int64_t)drain_s * 1000000000LL;
    size_t left = SIZE_MAX;
    for (;;) {
        if (wait_quiet(b, c, end) != 0) return -1;
        do {
            if (log_read(c, x, why) < 0) {
                fprintf(stderr, "bench: FETCH all as svc-audit: %s\n", why);
                return -1;
            }
        } while (x->next <= x->head && !bench_interrupted);
        left = undecided(x, pubs, b->o.publishers);
        if (!left || bench_interrupted || schakel_mono_ns() > end) break;
    }
    return (long)left;
}

/* The figures of one rate from the log: latency per event (decision's
 * recorded_at minus the event's), the backlog when the last event was
 * recorded, and how long the services took after that. */
static void step_figures(const logidx_t *x, const publisher_t *pubs, size_t n_pubs, step_t *s)
{
    size_t n = 0, cap = 0;
    int64_t t_end = 0, last = 0, t_first = INT64_MAX;
    for (size_t i = 0; i < n_pubs; i++) {
        cap += pubs[i].n_events;
        for (size_t k = 0; k < pubs[i].n_events; k++) {
            uint64_t q = pubs[i].seqs[k];
            if (q && q < x->cap && x->rec_at[q] > t_end) t_end = x->rec_at[q];
            if (q && q < x->cap && x->rec_at[q] < t_first) t_first = x->rec_at[q];
            s->kinds[pubs[i].kinds[k]]++;
        }
    }
    double *lat = malloc((cap + 1) * sizeof *lat), *rlat = malloc((cap + 1) * sizeof *rlat);
    size_t rn = 0;
    for (size_t i = 0; lat && rlat && i < n_pubs; i++)
        for (size_t k = 0; k < pubs[i].n_events; k++) {
            uint64_t q = pubs[i].seqs[k];
            if (!q || q >= x->cap) continue;
            if (x->routed_at[q]) {
                rlat[rn++] = (double)(x->routed_at[q] - x->rec_at[q]);
                if (x->routed_at[q] > t_end) s->backlog_routing++;
            } else s->backlog_routing++;
            if (!x->decided_at[q]) { /* longer than --drain: above every measured one */
                s->undecided++;
                s->backlog_consent++;
                lat[n++] = INFINITY;
                continue;
            }
            lat[n++] = (double)(x->decided_at[q] - x->rec_at[q]);
            if (x->decided_at[q] > t_end) s->backlog_consent++;
            if (x->decided_at[q] > last) last = x->decided_at[q];
        }
    if (lat) bench_summarize(lat, n, &s->p50, &s->p99, &s->max_ms);
    double rmax;
    if (rlat) bench_summarize(rlat, rn, &s->r_p50, &s->r_p99, &rmax);
    free(lat);
    free(rlat);
    s->drained = s->undecided == 0;
    s->drain_s = last > t_end ? (double)(last - t_end) / 1e3 : 0;
    s->lag_s = (double)s->backlog_consent / (double)s->rate;
    /* when the services fall behind, this is their rate */
    s->decided_s = last > t_first ? (double)(n - s->undecided) / ((double)(last - t_first) / 1e3) : 0;
}

/* ---- the peer: Redis Streams ---- */

#ifdef SCHAKEL_HAVE_HIREDIS

typedef struct {
    bench_t *b;
    const char *stream;
    size_t n, size, max_pending;
    double rate;
    int64_t last_id_ms; /* the server time of the last reply */
    int64_t first_submit, last_reply;
    double behind_ms;
    uint64_t acked;
    int failed;
    char why[160];
    atomic_int finished;
} rpub_t;

typedef struct {
    bench_t *b;
    const char *events, *decisions;
    size_t expected;
    double *lat;     /* per decision, ms */
    int64_t *dec_ms; /* per decision: its server time */
    size_t n;
    int64_t first_ev_ms; /* the earliest event read */
    int64_t deadline;
    int failed;
    char why[160];
} rreader_t;

static int64_t id_ms(const char *id)
{
    return id ? strtoll(id, NULL, 10) : 0;
}

static redisContext *redis_connect(int port, char *why, size_t cap)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        snprintf(why, cap, "connect: %s", c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    return c;
}

/* Takes every reply that is already there; -1 on an error reply. */
static int rpub_replies(rpub_t *p, redisContext *c, size_t *pending)
{
    void *r = NULL;
    while (*pending > 0) {
        if (redisGetReplyFromReader(c, &r) != REDIS_OK) return -1;
        if (!r) return 0;
        redisReply *rep = r;
        if (rep->type != REDIS_REPLY_STRING) {
            snprintf(p->why, sizeof p->why, "XADD: %s",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "odd reply");
            freeReplyObject(rep);
            return -1;
        }
        p->last_id_ms = id_ms(rep->str);
        p->last_reply = schakel_mono_ns();
        p->acked++;
        (*pending)--;
        freeReplyObject(rep);
    }
    return 0;
}

/* The same schedule as publisher_main: XADD what is due, up to
 * max_pending without a reply, read replies as they come. */
static void *rpub_main(void *arg)
{
    rpub_t *p = arg;
    bench_t *b = p->b;
    redisContext *c = redis_connect(b->redis_port, p->why, sizeof p->why);
    char *payload = malloc(p->size + 1);
    size_t sent = 0, pending = 0;
    if (!c || !payload) goto fail;
    memset(payload, 'x', p->size);
    payload[p->size] = 0;
    while (schakel_mono_ns() < b->t0) bench_sleep_ms(1);
    int64_t deadline = b->t0 + (int64_t)b->o.timeout_s * 1000000000LL;
    p->first_submit = schakel_mono_ns();
    while ((sent < p->n || pending > 0) && !bench_interrupted && !atomic_load(&b->abort)) {
        int64_t now = schakel_mono_ns();
        if (now > deadline) {
            snprintf(p->why, sizeof p->why, "no reply within %d s", b->o.timeout_s);
            goto fail;
        }
        double d = (double)(now - b->t0) / 1e9 * p->rate + 1;
        size_t due = d < (double)p->n ? (size_t)d : p->n, queued = 0;
        for (; sent < due && pending < p->max_pending; sent++, pending++, queued++)
            if (redisAppendCommand(c, "XADD %s * e %b", p->stream, payload, p->size) != REDIS_OK) goto fail;
        if (sent < due) {
            double late = (double)(now - b->t0) / 1e6 - (double)sent / p->rate * 1e3;
            if (late > p->behind_ms) p->behind_ms = late;
        }
        int done = 0;
        while (queued && !done)
            if (redisBufferWrite(c, &done) != REDIS_OK) goto fail;
        struct pollfd pf = {c->fd, POLLIN, 0};
        int wait = sent < due ? 1 : b->o.interval_ms;
        if (pending && poll(&pf, 1, wait) > 0) {
            if (redisBufferRead(c) != REDIS_OK || rpub_replies(p, c, &pending) != 0) goto fail;
        } else if (!pending) {
            bench_sleep_ms(wait);
        }
    }
    if (sent == p->n && pending == 0) goto out;
fail:
    if (!p->why[0]) snprintf(p->why, sizeof p->why, "%s", c && c->err ? c->errstr : "stopped");
    p->failed = 1;
    atomic_store(&b->abort, 1);
out:
    if (c) redisFree(c);
    free(payload);
    atomic_store(&p->finished, 1);
    return NULL;
}

/* The second stage: each event read from the group gets a decision XADDed
 * to the decisions stream, then the events are XACKed. */
static void *rreader_main(void *arg)
{
    rreader_t *rd = arg;
    redisContext *c = redis_connect(rd->b->redis_port, rd->why, sizeof rd->why);
    const char **argv = calloc(1003, sizeof *argv);
    redisReply *r = NULL;
    if (!c || !argv) goto fail;
    while (rd->n < rd->expected && !bench_interrupted && schakel_mono_ns() < rd->deadline) {
        r = redisCommand(c, "XREADGROUP GROUP g r COUNT 1000 BLOCK 100 STREAMS %s >", rd->events);
        if (!r) goto fail;
        if (r->type == REDIS_REPLY_NIL) {
            freeReplyObject(r);
            r = NULL;
            continue;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->elements < 2) {
            snprintf(rd->why, sizeof rd->why, "XREADGROUP: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
            goto fail;
        }
        redisReply *entries = r->element[0]->element[1];
        size_t m = entries->elements;
        argv[0] = "XACK", argv[1] = rd->events, argv[2] = "g";
        for (size_t i = 0; i < m; i++) {
            const char *id = entries->element[i]->element[0]->str;
            argv[3 + i] = id;
            if (redisAppendCommand(c, "XADD %s * about %s", rd->decisions, id) != REDIS_OK) goto fail;
        }
        if (m && redisAppendCommandArgv(c, (int)(m + 3), argv, NULL) != REDIS_OK) goto fail;
        for (size_t i = 0; i <= m && m; i++) {
            void *v = NULL;
            if (redisGetReply(c, &v) != REDIS_OK || !v) goto fail;
            redisReply *rep = v;
            int ok = i < m ? rep->type == REDIS_REPLY_STRING : rep->type == REDIS_REPLY_INTEGER;
            if (ok && i < m && rd->n < rd->expected) {
                int64_t dec = id_ms(rep->str), ev = id_ms(entries->element[i]->element[0]->str);
                if (!rd->first_ev_ms || ev < rd->first_ev_ms) rd->first_ev_ms = ev;
                rd->dec_ms[rd->n] = dec;
                rd->lat[rd->n++] = (double)(dec - ev);
            }
            if (!ok)
                snprintf(rd->why, sizeof rd->why, "%s",
                         rep->type == REDIS_REPLY_ERROR ? rep->str : "odd reply");
            freeReplyObject(rep);
            if (!ok) goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    goto out;
fail:
    if (!rd->why[0]) snprintf(rd->why, sizeof rd->why, "%s", c && c->err ? c->errstr : "out of memory");
    rd->failed = 1;
out:
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    free(argv);
    return NULL;
}

/* Starts redis-server with appendfsync always and waits for PING. */
static int redis_start(bench_t *b, char *why, size_t cap)
{
    char dir[PATH_LEN + 16], log[PATH_LEN + 32];
    snprintf(dir, sizeof dir, "%s/redis", b->dir);
    snprintf(log, sizeof log, "%s/redis.log", b->dir);
    return bench_redis_start(dir, log, b->redis_port, &b->redis, why, cap);
}

/* One rate on Redis: fresh streams, publishers and one reader. */
static int redis_step(bench_t *b, size_t k, size_t size, step_t *s)
{
    const opts_t *o = &b->o;
    size_t total = s->rate * (size_t)o->seconds, np = o->publishers;
    char ev[32], dec[32], why[160] = "";
    snprintf(ev, sizeof ev, "events-%zu", k);
    snprintf(dec, sizeof dec, "decisions-%zu", k);
    redisContext *c = redis_connect(b->redis_port, why, sizeof why);
    redisReply *r = c ? redisCommand(c, "XGROUP CREATE %s g 0 MKSTREAM", ev) : NULL;
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    if (!ok) {
        fprintf(stderr, "bench: redis XGROUP CREATE: %s\n", why[0] ? why : "refused");
        return -1;
    }
    rpub_t *pubs = calloc(np, sizeof *pubs);
    rreader_t rd = {0};
    rd.lat = malloc((total + 1) * sizeof *rd.lat);
    rd.dec_ms = malloc((total + 1) * sizeof *rd.dec_ms);
    if (!pubs || !rd.lat || !rd.dec_ms) {
        free(pubs), free(rd.lat), free(rd.dec_ms);
        return -1;
    }
    pthread_t threads[MAX_PUBLISHERS], reader;
    size_t started = 0;
    b->t0 = schakel_mono_ns() + 50 * 1000000LL;
    rd.b = b, rd.events = ev, rd.decisions = dec, rd.expected = total;
    rd.deadline = b->t0 + ((int64_t)o->seconds + o->drain_s) * 1000000000LL;
    int reader_up = pthread_create(&reader, NULL, rreader_main, &rd) == 0;
    for (; reader_up && started < np; started++) {
        rpub_t *p = &pubs[started];
        p->b = b, p->stream = ev, p->size = size, p->max_pending = o->window * o->batch;
        p->n = total / np + (started < total % np);
        p->rate = (double)s->rate / (double)np;
        if (pthread_create(&threads[started], NULL, rpub_main, p) != 0) break;
    }
    if (started < np) atomic_store(&b->abort, 1);
    int rc = started == np ? 0 : -1;
    int64_t t_end = 0, t0 = INT64_MAX, t1 = 0;
    for (size_t i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        if (pubs[i].failed) {
            fprintf(stderr, "bench: redis publisher %zu: %s\n", i, pubs[i].why);
            rc = -1;
        }
        if (pubs[i].last_id_ms > t_end) t_end = pubs[i].last_id_ms;
        if (pubs[i].first_submit < t0) t0 = pubs[i].first_submit;
        if (pubs[i].last_reply > t1) t1 = pubs[i].last_reply;
        if (pubs[i].behind_ms > s->r_behind_ms) s->r_behind_ms = pubs[i].behind_ms;
        s->r_acked_s += (double)pubs[i].acked;
    }
    s->r_acked_s = t1 > t0 ? s->r_acked_s / ((double)(t1 - t0) / 1e9) : 0;
    if (reader_up) pthread_join(reader, NULL);
    if (rd.failed) {
        fprintf(stderr, "bench: redis reader: %s\n", rd.why);
        rc = -1;
    }
    int64_t last = 0;
    for (size_t i = 0; i < rd.n; i++) {
        if (rd.dec_ms[i] > t_end) s->r_backlog++;
        if (rd.dec_ms[i] > last) last = rd.dec_ms[i];
    }
    s->r_undecided = total - rd.n;
    for (size_t i = rd.n; i < total; i++) rd.lat[i] = INFINITY; /* never decided */
    s->r_backlog += s->r_undecided;
    s->r_drained = rd.n == total;
    s->r_drain_s = last > t_end ? (double)(last - t_end) / 1e3 : 0;
    s->r_decided_s = last > rd.first_ev_ms ? (double)rd.n / ((double)(last - rd.first_ev_ms) / 1e3) : 0;
    s->r_lag_s = (double)s->r_backlog / (double)s->rate;
    bench_summarize(rd.lat, total, &s->rp50, &s->rp99, &s->rmax);
    s->r_sustained = rc == 0 && s->r_drained && s->r_acked_s >= 0.95 * (double)s->rate && s->r_lag_s < 1.0;
    s->r_ran = rc == 0;
    free(pubs), free(rd.lat), free(rd.dec_ms);
    atomic_store(&b->abort, 0);
    return rc;
}

static int run_redis(bench_t *b, results_t *r)
{
    char why[160] = "";
    if (!bench_on_path("redis-server")) {
        printf("redis:   SKIPPED: redis-server is not installed (apt-get install -y redis-server)\n");
        snprintf(r->redis_why, sizeof r->redis_why, "redis-server not installed");
        r->redis_skipped = 1;
        return 0;
    }
    if (redis_start(b, why, sizeof why) != 0) {
        fprintf(stderr, "bench: %s\n", why);
        return -1;
    }
    size_t size = r->mean_size > 1 ? (size_t)(r->mean_size + 0.5) : 300;
    int rc = 0;
    for (size_t k = 0; k < b->o.n_rates && rc == 0 && !bench_interrupted; k++) {
        step_t *s = &r->steps[k];
        printf("redis:   %zu events/s for %d s (XADD %zu bytes, XREADGROUP + XADD decision + XACK)...\n",
               s->rate, b->o.seconds, size);
        fflush(stdout);
        rc = redis_step(b, k, size, s);
        if (rc == 0 && !s->r_drained) {
            printf("redis:   %llu events without a decision after %d s: not sweeping higher\n",
                   (unsigned long long)s->r_undecided, b->o.drain_s);
            break;
        }
    }
    int st = bench_stop_child(&b->redis);
    (void)st;
    return rc;
}

#else

static int run_redis(bench_t *b, results_t *r)
{
    (void)b;
    printf("redis:   SKIPPED: bench/e2e was built without hiredis (apt-get install -y libhiredis-dev, "
           "then configure again)\n");
    snprintf(r->redis_why, sizeof r->redis_why, "built without hiredis");
    r->redis_skipped = 1;
    return 0;
}

#endif

/* ---- the schakel phases ---- */

/* Ingest with the services off: the broker's ACK rate, closed loop with
 * bench/ingest's defaults (batches of 100, 16 in flight per publisher). */
static int run_ingest(bench_t *b, publisher_t *pubs, results_t *r)
{
    size_t n = b->o.ingest_events;
    if (build_phase(b, pubs, 250, n, &r->mean_size) != 0) return -1;
    if (bench_node_start(b->zmq, b->o.c.schakel_bin, &b->ingest, 0, 0) != 0) return -1;
    printf("ingest:  %zu events to %s (--no-services), as fast as 16 batches of 100 in flight allow...\n", n,
           b->ingest.endpoint);
    fflush(stdout);
    int rc = run_phase(b, &b->ingest, pubs, 0, 100, 16);
    double behind;
    r->ingest_s = phase_rate(pubs, b->o.publishers, &behind);
    r->ingest_events = n;
    for (size_t i = 0; i < b->o.publishers; i++) schakel_client_destroy(&pubs[i].client);
    if (node_stop(&b->ingest) != 0) rc = -1;
    if (rc) fprintf(stderr, "bench: the ingest phase failed\n");
    return rc;
}

/* One rate against the node with services: send, then read the decisions. */
static int schakel_step(bench_t *b, publisher_t *pubs, schakel_client_t *audit, logidx_t *x, unsigned phase,
                        step_t *s, int seconds, double *mean_size)
{
    size_t total = s->rate * (size_t)seconds;
    if (build_phase(b, pubs, phase, total, mean_size) != 0) return -1;
    s->events = total;
    if (run_phase(b, &b->node, pubs, (double)s->rate, b->o.batch, b->o.window) != 0) return -1;
    s->acked_s = phase_rate(pubs, b->o.publishers, &s->behind_ms);
    long left = drain(b, audit, x, pubs, b->o.drain_s);
    if (left < 0) return -1;
    step_figures(x, pubs, b->o.publishers, s);
    s->ran = 1;
    s->sustained = s->drained && s->acked_s >= 0.95 * (double)s->rate && s->lag_s < 1.0;
    return 0;
}

static int run_schakel(bench_t *b, publisher_t *pubs, results_t *r)
{
    char why[SCHAKEL_ERRLEN] = "";
    logidx_t x = {0};
    int rc = -1;
    if (bench_node_start(b->zmq, b->o.c.schakel_bin, &b->node, 1, 0) != 0) return -1;
    schakel_client_t *audit = client_for(b, &b->node, "svc-audit", 1, why);
    if (!audit) {
        fprintf(stderr, "bench: svc-audit: %s\n", why);
        goto out;
    }
    /* A few events first, not counted: the services are up and reading. */
    step_t warm = {0};
    warm.rate = WARMUP_EVENTS;
    printf("schakel: node with services at %s; warming up with %d events...\n", b->node.endpoint,
           WARMUP_EVENTS);
    fflush(stdout);
    /* without the ingest phase, the warm-up's events give Redis its payload size */
    if (schakel_step(b, pubs, audit, &x, 0, &warm, 1, r->mean_size > 0 ? NULL : &r->mean_size) != 0) goto out;
    if (!warm.drained) {
        fprintf(stderr, "bench: %llu of %d warm-up events got no decision in %d s: the services do not run\n",
                (unsigned long long)warm.undecided, WARMUP_EVENTS, b->o.drain_s);
        bench_show_log_tail("node", b->node.log);
        goto out;
    }
    rc = 0;
    for (size_t k = 0; k < b->o.n_rates && !bench_interrupted; k++) {
        step_t *s = &r->steps[k];
        printf("schakel: %zu events/s for %d s...\n", s->rate, b->o.seconds);
        fflush(stdout);
        if (schakel_step(b, pubs, audit, &x, (unsigned)k + 1, s, b->o.seconds, NULL) != 0) {
            rc = -1;
            break;
        }
        if (!s->drained) {
            printf("schakel: %llu events without a decision %d s after the last: not sweeping higher\n",
                   (unsigned long long)s->undecided, b->o.drain_s);
            if (k == 0) {
                fprintf(stderr, "bench: the pipeline does not drain at the lowest rate\n");
                rc = -1;
            }
            break;
        }
    }
    printf("schakel: log head %llu; first consent decision per event: %llu deliver, %llu hold, %llu deny; "
           "%llu verwijsindex notices, "
           "%llu events routed to nobody\n",
           (unsigned long long)x.head, (unsigned long long)x.outcomes[1], (unsigned long long)x.outcomes[3],
           (unsigned long long)x.outcomes[4], (unsigned long long)x.notices, (unsigned long long)x.unrouted);
out:
    schakel_client_destroy(&audit);
    for (size_t i = 0; i < b->o.publishers; i++) schakel_client_destroy(&pubs[i].client);
    if (node_stop(&b->node) != 0) rc = -1;
    if (rc) bench_show_log_tail("node", b->node.log);
    free(x.rec_at), free(x.routed_at), free(x.decided_at);
    return rc;
}

/* ---- report ---- */

/* A latency in whole ms, or "never" for an event without a decision
 * within --drain. */
static const char *ms(double v, int width, char out[16])
{
    if (isinf(v)) snprintf(out, 16, "%*s", width, "never");
    else snprintf(out, 16, "%*.0f", width, v);
    return out;
}

static void print_table(const bench_t *b, const results_t *r)
{
    const opts_t *o = &b->o;
    printf("\nschakel: latency from an event's recorded_at to that of the first consent decision about it\n"
           "(broker clock, whole ms); redis: from the event's XADD id to its decision's (server clock).\n"
           "lag: events without a decision when the last event was recorded, in seconds of events;\n"
           "drain: from the last event to the last decision; decided/s: events decided per second from\n"
           "the first event to the last decision (the services' rate once they fall behind); never: no\n"
           "decision within --drain.\n\n");
    printf("%8s | %7s %7s %6s %6s %6s %6s %6s %3s | %7s %7s %5s %5s %5s %5s %3s | %6s\n", "offered",
           "acked/s", "decid/s", "p50", "p99", "max", "lag s", "drain", "ok", "acked/s", "decid/s", "p50",
           "p99", "max", "lag s", "ok", "p99 x");
    size_t best = 0, rbest = 0;
    double most = 0, rmost = 0;
    for (size_t k = 0; k < o->n_rates; k++) {
        const step_t *s = &r->steps[k];
        char a[16], c[16], d[16];
        printf("%8zu | ", s->rate);
        if (s->ran)
            printf("%7.0f %7.0f %s %s %s %6.2f %6.2f %3s | ", s->acked_s, s->decided_s, ms(s->p50, 6, a),
                   ms(s->p99, 6, c), ms(s->max_ms, 6, d), s->lag_s, s->drain_s, s->sustained ? "yes" : "no");
        else printf("%7s %7s %6s %6s %6s %6s %6s %3s | ", "-", "-", "-", "-", "-", "-", "-", "-");
        if (s->r_ran)
            printf("%7.0f %7.0f %s %s %s %5.2f %3s | ", s->r_acked_s, s->r_decided_s, ms(s->rp50, 5, a),
                   ms(s->rp99, 5, c), ms(s->rmax, 5, d), s->r_lag_s, s->r_sustained ? "yes" : "no");
        else printf("%7s %7s %5s %5s %5s %5s %3s | ", "-", "-", "-", "-", "-", "-", "-");
        if (s->ran && s->r_ran && s->rp99 > 0 && isfinite(s->p99) && isfinite(s->rp99))
            printf("%6.1f\n", s->p99 / s->rp99);
        else printf("%6s\n", "-");
        if (s->sustained) best = s->rate;
        if (s->r_sustained) rbest = s->rate;
        if (s->ran && s->decided_s > most) most = s->decided_s;
        if (s->r_ran && s->r_decided_s > rmost) rmost = s->r_decided_s;
    }
    printf("\n");
    for (size_t k = 0; k < o->n_rates; k++) {
        const step_t *s = &r->steps[k];
        if (!s->ran) continue;
        printf("%6zu/s: %zu signals, %zu referrals, %zu consents; routing_decision p50 %.0f p99 %.0f ms; "
               "without a decision at the end: routing %llu, consent %llu; sending fell behind by up to "
               "%.0f ms (redis %.0f ms)\n",
               s->rate, s->kinds[EV_SIGNAL], s->kinds[EV_REFERRAL], s->kinds[EV_CONSENT], s->r_p50, s->r_p99,
               (unsigned long long)s->backlog_routing, (unsigned long long)s->backlog_consent, s->behind_ms,
               s->r_behind_ms);
    }
    printf("\n");
    if (r->ingest_s > 0)
        printf("ingest (broker alone, %zu events, closed loop)   %8.0f events/s\n", r->ingest_events,
               r->ingest_s);
    printf("schakel sustained (highest offered rate 'ok')    %8zu events/s%s\n", best,
           best ? "" : "  (none: try lower --rates)");
    printf("schakel decided at most                          %8.0f events/s\n", most);
    if (!r->redis_skipped) {
        printf("redis sustained (highest offered rate 'ok')      %8zu events/s\n", rbest);
        printf("redis decided at most                            %8.0f events/s\n", rmost);
    } else printf("redis                                            skipped (%s)\n", r->redis_why);
    printf("\n");
    if (r->ingest_s > 0 && best) printf("sustained / ingest            %6.2f\n", (double)best / r->ingest_s);
    if (r->ingest_s > 0 && most > 0) printf("decided at most / ingest      %6.2f\n", most / r->ingest_s);
    if (!r->redis_skipped && best && rbest)
        printf("sustained schakel / redis     %6.2f%s\n", (double)best / (double)rbest,
               rbest == o->rates[o->n_rates - 1]
                   ? "  (redis kept up with the last rate offered: its limit is "
                     "higher, so this ratio is an upper bound)"
                   : "");
    printf("ok (sustained): every event decided within --drain, acked/s >= 95%% of offered, lag < 1 s.\n");
}

/* ---- options ---- */

static const char usage[] =
    "usage: e2e [options]\n"
    "\n"
    "Measures the whole bus end to end: a real `schakel node` with its routing,\n"
    "consent and feedback services, fed at fixed offered rates; the latency from\n"
    "an event's ACK to the consent decision about it, the services' lag, the\n"
    "highest rate sustained, the broker's own ingest rate and the same pipeline\n"
    "on Redis Streams (appendfsync always), in one run. See bench/README.md.\n"
    "\n"
    "  --rates R1,R2,...   offered events/s, in this order (default 1000,5000,10000)\n"
    "  --seconds S         how long each rate is offered (default 6)\n"
    "  --publishers N      publisher threads, one client each (default 4, max 64)\n"
    "  --batch N           most events per signed batch (default 100)\n"
    "  --window N          batches in flight per publisher (default 64)\n"
    "  --interval-ms N     a publisher sends what is due every N ms (default 5)\n"
    "  --subjects N        distinct children the events are about (default 100000;\n"
    "                      fewer: more verwijsindex matches, more work for consent)\n"
    "  --ingest-events N   events of the ingest phase (default 100000)\n"
    "  --no-ingest         skip the ingest phase\n"
    "  --drain S           wait up to S s after a rate for its last decision\n"
    "                      (default 60)\n"
    "  --no-redis          skip the Redis peer\n"
    "  --timeout S         give up on a phase after S seconds (default 120)\n"
    "  --schakel PATH      the schakel binary (default " SCHAKEL_BIN_DIR "/schakel)\n"
    "  --tmp DIR           where the temp dir goes (default $TMPDIR or /tmp)\n"
    "  --keep              keep the temp dir (logs, LMDB files) for a look\n";

static int parse_rates(const char *v, opts_t *o)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", v);
    o->n_rates = 0;
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (o->n_rates == MAX_RATES) {
            fprintf(stderr, "e2e: --rates takes at most %d rates\n", MAX_RATES);
            return -1;
        }
        if (bench_parse_size("e2e", "--rates", w, 1, 1000000, &o->rates[o->n_rates++]) != 0) return -1;
    }
    if (!o->n_rates) {
        fprintf(stderr, "e2e: --rates wants numbers separated by commas, e.g. 1000,5000,10000\n");
        return -1;
    }
    return 0;
}

/* 0: run; 1: --help shown; -1: bad usage. */
static int parse_args(int argc, char **argv, opts_t *o)
{
    static const size_t default_rates[] = {1000, 5000, 10000};
    memcpy(o->rates, default_rates, sizeof default_rates);
    o->n_rates = 3;
    o->seconds = 6;
    o->publishers = 4;
    o->batch = 100;
    o->window = 64;
    o->interval_ms = 5;
    o->subjects = 100000;
    o->ingest_events = 100000;
    o->drain_s = 60;
    o->timeout_s = 120;
    bench_opts_default(&o->c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t v = 0;
        int taken;
        int rc = 0;
        if (!strcmp(a, "--no-ingest")) o->no_ingest = 1; /* takes no value */
        else if ((taken = bench_opt("e2e", usage, argc, argv, &i, &o->c)) != 0) {
            if (taken < 0) return -1;
            if (taken == BENCH_OPT_HELP) return 1;
        } else if (!strcmp(a, "--rates")) rc = parse_rates(argv[++i], o);
        else {
            const char *val = argv[++i];
            if (!strcmp(a, "--publishers"))
                rc = bench_parse_size("e2e", a, val, 1, MAX_PUBLISHERS, &o->publishers);
            else if (!strcmp(a, "--batch"))
                rc = bench_parse_size("e2e", a, val, 1, SCHAKEL_MAX_BATCH_EVENTS, &o->batch);
            else if (!strcmp(a, "--window")) rc = bench_parse_size("e2e", a, val, 1, 4096, &o->window);
            else if (!strcmp(a, "--subjects"))
                rc = bench_parse_size("e2e", a, val, 1, 10000000, &o->subjects);
            else if (!strcmp(a, "--ingest-events"))
                rc = bench_parse_size("e2e", a, val, 1, 100000000, &o->ingest_events);
            else if (!strcmp(a, "--seconds") || !strcmp(a, "--drain") || !strcmp(a, "--timeout") ||
                     !strcmp(a, "--interval-ms")) {
                rc = bench_parse_size("e2e", a, val, 1, 3600, &v);
                if (!strcmp(a, "--seconds")) o->seconds = (int)v;
                else if (!strcmp(a, "--drain")) o->drain_s = (int)v;
                else if (!strcmp(a, "--timeout")) o->timeout_s = (int)v;
                else o->interval_ms = (int)v;
            } else {
                fprintf(stderr, "e2e: unknown option %s (see --help)\n", a);
                return -1;
            }
        }
        if (rc) return -1;
    }
    if (o->ingest_events < o->publishers) {
        fprintf(stderr, "e2e: --ingest-events must be at least --publishers\n");
        return -1;
    }
    for (size_t k = 0; k < o->n_rates; k++)
        if (o->rates[k] * (size_t)o->seconds < o->publishers) {
            fprintf(stderr, "e2e: rate %zu for %d s is fewer events than publishers\n", o->rates[k],
                    o->seconds);
            return -1;
        }
    if (o->timeout_s < o->seconds + 10) o->timeout_s = o->seconds + 10;
    return 0;
}

/* ---- main ---- */

static void node_names(bench_t *b, const int *ports)
{
    b->ingest.name = "ingest node";
    b->node.name = "node";
    snprintf(b->ingest.dir, sizeof b->ingest.dir, "%s/ingest", b->dir);
    snprintf(b->node.dir, sizeof b->node.dir, "%s/node", b->dir);
    snprintf(b->ingest.log, sizeof b->ingest.log, "%s/ingest.log", b->dir);
    snprintf(b->node.log, sizeof b->node.log, "%s/node.log", b->dir);
    snprintf(b->ingest.endpoint, sizeof b->ingest.endpoint, "tcp://127.0.0.1:%d", ports[0]);
    snprintf(b->ingest.pub_endpoint, sizeof b->ingest.pub_endpoint, "tcp://127.0.0.1:%d", ports[1]);
    snprintf(b->node.endpoint, sizeof b->node.endpoint, "tcp://127.0.0.1:%d", ports[2]);
    snprintf(b->node.pub_endpoint, sizeof b->node.pub_endpoint, "tcp://127.0.0.1:%d", ports[3]);
    b->redis_port = ports[4];
}

static void print_machine(const bench_t *b)
{
    char rates[256] = "";
    for (size_t k = 0, used = 0; k < b->o.n_rates; k++) {
        int n = snprintf(rates + used, sizeof rates - used, "%s%zu", k ? "," : "", b->o.rates[k]);
        if (n < 0 || (size_t)n >= sizeof rates - used) break;
        used += (size_t)n;
    }
    bench_print_machine();
    printf("params:  --rates %s --seconds %d --publishers %zu --batch %zu --window %zu --interval-ms %d "
           "--subjects %zu --ingest-events %zu --drain %d\n",
           rates, b->o.seconds, b->o.publishers, b->o.batch, b->o.window, b->o.interval_ms, b->o.subjects,
           b->o.ingest_events, b->o.drain_s);
    printf("tmp:     %s (every figure here is durable on this filesystem)\n", b->dir);
}

int main(int argc, char **argv)
{
    bench_t b;
    results_t r;
    publisher_t *pubs = NULL;
    int rc = 1, ports[5];
    memset(&b, 0, sizeof b);
    memset(&r, 0, sizeof r);

    int pa = parse_args(argc, argv, &b.o);
    if (pa) return pa > 0 ? 0 : 2;
    int begun = bench_begin("e2e", &b.o.c, "schakel-e2e", b.dir, sizeof b.dir);
    if (begun) return begun;
    for (size_t k = 0; k < b.o.n_rates; k++) r.steps[k].rate = b.o.rates[k];
    if (bench_free_ports(ports, 5) != 0) {
        fprintf(stderr, "e2e: no free loopback ports\n");
        goto out;
    }
    node_names(&b, ports);
    b.zmq = zmq_ctx_new();
    b.subjects = calloc(b.o.subjects, sizeof *b.subjects);
    pubs = calloc(b.o.publishers, sizeof *pubs);
    if (!b.zmq || !b.subjects || !pubs || schakel_random(b.run_id, sizeof b.run_id) != 0) goto out;
    print_machine(&b);
    bench_subjects(b.subjects, b.o.subjects);
    for (size_t i = 0; i < b.o.publishers; i++) {
        publisher_t *p = &pubs[i];
        p->b = &b;
        p->idx = i;
        p->org = bench_publisher_orgs[i % BENCH_N_ORGS];
        p->school = strncmp(p->org, "school-", 7) == 0;
        p->district = !strcmp(p->org, "school-34cd01") || !strcmp(p->org, "wijkteam-zuid") ? "zuid" : "noord";
    }

    int ingest_rc = 0, schakel_rc = 0, redis_rc = 0;
    if (!b.o.no_ingest) ingest_rc = run_ingest(&b, pubs, &r);
    if (!b.stuck && !bench_interrupted) schakel_rc = run_schakel(&b, pubs, &r);
    if (b.o.c.no_redis) {
        printf("redis:   SKIPPED (--no-redis)\n");
        snprintf(r.redis_why, sizeof r.redis_why, "--no-redis");
        r.redis_skipped = 1;
    } else if (!b.stuck && !bench_interrupted) {
        redis_rc = run_redis(&b, &r);
    }
    print_table(&b, &r);
    rc = ingest_rc || schakel_rc || redis_rc || b.stuck || bench_interrupted ? 1 : 0;
    if (rc) fprintf(stderr, "\ne2e: FAILED (see the messages above)\n");
out:
    if (b.ingest.pid > 0) bench_stop_child(&b.ingest.pid);
    if (b.node.pid > 0) bench_stop_child(&b.node.pid);
    if (b.redis > 0) bench_stop_child(&b.redis);
    /* With a thread stuck in the client, its sockets stay open: exiting
     * ends it; freeing under it or zmq_ctx_term() would not. */
    if (pubs && !b.stuck) publishers_free(pubs, b.o.publishers);
    free(b.subjects);
    if (b.zmq && !b.stuck) zmq_ctx_term(b.zmq);
    if (b.o.c.keep) printf("kept %s\n", b.dir);
    else if (b.dir[0]) bench_rmtree(b.dir);
    if (bench_interrupted) fprintf(stderr, "e2e: interrupted\n");
    return rc;
}
