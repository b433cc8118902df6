/* An adapter reports its health on the bus (docs/events.md,
 * adapter_status): a real adapter whose events the broker refuses holds
 * dead letters, and publishes an adapter_status that says so, signed as
 * its organisation; the status names no child (no subject, no school, no
 * case reference, no pseudonym of the refused events), and routing
 * delivers it to nobody. Its version is the build's (CMakeLists.txt's,
 * with the git commit in a checkout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "harness.h"
#include "json.h"
#include "scenario.h"

#define FIXTURE SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json"
#define SCHOOL "school-34cd01"

/* The version this build's adapter should carry, found here apart from
 * cmake: CMakeLists.txt's project VERSION and, when the source is a git
 * checkout, "+g" and its commit (12 hex digits). */
static void build_version(char *out, size_t cap)
{
    FILE *f = fopen(SCHAKEL_SOURCE_DIR "/CMakeLists.txt", "r");
    assert_non_null(f);
    char line[256], project[32] = "";
    const char *lead = "project(schakel VERSION ";
    while (!project[0] && fgets(line, sizeof line, f)) {
        if (strncmp(line, lead, strlen(lead)) != 0) continue;
        size_t n = strspn(line + strlen(lead), "0123456789.");
        if (n && n < sizeof project) memcpy(project, line + strlen(lead), n), project[n] = 0;
    }
    fclose(f);
    assert_true(project[0] != 0);
    char commit[64] = "";
    FILE *git = popen("git -C '" SCHAKEL_SOURCE_DIR "' rev-parse --short=12 HEAD 2>/dev/null", "r");
    if (git) {
        if (!fgets(commit, sizeof commit, git)) commit[0] = 0;
        commit[strcspn(commit, "\n")] = 0;
        if (pclose(git) != 0) commit[0] = 0;
    }
    snprintf(out, cap, "%s%s%s", project, commit[0] ? "+g" : "", commit);
}

/* The last adapter_status from org on the log, as JSON (json_decref it),
 * or NULL; *seq is where it is. */
static json_t *last_status(const char *org, uint64_t *seq)
{
    json_t *last = NULL;
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
        if (rd.e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS || strcmp(rd.e->source_org, org))
            continue;
        json_decref(last);
        last = schakel_json_from_envelope(rd.e);
        *seq = rd.r->seq;
    }
    return last;
}

/* Is there a routing or consent decision about an event of this id? */
static int decided_about(const char *event_id_hex)
{
    int found = 0;
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
        const char *body =
            rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION   ? "routing_decision"
            : rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION ? "consent_decision"
                                                                                 : NULL;
        if (!body) continue;
        json_t *e = schakel_json_from_envelope(rd.e);
        const char *about = json_string_value(json_object_get(json_object_get(e, body), "about_event_id"));
        if (about && !strcmp(about, event_id_hex)) found = 1;
        json_decref(e);
    }
    return found;
}

/* Waits up to 15 s for the monitor's /metrics to hold the line want. */
static int metrics_say(int port, const char *want)
{
    for (int i = 0; i < 150; i++) {
        char *body = NULL;
        int found = http_get(port, "/metrics", &body, 3000L) == 200 && body && strstr(body, want);
        free(body);
        if (found) return 1;
        usleep(100000);
    }
    return 0;
}

static void an_adapter_with_dead_letters_says_so_and_names_no_child(void **state)
{
    (void)state;
    adapter_t a;
    adapter_init(&a, "status", SCHOOL, FIXTURE, NULL);
    directory_publish(SCHOOL, "signal", 0); /* its signals become dead letters */
    char bsn[2][10], csv[512];
    synthetic_bsns(2, bsn);
    snprintf(csv, sizeof csv,
             "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
             "S1;%s;14-02-2016;Zuid;zorgsignaal;20-11-2026;gedrag;middel;;\n"
             "S2;%s;14-02-2016;Zuid;zorgsignaal;21-11-2026;gedrag;middel;;\n",
             bsn[0], bsn[1]);
    adapter_drop_text(&a, "signalen.csv", csv);
    /* the region's monitor beside the node: it reads the statuses off the log */
    char mlog[600], listen[64];
    int mon_port = harness_free_port();
    snprintf(mlog, sizeof mlog, "%s/monitor.log", H->dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", mon_port);
    const char *margs[] = {"monitor", "--node", H->data, "--http", listen, NULL};
    pid_t monitor = harness_spawn(mlog, margs);
    assert_true(monitor > 0);
    /* the monitor counts what is appended after its first round: let it
     * have one before the adapter publishes anything */
    if (!metrics_say(mon_port, "schakel_broker_up 1\n")) fail_msg("the monitor never answered");
    adapter_start_ready(&a);

    json_t *st = NULL;
    uint64_t seq = 0;
    for (int i = 0; i < 300; i++) {
        st = last_status(SCHOOL, &seq);
        json_t *body = json_object_get(st, "adapter_status");
        if (body && json_integer_value(json_object_get(body, "dead_letters")) == 2) break;
        json_decref(st);
        st = NULL;
        usleep(100000);
    }
    if (!st) fail_msg("no adapter_status with 2 dead letters from %s in 30 s", SCHOOL);
    json_t *body = json_object_get(st, "adapter_status");
    assert_string_equal(json_string_value(json_object_get(body, "last_error")), "events_rejected");
    assert_int_equal(json_integer_value(json_object_get(body, "outbox_depth")), 0);
    char version[64];
    build_version(version, sizeof version);
    assert_string_equal(json_string_value(json_object_get(body, "adapter_version")), version);
    assert_string_equal(json_string_value(json_object_get(st, "purpose")), "bus");
    /* and the operator sees it on /metrics, by organisation only */
    if (!metrics_say(mon_port, "schakel_adapter_dead_letters{org=\"" SCHOOL "\"} 2\n"))
        fail_msg("the monitor's /metrics never showed the school's 2 dead letters");
    if (!metrics_say(mon_port, "schakel_adapter_info{org=\"" SCHOOL "\",code=\"events_rejected\"} 1\n"))
        fail_msg("the monitor's /metrics never showed the school's last error");

    /* nothing about a child: no subject, school or case, not the refused
     * events' pseudonyms or rows */
    char *text = json_dumps(st, JSON_COMPACT);
    const char *never[] = {"\"subject\"", "\"school\"", "\"case_ref\"", "\"district\"", "S1", bsn[0], bsn[1]};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strstr(text, never[i])) fail_msg("adapter_status carries %s: %s", never[i], text);
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);)
        if (rd.e->subject[0] && strstr(text, rd.e->subject)) fail_msg("a pseudonym in %s", text);

    /* to nobody: no decision about it, and not in the school's own stream */
    const char *id = json_string_value(json_object_get(st, "event_id"));
    wait_services(seq);
    assert_false(decided_about(id));
    for (harness_reader_t rd = harness_read(H, SCHOOL, NULL); harness_next(&rd);)
        assert_int_not_equal(rd.e->type, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS);
    free(text);
    json_decref(st);

    /* fixed and requeued: the next status says the dead letters are gone */
    directory_publish(SCHOOL, "signal", 1);
    const char *all[] = {"adapter", "requeue", "--config", a.config, "--all", NULL};
    assert_int_equal(harness_run_tool(NULL, all), 0);
    for (int i = 0; i < 300; i++) {
        st = last_status(SCHOOL, &seq);
        body = json_object_get(st, "adapter_status");
        if (body && json_integer_value(json_object_get(body, "dead_letters")) == 0 &&
            !strcmp(json_string_value(json_object_get(body, "last_error")), "none"))
            break;
        json_decref(st);
        st = NULL;
        usleep(100000);
    }
    if (!st) fail_msg("no adapter_status with 0 dead letters after the requeue in 30 s");
    json_decref(st);
    if (!metrics_say(mon_port, "schakel_adapter_dead_letters{org=\"" SCHOOL "\"} 0\n"))
        fail_msg("the monitor's /metrics still shows dead letters after the requeue");
    kill(monitor, SIGTERM);
    (void)waitpid(monitor, NULL, 0);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_adapter_with_dead_letters_says_so_and_names_no_child),
    };
    return cmocka_run_group_tests(tests, adapters_node_setup, adapters_node_teardown);
}
