/* The services under load, for the crash tests that kill them (svcload.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "svcload.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"

#define MAX_TO 8

svc_t svcs[2] = {{"routing", "", 0, 0, 0}, {"consent", "", 0, 0, 0}};
uint64_t *sent;
atomic_size_t n_sent;
atomic_int stop_publishing;

void svc_start_plain(svc_t *s)
{
    const char *args[] = {s->name, "--node", H->data, NULL};
    s->pid = harness_spawn(s->log, args);
    assert_true(s->pid > 0);
}

void svc_stop(svc_t *s, int sig)
{
    if (s->pid <= 0) return;
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* A referral about a new child, encoded as school-12ab00 publishes it. */
static void referral_event(const char *prefix, unsigned k, uint8_t **buf, size_t *len)
{
    char subject[65], label[64], rid[33], json[1024], why[SCHAKEL_ERRLEN];
    snprintf(label, sizeof label, "%s-%u", prefix, k);
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

static struct {
    const char *label;
    int batch;
    size_t max_sent;
} load;

/* A steady stream: a batch of referrals every 10 ms. */
static void *publisher(void *arg)
{
    (void)arg;
    enum { MAX_BATCH = 64 };
    schakel_client_t *c = harness_client(H, "school-12ab00");
    unsigned k = 0;
    int batch = load.batch < MAX_BATCH ? load.batch : MAX_BATCH;
    while (!atomic_load(&stop_publishing) && atomic_load(&n_sent) + (size_t)batch <= load.max_sent) {
        uint8_t *bufs[MAX_BATCH];
        size_t lens[MAX_BATCH];
        for (int i = 0; i < batch; i++) referral_event(load.label, k++, &bufs[i], &lens[i]);
        Schakel__V1__Ack *ack = NULL;
        if (schakel_client_publish(c, (const uint8_t *const *)bufs, lens, (size_t)batch, &ack, 20000) == 0) {
            for (size_t i = 0; i < ack->n_entries; i++)
                if (ack->entries[i]->code == 0 && !ack->entries[i]->duplicate)
                    sent[atomic_fetch_add(&n_sent, 1)] = ack->entries[i]->seq;
            schakel__v1__ack__free_unpacked(ack, NULL);
        }
        for (int i = 0; i < batch; i++) free(bufs[i]);
        usleep(10000);
    }
    schakel_client_destroy(&c);
    return NULL;
}

void svcload_publish(const char *label, int batch, size_t max_sent, pthread_t *t)
{
    load.label = label;
    load.batch = batch;
    load.max_sent = max_sent;
    sent = calloc(max_sent, sizeof *sent);
    assert_non_null(sent);
    assert_int_equal(pthread_create(t, NULL, publisher, NULL), 0);
}

size_t svcload_join(pthread_t t)
{
    atomic_store(&stop_publishing, 1);
    pthread_join(t, NULL);
    size_t n = atomic_load(&n_sent);
    assert_true(n > 0);
    return n;
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

static about_t *about_of(about_t *abouts, uint64_t seq, size_t n)
{
    uint64_t *hit = bsearch(&seq, sent, n, sizeof *sent, cmp_seq);
    return hit ? &abouts[hit - sent] : NULL;
}

/* Reads the whole log as svc-audit. Decisions follow what they are about,
 * so a routing decision is read before the consent decisions on it. */
static uint64_t read_log(about_t *abouts, size_t n)
{
    schakel_consumer_t *c = harness_consumer(H, "svc-audit", "all", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    uint64_t records = 0;
    while (schakel_consumer_next(c, &r, 1000, why) == 0) {
        records++;
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(e);
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
            about_t *a = about_of(abouts, e->routing_decision->about_seq, n);
            if (a && a->routed++ == 0)
                for (size_t i = 0; i < e->routing_decision->n_recipients && a->n_to < MAX_TO; i++)
                    snprintf(a->to[a->n_to++], 64, "%s", e->routing_decision->recipients[i]->org_id);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
            about_t *a = about_of(abouts, e->consent_decision->about_seq, n);
            size_t i = 0;
            while (a && i < a->n_to && strcmp(a->to[i], e->consent_decision->recipient_org) != 0) i++;
            if (a && i < a->n_to) a->decided[i]++;
            else if (a) a->stray++;
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
    return records;
}

size_t every_decision_once(size_t n, uint64_t *records)
{
    about_t *abouts = calloc(n, sizeof *abouts);
    assert_non_null(abouts);
    uint64_t read = read_log(abouts, n);
    if (records) *records = read;
    size_t decisions = 0;
    for (size_t i = 0; i < n; i++) {
        const about_t *a = &abouts[i];
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
    free(abouts);
    return decisions;
}

void wait_published(const char *service, uint64_t seq, int seconds)
{
    for (int i = 0; i < seconds * 10 && service_cursor(service) < seq; i++) usleep(100000);
    if (service_cursor(service) < seq)
        fail_msg("%s published up to %llu, not %llu, in %d s", service,
                 (unsigned long long)service_cursor(service), (unsigned long long)seq, seconds);
}

unsigned long resent(const svc_t *s)
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

void svcload_replay_equal(void)
{
    for (int i = 0; i < 2; i++) svc_stop(&svcs[i], SIGTERM);
    assert_int_equal(harness_shutdown(H), 0);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);
    free(sent);
    sent = NULL;
}

int svcload_setup(void **state)
{
    (void)state;
    H = harness_new_node();
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "--no-services");
    if (harness_start(H) != 0) return -1;
    change_directory(0);
    tick(at("2026-11-16T09:00:00Z"));
    for (int i = 0; i < 2; i++) snprintf(svcs[i].log, sizeof svcs[i].log, "%s/%s.log", H->dir, svcs[i].name);
    return 0;
}

int svcload_teardown(void **state)
{
    (void)state;
    atomic_store(&stop_publishing, 1);
    for (int i = 0; i < 2; i++) svc_stop(&svcs[i], SIGKILL);
    harness_destroy(&H);
    return 0;
}
