/* The rough edges a new user hits (issue 11), each through the real
 * `schakel` command against a real node: keygen makes its output
 * directory; help names what really runs; tail says a refusal once;
 * publish tells a refused key (exit 4, no advice to resend) from no broker
 * (exit 3); a number a flag cannot take is refused (exit 2, naming the
 * flag), not read as 0; loops name the receiver only once there is one, and the
 * delivery step as decided by the consent service, received by the
 * wijkteam; dead letters are listed without content and sent again after
 * the directory is fixed; a second node on a data directory in use is
 * refused and node.json follows the endpoints given; no doc or source
 * cites a file outside the repository. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "fileio.h"
#include "harness.h"
#include "json.h"
#include "scenario.h"

#define FIXTURE SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json"
#define SCHOOL "school-34cd01"
#define WIJKTEAM "wijkteam-zuid"

/* Runs `schakel args...` with stdin from in_path (or /dev/null), stdout
 * and stderr into files under H->dir named after tag; returns its exit
 * status. */
static int run(const char *tag, const char *in_path, const char *const *args)
{
    char out[600], err[600];
    snprintf(out, sizeof out, "%s/%s.out", H->dir, tag);
    snprintf(err, sizeof err, "%s/%s.err", H->dir, tag);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int i = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i < 0 || o < 0 || e < 0) _exit(126);
        dup2(i, 0), dup2(o, 1), dup2(e, 2);
        const char *argv[40] = {SCHAKEL_BIN_DIR "/schakel"};
        int n = 1;
        for (; args[n - 1] && n < 39; n++) argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    size_t len;
    char *text = schakel_file_read(err, 1 << 20, &len); /* the ASan build: a report fails the test */
    if (text && (strstr(text, "Sanitizer") || strstr(text, "runtime error")))
        fail_msg("schakel %s: sanitizer report in %s", args[0], err);
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* What run() wrote for tag ("out" or "err"); caller frees. */
static char *output(const char *tag, const char *which)
{
    char path[600];
    size_t len;
    snprintf(path, sizeof path, "%s/%s.%s", H->dir, tag, which);
    char *t = schakel_file_read(path, 1 << 20, &len);
    assert_non_null(t);
    return t;
}

static size_t occurrences(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int setup(void **state)
{
    if (adapters_node_setup(state) != 0) return -1;
    change_directory(0);
    tick(at("2027-04-23T08:00:00Z"));
    return 0;
}

/* ---- keygen ---- */

/* docs/adapters.md §2 says to run exactly this in a fresh directory. */
static void keygen_makes_its_output_directory(void **state)
{
    (void)state;
    char dir[600], key[700];
    snprintf(dir, sizeof dir, "%s/fresh/keys", H->dir);
    const char *args[] = {"keygen", "--id", "smw-test", "--out", dir, NULL};
    assert_int_equal(run("keygen", NULL, args), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(key, sizeof key, "%s/fresh", H->dir);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(key, sizeof key, "%s/smw-test.key", dir);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a second run keeps the key and says so, in words */
    assert_int_equal(run("keygen2", NULL, args), 1);
    char *err = output("keygen2", "err");
    assert_non_null(strstr(err, "smw-test.key exists already"));
    free(err);
}

/* ---- help ---- */

static void help_names_what_really_runs(void **state)
{
    (void)state;
    const char *node[] = {"node", "--help", NULL}, *fb[] = {"feedback", "--help", NULL},
               *rt[] = {"routing", "--help", NULL}, *audit[] = {"audit", "--help", NULL};
    assert_int_equal(run("help-node", NULL, node), 0);
    char *t = output("help-node", "out");
    assert_non_null(strstr(t, "routing, consent and feedback services"));
    free(t);
    assert_int_equal(run("help-feedback", NULL, fb), 0);
    t = output("help-feedback", "out");
    assert_non_null(strstr(t, "docs/feedback.md"));
    assert_null(strstr(t, "docs/routing.md"));
    free(t);
    assert_int_equal(run("help-routing", NULL, rt), 0);
    t = output("help-routing", "out");
    assert_non_null(strstr(t, "docs/routing.md"));
    free(t);
    assert_int_equal(run("help-audit", NULL, audit), 0);
    t = output("help-audit", "out");
    assert_non_null(strstr(t, "routing, consent and feedback"));
    free(t);
}

/* ---- tail ---- */

static void tail_reports_a_refusal_once(void **state)
{
    (void)state;
    const char *args[] = {"tail", "--node", H->data, "--as", "school-12ab00", "--stream", "all", NULL};
    assert_int_equal(run("tail", NULL, args), 1);
    char *err = output("tail", "err");
    assert_int_equal(occurrences(err, "may not read stream"), 1);
    assert_int_equal(occurrences(err, "\n"), 1);
    free(err);
}

/* ---- publish ---- */

static void publish_tells_a_refused_key_from_no_broker(void **state)
{
    (void)state;
    char dir[600], key[700], pub[700], in[600], dead[64];
    snprintf(dir, sizeof dir, "%s/outsider", H->dir);
    const char *kg[] = {"keygen", "--id", "outsider", "--out", dir, NULL};
    assert_int_equal(run("keygen-outsider", NULL, kg), 0);
    snprintf(key, sizeof key, "%s/outsider.key", dir);
    snprintf(pub, sizeof pub, "%s/broker.pub", H->keys);
    snprintf(in, sizeof in, "%s/signal.jsonl", H->dir);
    char p[65], line[1024];
    child("publish-exit-codes", p);
    snprintf(line, sizeof line,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],\"urgency\":\"soon\","
             "\"observed_on\":\"2027-04-22\",\"raised_by\":\"teacher\"}}\n",
             p);
    write_bytes(in, line, strlen(line), 0600);

    /* a key the broker's directory does not have: 4, and no advice to resend */
    const char *refused[] = {"publish", "--endpoint", H->endpoint,    "--server-key", pub,
                             "--key",   key,          "--timeout-ms", "5000",         NULL};
    assert_int_equal(run("publish-refused", in, refused), 4);
    char *err = output("publish-refused", "err"), *out = output("publish-refused", "out");
    assert_non_null(strstr(err, "refused the key of outsider"));
    assert_null(strstr(err, "again"));
    assert_non_null(strstr(out, "\"error\":\"unauthenticated\""));
    free(err);
    free(out);

    /* nobody there: 3, publish the same lines again */
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", harness_free_port());
    const char *none[] = {"publish", "--endpoint", dead,           "--server-key", pub,
                          "--key",   key,          "--timeout-ms", "500",          NULL};
    assert_int_equal(run("publish-none", in, none), 3);
    err = output("publish-none", "err");
    assert_non_null(strstr(err, "publish the same lines again"));
    free(err);

    /* an organisation of the directory: stored */
    const char *ok[] = {"publish", "--node", H->data, "--as", SCHOOL, NULL};
    assert_int_equal(run("publish-ok", in, ok), 0);
}

/* ---- one node per data directory ---- */

/* Runs `schakel health --node dir` until it answers (up to 10 s): the
 * node is up at the endpoint node.json names. */
static int health_until_up(const char *dir)
{
    const char *args[] = {"health", "--node", dir, NULL};
    for (int i = 0; i < 100; i++) {
        if (run("health", NULL, args) == 0) return 0;
        usleep(100000);
    }
    return -1;
}

static pid_t start_node(const char *tag, const char *dir, const char *ep, const char *pub)
{
    char log[600];
    snprintf(log, sizeof log, "%s/%s.log", H->dir, tag);
    const char *with[] = {"node", "--data", dir, "--no-services", "--endpoint", ep, "--pub", pub, NULL};
    const char *without[] = {"node", "--data", dir, "--no-services", NULL};
    return harness_spawn(log, ep ? with : without);
}

static void stop_node(pid_t pid)
{
    int st;
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A second node on a data directory in use would append to the same log
 * from the head it last saw: it is refused, naming the running one, and
 * leaves node.json alone. A later start follows the endpoints it is given
 * into node.json, and one without them takes node.json's, so that
 * commands given --node DIR always reach the node. */
static void one_node_per_data_directory_and_node_json_follows(void **state)
{
    (void)state;
    char dir[600], ep[2][64], pub[2][64], pid[32];
    snprintf(dir, sizeof dir, "%s/second-node", H->dir);
    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof ep[i], "tcp://127.0.0.1:%d", harness_free_port());
        snprintf(pub[i], sizeof pub[i], "tcp://127.0.0.1:%d", harness_free_port());
    }
    pid_t first = start_node("node-a", dir, ep[0], pub[0]);
    assert_int_equal(health_until_up(dir), 0);
    stop_node(first);

    /* other endpoints: node.json follows, and says so */
    pid_t second = start_node("node-b", dir, ep[1], pub[1]);
    assert_int_equal(health_until_up(dir), 0);
    char log[600];
    size_t len;
    snprintf(log, sizeof log, "%s/node-b.log", H->dir);
    char *text = schakel_file_read(log, 1 << 20, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, ep[1]));
    assert_non_null(strstr(text, "as given with --endpoint"));
    free(text);

    /* a second one while it runs: refused, naming it; node.json untouched */
    const char *again[] = {"node",  "--data", dir, "--no-services", "--endpoint", ep[0],
                           "--pub", pub[0],   NULL};
    snprintf(log, sizeof log, "%s/node-again.log", H->dir);
    pid_t p = harness_spawn(log, again);
    int st = 0, waited = 0;
    for (int i = 0; i < 100 && !(waited = waitpid(p, &st, WNOHANG) == p); i++) usleep(100000);
    if (!waited) {
        kill(p, SIGKILL);
        waitpid(p, &st, 0);
        fail_msg("a second node started on %s while the first one ran", dir);
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *err = schakel_file_read(log, 1 << 20, &len);
    assert_non_null(err);
    snprintf(pid, sizeof pid, "pid %d", (int)second);
    assert_non_null(strstr(err, "in use by another broker or node"));
    assert_non_null(strstr(err, pid));
    free(err);
    assert_int_equal(health_until_up(dir), 0);
    stop_node(second);

    /* no endpoints given: node.json's, not the defaults */
    pid_t third = start_node("node-c", dir, NULL, NULL);
    assert_int_equal(health_until_up(dir), 0);
    stop_node(third);
}

/* ---- flags ---- */

/* atoi and bare strtoull read "many" as 0 and "-1" as a huge number, and
 * the command went on with it: now each is a usage error naming the flag. */
static void bad_numbers_are_refused_naming_the_flag(void **state)
{
    (void)state;
    char data[600];
    snprintf(data, sizeof data, "%s/never", H->dir);
    const char *tail[] = {"tail", "--node", H->data, "--as", "svc-audit", "--count", "many", NULL};
    const char *publish[] = {"publish", "--node", H->data, "--as", SCHOOL, "--timeout-ms", "5s", NULL};
    const char *audit[] = {"audit", "checkpoints", "--data", H->data, "--from", "", NULL};
    const char *broker[] = {
        "broker", "--data", data, "--key", data, "--directory", data, "--checkpoint-every", "-1", NULL};
    struct {
        const char *tag, *const *args, *flag;
    } cases[] = {{"flags-tail", tail, "--count wants a whole number"},
                 {"flags-publish", publish, "--timeout-ms wants a whole number"},
                 {"flags-audit", audit, "--from wants a whole number"},
                 {"flags-broker", broker, "--checkpoint-every wants a whole number"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].tag, NULL, cases[i].args);
        char *err = output(cases[i].tag, "err"), *out = output(cases[i].tag, "out");
        if (rc != 2 || !strstr(err, cases[i].flag) || out[0])
            fail_msg("%s: exit %d, stderr \"%s\", stdout \"%.80s\": want 2 and \"%s\" only", cases[i].tag, rc,
                     err, out, cases[i].flag);
        free(err);
        free(out);
    }
}

/* ---- loops ---- */

/* `schakel loops` as JSON (json_decref it). */
static json_t *loops(const char *tag, const char *const *args)
{
    assert_int_equal(run(tag, NULL, args), 0);
    char *t = output(tag, "out");
    json_error_t e;
    json_t *j = json_loads(t, 0, &e);
    free(t);
    assert_non_null(j);
    return j;
}

static void loops_show_who_received_and_who_decided(void **state)
{
    (void)state;
    char p[65], json[1024], sid[33], rid[33], cid[33];
    uint8_t id[16], c[16], ref[16];
    /* a signal that asks for follow-up, without consent: smw gets a notice,
     * nobody has the signal itself */
    child("loops-signal", p);
    snprintf(
        json, sizeof json,
        "{\"type\":\"signal\",\"subject\":\"%s\",\"school\":\"34CD01\",\"purpose\":\"support\","
        "\"legal_basis\":\"consent\",\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],"
        "\"urgency\":\"soon\",\"observed_on\":\"2027-04-22\",\"raised_by\":\"teacher\","
        "\"follow_up_requested\":true}}",
        p);
    publish(SCHOOL, json, id);
    hex(id, 16, sid);
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    assert_null(find(&ds, "smw-farent", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    wait_services(harness_head(H));
    const char *one_signal[] = {"loops", "--node", H->data, "--referral", sid, "--org", SCHOOL, NULL};
    json_t *l = loops("loops-signal", one_signal);
    assert_string_equal(json_string_value(json_object_get(l, "origin")), "signal");
    assert_true(json_is_null(json_object_get(l, "receiver"))); /* not "" */
    json_decref(l);

    /* a referral with consent: delivered to the wijkteam by the consent service */
    child("loops-referral", p);
    consent(SCHOOL, p, "parents", "under_12", "wijkteam", cid, c);
    referral_with_id(SCHOOL, p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", rid, ref);
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    wait_services(harness_head(H));
    const char *one[] = {"loops", "--node", H->data, "--referral", rid, "--org", SCHOOL, NULL};
    l = loops("loops-referral", one);
    assert_string_equal(json_string_value(json_object_get(l, "receiver")), WIJKTEAM);
    json_t *hist = json_object_get(l, "history"), *step;
    size_t i, deliveries = 0;
    json_array_foreach(hist, i, step) {
        const char *ev = json_string_value(json_object_get(step, "event"));
        const char *by = json_string_value(json_object_get(step, "by"));
        if (!strcmp(ev, "referral")) {
            assert_string_equal(by, SCHOOL);
            assert_null(json_object_get(step, "to"));
        } else if (!strcmp(ev, "consent_decision")) {
            assert_string_equal(by, "svc-consent");                                        /* who decided */
            assert_string_equal(json_string_value(json_object_get(step, "to")), WIJKTEAM); /* who received */
            deliveries++;
        }
    }
    assert_int_equal(deliveries, 1);
    json_decref(l);
    /* the list too: the signal's loop has no receiver */
    const char *list[] = {"loops", "--node", H->data, "--org", SCHOOL, NULL};
    l = loops("loops-list", list);
    json_array_foreach(l, i, step) {
        const char *r = json_string_value(json_object_get(step, "referral_id"));
        if (!strcmp(r, sid)) assert_true(json_is_null(json_object_get(step, "receiver")));
        if (!strcmp(r, rid))
            assert_string_equal(json_string_value(json_object_get(step, "receiver")), WIJKTEAM);
    }
    json_decref(l);
}

/* ---- dead letters ---- */

/* Waits (60 s at most) until the adapter's status has `dead` dead letters
 * and nothing pending. */
static void wait_status(adapter_t *a, json_int_t dead)
{
    for (int i = 0; i < 600; i++) {
        json_t *s = adapter_status(a);
        json_int_t dl = s ? json_integer_value(json_object_get(s, "dead_letters")) : -1;
        json_int_t depth = s ? json_integer_value(json_object_get(s, "outbox_depth")) : -1;
        json_decref(s);
        if (dl == dead && depth == 0) return;
        usleep(100000);
    }
    fail_msg("%s: not %lld dead letters and an empty outbox in 60 s", a->org, (long long)dead);
}

/* Signals from org on the log. */
static size_t signals_on_log(const char *org)
{
    harness_reader_t rd = harness_read(H, "svc-audit", "all");
    size_t n = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        n += !strcmp(e->source_org, org) && e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL;
    }
    return n;
}

static void dead_letters_are_listed_then_requeued_after_a_fix(void **state)
{
    (void)state;
    adapter_t a;
    adapter_init(&a, "dead", SCHOOL, FIXTURE, NULL);
    directory_publish(SCHOOL, "signal", 0); /* the directory keeper's mistake */
    size_t before = signals_on_log(SCHOOL);
    char bsn[2][10], csv[512];
    synthetic_bsns(2, bsn);
    snprintf(csv, sizeof csv,
             "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
             "D1;%s;14-02-2016;Zuid;zorgsignaal;20-11-2026;gedrag;middel;;\n"
             "D2;%s;14-02-2016;Zuid;zorgsignaal;21-11-2026;gedrag;middel;;\n",
             bsn[0], bsn[1]);
    adapter_drop_text(&a, "signalen.csv", csv);
    adapter_start_ready(&a);
    wait_status(&a, 2);

    const char *list[] = {"adapter", "dead-letters", "--config", a.config, NULL};
    assert_int_equal(run("dead", NULL, list), 0);
    char *out = output("dead", "out");
    assert_null(strstr(out, bsn[0])); /* no personal data, no case reference */
    assert_null(strstr(out, "\"D1\""));
    assert_null(strstr(out, "subject"));
    char ids[2][33];
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        assert_non_null(j);
        assert_true(n < 2);
        assert_string_equal(json_string_value(json_object_get(j, "type")), "signal");
        assert_non_null(strstr(json_string_value(json_object_get(j, "reason")), "may not publish signal"));
        int64_t ms;
        assert_int_equal(schakel_time_parse(json_string_value(json_object_get(j, "refused_at")), &ms), 0);
        assert_int_equal(strlen(json_string_value(json_object_get(j, "event_id"))), 32);
        snprintf(ids[n++], 33, "%s", json_string_value(json_object_get(j, "event_id")));
        json_decref(j);
    }
    free(out);
    assert_int_equal(n, 2);

    /* arguments and ids that name nothing change nothing */
    const char *none[] = {"adapter", "requeue", "--config", a.config, NULL};
    assert_int_equal(run("requeue-none", NULL, none), 2);
    const char *unknown[] = {
        "adapter", "requeue", "--config", a.config, "--id", "00000000000000000000000000000000", NULL};
    assert_int_equal(run("requeue-unknown", NULL, unknown), 1);
    json_t *s = adapter_status(&a);
    assert_int_equal(json_integer_value(json_object_get(s, "dead_letters")), 2);
    json_decref(s);

    /* fixed: one by id, then the rest; each is sent once */
    directory_publish(SCHOOL, "signal", 1);
    const char *by_id[] = {"adapter", "requeue", "--config", a.config, "--id", ids[0], NULL};
    assert_int_equal(run("requeue-id", NULL, by_id), 0);
    out = output("requeue-id", "out");
    assert_int_equal(occurrences(out, "\"status\":\"requeued\""), 1);
    assert_non_null(strstr(out, ids[0]));
    free(out);
    wait_status(&a, 1);
    assert_int_equal(signals_on_log(SCHOOL), before + 1);
    const char *all[] = {"adapter", "requeue", "--config", a.config, "--all", NULL};
    assert_int_equal(run("requeue-all", NULL, all), 0);
    out = output("requeue-all", "out");
    assert_int_equal(occurrences(out, "\"status\":\"requeued\""), 1);
    assert_non_null(strstr(out, ids[1]));
    free(out);
    wait_status(&a, 0);
    assert_int_equal(signals_on_log(SCHOOL), before + 2);
    assert_int_equal(run("dead-after", NULL, list), 0);
    out = output("dead-after", "out");
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
}

/* ---- the repository stands alone ---- */

static const char *const outside[] = {"DESIGN"
                                      ".md",
                                      "DOMAIN"
                                      ".md",
                                      "../"
                                      "shared",
                                      "seeds"
                                      "/"};
static char cited[1200];

static int no_outside_citation(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode) || st->st_size > (4 << 20) || strstr(path, "/corpus/"))
        return 0;
    size_t len;
    char *text = schakel_file_read(path, (size_t)st->st_size + 1, &len);
    for (size_t i = 0; text && i < sizeof outside / sizeof outside[0] && !cited[0]; i++)
        if (memmem(text, len, outside[i], strlen(outside[i])))
            snprintf(cited, sizeof cited, "%s cites %s", path, outside[i]);
    free(text);
    return cited[0] != 0;
}

/* A reader of the docs, the code or the benchmarks needs nothing that is
 * not in the repository (the project's own notes are not). */
static void the_repository_cites_no_file_outside_it(void **state)
{
    (void)state;
    const char *const parts[] = {"docs",     "bench", "proto",  "lib",     "brokers",   "adapters",
                                 "services", "tools", "deploy", "scripts", "README.md", "CONTRIBUTING.md"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", SCHAKEL_SOURCE_DIR, parts[i]);
        cited[0] = 0;
        nftw(path, no_outside_citation, 16, FTW_PHYS);
        if (cited[0]) fail_msg("%s", cited);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keygen_makes_its_output_directory),
        cmocka_unit_test(help_names_what_really_runs),
        cmocka_unit_test(tail_reports_a_refusal_once),
        cmocka_unit_test(publish_tells_a_refused_key_from_no_broker),
        cmocka_unit_test(bad_numbers_are_refused_naming_the_flag),
        cmocka_unit_test(one_node_per_data_directory_and_node_json_follows),
        cmocka_unit_test(loops_show_who_received_and_who_decided),
        cmocka_unit_test(dead_letters_are_listed_then_requeued_after_a_fix),
        cmocka_unit_test(the_repository_cites_no_file_outside_it),
    };
    return cmocka_run_group_tests(tests, setup, adapters_node_teardown);
}
