/* Crash test of the services' outbox: a node's broker with the routing
 * and consent services as processes of their own, a steady stream of
 * referrals, and one of the services SIGKILLed at random moments (so with
 * decisions committed in its outbox and not yet ACKed, or ACKed and not
 * yet removed) and started again, several times; every other time the
 * broker is SIGKILLed shortly before the service, so that decisions the
 * service committed meanwhile exist only in its outbox. Afterwards every
 * referral has exactly one routing decision, and one consent decision per
 * recipient that routing named: none lost, none stored twice. And the
 * decisions still follow from the log (`schakel audit replay`). Seed:
 * SCHAKEL_CRASH_SEED; rounds: SCHAKEL_CRASH_ROUNDS. */
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

#define MAX_SENT 100000
#define MAX_TO 8
#define BATCH 10

/* H: the node (scenario.c) */
static atomic_int stop_publishing;
static uint64_t *sent; /* seqs of the referrals, in order */
static atomic_size_t n_sent;

typedef struct {
    const char *name;
    char log[600];
    pid_t pid;
} svc_t;

static svc_t svcs[2] = {{"routing", "", 0}, {"consent", "", 0}};

static void svc_start(svc_t *s)
{
    const char *args[] = {s->name, "--node", H->data, NULL};
    s->pid = harness_spawn(s->log, args);
    assert_true(s->pid > 0);
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
    snprintf(label, sizeof label, "outbox-crash-%u", k);
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

/* A steady stream: a batch of BATCH referrals every 10 ms. */
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

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static about_t *about_of(uint64_t seq, size_t n)
{
    static about_t *abouts;
    if (!abouts) abouts = calloc(MAX_SENT, sizeof *abouts);
    uint64_t *hit = bsearch(&seq, sent, n, sizeof *sent, cmp_seq);
    return hit ? &abouts[hit - sent] : NULL;
}

static void note_consent(about_t *a, const char *org)
{
    for (size_t i = 0; i < a->n_to; i++)
        if (!strcmp(a->to[i], org)) {
            a->decided[i]++;
            return;
        }
    a->stray++;
}

/* Reads the whole log as svc-audit. Decisions follow what they are about,
 * so a routing decision is read before the consent decisions on it. */
static void read_log(size_t n, uint64_t *records)
{
    schakel_consumer_t *c = harness_consumer(H, "svc-audit", "all", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    *records = 0;
    while (schakel_consumer_next(c, &r, 1000, why) == 0) {
        (*records)++;
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(e);
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
            about_t *a = about_of(e->routing_decision->about_seq, n);
            if (a && a->routed++ == 0)
                for (size_t i = 0; i < e->routing_decision->n_recipients && a->n_to < MAX_TO; i++)
                    snprintf(a->to[a->n_to++], 64, "%s", e->routing_decision->recipients[i]->org_id);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
            about_t *a = about_of(e->consent_decision->about_seq, n);
            if (a) note_consent(a, e->consent_decision->recipient_org);
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
}

/* Waits (60 s at most) until what service derived up to seq is on the log. */
static void wait_published(const char *service, uint64_t seq)
{
    for (int i = 0; i < 600 && service_cursor(service) < seq; i++) usleep(100000);
    if (service_cursor(service) < seq)
        fail_msg("%s published up to %llu, not %llu, in 60 s", service,
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

static void every_decision_once_across_sigkills(void **state)
{
    (void)state;
    unsigned seed =
        getenv("SCHAKEL_CRASH_SEED") ? (unsigned)atoi(getenv("SCHAKEL_CRASH_SEED")) : (unsigned)time(NULL);
    int rounds = getenv("SCHAKEL_CRASH_ROUNDS") ? atoi(getenv("SCHAKEL_CRASH_ROUNDS")) : 8;
    printf("service outbox crash test: seed=%u rounds=%d\n", seed, rounds);
    srand(seed);
    sent = calloc(MAX_SENT, sizeof *sent);
    for (int i = 0; i < 2; i++) {
        snprintf(svcs[i].log, sizeof svcs[i].log, "%s/%s.log", H->dir, svcs[i].name);
        svc_start(&svcs[i]);
    }
    pthread_t t;
    pthread_create(&t, NULL, publisher, NULL);
    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(200000 + rand() % 700000));
        svc_t *s = &svcs[r % 2];
        if (r % 4 < 2) {
            svc_stop(s, SIGKILL);
            usleep((useconds_t)(rand() % 150000));
            svc_start(s);
            continue;
        }
        /* The broker dies first: what the service commits meanwhile is in
         * its outbox only (the broker lost what it had not appended). */
        harness_stop(H, SIGKILL);
        usleep((useconds_t)(rand() % 400000));
        svc_stop(s, SIGKILL);
        assert_int_equal(harness_start(H), 0);
        svc_start(s);
    }
    usleep(300000);
    atomic_store(&stop_publishing, 1);
    pthread_join(t, NULL);
    size_t n = atomic_load(&n_sent);
    assert_true(n > 0);
    uint64_t last = sent[n - 1];
    wait_published("routing", last);
    wait_published("consent", harness_head(H)); /* after routing's decisions */

    uint64_t records;
    read_log(n, &records);
    size_t decisions = 0;
    for (size_t i = 0; i < n; i++) {
        about_t *a = about_of(sent[i], n);
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
    printf("service outbox crash test: %zu referrals, %zu decisions, %llu records, head %llu\n", n, decisions,
           (unsigned long long)records, (unsigned long long)last);
    /* the kills hit decisions in flight: some were sent again on start */
    printf("service outbox crash test: resent from the outbox: routing %lu, consent %lu\n", resent(&svcs[0]),
           resent(&svcs[1]));
    for (int i = 0; i < 2; i++) svc_stop(&svcs[i], SIGTERM);
    assert_int_equal(harness_shutdown(H), 0);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);
    free(sent);
}

static int setup(void **state)
{
    (void)state;
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
    harness_destroy(&H);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_decision_once_across_sigkills, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
