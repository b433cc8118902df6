/* bench/audit: how fast `schakel audit verify` checks a log of a million
 * events with everything on (hash chain, every payload decrypted against
 * its signed hash, every batch signature against the directory on the
 * log, every signed checkpoint), next to the machine's own hashing limit
 * measured in the same run: `sha256sum` over the same data.mdb.
 *
 *  1. The log (made once, then reused from --data DIR): a node directory
 *     whose log is written here, in process, as the broker stores it
 *     (schakel_store_append: per-child encryption, hash chain, checkpoints
 *     signed with DIR/keys/broker.key). First the directory, put on the
 *     log by the broker and signed with its key; then signals of five
 *     organisations about --children synthetic children, in batches of
 *     --batch events, each batch signed by its organisation with the key
 *     the directory lists, as a publisher signs it.
 *  2. `sha256sum DIR/log/data.mdb` as a child: the machine's hashing
 *     limit over the same bytes.
 *  3. `schakel audit verify --data DIR` as a child, --runs times: wall
 *     time, CPU time, and its JSON, which must say "ok":true.
 *
 * See bench/README.md. Never run in CI. */
#include <errno.h>
#include <jansson.h>
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
#include "service.h"
#include "store_lmdb.h"
#include "validate.h"

#define START 1793610000000LL /* Monday 2 November 2026, 09:00 UTC */
#define N_ORGS 5
#define GROUP 4000 /* events per append (one commit) */

static const char *const orgs[N_ORGS] = {"school-1", "school-2", "smw-1", "wijkteam-noord", "wijkteam-zuid"};

typedef struct {
    schakel_store_t *log;
    schakel_keys_t broker, keys[N_ORGS];
    int64_t now;
    uint64_t counter;
} gen_t;

/* One signed batch of n encoded events (taken: freed here) from org with
 * keys k, appended on its own. */
static int append_batch(gen_t *g, const char *org, const schakel_keys_t *k, uint8_t **bufs, size_t *lens,
                        const uint8_t (*ids)[16], const char (*subjects)[65], int type, size_t n)
{
    uint8_t(*hashes)[32] = malloc(n * 32), digest[32], sig[64];
    schakel_append_item_t *items = calloc(n, sizeof *items);
    int rc = hashes && items ? 0 : SCHAKEL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        schakel_sha256(bufs[i], lens[i], hashes[i]);
        items[i].event = bufs[i];
        items[i].event_len = lens[i];
        items[i].event_id = ids[i];
        items[i].type = type;
        items[i].subject = subjects[i];
        items[i].proof_index = (uint32_t)i;
        memcpy(items[i].event_hash, hashes[i], 32);
    }
    if (rc == 0) {
        schakel_batch_digest((const uint8_t(*)[32])hashes, n, digest);
        rc = schakel_ed25519_sign(k->sign_secret, digest, 32, sig);
    }
    char why[SCHAKEL_ERRLEN] = "";
    schakel_append_batch_t b = {org, sig, (const uint8_t(*)[32])hashes, n, items, n};
    if (rc == 0) rc = schakel_store_append(g->log, &b, 1, g->now, why);
    if (rc) fprintf(stderr, "audit bench: append: %s\n", why[0] ? why : schakel_strerror(rc));
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(hashes);
    free(items);
    return rc;
}

/* The directory, put on the log by the broker (as `schakel node` does). */
static int directory_event(gen_t *g)
{
    json_t *o = json_array();
    for (int i = 0; i < N_ORGS; i++) {
        const char *kind = i < 2 ? "school" : i == 2 ? "smw" : "wijkteam";
        json_array_append_new(o, bench_org_json(orgs[i], kind, "signal", "", &g->keys[i]));
    }
    json_t *d = json_pack("{s:i, s:o, s:[{s:s, s:s, s:s, s:{s:s, s:s}}, {s:s, s:s, s:s, s:{s:s, s:s}}],"
                          " s:[{s:s, s:s}, {s:s, s:s}]}",
                          "version", 1, "organisations", o, "schools", "brinvest", "12AB00", "org",
                          "school-1", "district", "noord", "team", "smw", "smw-1", "wijkteam",
                          "wijkteam-noord", "brinvest", "34CD01", "org", "school-2", "district", "zuid",
                          "team", "smw", "smw-1", "wijkteam", "wijkteam-zuid", "districts", "code", "noord",
                          "wijkteam", "wijkteam-noord", "code", "zuid", "wijkteam", "wijkteam-zuid");
    char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (!text) return SCHAKEL_ENOMEM;
    char hexid[33], at[32], why[SCHAKEL_ERRLEN] = "";
    uint8_t id[16];
    schakel_derive_id(id, "bench/audit/directory", "1", 1, NULL);
    schakel_hex_encode(id, 16, hexid);
    schakel_time_format(g->now, at);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:i, s:s}}", "event_id", hexid, "occurred_at",
                          at, "source_org", "broker", "type", "directory_update", "purpose", "bus",
                          "legal_basis", "bus", "directory_update", "version", 1, "document_json", text);
    free(text);
    schakel_envelope_t *e = schakel_json_to_envelope(j, why);
    json_decref(j);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = e ? schakel_envelope_encode(e, &buf, &len) : SCHAKEL_EDECODE;
    schakel_envelope_free(e);
    if (rc) {
        fprintf(stderr, "audit bench: the directory does not encode: %s\n", why);
        return rc;
    }
    const char subject[1][65] = {""};
    return append_batch(g, "broker", &g->broker, &buf, &len, (const uint8_t(*)[16])id, subject,
                        SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE, 1);
}

/* A signal of org (its event id and child filled in per event). */
static schakel_envelope_t *signal_template(const char *org, char *why)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:{s:[s], s:s, s:s, s:s}}",
                          "event_id", "00000000000000000000000000000000", "occurred_at",
                          "2026-11-02T09:00:00Z", "source_org", org, "type", "signal", "subject",
                          "0000000000000000000000000000000000000000000000000000000000000000", "purpose",
                          "support", "categories", "behaviour", "district", "noord", "legal_basis",
                          "own_organisation", "signal", "concerns", "behaviour", "urgency", "routine",
                          "observed_on", "2026-11-16", "raised_by", "teacher");
    schakel_envelope_t *e = schakel_json_to_envelope(j, why);
    json_decref(j);
    return e;
}

static int generate(const char *dir, uint64_t events, size_t batch, unsigned children)
{
    gen_t g = {.now = START};
    char path[1024], why[SCHAKEL_ERRLEN] = "";
    int rc = 0;
    schakel_lmdb_options_t o = {0};
    snprintf(path, sizeof path, "%s/keys", dir);
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || (mkdir(path, 0700) != 0 && errno != EEXIST))
        rc = SCHAKEL_EIO;
    if (rc == 0) rc = schakel_keys_generate(&g.broker, "broker");
    if (rc == 0) rc = schakel_keys_save(&g.broker, path);
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (rc == 0) rc = schakel_secret_file(path, o.master_key, 32, 1, NULL, why);
    snprintf(path, sizeof path, "%s/log", dir);
    o.dir = path;
    o.sign_secret = g.broker.sign_secret;
    if (rc == 0 && !(g.log = schakel_store_open_lmdb(&o, why))) rc = SCHAKEL_EIO;
    memset(o.master_key, 0, 32);
    if (rc == 0) rc = directory_event(&g);
    schakel_envelope_t *tpl[N_ORGS] = {0};
    for (int i = 0; rc == 0 && i < N_ORGS; i++)
        if (!(tpl[i] = signal_template(orgs[i], why))) rc = SCHAKEL_EDECODE;
    uint8_t **bufs = calloc(batch, sizeof *bufs), (*ids)[16] = calloc(batch, 16);
    size_t *lens = calloc(batch, sizeof *lens);
    char(*subjects)[65] = calloc(batch, 65);
    if (rc == 0 && (!bufs || !ids || !lens || !subjects)) rc = SCHAKEL_ENOMEM;
    /* the first event of each organisation is checked as the broker would */
    int checked[N_ORGS] = {0};
    double t0 = schakel_mono_secs();
    uint64_t made = 0, rng = 0x9e3779b97f4a7c15ULL;
    for (uint64_t b = 0; rc == 0 && made < events; b++) {
        int oi = (int)(b % N_ORGS);
        schakel_envelope_t *e = tpl[oi];
        size_t n = events - made < batch ? (size_t)(events - made) : batch;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            uint64_t c = ++g.counter;
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            char label[48];
            uint8_t h[32];
            snprintf(label, sizeof label, "bench-audit-child-%u", (unsigned)(rng % children));
            schakel_sha256(label, strlen(label), h);
            schakel_hex_encode(h, 32, subjects[i]);
            schakel_derive_id(ids[i], "bench/audit", &c, sizeof c, NULL);
            e->event_id.data = ids[i];
            e->subject = subjects[i];
            e->occurred_at = g.now;
            rc = schakel_envelope_encode(e, &bufs[i], &lens[i]);
            if (rc == 0 && !checked[oi]) {
                rc = schakel_envelope_validate_bytes(e, bufs[i], lens[i], why);
                if (rc) fprintf(stderr, "audit bench: a generated event is invalid: %s\n", why);
                checked[oi] = 1;
            }
            e->event_id.data = NULL;
            e->subject = NULL;
        }
        if (rc == 0)
            rc = append_batch(&g, orgs[oi], &g.keys[oi], bufs, lens, (const uint8_t(*)[16])ids,
                              (const char(*)[65])subjects, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL, n);
        made += n;
        g.now += 5;
        if (rc == 0 && made / 100000 != (made - n) / 100000)
            fprintf(stderr, "  %llu events (%.0f s)\n", (unsigned long long)made, schakel_mono_secs() - t0);
    }
    if (rc && why[0]) fprintf(stderr, "audit bench: %s\n", why);
    for (int i = 0; i < N_ORGS; i++) {
        schakel_envelope_free(tpl[i]);
        schakel_keys_wipe(&g.keys[i]);
    }
    schakel_keys_wipe(&g.broker);
    free(bufs), free(ids), free(lens), free(subjects);
    schakel_store_close(&g.log);
    if (rc == 0)
        fprintf(stderr, "made %llu events in batches of %zu in %.1f s\n", (unsigned long long)made, batch,
                schakel_mono_secs() - t0);
    return rc;
}

static double child_cpu(void)
{
    struct rusage u;
    getrusage(RUSAGE_CHILDREN, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec / 1e6;
}

/* Runs argv with stdout into out_path; wall and CPU seconds. The exit
 * status, or -1. */
static int run_timed(char *const argv[], const char *out_path, double *secs, double *cpu)
{
    fflush(stdout); /* else the child's copy of the buffer is written too */
    double t0 = schakel_mono_secs(), c0 = child_cpu();
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout)) _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    *secs = schakel_mono_secs() - t0;
    *cpu = child_cpu() - c0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char usage[] =
    "usage: audit [--data DIR] [--events N] [--batch N] [--children N] [--schakel PATH] [--runs N]\n"
    "  --data DIR      node directory with the log; made when DIR/log is missing\n"
    "                  (default $TMPDIR/schakel-bench-audit, kept for the next run)\n"
    "  --events N      events to make (default 1000000)\n"
    "  --batch N       events per signed batch (default 100)\n"
    "  --children N    synthetic children (default 20000)\n"
    "  --schakel PATH  the schakel binary to time (default " SCHAKEL_BIN_DIR "/schakel)\n"
    "  --runs N        verifies to time (default 3)\n";

int main(int argc, char **argv)
{
    char dflt[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dflt, sizeof dflt, "%s/schakel-bench-audit", tmp ? tmp : "/tmp");
    const char *dir = dflt, *bin = SCHAKEL_BIN_DIR "/schakel";
    size_t events = 1000000, batch = 100, children = 20000, runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        const char *f = argv[i];
        if (!strcmp(f, "--data") && v) dir = argv[++i];
        else if (!strcmp(f, "--schakel") && v) bin = argv[++i];
        else if (!strcmp(f, "--events") && v)
            bad = bench_parse_size("audit", f, argv[++i], 1, 1u << 30, &events);
        else if (!strcmp(f, "--batch") && v) bad = bench_parse_size("audit", f, argv[++i], 1, 4096, &batch);
        else if (!strcmp(f, "--children") && v)
            bad = bench_parse_size("audit", f, argv[++i], 1, 1u << 24, &children);
        else if (!strcmp(f, "--runs") && v) bad = bench_parse_size("audit", f, argv[++i], 1, 100, &runs);
        else {
            fputs(usage, strcmp(f, "--help") ? stderr : stdout);
            return strcmp(f, "--help") ? 2 : 0;
        }
        if (bad) return 2;
    }
    char path[1024], out[1100];
    snprintf(path, sizeof path, "%s/log", dir);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "making a log of %zu events in %s (once; reused with --data)\n", events, dir);
        if (generate(dir, events, batch, (unsigned)children) != 0) return 1;
    }
    bench_print_machine();
    uint64_t n_raw, bytes;
    double t_raw = bench_raw_walk(path, &n_raw, &bytes);
    if (t_raw < 0) {
        fprintf(stderr, "audit bench: cannot read %s\n", path);
        return 1;
    }
    char mdb[1100];
    snprintf(mdb, sizeof mdb, "%s/data.mdb", path);
    struct stat sb;
    double mdb_mb = stat(mdb, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    printf("log: %s, %llu records, %.0f MB of records, data.mdb %.0f MB\n", dir, (unsigned long long)n_raw,
           (double)bytes / 1e6, mdb_mb);
    printf("%-50s %12s %10s %10s\n", "", "records/s", "wall s", "CPU s");
    printf("%-50s %12.0f %10.3f\n", "raw LMDB cursor walk (events table)", (double)n_raw / t_raw, t_raw);
    double t_sha = 0, c_sha = 0;
    snprintf(out, sizeof out, "%s/bench-sha256sum.out", dir);
    char *sha_argv[] = {"sha256sum", mdb, NULL};
    if (run_timed(sha_argv, out, &t_sha, &c_sha) != 0) {
        fprintf(stderr, "audit bench: sha256sum %s failed\n", mdb);
        return 1;
    }
    printf("%-50s %12.0f %10.3f %10.2f  (%.0f MB/s)\n", "sha256sum data.mdb (records of it per s)",
           (double)n_raw / t_sha, t_sha, c_sha, mdb_mb / t_sha);
    int failed = 0;
    snprintf(out, sizeof out, "%s/bench-verify.out", dir);
    for (size_t r = 0; r < runs; r++) {
        double secs = 0, cpu = 0;
        char *argv_v[] = {(char *)bin, "audit", "verify", "--data", (char *)dir, NULL};
        int st = run_timed(argv_v, out, &secs, &cpu);
        FILE *f = fopen(out, "r");
        char line[4096] = "";
        if (!f || !fgets(line, sizeof line, f)) line[0] = 0;
        if (f) fclose(f);
        int ok = st == 0 && strstr(line, "\"ok\":true") && strstr(line, "\"payloads\":true") &&
                 strstr(line, "\"batch_signatures\":true") && strstr(line, "\"checkpoint_signatures\":true");
        double rate = (double)n_raw / secs;
        printf("%-50s %12.0f %10.3f %10.2f  %s\n", "audit verify (everything checked)", rate, secs, cpu,
               ok ? "ok" : "NOT OK");
        printf("    %s", line);
        printf("  verify / sha256sum %.3f (sha256sum's %.0f MB/s would be %.0f records/s);"
               " verify CPU %.0f%% of one core, %.2f us CPU per record\n",
               rate / ((double)n_raw / t_sha), mdb_mb / t_sha, (double)n_raw / t_sha, 100 * cpu / secs,
               1e6 * cpu / (double)n_raw);
        failed |= !ok;
    }
    return failed;
}
