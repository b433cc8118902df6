/* schakel demo: a living demo region. Makes a region shaped like a large
 * municipality's (demo_region.c), starts a node and one real adapter per
 * organisation, feeds them the rows their systems would export
 * (demo_rows.c, demo_feed.c) at --rate rows a second on a clock --speed
 * times faster than the wall's, prints one summary line every few seconds,
 * and with --soak checks the log and the adapters at the end
 * (demo_soak.c). docs/demo.md says what is modelled. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "region.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel demo [--data DIR] [--schools N] [--seed S] [--rate R] [--duration SECONDS]\n"
    "                    [--speed N] [--port P] [--profiles DIR] [--soak [--rss-mb MB]]\n"
    "                    [--plan STORIES]\n"
    "\n"
    "Runs a demo region under DIR (default var/demo): N primary schools\n"
    "(default 62, at most 125) and one secondary school for six of them, with\n"
    "their school social work organisations and wijkteams, the\n"
    "GGD, the samenwerkingsverband, Veilig Thuis, the municipality and its\n"
    "leerplicht office (docs/demo.md). It starts a node (DIR/node, the broker\n"
    "on tcp://127.0.0.1:P and P+1, the dashboard on http://127.0.0.1:P+2/;\n"
    "default P 7400) and one adapter per organisation, and feeds them, through\n"
    "their spool, HTTP and standard input, R input rows a second (default 20)\n"
    "of synthetic children. The log's clock runs N times as fast as the wall's\n"
    "(--speed, default 2000: a day in 43 s). One summary line every 5 seconds;\n"
    "Ctrl-C stops every process cleanly; a second run on DIR goes on where the\n"
    "first stopped (with its seed and schools). --duration: stop after that\n"
    "many seconds (default: at Ctrl-C). --soak: then check the log (audit\n"
    "verify, audit replay up to each live service's cursor), every adapter's outbox, the rejected rows and "
    "the\n"
    "node's peak memory (under --rss-mb, default 2048); exit 1 when a check\n"
    "fails. --plan STORIES: print the region and the rows of the first stories\n"
    "(from a fixed date), start nothing. --profiles: the sample profiles\n"
    "(default adapters/profiles, run from the source tree); docs/demo.md.\n"
    "The same --seed gives the same region and the same rows.\n";

static atomic_int stopping;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, 1);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct {
    uint64_t seed, schools, port, next_story, flush_no, deliberate;
    int64_t sim_ms;
} demo_state_t;

static int state_path(const char *dir, char out[SCHAKEL_PATH_MAX])
{
    return schakel_path_fmt(out, SCHAKEL_PATH_MAX, NULL, "%s/demo.json", dir);
}

/* A second run keeps the region it made: the stored seed, schools and
 * port win over the flags (said when they differ). */
static int state_load(const char *dir, demo_state_t *st, int seed_given, int schools_given)
{
    char path[SCHAKEL_PATH_MAX];
    if (state_path(dir, path)) return -1;
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) return access(path, F_OK) == 0 ? -1 : 0;
    uint64_t seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
    uint64_t schools = (uint64_t)json_integer_value(json_object_get(j, "schools"));
    if ((seed_given && seed != st->seed) || (schools_given && schools != st->schools))
        fprintf(stderr, "schakel demo: %s holds a region of seed %llu with %llu schools: going on with it\n",
                dir, (unsigned long long)seed, (unsigned long long)schools);
    st->seed = seed;
    st->schools = schools;
    st->port = (uint64_t)json_integer_value(json_object_get(j, "port"));
    st->next_story = (uint64_t)json_integer_value(json_object_get(j, "next_story"));
    st->flush_no = (uint64_t)json_integer_value(json_object_get(j, "flush_no"));
    st->deliberate = (uint64_t)json_integer_value(json_object_get(j, "deliberate"));
    st->sim_ms = json_integer_value(json_object_get(j, "sim_ms"));
    json_decref(j);
    return 0;
}

static int state_save(const char *dir, const demo_state_t *st)
{
    char path[SCHAKEL_PATH_MAX];
    if (state_path(dir, path)) return -1;
    json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "deliberate", (json_int_t)st->deliberate,
                          "seed", (json_int_t)st->seed, "schools", (json_int_t)st->schools, "port",
                          (json_int_t)st->port, "next_story", (json_int_t)st->next_story, "flush_no",
                          (json_int_t)st->flush_no, "sim_ms", (json_int_t)st->sim_ms);
    int rc = tool_write_json(path, j);
    json_decref(j);
    return rc;
}

/* --plan: the region and the first stories' rows, from a fixed date. */
static int plan(demo_region_t *r, uint64_t stories)
{
    demo_region_print(r, stdout);
    demo_sim_t *s = demo_sim_new(r, 0, 1767596400000LL); /* Monday 5 January 2026, 08:00 */
    if (!s) return 1;
    for (uint64_t i = 0; i < stories; i++) {
        demo_sim_set_time(s, 1767596400000LL + (int64_t)i * 60000);
        demo_sim_due(s); /* a school's own chains: the meldcode, a thuiszitter, a withdrawal */
        demo_sim_story(s);
    }
    static const char *const files[] = {"care", "consents", "meldcode", "absence"};
    static const int order[] = {DEMO_F_CONSENT, DEMO_F_CARE, DEMO_F_MELDCODE, DEMO_F_ABSENCE};
    for (int i = 0; i < r->norgs; i++)
        for (int f = 0; f < DEMO_FILES; f++)
            if (r->orgs[i].len[order[f]])
                printf("rows %s %s\n%s", r->orgs[i].id, files[order[f]], r->orgs[i].buf[order[f]]);
    demo_sim_free(s);
    return 0;
}

typedef struct {
    int64_t t0, last_ms;
    double last_events;
    int have_last;
} summary_t;

static void summary(demo_region_t *r, summary_t *sm, int64_t sim_ms, uint64_t inputs)
{
    static char text[1 << 20];
    int64_t now = mono_ms();
    if (demo_metrics(r, text, sizeof text) != 0) {
        printf("demo: %llds: the node's /metrics does not answer yet\n", (long long)((now - sm->t0) / 1000));
        fflush(stdout);
        return;
    }
    double events = demo_metric_sum(text, "schakel_events_total", NULL);
    double rate = sm->have_last && now > sm->last_ms
                      ? (events - sm->last_events) * 1000.0 / (double)(now - sm->last_ms)
                      : 0;
    int behind = 0;
    demo_metric_sum(text, "schakel_adapter_outbox_depth", &behind);
    time_t t = (time_t)(sim_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[16];
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    printf("demo: %llds sim %s  events/s %.1f  loops open %.0f overdue %.0f  held %.0f denied %.0f  rejects "
           "%.0f  "
           "adapters behind %d  rows in %llu\n",
           (long long)((now - sm->t0) / 1000), day, rate, demo_metric_sum(text, "schakel_loops_open", NULL),
           demo_metric_sum(text, "schakel_loops_overdue", NULL),
           demo_metric_sum(text, "schakel_held_total", NULL),
           demo_metric_sum(text, "schakel_denied_total", NULL),
           demo_metric_sum(text, "schakel_rejects_total", NULL), behind, (unsigned long long)inputs);
    fflush(stdout);
    sm->last_ms = now;
    sm->last_events = events;
    sm->have_last = 1;
}

/* After the last row: until every adapter reports an empty outbox and
 * every service has read the whole log, twice in a row, for at most
 * limit_s seconds. Prints how it ended; 0 when it did. */
static int drain(demo_region_t *r, demo_sim_t *s, uint64_t *flush_no, uint64_t *rejected, int limit_s)
{
    static char text[1 << 20];
    uint64_t received = 0;
    int64_t t0 = mono_ms();
    int quiet = 0, behind = -1, lagging = -1;
    double lag = -1;
    while (quiet < 2 && mono_ms() - t0 < (int64_t)limit_s * 1000) {
        (void)demo_feed_flush(r, flush_no, rejected); /* rows a busy adapter did not take yet */
        (void)demo_feed_inboxes(r, s, &received);
        sleep_ms(1000);
        if (demo_metrics(r, text, sizeof text) != 0) continue;
        demo_metric_sum(text, "schakel_adapter_outbox_depth", &behind);
        lag = demo_metric_sum(text, "schakel_service_lag_records", &lagging);
        quiet = behind == 0 && lagging == 0 ? quiet + 1 : 0;
    }
    printf("soak: drained in %lld s (at most %d): adapters behind %d, services' lag %.0f records\n",
           (long long)((mono_ms() - t0) / 1000), limit_s, behind, lag);
    fflush(stdout);
    return quiet >= 2 ? 0 : -1;
}

/* The node's peak resident set (VmHWM) in KiB, or -1. */
static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) (void)fclose(f); /* read only */
    return kb;
}

static void stop_all(demo_region_t *r, pid_t node, pid_t clock, int clock_fd)
{
    if (clock_fd >= 0) (void)close(clock_fd); /* the publisher ends at end of input */
    int had_stdin = 0;
    for (int i = 0; i < r->norgs; i++) {
        had_stdin |= r->orgs[i].stdin_fd >= 0;
        if (r->orgs[i].stdin_fd >= 0) (void)close(r->orgs[i].stdin_fd);
        r->orgs[i].stdin_fd = -1;
    }
    /* An adapter reading standard input reads its end before its SIGTERM, so
     * that it stops as after any input, not with its reader cancelled in a
     * read (AddressSanitizer reports a cancelled thread's teardown as a
     * stack-use-after-scope). */
    if (had_stdin) sleep_ms(1000);
    for (int i = 0; i < r->norgs; i++)
        if (r->orgs[i].pid > 0) (void)kill(r->orgs[i].pid, SIGTERM); /* our own children */
    /* it ends at end of input, once the broker ACKed what it sent; without a node, at once */
    int failed = demo_stop(clock, "the clock publisher", 10, node < 0) != 0;
    for (int i = 0; i < r->norgs; i++) failed |= demo_stop(r->orgs[i].pid, r->orgs[i].id, 20, 1) != 0;
    failed |= demo_stop(node, "the node", 30, 1) != 0;
    fprintf(stderr, "schakel demo: stopped%s\n",
            failed ? " (a process did not stop cleanly: see its log)" : "");
}

int cmd_demo(int argc, char **argv)
{
    const char *dir = "var/demo", *profiles = "adapters/profiles";
    uint64_t schools = 62, seed = 1, rate = 20, duration = 0, speed = 2000, port = 7400, stories = 0,
             rss_mb = 2048;
    int soak = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--data", "DIR", &dir),
        SCHAKEL_FLAG_U("--schools", &schools, 1, 125),
        SCHAKEL_FLAG_U("--seed", &seed, 0, UINT64_MAX),
        SCHAKEL_FLAG_U("--rate", &rate, 1, 100000),
        SCHAKEL_FLAG_U("--duration", &duration, 0, 86400 * 365),
        SCHAKEL_FLAG_U("--speed", &speed, 1, 1000000),
        SCHAKEL_FLAG_U("--port", &port, 1024, 65000),
        SCHAKEL_FLAG_S("--profiles", "DIR", &profiles),
        SCHAKEL_FLAG_B("--soak", NULL, &soak),
        SCHAKEL_FLAG_U("--rss-mb", &rss_mb, 1, 1048576),
        SCHAKEL_FLAG_U("--plan", &stories, 1, 1000000),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("demo", flags, argc, argv, 1, usage, NULL, usage);
    if (status >= 0) return status;
    status = 0;
    static demo_region_t r; /* the children's table is large */
    memset(&r, 0, sizeof r);
    if (schakel_flags_given(flags, "--plan")) {
        if (demo_region_shape(&r, seed, (int)schools, (int)port) != 0) return 1;
        status = plan(&r, stories);
        demo_region_free(&r);
        return status;
    }
    if (soak && duration == 0) {
        fprintf(stderr, "schakel demo: --soak needs --duration SECONDS\n");
        return 2;
    }
    demo_state_t st = {.seed = seed, .schools = schools, .port = port};
    if (schakel_path_fmt(r.dir, sizeof r.dir, NULL, "%s", dir) || tool_mkdir_p(dir) != 0 ||
        state_load(dir, &st, schakel_flags_given(flags, "--seed"), schakel_flags_given(flags, "--schools"))) {
        fprintf(stderr, "schakel demo: cannot use %s: fix or remove it\n", dir);
        return 1;
    }
    if (demo_region_shape(&r, st.seed, (int)st.schools, (int)st.port) != 0 ||
        demo_region_write(&r, profiles) != 0)
        return 1;
    /* a run on the same data goes on after the last one's clock: a tick at the
     * same simulated moment would be the same line, hence the same derived
     * event id, for a different event (docs/demo.md) */
    int64_t sim0 = st.sim_ms >= wall_ms() ? st.sim_ms + 1 : wall_ms();
    demo_sim_t *sim = demo_sim_new(&r, st.next_story, sim0);
    signal(SIGPIPE, SIG_IGN); /* an adapter gone: its write fails, said in the summary */
    schakel_signals_on_stop(on_signal);
    pid_t node = demo_start_node(&r), clock = -1;
    int clock_fd = -1;
    if (!sim || node < 0 || demo_start_adapters(&r) != 0) {
        atomic_store(&stopping, 1);
        status = 1;
    }
    if (speed > 1 && !atomic_load(&stopping)) {
        char out[SCHAKEL_PATH_MAX];
        const char *argv_clock[] = {"publish", "--node", r.node, "--as", "demo-clock", NULL};
        if (schakel_path_fmt(out, sizeof out, NULL, "%s/clock.out", r.dir) == 0)
            clock = demo_spawn(argv_clock, out, out, &clock_fd);
    }
    printf(
        "schakel demo: %d schools and %d secondary schools, %d organisations, seed %llu, %llu rows/s, clock "
        "x%llu; data in %s\n"
        "schakel demo: dashboard, /metrics and /healthz at http://127.0.0.1:%d/\n",
        r.nschools, r.nvo, r.norgs, (unsigned long long)st.seed, (unsigned long long)rate,
        (unsigned long long)speed, dir, r.port + 2);
    fflush(stdout);
    summary_t sm = {.t0 = mono_ms(), .last_ms = mono_ms(), .have_last = 1};
    uint64_t inputs = 0, received = 0, http_rejected = 0;
    int64_t t0 = mono_ms(), last_flush = 0, last_tick = 0, last_sum = t0, sim_ms = sim0;
    while (!atomic_load(&stopping)) {
        int64_t now = mono_ms();
        if (duration && now - t0 >= (int64_t)duration * 1000) break;
        int ws;
        if (waitpid(node, &ws, WNOHANG) == node) { /* a port in use, a broken data directory: its log says */
            fprintf(stderr, "schakel demo: the node stopped: see %s/node.log\n", dir);
            node = -1;
            status = 1;
            break;
        }
        sim_ms = sim0 + (now - t0) * (int64_t)speed;
        demo_sim_set_time(sim, sim_ms);
        inputs += (uint64_t)demo_sim_due(sim);
        while (inputs < (uint64_t)((now - t0) * (int64_t)rate / 1000))
            inputs += (uint64_t)demo_sim_story(sim);
        if (now - last_flush >= 500) {
            (void)demo_feed_flush(&r, &st.flush_no, &http_rejected); /* what failed goes with the next */
            (void)demo_feed_inboxes(&r, sim, &received);
            last_flush = now;
        }
        if (clock_fd >= 0 && now - last_tick >= 1000) {
            char tick[160];
            int n = snprintf(tick, sizeof tick,
                             "{\"type\":\"clock_tick\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
                             "\"clock_tick\":{\"at_ms\":%lld}}\n",
                             (long long)sim_ms);
            if (write(clock_fd, tick, (size_t)n) != n)
                fprintf(stderr, "schakel demo: the clock publisher is gone\n");
            last_tick = now;
        }
        if (now - last_sum >= 5000) {
            summary(&r, &sm, sim_ms, inputs);
            last_sum = now;
        }
        sleep_ms(100);
    }
    int drained = 0;
    if (soak && status == 0) drained = drain(&r, sim, &st.flush_no, &http_rejected, 90 + (int)duration);
    else (void)demo_feed_flush(&r, &st.flush_no, &http_rejected); /* the last rows go to the spool */
    st.next_story = demo_sim_next_story(sim);
    st.deliberate += demo_sim_deliberate(sim);
    st.sim_ms = sim_ms;
    if (state_save(dir, &st) != 0) fprintf(stderr, "schakel demo: cannot save %s/demo.json\n", dir);
    long rss_kb = peak_rss_kb(node); /* before it is gone */
    stop_all(&r, node, clock, clock_fd);
    if (soak && status == 0)
        status = demo_soak_check(&r, http_rejected, st.deliberate, rss_kb, (long)rss_mb * 1024, drained != 0)
                     ? 1
                     : 0;
    demo_sim_free(sim);
    demo_region_free(&r);
    return status;
}
