/* schakel demo --soak: after the run, with every process stopped, the
 * checks that say the bus kept everything: the hash chain and checkpoints
 * (audit verify), the services' decisions re-derived byte for byte (audit
 * replay), every adapter's outbox drained with no dead letter, no row
 * rejected but the scenario's own mistyped BSNs, each of them rejected,
 * every loop closed, within its deadline or reminded, and the node's peak
 * memory under a bound. Each figure
 * is printed; any failure makes the exit status 1. */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "feedback.h"

static char out[1 << 20];

/* verify, or replay: each service re-run as far as the live one had come
 * (its cursor), so that what it had not reached is not counted missing;
 * how far behind the log's head that was is said per service. */
static int check_audit(const demo_region_t *r, const char *what)
{
    const char *args[] = {"audit", what, "--data", r->node, "--upto-live", "--purpose", "schakel demo --soak",
                          NULL};
    if (!strcmp(what, "verify")) args[4] = NULL; /* verify takes no purpose */
    int rc = demo_run(args, out, sizeof out);
    printf("soak: audit %s%s: %s (exit %d)\n", what, args[4] ? ", each service up to its live cursor" : "",
           rc == 0 ? "passes" : "FAILS", rc);
    /* its figures: the JSON lines (verify's summary, one per replayed service) */
    for (char *l = out, *nl; l && *l; l = nl ? nl + 1 : NULL) {
        nl = strchr(l, '\n');
        if (nl) *nl = 0;
        if (l[0] == '{' || rc != 0) printf("soak:   %.300s\n", l);
        json_t *j = l[0] == '{' ? json_loads(l, 0, NULL) : NULL;
        if (json_object_get(j, "behind"))
            printf(
                "soak:   %s: compared up to record %lld of %lld: the live service was %lld record%s behind\n",
                json_string_value(json_object_get(j, "service")) ?: "?",
                (long long)json_integer_value(json_object_get(j, "upto")),
                (long long)json_integer_value(json_object_get(j, "head")),
                (long long)json_integer_value(json_object_get(j, "behind")),
                json_integer_value(json_object_get(j, "behind")) == 1 ? "" : "s");
        json_decref(j);
    }
    return rc == 0 ? 0 : -1;
}

static uint64_t count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[8192];
    uint64_t n = 0;
    while (fgets(line, sizeof line, f))
        if (!needle || strstr(line, needle)) n++;
    (void)fclose(f); /* read only */
    return n;
}

#define BSN_REASON "column bsn: not a valid BSN"

/* Rows the adapters rejected: the spool's reasons files and the answers
 * on standard output (never a row's values; they are not read here).
 * Those rejected for the BSN are counted apart in *bsn. */
static uint64_t rejected_rows(const demo_region_t *r, const demo_org_t *o, uint64_t *bsn)
{
    char dir[SCHAKEL_PATH_MAX], path[SCHAKEL_PATH_MAX];
    uint64_t n = 0;
    if (schakel_path_fmt(path, sizeof path, NULL, "%s/orgs/%s/stdout.jsonl", r->dir, o->id) == 0)
        n += count_lines(path, "\"rejected\"");
    if (schakel_path_fmt(dir, sizeof dir, NULL, "%s/orgs/%s/spool/rejected", r->dir, o->id)) return n;
    DIR *d = opendir(dir);
    if (!d) return n;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t k = strlen(e->d_name);
        if (k > 14 && !strcmp(e->d_name + k - 14, ".reasons.jsonl") &&
            schakel_path_fmt(path, sizeof path, NULL, "%s/%s", dir, e->d_name) == 0) {
            n += count_lines(path, NULL);
            *bsn += count_lines(path, BSN_REASON);
        }
    }
    (void)closedir(d); /* read only */
    return n;
}

/* Every loop the feedback service follows is closed, within its
 * deadlines, or has had the reminder (or stalled-handover alert) the
 * deadline passed owes it: from the service's state on the stopped node. */
static int check_loops(const demo_region_t *r)
{
    char dir[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    json_t *j = schakel_path_fmt(dir, sizeof dir, why, "%s/services/feedback", r->node) == 0
                    ? schakel_feedback_deadline_check(dir, why)
                    : NULL;
    if (!j) {
        printf("soak: loops: the feedback service's state is unreadable: %s\n", why);
        return -1;
    }
    const char *const *origins = schakel_feedback_origins;
    json_int_t late = 0;
    for (size_t i = 0; i < 5; i++) {
        json_t *o = json_object_get(j, origins[i]);
#define N(k) (long long)json_integer_value(json_object_get(o, k))
        if (i > 0 && N("loops") == 0) continue;
        printf("soak: %s loops on %s: %lld: closed %lld, within the deadline %lld, not delivered (no clock) "
               "%lld, redirected with no new receiver (referrer alerted) %lld, "
               "late with the reminder %lld (escalated %lld, stalled alerts %lld), late without it %lld\n",
               origins[i], json_string_value(json_object_get(j, "today")) ?: "?", N("loops"), N("closed"),
               N("within_deadline"), N("not_delivered"), N("redirect_alerted"), N("late_reminded"),
               N("escalated"), N("stalled_alerted"), N("late_unreminded"));
        late += json_integer_value(json_object_get(o, "late_unreminded"));
#undef N
    }
    json_decref(j);
    if (late) printf("soak: %lld loops are past a deadline without their reminder\n", (long long)late);
    return late ? -1 : 0;
}

int demo_soak_check(demo_region_t *r, uint64_t http_rejected, uint64_t deliberate, long rss_kb, long bound_kb,
                    int undrained)
{
    int failed = 0, drained = 0;
    uint64_t dead = 0, depth = 0, acked = 0, rejected = http_rejected, bsn = 0;
    char cfg[SCHAKEL_PATH_MAX];
    for (int i = 0; i < r->norgs; i++) {
        demo_org_t *o = &r->orgs[i];
        rejected += rejected_rows(r, o, &bsn);
        if (schakel_path_fmt(cfg, sizeof cfg, NULL, "%s/orgs/%s/adapter.json", r->dir, o->id)) return -1;
        const char *args[] = {"adapter", "status", "--config", cfg, NULL};
        int rc = demo_run(args, out, sizeof out);
        json_error_t err;
        json_t *j = rc == 0
                        ? json_loads(strchr(out, '{') ? strchr(out, '{') : out, JSON_DISABLE_EOF_CHECK, &err)
                        : NULL;
        json_int_t d = json_integer_value(json_object_get(j, "outbox_depth"));
        json_int_t x = json_integer_value(json_object_get(j, "dead_letters"));
        if (j && d == 0) drained++;
        else printf("soak: adapter %s: %s\n", o->id, j ? "outbox not drained" : "status unreadable");
        depth += (uint64_t)d;
        dead += (uint64_t)x;
        acked += (uint64_t)json_integer_value(json_object_get(j, "acked"));
        json_decref(j);
    }
    printf("soak: adapters with a drained outbox: %d of %d (%llu events waiting, %llu ACKed in all)\n",
           drained, r->norgs, (unsigned long long)depth, (unsigned long long)acked);
    printf("soak: dead letters: %llu\n", (unsigned long long)dead);
    printf("soak: rejected rows: %llu, of which for a mistyped BSN %llu; mistyped on purpose: %llu%s\n",
           (unsigned long long)rejected, (unsigned long long)bsn, (unsigned long long)deliberate,
           rejected == bsn && bsn == deliberate ? "" : " (each should be rejected, and nothing else)");
    failed |= drained != r->norgs || dead != 0 || rejected != bsn || bsn != deliberate;
    if (undrained) printf("soak: the adapters and services did not catch up before the stop (above)\n");
    failed |= undrained;
    printf("soak: node's peak memory (VmHWM): %ld MiB, bound %ld MiB: %s\n", rss_kb / 1024, bound_kb / 1024,
           rss_kb >= 0 && rss_kb < bound_kb ? "under"
           : rss_kb < 0                     ? "UNKNOWN"
                                            : "OVER");
    failed |= rss_kb < 0 || rss_kb >= bound_kb;
    failed |= check_loops(r) != 0;
    failed |= check_audit(r, "verify") != 0;
    failed |= check_audit(r, "replay") != 0;
    printf("soak: %s\n", failed ? "FAILED" : "all checks pass");
    fflush(stdout);
    return failed ? -1 : 0;
}
