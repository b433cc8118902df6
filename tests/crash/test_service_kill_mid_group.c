/* Crash test of the services' pipeline: a node's broker with the routing
 * and consent services as processes of their own, a steady stream of
 * referrals, and each service SIGKILLed in the middle of a pipelined
 * group, several times: the kill model (tests/crash/svckill.c, preloaded
 * into the service) kills it right before or right after the LMDB commit
 * of a group whose decisions were already sent to the broker, while the
 * groups before it are in flight too. Afterwards every referral has
 * exactly one routing decision, and one consent decision per recipient
 * that routing named: none lost, none stored twice; a service killed
 * after a commit sent its outbox again on restart; and `schakel audit
 * replay` finds the same decisions, byte for byte. Seed:
 * SCHAKEL_CRASH_SEED; kills per service: SCHAKEL_CRASH_ROUNDS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../integration/harness.h"
#include "../integration/scenario.h"
#include "json.h"

#define MAX_SENT 200000
#define MAX_TO 8
#define BATCH 20

/* H: the node (scenario.c) */
static atomic_int stop_publishing;
static uint64_t *sent; /* seqs of the referrals, in order */
static atomic_size_t n_sent;

typedef struct {
    const char *name;
    char log[600];
    pid_t pid;
    int kills; /* by the model so far */
    int after; /* kills after the commit: the outbox must be sent again */
} svc_t;

static svc_t svcs[2] = {{"routing", "", 0, 0, 0}, {"consent", "", 0, 0, 0}};

/* Starts the service; with a kill (kill_at > 0) at its kill_at-th group
 * that sent decisions, before or after that group's commit. */
static void svc_start(svc_t *s, int kill_at, int after)
{
    const char *args[] = {s->name, "--node", H->data, NULL};
    char n[16];
    snprintf(n, sizeof n, "%d", kill_at);
    if (kill_at) {
        setenv("SCHAKEL_SVCKILL_AT", n, 1);
        setenv("SCHAKEL_SVCKILL_WHEN", after ? "after" : "before", 1);
        setenv("LD_PRELOAD", SCHAKEL_SVCKILL_LIB, 1);
    }
    s->pid = harness_spawn(s->log, args);
    unsetenv("LD_PRELOAD");
    unsetenv("SCHAKEL_SVCKILL_AT");
    unsetenv("SCHAKEL_SVCKILL_WHEN");
    assert_true(s->pid > 0);
    if (kill_at) s->after += after;
}

static void svc_stop(svc_t *s, int sig)
{
    if (s->pid <= 0) return;
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* A referral about a new child, encoded as school-12ab00 publishes it. */
static void referral_event(unsigned k, uint8_t **buf, size_t *len)
{
    char subject[65], label[64], rid[33], json[1024], why[SCHAKEL_ERRLEN];
    snprintf(label, sizeof label, "mid-group-%u", k);
    child(label, subject);
    new_id(rid);
    snprintf(json, sizeof json,
             "{\"type\":\"referral\",\"subject\":\"%s\",\"district\":\"noord\",\"purpose\":\"support\","
             "\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
             "\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"wijkteam\",\"reasons\":[\"home_situation\"],"
             "\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
             subject, rid);
    schakel_envelope_t *e = schakel_json_parse_envelope(json, strlen(json), why);
    assert_non_null(e);
    uint8_t id[16];
    harness_event_id(id);
    e->event_id.data = id;
    e->event_id.len = 16;
    e->source_org = (char *)"school-12ab00";
    e->occurred_at = 1795000000000LL;
    *len = schakel__v1__envelope__get_packed_size(e);
    *buf = malloc(*len);
    schakel__v1__envelope__pack(e, *buf);
    e->event_id.data = NULL, e->event_id.len = 0;
    e->source_org = NULL;
    schakel_envelope_free(e);
}

/* A steady load: BATCH referrals every 10 ms, while the services run. */
static void *publisher(void *arg)
{
    (void)arg;
    schakel_client_t *c = harness_client(H, "school-12ab00");
    unsigned k = 0;
    while (!atomic_load(&stop_publishing) && atomic_load(&n_sent) + BATCH <= MAX_SENT) {
        uint8_t *bufs[BATCH];
        size_t lens[BATCH];
        for (int i = 0; i < BATCH; i++) referral_event(k++, &bufs[i], &lens[i]);
        Schakel__V1__Ack *ack = NULL;
        if (schakel_client_publish(c, (const uint8_t *const *)bufs, lens, BATCH, &ack, 20000) == 0) {
            for (size_t i = 0; i < ack->n_entries; i++)
                if (ack->entries[i]->code == 0 && !ack->entries[i]->duplicate)
                    sent[atomic_fetch_add(&n_sent, 1)] = ack->entries[i]->seq;
            schakel__v1__ack__free_unpacked(ack, NULL);
        }
        for (int i = 0; i < BATCH; i++) free(bufs[i]);
        usleep(10000);
    }
    schakel_client_destroy(&c);
    return NULL;
}

/* What the log says about one referral. */
typedef struct {
    int routed;          /* routing decisions about it */
    char to[MAX_TO][64]; /* the recipients the (first) one named */
    size_t n_to;
    int decided[MAX_TO]; /* consent decisions per recipient */
    int stray;           /* consent decisions for anyone else */
} about_t;

static about_t *abouts;

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static about_t *about_of(uint64_t seq, size_t n)
{
    uint64_t *hit = bsearch(&seq, sent, n, sizeof *sent, cmp_seq);
    return hit ? &abouts[hit - sent] : NULL;
}

/* Reads the whole log as svc-audit; a routing decision comes before the
 * consent decisions on it. */
static void read_log(size_t n)
{
    schakel_consumer_t *c = harness_consumer(H, "svc-audit", "all", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    while (schakel_consumer_next(c, &r, 1000, why) == 0) {
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(e);
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
            about_t *a = about_of(e->routing_decision->about_seq, n);
            if (a && a->routed++ == 0)
                for (size_t i = 0; i < e->routing_decision->n_recipients && a->n_to < MAX_TO; i++)
                    snprintf(a->to[a->n_to++], 64, "%s", e->routing_decision->recipients[i]->org_id);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
            about_t *a = about_of(e->consent_decision->about_seq, n);
            size_t i = 0;
            while (a && i < a->n_to && strcmp(a->to[i], e->consent_decision->recipient_org) != 0) i++;
            if (a && i < a->n_to) a->decided[i]++;
            else if (a) a->stray++;
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
}

static void wait_published(const char *service, uint64_t seq)
{
    for (int i = 0; i < 1800 && service_cursor(service) < seq; i++) usleep(100000);
    if (service_cursor(service) < seq)
        fail_msg("%s published up to %llu, not %llu, in 180 s", service,
                 (unsigned long long)service_cursor(service), (unsigned long long)seq);
}

/* Events a service sent again from its outbox on its starts (its log). */
static unsigned long resent(const svc_t *s)
{
    FILE *f = fopen(s->log, "r");
    char line[2048];
    unsigned long sum = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "event=outbox_resent events=");
        if (p) sum += strtoul(p + strlen("event=outbox_resent events="), NULL, 10);
    }
    if (f) fclose(f);
    return sum;
}

/* The end of a service's log, when a test fails. */
static void show_log(const svc_t *s)
{
    FILE *f = fopen(s->log, "r");
    char line[2048];
    printf("--- %s\n", s->log);
    while (f && fgets(line, sizeof line, f)) printf("%s", line);
    if (f) fclose(f);
}

/* Restarts each armed service the model killed (armed again until it
 * was killed `rounds` times) until both are done: whichever dies first,
 * since consent decides on what routing decided, and a routing left dead
 * would starve it. 120 s without a kill fails. */
static void kill_rounds(int rounds)
{
    int64_t idle = 0;
    while (svcs[0].kills < rounds || svcs[1].kills < rounds) {
        int any = 0;
        for (int i = 0; i < 2; i++) {
            svc_t *s = &svcs[i];
            int status = 0;
            if (s->kills >= rounds || waitpid(s->pid, &status, WNOHANG) != s->pid) continue;
            s->pid = 0;
            if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
                show_log(s);
                fail_msg("%s ended with status %d, not by the kill in its group", s->name, status);
            }
            s->kills++;
            int again = s->kills < rounds;
            svc_start(s, again ? 2 + rand() % 8 : 0, s->kills % 2); /* before, after, before, ... */
            any = 1;
        }
        idle = any ? 0 : idle + 10;
        if (idle >= 120000) {
            for (int i = 0; i < 2; i++) show_log(&svcs[i]);
            fail_msg("no service was killed in a group within 120 s: no decisions in flight?");
        }
        usleep(10000);
    }
}

static void every_decision_once_after_kills_mid_group(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 3;
    printf("mid-group kill test: seed=%u kills per service=%d\n", seed, rounds);
    srand(seed);
    sent = calloc(MAX_SENT, sizeof *sent);
    abouts = calloc(MAX_SENT, sizeof *abouts);
    pthread_t t;
    pthread_create(&t, NULL, publisher, NULL);
    for (int i = 0; i < 2; i++) {
        snprintf(svcs[i].log, sizeof svcs[i].log, "%s/%s.log", H->dir, svcs[i].name);
        svc_start(&svcs[i], 2 + rand() % 8, 0);
    }
    kill_rounds(rounds);
    usleep(300000);
    atomic_store(&stop_publishing, 1);
    pthread_join(t, NULL);
    size_t n = atomic_load(&n_sent);
    assert_true(n > 0);
    wait_published("routing", sent[n - 1]);
    wait_published("consent", harness_head(H)); /* after routing's decisions */

    read_log(n);
    size_t decisions = 0;
    for (size_t i = 0; i < n; i++) {
        about_t *a = &abouts[i];
        if (a->routed != 1)
            fail_msg("referral at seq %llu: %d routing decisions", (unsigned long long)sent[i], a->routed);
        if (a->n_to == 0) fail_msg("referral at seq %llu: routed to nobody", (unsigned long long)sent[i]);
        for (size_t j = 0; j < a->n_to; j++)
            if (a->decided[j] != 1)
                fail_msg("referral at seq %llu: %d consent decisions for %s", (unsigned long long)sent[i],
                         a->decided[j], a->to[j]);
        if (a->stray)
            fail_msg("referral at seq %llu: a consent decision for nobody routed",
                     (unsigned long long)sent[i]);
        decisions += 1 + a->n_to;
    }
    printf("mid-group kill test: %zu referrals, %zu decisions, %d kills after a commit\n", n, decisions,
           svcs[0].after + svcs[1].after);
    /* a kill after a group's commit leaves its decisions in the outbox,
     * whose ACKs are applied only by the next transaction */
    for (int i = 0; i < 2; i++) {
        printf("mid-group kill test: %s resent %lu from its outbox\n", svcs[i].name, resent(&svcs[i]));
        if (svcs[i].after && resent(&svcs[i]) == 0)
            fail_msg("%s was killed after a commit but sent nothing again", svcs[i].name);
    }
    for (int i = 0; i < 2; i++) svc_stop(&svcs[i], SIGTERM);
    assert_int_equal(harness_shutdown(H), 0);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);
    free(abouts);
    free(sent);
}

static int setup(void **state)
{
    (void)state;
    char asan[512];
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0",
             getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "", getenv("ASAN_OPTIONS") ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1); /* the model comes before the sanitizer's runtime */
    H = harness_new_node();
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "--no-services");
    if (harness_start(H) != 0) return -1;
    change_directory(0);
    tick(at("2026-11-16T09:00:00Z"));
    return 0;
}

/* Runs also when an assertion failed: no process outlives the test. */
static int teardown(void **state)
{
    (void)state;
    atomic_store(&stop_publishing, 1);
    for (int i = 0; i < 2; i++) svc_stop(&svcs[i], SIGKILL);
    unsetenv("LD_PRELOAD");
    harness_destroy(&H);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_decision_once_after_kills_mid_group, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
