/* schakel demo: a living demo region. The region (demo_region.c), the rows
 * its organisations' systems produce (demo_rows.c), the inputs that carry
 * them to the adapters (demo_feed.c), the processes and the summary line
 * (demo.c, demo_proc.c) and the soak checks (demo_soak.c) share this. */
#ifndef SCHAKEL_TOOL_DEMO_H
#define SCHAKEL_TOOL_DEMO_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "fileio.h"

/* A deterministic generator: the region and every story come from the
 * seed and a number, never from the wall clock, so the same seed gives the
 * same region and the same rows (and a second run goes on numbering). */
typedef struct {
    uint64_t s;
} demo_rng_t;

uint64_t demo_mix(uint64_t x);
demo_rng_t demo_rng(uint64_t seed, uint64_t stream, uint64_t n);
uint64_t demo_next(demo_rng_t *r);
/* A whole number in [0, n). */
unsigned demo_below(demo_rng_t *r, unsigned n);

typedef enum {
    DEMO_SCHOOL,
    DEMO_SMW,
    DEMO_WIJKTEAM,
    DEMO_GGD,
    DEMO_PPO,
    DEMO_VT,
    DEMO_GEMEENTE,
    DEMO_LEERPLICHT
} demo_kind_t;

/* How an adapter is fed (docs/adapters.md, "The three inputs"). */
typedef enum { DEMO_IN_NONE, DEMO_IN_SPOOL, DEMO_IN_HTTP, DEMO_IN_STDIN } demo_input_t;

typedef struct {
    char id[64];
    demo_kind_t kind;
    demo_input_t input;
    int http_port; /* DEMO_IN_HTTP */
    pid_t pid;
    int stdin_fd; /* DEMO_IN_STDIN: the pipe to the adapter's standard input */
    char token[4200];
    int district; /* a wijkteam's */
    /* rows waiting for the next flush, per file (a school has four
     * exports: DEMO_F_*; the others one) */
    char *buf[4];
    size_t len[4], cap[4], rows[4];
} demo_org_t;

/* A school's exports, flushed in this order: consents first, before the
 * referrals that need them. */
enum { DEMO_F_CARE = 0, DEMO_F_CONSENT = 1, DEMO_F_MELDCODE = 2, DEMO_F_ABSENCE = 3, DEMO_FILES = 4 };

typedef struct {
    char brinvest[7];
    int district, smw, org;
    int secondary; /* a school for secondary education (VO): pupils of 12 to 19 */
} demo_school_t;

typedef struct {
    char bsn[10], birth[11]; /* birth yyyy-mm-dd */
    int school;
    char pseudonym[65];
} demo_child_t;

#define DEMO_CHILDREN_MAX 909 /* the elfproef-valid BSNs in 999990000..999999999 */

typedef struct {
    char dir[SCHAKEL_PATH_MAX], node[SCHAKEL_PATH_MAX];
    uint64_t seed;
    int nschools, nvo, ndistricts, nsmw, port; /* nschools primary, nvo secondary: schools[] has both */
    demo_school_t *schools;
    demo_org_t *orgs;
    int norgs, ggd;
    demo_child_t children[DEMO_CHILDREN_MAX];
    int nchildren;
    uint8_t region_key[32];
} demo_region_t;

/* Builds the region's shape from seed and nschools (no files). */
int demo_region_shape(demo_region_t *r, uint64_t seed, int nschools, int port);
void demo_region_free(demo_region_t *r);
/* Writes keys, the directory, node.json, profiles and adapter configs
 * under r->dir once (a second run keeps them); reads the region key. 0 or
 * -1 said on stderr. */
int demo_region_write(demo_region_t *r, const char *profiles);
/* The region as text without keys (for --plan). */
void demo_region_print(const demo_region_t *r, FILE *out);
const char *demo_district_name(int d, char out[16]);
const char *demo_district_code(int d, char out[16]);
const char *demo_smw_id(int i, char out[32]);

/* The scenario: school-side stories numbered from 0, and the receivers'
 * steps that answer a referral delivered to their inbox. */
typedef struct demo_sim demo_sim_t;
demo_sim_t *demo_sim_new(demo_region_t *r, uint64_t story0, int64_t sim_ms);
void demo_sim_free(demo_sim_t *s);
/* Adds story number s->next (its rows into the orgs' buffers); returns
 * the rows it added. */
int demo_sim_story(demo_sim_t *s);
/* A referral (or a report to Veilig Thuis, or a referral redirected to
 * it) reached org o's inbox: schedules the receiver's steps. */
void demo_sim_referral(demo_sim_t *s, int o, const char *referral_id, const char *subject);
/* A school's absence report (thuiszitter 0; code the AbsenceKind, hours,
 * the period from and to, yyyy-mm-dd) or a thuiszitter's start (1; code
 * the reason or "", from the first day at home), the event event_id (32
 * hex: the office's registration number comes from it), reached the
 * leerplicht office o's inbox: schedules what its system registers. */
void demo_sim_leerplicht(demo_sim_t *s, int o, const char *subject, const char *event_id, int thuiszitter,
                         const char *code, int hours, const char *from, const char *to);
/* Adds the scheduled steps due by the simulated time; returns the rows. */
int demo_sim_due(demo_sim_t *s);
void demo_sim_set_time(demo_sim_t *s, int64_t sim_ms);
uint64_t demo_sim_next_story(const demo_sim_t *s);
/* Rows made invalid on purpose (a mistyped BSN) since demo_sim_new. */
uint64_t demo_sim_deliberate(const demo_sim_t *s);
size_t demo_sim_pending(const demo_sim_t *s);

/* Appends one formatted row to org o's buffer f. */
void demo_buf_add(demo_org_t *o, int f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The inputs (demo_feed.c). demo_feed_flush hands every buffer to its
 * adapter (spool file, POST /events, a line on standard input); the HTTP
 * answers' rejected rows are added to *rejected. */
int demo_feed_flush(demo_region_t *r, uint64_t *flush_no, uint64_t *rejected);
/* Reads the inboxes: a referral to a receiver is handed to the scenario;
 * every record is then removed, as the receiving system would. */
int demo_feed_inboxes(demo_region_t *r, demo_sim_t *s, uint64_t *received);

/* Processes (demo_proc.c). */
pid_t demo_spawn(const char *const *argv, const char *out, const char *err, int *stdin_fd);
pid_t demo_start_node(demo_region_t *r);
int demo_start_adapters(demo_region_t *r);
/* SIGTERM (when term), then waits (up to timeout_s; then SIGKILL, said).
 * 0 when it exited 0. */
int demo_stop(pid_t pid, const char *what, int timeout_s, int term);
/* Runs `schakel args...` to the end, stdout into out (cap bytes). Its
 * exit status, or -1. */
int demo_run(const char *const *args, char *out, size_t cap);
/* The node's /metrics as text into out; 0 or -1. */
int demo_metrics(const demo_region_t *r, char *out, size_t cap);
double demo_metric_sum(const char *text, const char *name, int *nonzero);

/* --soak: after the run, the checks; 0 when all pass. deliberate: the rows
 * made invalid on purpose over every run on this data; rss_kb: the node's
 * peak resident set (-1: unknown), which must stay under bound_kb;
 * undrained: the adapters or services had not caught up when stopped. */
int demo_soak_check(demo_region_t *r, uint64_t http_rejected, uint64_t deliberate, long rss_kb, long bound_kb,
                    int undrained);

#endif
