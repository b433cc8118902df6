/* bench/replay: how fast `schakel audit replay` re-runs the services over
 * a log of a million records, next to the machine's limit in the same run.
 *
 *  1. The log (made once, then reused from --data DIR): a node directory
 *     whose log is written here, in process, as the broker would store it
 *     (encrypted per child, hash chain, checkpoints), with a realistic mix:
 *     the directory first, then signals, referrals, parents' consents,
 *     referral_received notices and the broker's clock ticks about
 *     --children synthetic children, each checked by the broker's own
 *     validation. The three services (the engines of `schakel node`, in
 *     process) read it as they would live, and what they derive (routing
 *     and consent decisions, feedback notices and reminders) is appended
 *     as their own events after the group that caused it, so that a replay
 *     finds every derived event on the log.
 *  2. The machine's limit: a raw LMDB cursor walk over the log's events
 *     table (no decoding, no decryption), and the store's own read of the
 *     whole log (decrypting every payload), one thread each.
 *  3. `build/schakel audit replay --data DIR` as a child process: its wall
 *     time, and its JSON lines, which must all say "ok":true.
 *
 * See bench/README.md. Never run in CI. */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bytes.h"
#include "clock.h"
#include "codec.h"
#include "common.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "json.h"
#include "keys.h"
#include "runner.h"
#include "service.h"
#include "service_impl.h"
#include "store_lmdb.h"
#include "validate.h"

#define CHUNK 2000            /* client events per append (one fsync) */
#define START 1793610000000LL /* Monday 2 November 2026, 09:00 UTC */
#define N_SVC 3

typedef struct {
    const char *name;
    char org[32];
    const schakel_engine_ops_t *ops;
    void *engine;
    state_t s;
    schakel_logsrc_t *src;
    schakel_emit_t out;
    MDB_txn *txn; /* one per read of the log */
} gen_svc_t;

/* Pending appends: one signed batch per event (the store keeps the
 * signer's id per batch). */
typedef struct {
    schakel_append_item_t *items;
    schakel_append_batch_t *batches;
    uint8_t **bufs;
    uint8_t (*ids)[16], (*hashes)[32];
    char (*subjects)[65];
    char (*orgs)[32];
    size_t n, cap;
} pending_t;

typedef struct {
    const char *dir;
    schakel_store_t *log;
    gen_svc_t svc[N_SVC];
    pending_t p;
    uint64_t counter; /* event ids */
    int64_t now;      /* recorded_at of the next append */
    uint64_t rng;
    uint64_t client_events, derived;
} gen_t;

static uint64_t rnd(gen_t *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

static int pending_grow(pending_t *p)
{
    if (p->n < p->cap) return 0;
    size_t cap = p->cap ? p->cap * 2 : 4096;
#define GROW(f) ((p->f = realloc(p->f, cap * sizeof *p->f)) != NULL)
    if (!GROW(items) || !GROW(batches) || !GROW(bufs) || !GROW(ids) || !GROW(hashes) || !GROW(subjects) ||
        !GROW(orgs))
        return SCHAKEL_ENOMEM;
#undef GROW
    p->cap = cap;
    return 0;
}

/* Queues the encoded event (taken) for the next append. */
static int queue_bytes(gen_t *g, uint8_t *buf, size_t len, const schakel_envelope_t *e)
{
    pending_t *p = &g->p;
    if (pending_grow(p)) return SCHAKEL_ENOMEM;
    size_t i = p->n++;
    p->bufs[i] = buf;
    memcpy(p->ids[i], e->event_id.data, 16);
    snprintf(p->subjects[i], sizeof p->subjects[i], "%s", e->subject ? e->subject : "");
    snprintf(p->orgs[i], sizeof p->orgs[i], "%s", e->source_org);
    schakel_sha256(buf, len, p->hashes[i]);
    schakel_append_item_t *it = &p->items[i];
    memset(it, 0, sizeof *it);
    it->event = buf;
    it->event_len = len;
    it->type = (int)e->type;
    memcpy(it->event_hash, p->hashes[i], 32);
    return 0;
}

static int append_pending(gen_t *g)
{
    pending_t *p = &g->p;
    if (!p->n) return 0;
    static const uint8_t sig[64] = {1}; /* the broker checked it; the store keeps it */
    for (size_t i = 0; i < p->n; i++) {
        p->items[i].event_id = p->ids[i];
        p->items[i].subject = p->subjects[i];
        p->batches[i] = (schakel_append_batch_t){p->orgs[i],   sig, (const uint8_t(*)[32]) & p->hashes[i], 1,
                                                 &p->items[i], 1};
    }
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_store_append(g->log, p->batches, p->n, g->now, why);
    if (rc) fprintf(stderr, "replay bench: append: %s\n", why[0] ? why : schakel_strerror(rc));
    for (size_t i = 0; i < p->n; i++) free(p->bufs[i]);
    p->n = 0;
    g->now += 50; /* 20 groups a second */
    return rc;
}

/* A client event from JSON: id and time added, validated as the broker
 * does, queued. */
static int client_event(gen_t *g, const char *org, json_t *j)
{
    uint8_t id[16];
    uint64_t c = ++g->counter;
    schakel_derive_id(id, "bench/replay", &c, sizeof c, NULL);
    char hexid[33], at[32];
    schakel_hex_encode(id, 16, hexid);
    schakel_time_format(g->now, at);
    json_object_set_new(j, "event_id", json_string(hexid));
    json_object_set_new(j, "occurred_at", json_string(at));
    json_object_set_new(j, "source_org", json_string(org));
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *e = schakel_json_to_envelope(j, why);
    json_decref(j);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = e ? schakel_envelope_encode(e, &buf, &len) : SCHAKEL_EDECODE;
    if (rc == 0) rc = schakel_envelope_validate_bytes(e, buf, len, why);
    if (rc == 0) rc = queue_bytes(g, buf, len, e);
    else free(buf);
    if (rc) fprintf(stderr, "replay bench: a generated event is invalid: %s\n", why);
    schakel_envelope_free(e);
    g->client_events++;
    return rc;
}

/* ---- the region ---- */

/* Two schools in districts noord and zuid, their wijkteams, school social
 * work, Veilig Thuis, leerplicht, the three services and the admin. */
static json_t *region(void)
{
    json_t *o = json_array();
    json_array_append_new(o, bench_org_json("school-1", "school", "signal referral consent_given", "", NULL));
    json_array_append_new(o, bench_org_json("school-2", "school", "signal referral consent_given", "", NULL));
    json_array_append_new(o, bench_org_json("smw-1", "smw", "signal", "", NULL));
    json_array_append_new(
        o, bench_org_json("wijkteam-noord", "wijkteam", "referral_received first_contact signal", "", NULL));
    json_array_append_new(
        o, bench_org_json("wijkteam-zuid", "wijkteam", "referral_received first_contact signal", "", NULL));
    json_array_append_new(o,
                          bench_org_json("veiligthuis-1", "veiligthuis", "veiligthuis_feedback", "", NULL));
    json_array_append_new(o, bench_org_json("leerplicht-1", "leerplicht", "absence", "", NULL));
    json_array_append_new(o, bench_org_json("svc-routing", "service", "routing_decision", "read_all", NULL));
    json_array_append_new(
        o, bench_org_json("svc-consent", "service", "consent_decision", "read_all decide", NULL));
    json_array_append_new(
        o, bench_org_json("svc-feedback", "service", "loop_reminder feedback_status", "read_all", NULL));
    json_array_append_new(o, bench_org_json("admin-1", "admin", "directory_update", "directory", NULL));
    return json_pack("{s:i, s:o, s:[{s:s, s:s, s:s, s:{s:s, s:s}}, {s:s, s:s, s:s, s:{s:s, s:s}}],"
                     " s:[{s:s, s:s}, {s:s, s:s}], s:{s:s, s:s}}",
                     "version", 1, "organisations", o, "schools", "brinvest", "12AB00", "org", "school-1",
                     "district", "noord", "team", "smw", "smw-1", "wijkteam", "wijkteam-noord", "brinvest",
                     "34CD01", "org", "school-2", "district", "zuid", "team", "smw", "smw-1", "wijkteam",
                     "wijkteam-zuid", "districts", "code", "noord", "wijkteam", "wijkteam-noord", "code",
                     "zuid", "wijkteam", "wijkteam-zuid", "region", "veiligthuis", "veiligthuis-1",
                     "leerplicht", "leerplicht-1");
}

static int directory_event(gen_t *g)
{
    json_t *d = region();
    if (!d) return SCHAKEL_ECRYPTO;
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    json_t *e = json_pack("{s:s, s:s, s:s, s:{s:i, s:s}}", "type", "directory_update", "purpose", "bus",
                          "legal_basis", "bus", "directory_update", "version", 1, "document_json", text);
    free(text);
    return client_event(g, "admin-1", e);
}

/* The broker's tick: id and bytes as the broker makes them. */
static int tick(gen_t *g)
{
    schakel_envelope_t env = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__ClockTick t = SCHAKEL__V1__CLOCK_TICK__INIT;
    uint8_t id[16], at[8];
    schakel_put_be64(at, (uint64_t)g->now);
    schakel_derive_id(id, "bench/replay/tick", at, sizeof at, NULL);
    env.event_id.data = id;
    env.event_id.len = 16;
    env.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK;
    env.source_org = "broker";
    env.occurred_at = g->now;
    env.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    env.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    env.body_case = SCHAKEL__V1__ENVELOPE__BODY_CLOCK_TICK;
    t.at_ms = g->now;
    env.clock_tick = &t;
    uint8_t *buf;
    size_t len;
    int rc = schakel_envelope_encode(&env, &buf, &len);
    return rc ? rc : queue_bytes(g, buf, len, &env);
}

/* One client event about a random child: mostly signals, then referrals
 * (which open feedback loops), parents' consents (which release held
 * referrals) and the wijkteam's referral_received. */
static int some_event(gen_t *g, unsigned children)
{
    uint64_t r = rnd(g);
    unsigned child = (unsigned)(r % children), kind = (unsigned)(r >> 32) % 100;
    char label[48], p[65], rid[33];
    uint8_t h[32];
    snprintf(label, sizeof label, "bench-replay-child-%u", child);
    schakel_sha256(label, strlen(label), h);
    schakel_hex_encode(h, 32, p);
    schakel_hex_encode(h + 16, 16, rid); /* one referral per child */
    const char *school = child % 2 ? "school-2" : "school-1", *district = child % 2 ? "zuid" : "noord";
    if (kind < 70) {
        const char *from = kind < 50 ? school : "smw-1";
        return client_event(g, from,
                            json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:{s:[s], s:s, s:s, s:s}}",
                                      "type", "signal", "subject", p, "purpose", "support", "legal_basis",
                                      "own_organisation", "categories", "behaviour", "district", district,
                                      "age_band", "under_12", "signal", "concerns", "behaviour", "urgency",
                                      kind % 3 ? "routine" : "soon", "observed_on", "2026-11-16", "raised_by",
                                      "teacher"));
    }
    if (kind < 82)
        return client_event(g, school,
                            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:{s:s, s:s, s:[s], s:s, s:s}}",
                                      "type", "referral", "subject", p, "district", district, "age_band",
                                      "under_12", "purpose", "support", "legal_basis", "consent",
                                      "categories", "home_situation", "referral", "referral_id", rid,
                                      "to_kind", "wijkteam", "reasons", "home_situation", "urgency", "soon",
                                      "request_code", "intake"));
    if (kind < 92) {
        char cid[33];
        schakel_hex_encode(h + 8, 16, cid);
        return client_event(g, school,
                            json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:[s, s], s:[s, s], s:s}}",
                                      "type", "consent_given", "subject", p, "purpose", "consent_admin",
                                      "legal_basis", "consent", "consent_given", "consent_id", cid,
                                      "given_by", "parents", "age_band", "under_12", "recipient_kind",
                                      "wijkteam", "purposes", "support", "feedback", "categories",
                                      "home_situation", "behaviour", "valid_from", "2020-01-01"));
    }
    return client_event(g, child % 2 ? "wijkteam-zuid" : "wijkteam-noord",
                        json_pack("{s:s, s:s, s:s, s:s, s:[s], s:{s:s, s:s}}", "type", "referral_received",
                                  "subject", p, "purpose", "feedback", "legal_basis", "consent", "categories",
                                  "care_status", "referral_received", "referral_id", rid, "received_on",
                                  "2026-11-20"));
}

/* ---- the services, as live ---- */

static int svc_record(void *arg, const schakel_record_t *rec)
{
    gen_svc_t *v = arg;
    schakel_envelope_t *env = rec->event ? schakel_envelope_decode(rec->event, rec->event_len, NULL) : NULL;
    schakel_logrec_t lr;
    char why[SCHAKEL_ERRLEN] = "";
    service_make_rec(&v->s, &lr, rec->seq, rec->recorded_at, env, rec->source_org, v->src);
    int rc = v->ops->process(v->engine, v->txn, &lr, &v->out, why);
    schakel_envelope_free(env);
    if (rc) {
        fprintf(stderr, "replay bench: %s at seq %llu: %s\n", v->name, (unsigned long long)rec->seq, why);
        return rc;
    }
    v->s.cursor = rec->seq;
    return 0;
}

/* Each service reads what it has not seen; what it derives is appended,
 * until none of them has anything new. */
static int run_services(gen_t *g)
{
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < N_SVC; i++) {
            gen_svc_t *v = &g->svc[i];
            for (;;) {
                uint64_t from = v->s.cursor + 1, next;
                if (mdb_txn_begin(v->s.env, NULL, 0, &v->txn) != 0) return SCHAKEL_ESTORE;
                v->s.txn++;
                int rc = schakel_store_read(g->log, "all", from, 4096, 16u << 20, svc_record, v, &next);
                if (rc) {
                    mdb_txn_abort(v->txn);
                    return rc;
                }
                if (mdb_txn_commit(v->txn) != 0) return SCHAKEL_ESTORE;
                if (v->s.cursor + 1 == from) break;
            }
            for (size_t k = 0; k < v->out.n; k++) {
                schakel_envelope_t *e = schakel_envelope_decode(v->out.bufs[k], v->out.lens[k], NULL);
                if (!e) return SCHAKEL_EDECODE;
                int rc = queue_bytes(g, v->out.bufs[k], v->out.lens[k], e);
                schakel_envelope_free(e);
                if (rc) return rc;
                v->out.bufs[k] = NULL; /* taken */
                g->derived++;
            }
            service_emit_clear(&v->out);
        }
        if (g->p.n) {
            again = 1;
            int rc = append_pending(g);
            if (rc) return rc;
        }
    }
    return 0;
}

static int generate(const char *dir, uint64_t records, unsigned children)
{
    gen_t *g = calloc(1, sizeof *g);
    char path[1024], why[SCHAKEL_ERRLEN] = "";
    int rc = 0;
    if (!g) return SCHAKEL_ENOMEM;
    g->dir = dir;
    g->now = START;
    g->rng = 0x9e3779b97f4a7c15ULL;
    schakel_lmdb_options_t o = {0};
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) rc = SCHAKEL_EIO;
    if (rc == 0) rc = schakel_secret_file(path, o.master_key, 32, 1, NULL, why);
    if (rc == 0 && schakel_svc_write_defaults(dir) != 0) rc = SCHAKEL_EIO;
    snprintf(path, sizeof path, "%s/log", dir);
    o.dir = path;
    if (rc == 0 && !(g->log = schakel_store_open_lmdb(&o, why))) rc = SCHAKEL_EIO;
    memset(o.master_key, 0, 32);
    for (int i = 0; rc == 0 && i < N_SVC; i++) {
        gen_svc_t *v = &g->svc[i];
        v->name = schakel_service_names[i];
        snprintf(v->org, sizeof v->org, "svc-%s", v->name);
        char policy[1024], state[1024];
        snprintf(policy, sizeof policy, "%s/%s.json", dir, v->name);
        snprintf(state, sizeof state, "%s/bench-state-%s", dir, v->name);
        rc = schakel_svc_engine(v->name, v->org, policy, &v->ops, &v->engine, why);
        if (rc == 0) rc = service_state_open(&v->s, state, v->ops, v->engine, why);
        if (rc == 0) rc = mdb_env_set_flags(v->s.env, MDB_NOSYNC, 1) ? SCHAKEL_ESTORE : 0;
        if (rc == 0 && !(v->src = calloc(1, sizeof *v->src))) rc = SCHAKEL_ENOMEM;
        if (rc == 0) v->src->store = g->log;
    }
    if (rc) fprintf(stderr, "replay bench: %s\n", why[0] ? why : schakel_strerror(rc));
    if (rc == 0) rc = directory_event(g);
    if (rc == 0) rc = tick(g);
    double t0 = schakel_mono_secs();
    schakel_head_t head = {0};
    while (rc == 0 && head.seq < records) {
        for (int i = 0; rc == 0 && i < CHUNK; i++) {
            rc = some_event(g, children);
            if (rc == 0 && g->counter % 500 == 0) { /* the broker's clock: an hour per tick */
                g->now += 3600000;
                rc = tick(g);
            }
        }
        if (rc == 0) rc = append_pending(g);
        if (rc == 0) rc = run_services(g);
        if (rc == 0) schakel_store_head(g->log, &head);
        if (rc == 0 && head.seq / 100000 != (head.seq - CHUNK) / 100000)
            fprintf(stderr, "  %llu records (%.0f s)\n", (unsigned long long)head.seq,
                    schakel_mono_secs() - t0);
    }
    fprintf(stderr, "made %llu records: %llu client events, %llu derived by the services, in %.1f s\n",
            (unsigned long long)head.seq, (unsigned long long)g->client_events,
            (unsigned long long)g->derived, schakel_mono_secs() - t0);
    for (int i = 0; i < N_SVC; i++) {
        gen_svc_t *v = &g->svc[i];
        service_emit_free(&v->out);
        service_state_close(&v->s);
        free(v->src);
        if (v->engine) schakel_svc_engine_free(v->ops, &v->engine);
        snprintf(path, sizeof path, "%s/bench-state-%s", dir, v->name);
        nftw(path, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    }
    schakel_store_close(&g->log);
    pending_t *p = &g->p;
    free(p->items), free(p->batches), free(p->bufs), free(p->ids), free(p->hashes), free(p->subjects);
    free(p->orgs);
    free(g);
    return rc;
}

/* ---- the limits ---- */

static int count_record(void *arg, const schakel_record_t *rec)
{
    (*(uint64_t *)arg) += rec->event ? 1 : 0;
    return 0;
}

/* The whole log through the store, decrypting every payload. */
static double store_walk(const char *dir, uint64_t *n)
{
    char path[1024], why[SCHAKEL_ERRLEN];
    schakel_lmdb_options_t o = {0};
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (schakel_secret_file(path, o.master_key, 32, 0, NULL, why)) return -1;
    snprintf(path, sizeof path, "%s/log", dir);
    o.dir = path;
    o.read_only = 1;
    double t0 = schakel_mono_secs();
    schakel_store_t *s = schakel_store_open_lmdb(&o, why);
    memset(o.master_key, 0, 32);
    if (!s) return -1;
    uint64_t from = 1, next;
    *n = 0;
    while (schakel_store_read(s, "all", from, 4096, 64u << 20, count_record, n, &next) == 0 && next != from)
        from = next;
    schakel_store_close(&s);
    return schakel_mono_secs() - t0;
}

/* ---- the replay ---- */

static double child_cpu(void)
{
    struct rusage u;
    getrusage(RUSAGE_CHILDREN, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec / 1e6;
}

static int run_replay(const char *schakel, const char *dir, double *secs, double *cpu, uint64_t *records,
                      int *all_ok)
{
    char out[1100];
    snprintf(out, sizeof out, "%s/bench-replay.out", dir);
    double t0 = schakel_mono_secs(), c0 = child_cpu();
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(out, "w", stdout)) _exit(127);
        execl(schakel, schakel, "audit", "replay", "--data", dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    *secs = schakel_mono_secs() - t0;
    *cpu = child_cpu() - c0;
    FILE *f = fopen(out, "r");
    char line[1024];
    *records = 0;
    *all_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int lines = 0;
    while (f && fgets(line, sizeof line, f)) {
        printf("    %s", line);
        const char *r = strstr(line, "\"records\":");
        if (r) *records += strtoull(r + 10, NULL, 10);
        if (!strstr(line, "\"ok\":true")) *all_ok = 0;
        lines++;
    }
    if (f) fclose(f);
    if (lines != N_SVC) *all_ok = 0;
    return 0;
}

static const char usage[] =
    "usage: replay [--data DIR] [--records N] [--children N] [--schakel PATH] [--runs N]\n"
    "  --data DIR      node directory with the log; made when DIR/log is missing\n"
    "                  (default $TMPDIR/schakel-bench-replay, kept for the next run)\n"
    "  --records N     records to make (default 1000000)\n"
    "  --children N    synthetic children (default 20000)\n"
    "  --schakel PATH  the schakel binary to time (default " SCHAKEL_BIN_DIR "/schakel)\n"
    "  --runs N        replays to time (default 3)\n";

int main(int argc, char **argv)
{
    char dflt[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dflt, sizeof dflt, "%s/schakel-bench-replay", tmp ? tmp : "/tmp");
    const char *dir = dflt, *bin = SCHAKEL_BIN_DIR "/schakel";
    uint64_t records = 1000000;
    unsigned children = 20000, runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--data") && v) dir = argv[++i];
        else if (!strcmp(argv[i], "--records") && v) records = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--children") && v) children = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--schakel") && v) bin = argv[++i];
        else if (!strcmp(argv[i], "--runs") && v) runs = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!records || !children || !runs) {
        fputs(usage, stderr);
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/log", dir);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "making a log of %llu records in %s (once; reused with --data)\n",
                (unsigned long long)records, dir);
        if (generate(dir, records, children) != 0) return 1;
    }
    uint64_t n_raw, bytes, n_store;
    double t_raw = bench_raw_walk(path, &n_raw, &bytes);
    double t_store = store_walk(dir, &n_store);
    if (t_raw < 0 || t_store < 0) {
        fprintf(stderr, "replay bench: cannot read %s\n", path);
        return 1;
    }
    printf("log: %s, %llu records, %.0f MB\n", dir, (unsigned long long)n_raw, (double)bytes / 1e6);
    printf("%-52s %12s %10s\n", "", "records/s", "seconds");
    printf("%-52s %12.0f %10.3f\n", "raw LMDB cursor walk (events table)", (double)n_raw / t_raw, t_raw);
    printf("%-52s %12.0f %10.3f\n", "store read, every payload decrypted", (double)n_raw / t_store, t_store);
    int failed = 0;
    for (unsigned r = 0; r < runs; r++) {
        double secs, cpu;
        uint64_t per_svc;
        int ok;
        if (run_replay(bin, dir, &secs, &cpu, &per_svc, &ok) != 0) return 1;
        double rate = (double)n_raw / secs;
        printf("%-52s %12.0f %10.3f  %s\n", "audit replay (3 services, log records/s)", rate, secs,
               ok ? "all ok" : "NOT OK");
        printf("  replay / raw walk %.3f, replay / store read %.3f; replay CPU %.1f s (%.0f%% of one core),"
               " %.0f records per CPU second\n",
               rate / ((double)n_raw / t_raw), rate / ((double)n_raw / t_store), cpu, 100 * cpu / secs,
               (double)n_raw / cpu);
        failed |= !ok;
        (void)per_svc;
    }
    return failed;
}
