/* The bus on the jetstream log backend, against a real three-node NATS
 * JetStream cluster (nats_cluster.h): what is ACKed is on the replicated
 * stream, read back through FETCH and verified; a lost local index is
 * rebuilt from the stream with the same head hash; an unreachable cluster
 * stops the start with a clear error; a cluster without quorum gives
 * REJECT_RETRY_LATER with a reason, never an ACK, and the resend after it
 * recovers is stored once; of two brokers on one stream the one without
 * the writer lease stands by, takes over when it lapses, and a deposed
 * writer that still believes it holds it cannot fork the chain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>
#include <zmq.h>

#include "bytes.h"
#include "harness.h"
#include "nats_cluster.h"
#include "broker.h"
#include "store_audit.h"
#include "store_jetstream.h"
#include "wire.h"

#define STREAM "SCHAKEL_BUS"

static nats_cluster_t *C;
static harness_t *H;

static void use_cluster(harness_t *h, const char *region)
{
    snprintf(h->extra_args[h->n_extra++], sizeof h->extra_args[0], "--log");
    int n = snprintf(h->extra_args[h->n_extra++], sizeof h->extra_args[0], "%s/%s", C->url, region);
    assert_true(n < (int)sizeof h->extra_args[0]);
}

static uint64_t stream_last_seq(void)
{
    return nats_cluster_stream_last(C, STREAM);
}

static void head_of(harness_t *h, schakel_verify_report_t *r)
{
    char log[512];
    snprintf(log, sizeof log, "%s/log", h->data);
    assert_int_equal(schakel_lmdb_verify(log, NULL, NULL, r), 0);
}

static void acked_events_are_on_the_stream_and_read_back(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 20, 0), 20);
    assert_int_equal(harness_publish_signals(H, "smw-b", 10, 100), 10);
    size_t signals = 0;
    for (harness_reader_t rd = harness_read(H, "svc-reader", "all"); harness_next(&rd);)
        if (rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL) signals++;
    assert_int_equal(signals, 30);
    assert_int_equal(harness_shutdown(H), 0);
    schakel_verify_report_t r;
    head_of(H, &r);
    uint64_t last = stream_last_seq();
    printf("jetstream bus: %zu signals read back, local head %llu, stream last seq %llu\n", signals,
           (unsigned long long)r.head, (unsigned long long)last);
    assert_true(r.head >= 30);
    assert_int_equal(last, r.head); /* every record on the stream, at its own seq */
    const char *args[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(NULL, args), 0);

    /* the index is the stream's: no broker appends to it without the
     * stream, nor with another region's */
    char key[512], other[200];
    snprintf(key, sizeof key, "%s/broker.key", H->keys);
    snprintf(other, sizeof other, "%s/other", C->url);
    const char *bare[] = {"broker",        "--data",     H->data,      "--key",     key,
                          "--directory",   H->directory, "--endpoint", H->endpoint, "--pub",
                          H->pub_endpoint, NULL,         NULL,         NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(harness_run_captured(H->dir, bare, &out, &err), 1);
    printf("jetstream bus: without --log: %s", err);
    assert_non_null(strstr(err, "is the local index of JetStream stream SCHAKEL_BUS: start with --log"));
    free(out);
    free(err);
    bare[11] = "--log";
    bare[12] = other;
    assert_int_equal(harness_run_captured(H->dir, bare, &out, &err), 1);
    printf("jetstream bus: another region: %s", err);
    assert_non_null(strstr(err, "is the local index of stream SCHAKEL_BUS, not SCHAKEL_OTHER"));
    free(out);
    free(err);
}

/* The local index in dir verifies with every payload decrypting. */
static void verify_payloads(const char *dir, const uint8_t master[32], schakel_verify_report_t *r)
{
    int rc = schakel_lmdb_verify_with(dir, NULL, master, SCHAKEL_VERIFY_PAYLOADS, r);
    if (rc) printf("verify %s: %s at %llu\n", dir, r->why, (unsigned long long)r->bad_seq);
    assert_int_equal(rc, 0);
}

static void a_lost_local_index_is_rebuilt_from_the_stream(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 15, 0), 15);
    harness_stop(H, SIGKILL);
    char cmd[600], log[512], rebuilt[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/log'", H->data);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_start(H), 0); /* applies the stream to an empty index */
    assert_int_equal(harness_publish_signals(H, "school-a", 5, 50), 5);
    size_t signals = 0;
    for (harness_reader_t rd = harness_read(H, "svc-reader", "all"); harness_next(&rd);)
        signals += rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL;
    assert_int_equal(signals, 20);
    assert_int_equal(harness_shutdown(H), 0);
    uint8_t master[32];
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_broker_master_key(H->data, master, why), 0);
    snprintf(log, sizeof log, "%s/log", H->data);
    schakel_verify_report_t local, again;
    verify_payloads(log, master, &local);

    /* a third index, from the stream alone: the same chain, every payload opens */
    snprintf(rebuilt, sizeof rebuilt, "%s/rebuilt", H->dir);
    schakel_jetstream_options_t o = {.local = {.dir = rebuilt}, .url = H->extra_args[1]};
    memcpy(o.local.master_key, master, 32);
    schakel_store_t *s = schakel_store_open_jetstream(&o, why);
    if (!s) printf("open: %s\n", why);
    assert_non_null(s);
    schakel_store_close(&s);
    verify_payloads(rebuilt, master, &again);
    printf(
        "jetstream bus: index rebuilt from the stream: %llu records, head %llu (local %llu), same hash: %s\n",
        (unsigned long long)again.records, (unsigned long long)again.head, (unsigned long long)local.head,
        memcmp(again.head_hash, local.head_hash, 32) ? "no" : "yes");
    assert_int_equal(again.head, local.head);
    assert_memory_equal(again.head_hash, local.head_hash, 32);
    assert_int_equal(stream_last_seq(), local.head);
}

static void an_unreachable_cluster_stops_the_start(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d/bus", harness_free_port());
    char key[512];
    snprintf(key, sizeof key, "%s/broker.key", H->keys);
    const char *args[] = {"broker",        "--data",     H->data,      "--key",     key,
                          "--directory",   H->directory, "--endpoint", H->endpoint, "--pub",
                          H->pub_endpoint, "--log",      url,          NULL};
    char *out = NULL, *err = NULL;
    int status = harness_run_captured(H->dir, args, &out, &err);
    printf("jetstream bus: unreachable cluster: exit %d: %s", status, err ? err : "");
    assert_int_equal(status, 1);
    assert_non_null(strstr(err, "is not reachable"));
    free(out);
    free(err);
    const char *bad[] = {"broker",     "--data", H->data,
                         "--key",      key,      "--directory",
                         H->directory, "--log",  "nats://127.0.0.1/bus",
                         NULL};
    status = harness_run_captured(H->dir, bad, &out, &err);
    assert_int_equal(status, 2);
    assert_non_null(strstr(err, "is not host:port"));
    free(out);
    free(err);
}

/* A raw CURVE DEALER for org: the client library would resend a
 * REJECT_RETRY_LATER on its own, and the test wants to see it. */
static void *raw_socket(const char *org)
{
    schakel_keys_t k;
    harness_keys(H, org, &k);
    void *s = zmq_socket(H->ctx, ZMQ_DEALER);
    int zero = 0, t = 20000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    assert_int_equal(schakel_wire_curve_client(s, &k, H->server_public), 0);
    assert_int_equal(zmq_connect(s, H->endpoint), 0);
    return s;
}

/* Sends a PUBLISH and returns its ACK's single entry code, seq, duplicate
 * flag and reason (cap bytes). */
static int raw_publish(void *s, const uint8_t *body, size_t len, uint64_t *seq, int *dup, char *reason,
                       size_t cap)
{
    static uint64_t req = 1;
    uint8_t id[8];
    schakel_put_be64(id, req++);
    zmq_send(s, "PUBLISH", 7, ZMQ_SNDMORE);
    zmq_send(s, id, 8, ZMQ_SNDMORE);
    zmq_send(s, body, len, 0);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(s, 0, &m, 0), 0);
    assert_string_equal(m.name, "ACK");
    Schakel__V1__Ack *a = schakel__v1__ack__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    schakel_wire_close(&m);
    assert_non_null(a);
    assert_int_equal(a->n_entries, 1);
    int code = a->entries[0]->code;
    *seq = a->entries[0]->seq;
    *dup = a->entries[0]->duplicate;
    snprintf(reason, cap, "%s", a->entries[0]->reason ? a->entries[0]->reason : "");
    schakel__v1__ack__free_unpacked(a, NULL);
    return code;
}

static void lost_quorum_is_retry_later_and_the_resend_is_stored_once(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 3, 0), 3);
    int leader = nats_cluster_stream_leader(C, STREAM, 5000);
    assert_true(leader >= 0);
    /* two of three gone: no quorum for the stream */
    int other = (leader + 1) % NATS_NODES;
    nats_cluster_kill(C, other);
    nats_cluster_kill(C, leader);
    Schakel__V1__Publish p;
    harness_publish_new(H, "school-a", 1, 1, &p);
    size_t len = schakel__v1__publish__get_packed_size(&p);
    uint8_t *body = malloc(len), id[16];
    schakel__v1__publish__pack(&p, body);
    schakel_envelope_t *env = schakel_envelope_decode(p.events[0].data, p.events[0].len, NULL);
    assert_non_null(env);
    memcpy(id, env->event_id.data, 16);
    schakel_envelope_free(env);
    harness_publish_free(&p);
    void *s = raw_socket("school-a");
    uint64_t seq = 0;
    int dup = 0;
    char reason[512];
    int code = raw_publish(s, body, len, &seq, &dup, reason, sizeof reason);
    printf("jetstream bus: without quorum: code %d: %s\n", code, reason);
    assert_int_equal(code, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER);
    assert_non_null(strstr(reason, "send again later"));
    assert_int_equal(nats_cluster_restart(C, other), 0);
    assert_int_equal(nats_cluster_restart(C, leader), 0);
    /* the same batch again until the cluster takes it */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 60; i++) {
        code = raw_publish(s, body, len, &seq, &dup, reason, sizeof reason);
        if (code == 0) break;
        usleep(500000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("jetstream bus: ACKed at seq %llu %ld ms after the servers came back\n", (unsigned long long)seq,
           (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    assert_int_equal(code, 0);
    uint64_t again = 0;
    assert_int_equal(raw_publish(s, body, len, &again, &dup, reason, sizeof reason), 0);
    assert_int_equal(again, seq); /* once more: a duplicate of that seq */
    assert_true(dup);
    zmq_close(s);
    free(body);
    size_t copies = 0;
    for (harness_reader_t rd = harness_read(H, "svc-reader", "all"); harness_next(&rd);)
        copies += rd.e->event_id.len == 16 && !memcmp(rd.e->event_id.data, id, 16);
    assert_int_equal(copies, 1);
    assert_int_equal(harness_shutdown(H), 0);
    schakel_verify_report_t r;
    head_of(H, &r);
    assert_int_equal(stream_last_seq(), r.head);
}

/* A second broker on the same stream, with the first one's keys and master
 * key: the same region's log, not another. */
static harness_t *second_broker(void)
{
    harness_t *h2 = harness_new();
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "cp -a '%s'/. '%s'/ && cp '%s' '%s' && mkdir -p '%s' && cp '%s/master.key' '%s/'", H->keys,
             h2->keys, H->directory, h2->directory, h2->data, H->data, h2->data);
    assert_int_equal(system(cmd), 0);
    memcpy(h2->server_public, H->server_public, sizeof h2->server_public);
    memcpy(h2->extra_args, H->extra_args, sizeof h2->extra_args);
    h2->n_extra = H->n_extra;
    return h2;
}

/* Publishes one fresh signal as school-a through h, sending it again
 * after REJECT_RETRY_LATER as a client does, at most tries times, pause_ms
 * apart; the seq it was ACKed at (0: never), the first answer's code and
 * reason in *first and first_reason, the last answer's reason in last. */
static uint64_t publish_through(harness_t *h, int tries, int pause_ms, int *first, char *first_reason,
                                char *last, size_t cap)
{
    harness_t *saved = H;
    H = h; /* raw_socket connects to H */
    Schakel__V1__Publish p;
    harness_publish_new(h, "school-a", 1, 1, &p);
    size_t len = schakel__v1__publish__get_packed_size(&p);
    uint8_t *body = malloc(len);
    schakel__v1__publish__pack(&p, body);
    harness_publish_free(&p);
    void *s = raw_socket("school-a");
    uint64_t seq = 0;
    int dup = 0, code = -1;
    for (int i = 0; i < tries && code != 0; i++) {
        if (i) usleep((useconds_t)pause_ms * 1000);
        code = raw_publish(s, body, len, &seq, &dup, last, cap);
        if (i == 0) *first = code, snprintf(first_reason, cap, "%s", last);
    }
    zmq_close(s);
    free(body);
    H = saved;
    return code == 0 ? seq : 0;
}

/* --lease-ms for h and the brokers copied from it. */
static void lease_ms(harness_t *h, const char *ms)
{
    snprintf(h->extra_args[h->n_extra++], sizeof h->extra_args[0], "--lease-ms");
    snprintf(h->extra_args[h->n_extra++], sizeof h->extra_args[0], "%s", ms);
}

/* Does h's broker log hold what? */
static int logged(const harness_t *h, const char *what)
{
    char path[600], line[2048];
    snprintf(path, sizeof path, "%s/broker.log", h->dir);
    FILE *f = fopen(path, "r");
    int hit = 0;
    while (f && !hit && fgets(line, sizeof line, f)) hit = strstr(line, what) != NULL;
    if (f) fclose(f);
    return hit;
}

/* The lease lapsing in the bucket while its holder, not yet due to renew
 * it, still believes it holds it: its key purged. */
static void lease_purge(void)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, C->url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    assert_int_equal(js_KeyValue(&kv, js, STREAM "_WRITER"), NATS_OK);
    assert_int_equal(kvStore_Purge(kv, "writer", NULL), NATS_OK);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static void a_deposed_writer_that_believes_it_holds_the_lease_cannot_fork_the_chain(void **state)
{
    (void)state;
    lease_ms(H, "600000"); /* renewed every 200 s: A believes it holds it throughout */
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 3, 0), 3);
    harness_t *h2 = second_broker();
    assert_int_equal(harness_start(h2), 0); /* applies A's records */
    assert_int_equal(harness_publish_signals(H, "school-a", 3, 10), 3);
    int first = -1;
    char r1[512], r2[512];
    /* A holds the lease: B stands by */
    assert_int_equal(publish_through(h2, 1, 0, &first, r1, r2, sizeof r1), 0);
    printf("jetstream lease: B while A holds the lease: %d: %s\n", first, r1);
    assert_int_equal(first, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER);
    assert_non_null(strstr(r1, "this broker stands by"));
    /* the lease lapses in the bucket; A has not noticed. B takes it; its
     * index is behind the stream (A wrote since), so its first append is
     * refused, then it applies what A wrote and appends after it */
    lease_purge();
    uint64_t seq_b = publish_through(h2, 20, 100, &first, r1, r2, sizeof r1);
    printf("jetstream lease: B after the lapse: first %d: %s; ACKed at seq %llu\n", first, r1,
           (unsigned long long)seq_b);
    assert_int_equal(first, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER);
    assert_non_null(strstr(r1, "another writer"));
    assert_true(seq_b > 7);
    assert_true(logged(h2, "event=lease_acquired"));
    /* A still believes it holds the lease: the stream refuses its append
     * (B's records came after A's head); then A asks the bucket, finds B
     * there, and stands by */
    uint64_t seq_a = publish_through(H, 5, 100, &first, r1, r2, sizeof r1);
    printf("jetstream lease: deposed A: first %d: %s; last: %s\n", first, r1, r2);
    assert_int_equal(seq_a, 0);
    assert_int_equal(first, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER);
    assert_non_null(strstr(r1, "another writer"));
    assert_non_null(strstr(r2, "this broker stands by"));
    assert_true(logged(H, "event=lease_lost"));
    assert_int_equal(harness_shutdown(h2), 0);
    assert_int_equal(harness_shutdown(H), 0);
    /* one chain: A's index, opened again, applies what B wrote and ends at
     * B's head and hash, the stream's last record */
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_shutdown(H), 0);
    schakel_verify_report_t ra, rb;
    head_of(H, &ra);
    head_of(h2, &rb);
    printf("jetstream lease: heads %llu and %llu, stream last seq %llu\n", (unsigned long long)ra.head,
           (unsigned long long)rb.head, (unsigned long long)stream_last_seq());
    assert_int_equal(rb.head, seq_b);
    assert_int_equal(ra.head, rb.head);
    assert_memory_equal(ra.head_hash, rb.head_hash, 32);
    assert_int_equal(stream_last_seq(), rb.head);
    harness_destroy(&h2);
}

static long long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void a_standby_takes_over_when_the_lease_lapses(void **state)
{
    (void)state;
    lease_ms(H, "6000"); /* B's first try comes within 4 s of A's renewal, even on a busy machine */
    assert_int_equal(harness_start(H), 0);
    assert_int_equal(harness_publish_signals(H, "school-a", 3, 0), 3);
    harness_t *h2 = second_broker();
    assert_int_equal(harness_start(h2), 0);
    /* renewed now (B's start may have taken longer than the lease) */
    assert_int_equal(harness_publish_signals(H, "school-a", 1, 10), 1);
    int first = -1;
    char r1[512], r2[512];
    assert_int_equal(publish_through(h2, 1, 0, &first, r1, r2, sizeof r1), 0);
    assert_non_null(strstr(r1, "this broker stands by"));
    harness_stop(H, SIGKILL); /* the writer dies holding the lease */
    long long t0 = mono_ms();
    uint64_t seq_b = publish_through(h2, 300, 100, &first, r1, r2, sizeof r1);
    long long took = mono_ms() - t0;
    printf("jetstream lease: A killed; B ACKed at seq %llu after %lld ms (lease 6000 ms); first answer: %s\n",
           (unsigned long long)seq_b, took, r1);
    assert_non_null(strstr(r1, "this broker stands by"));
    assert_true(seq_b > 5);
    assert_true(logged(h2, "event=lease_acquired"));
    assert_int_equal(harness_shutdown(h2), 0);
    schakel_verify_report_t rb;
    head_of(h2, &rb);
    assert_int_equal(rb.head, seq_b);
    assert_int_equal(stream_last_seq(), seq_b);
    harness_destroy(&h2);
}

/* schakel node --log: the broker and its services on the cluster; an
 * erasure is refused, naming why, and nothing is erased. */
static void a_node_runs_on_the_cluster_and_refuses_erasure(void **state)
{
    (void)state;
    harness_destroy(&H);
    H = harness_new_node();
    use_cluster(H, "node");
    assert_int_equal(harness_start(H), 0);
    const char *subject = "4f1c0a7b3e9d2c6a8b5f0e1d7c3a9b2e6f4d8c0a1b7e3f9d5c2a6b8e0f4d1c7a";
    char json[600];
    snprintf(json, sizeof json,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],\"urgency\":\"soon\","
             "\"observed_on\":\"2026-11-20\",\"raised_by\":\"teacher\"}}",
             subject);
    uint8_t id[16];
    uint64_t seq = harness_publish_json(H, "school-12ab00", json, id);
    assert_true(seq > 0);
    /* the routing service reads it from the local index and decides on the stream */
    unsigned long long last = 0;
    for (int i = 0; i < 100 && last <= seq; i++) {
        usleep(100000);
        last = nats_cluster_stream_last(C, "SCHAKEL_NODE");
    }
    printf("jetstream node: signal at seq %llu, the stream's last seq %llu\n", (unsigned long long)seq, last);
    assert_true(last > seq && last != (unsigned long long)-1);
    const char *args[] = {"audit", "erase",   "--node",    H->data,     "--subject",
                          subject, "--basis", "retention", "--purpose", "TICKET-2026/0042",
                          NULL};
    char *out = NULL, *err = NULL;
    int status = harness_run_captured(H->dir, args, &out, &err);
    printf("jetstream node: erase: exit %d: %s", status, err ? err : "");
    assert_int_equal(status, 3);
    assert_non_null(strstr(err, "cannot erase a subject yet"));
    free(out);
    free(err);
    assert_int_equal(harness_shutdown(H), 0);

    /* nor does it start with retention rules it could not carry out */
    char rpath[600];
    snprintf(rpath, sizeof rpath, "%s/retention.json", H->data);
    FILE *f = fopen(rpath, "w");
    assert_non_null(f);
    fputs("{\"version\": 1, \"default_days\": 730}\n", f);
    assert_int_equal(fclose(f), 0);
    const char *nargs[] = {"node",  "--data",        H->data,          "--endpoint", H->endpoint,
                           "--pub", H->pub_endpoint, "--http",         "off",        "--tick-ms",
                           "0",     "--log",         H->extra_args[1], NULL};
    status = harness_run_captured(H->dir, nargs, &out, &err);
    printf("jetstream node: with retention.json: exit %d: %s", status, err ? err : "");
    assert_int_equal(status, 1);
    assert_non_null(strstr(err, "retention erases children, which the jetstream log cannot do yet"));
    free(out);
    free(err);
}

static int setup(void **state)
{
    (void)state;
    C = nats_cluster_start();
    if (!C) return -1;
    H = harness_new();
    use_cluster(H, "bus");
    return 0;
}

/* One cluster per test: each test's stream starts empty. */
static int teardown(void **state)
{
    (void)state;
    harness_destroy(&H);
    nats_cluster_destroy(&C);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acked_events_are_on_the_stream_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(a_lost_local_index_is_rebuilt_from_the_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unreachable_cluster_stops_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_quorum_is_retry_later_and_the_resend_is_stored_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_deposed_writer_that_believes_it_holds_the_lease_cannot_fork_the_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(a_standby_takes_over_when_the_lease_lapses, setup, teardown),
        cmocka_unit_test_setup_teardown(a_node_runs_on_the_cluster_and_refuses_erasure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
