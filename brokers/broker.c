/* The broker's command loop. Workload: many publishers sending pipelined
 * signed batches; the loop drains every command that is waiting, validates
 * each PUBLISH completely, appends all accepted events of all waiting
 * batches in one durable LMDB transaction, then sends every ACK. Nothing is
 * ACKed before it is fsynced; nothing invalid is stored; a bad peer gets a
 * reject with a reason and the loop goes on serving the others. */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "codec.h"
#include "crypto.h"
#include "directory.h"
#include "error.h"
#include "keys.h"
#include "logging.h"
#include "store.h"
#include "wire.h"

#define FETCH_MAX_COUNT 2000
#define FETCH_MAX_BYTES (4u << 20)
#define ZMQ_HARD_MAX_MSG (64LL << 20) /* past this libzmq drops the peer */

typedef struct {
    zmq_msg_t rid;
    uint64_t req_id;
    Schakel__V1__Publish *pub;
    Schakel__V1__AckEntry *entries;
    size_t n;
    uint8_t (*hashes)[SCHAKEL_SHA256_LEN];
    schakel_envelope_t **envs;
    schakel_append_item_t *items;
    size_t *item_entry;
    size_t n_items;
    const char *signer;
    int batch_code;
    char batch_reason[SCHAKEL_ERRLEN];
} pending_t;

struct schakel_broker {
    void *ctx, *router, *pub, *zap;
    pthread_t zap_thread;
    int zap_running;
    pthread_mutex_t dir_lock;
    schakel_directory_t *dir;
    char *dir_path;
    struct timespec dir_mtime;
    schakel_keys_t keys;
    schakel_store_t *store;
    schakel_arena_t *arena; /* decoded PUBLISHes of the group being built */
    atomic_int stop;
    size_t group_max;
    pending_t *pending;
    size_t n_pending, cap_pending;
    size_t pending_events;
    uint64_t stat_acked, stat_rejected;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- ZAP: the authenticated CURVE key decides the organisation ---- */

static void zap_reply(void *sock, zmq_msg_t *req_id, const char *code, const char *text,
                      const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_msg_send(req_id, sock, ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

static void zap_handle(schakel_broker_t *b)
{
    zmq_msg_t f[8];
    int n = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, b->zap, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        int more = zmq_msg_more(&part);
        if (n < 8) f[n++] = part;
        else zmq_msg_close(&part);
        if (!more) break;
    }
    /* version, request id, domain, address, identity, mechanism, creds... */
    if (n < 6) {
        for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
        return;
    }
    char user[SCHAKEL_ID_MAX] = "";
    const char *code = "400", *text = "unknown key";
    int curve = zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0;
    if (curve && n >= 7 && zmq_msg_size(&f[6]) == 32) {
        char z85[SCHAKEL_Z85_KEY_LEN + 1];
        zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
        pthread_mutex_lock(&b->dir_lock);
        const schakel_org_t *org = schakel_directory_by_curve(b->dir, z85);
        if (org) {
            snprintf(user, sizeof user, "%s", org->id);
            code = "200";
            text = "OK";
        }
        pthread_mutex_unlock(&b->dir_lock);
        if (!org)
            schakel_log(SCHAKEL_LOG_WARN, "zap", "event=denied reason=unknown_key key=%.8s...", z85);
    } else {
        text = "CURVE required";
        schakel_log(SCHAKEL_LOG_WARN, "zap", "event=denied reason=mechanism");
    }
    zap_reply(b->zap, &f[1], code, text, user);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

static void *zap_main(void *arg)
{
    schakel_broker_t *b = arg;
    zmq_pollitem_t it = {b->zap, 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&b->stop)) {
        int rc = zmq_poll(&it, 1, 200);
        if (rc > 0) zap_handle(b);
        else if (rc < 0 && errno == ETERM) break;
    }
    return NULL;
}

/* ---- directory ---- */

static void directory_maybe_reload(schakel_broker_t *b)
{
    struct stat st;
    if (stat(b->dir_path, &st) != 0) return;
    if (st.st_mtim.tv_sec == b->dir_mtime.tv_sec && st.st_mtim.tv_nsec == b->dir_mtime.tv_nsec)
        return;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_load(b->dir_path, why);
    b->dir_mtime = st.st_mtim;
    if (!d) {
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=directory_rejected reason=\"%s\" action=kept_previous", why);
        return;
    }
    pthread_mutex_lock(&b->dir_lock);
    schakel_directory_t *old = b->dir;
    b->dir = d;
    pthread_mutex_unlock(&b->dir_lock);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_loaded version=%llu orgs=%zu",
                (unsigned long long)schakel_directory_version(d), schakel_directory_count(d));
    schakel_directory_destroy(&old);
}

/* ---- PUBLISH ---- */

static void free_reason(Schakel__V1__AckEntry *e)
{
    if (e->reason && e->reason != protobuf_c_empty_string) free(e->reason);
    e->reason = (char *)protobuf_c_empty_string;
}

static void entry_reject(pending_t *p, size_t i, int code, const char *reason)
{
    p->entries[i].code = code;
    free_reason(&p->entries[i]);
    char *r = strdup(reason);
    if (r) p->entries[i].reason = r;
}

static void pending_free(pending_t *p)
{
    zmq_msg_close(&p->rid);
    /* everything else lives in the broker's arena until the group is done */
    for (size_t i = 0; i < p->n; i++)
        if (p->entries) free_reason(&p->entries[i]);
    memset(p, 0, sizeof *p);
}

/* A consent decision from a deciding service makes the broker deliver:
 * index the event (DELIVER) or the decision itself (NOTICE_ONLY) into the
 * recipient's stream. */
static int plan_delivery(schakel_broker_t *b, const schakel_org_t *org,
                         const schakel_envelope_t *env, schakel_append_item_t *it, char *why)
{
    const Schakel__V1__ConsentDecision *d = env->consent_decision;
    if (!(org->rights & SCHAKEL_RIGHT_DECIDE))
        return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                            "consent_decision: %s has no \"decide\" right in the directory", org->id);
    if (d->outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER &&
        d->outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY)
        return 0;
    if (!schakel_directory_by_id(b->dir, d->recipient_org))
        return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                            "consent_decision.recipient_org: %s is not in the directory",
                            d->recipient_org);
    uint8_t id[16];
    if (d->about_event_id.len != 16 ||
        schakel_store_event_id_at(b->store, d->about_seq, id) != 0 ||
        memcmp(id, d->about_event_id.data, 16) != 0)
        return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                            "consent_decision.about_seq: no event with about_event_id at seq %llu",
                            (unsigned long long)d->about_seq);
    snprintf(it->index_stream, sizeof it->index_stream, "org/%s", d->recipient_org);
    it->index_seq =
        d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER ? d->about_seq : 0;
    return 0;
}

/* Validates one event of a signed batch; fills an append item or rejects. */
static void prepare_event(schakel_broker_t *b, const schakel_org_t *org, pending_t *p, size_t i)
{
    char why[SCHAKEL_ERRLEN] = "";
    ProtobufCBinaryData *e = &p->pub->events[i];
    if (e->len > SCHAKEL_MAX_EVENT_BYTES) {
        snprintf(why, sizeof why, "event is %zu bytes; the limit is %d", e->len,
                 SCHAKEL_MAX_EVENT_BYTES);
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE, why);
        return;
    }
    schakel_envelope_t *env =
        schakel_envelope_decode_with(e->data, e->len, schakel_arena_allocator(b->arena), why);
    if (!env) {
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED, why);
        return;
    }
    p->envs[i] = env;
    if (env->event_id.len == 16) {
        p->entries[i].event_id.data = env->event_id.data;
        p->entries[i].event_id.len = 16;
    }
    if (schakel_envelope_validate(env, why) != 0) {
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, why);
        return;
    }
    if (strcmp(env->source_org, org->id) != 0) {
        snprintf(why, sizeof why, "source_org is \"%.63s\" but this connection is %s",
                 env->source_org, org->id);
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_WRONG_SOURCE, why);
        return;
    }
    if (env->type <= 0 || env->type >= SCHAKEL_EVENT_TYPE_LIMIT || !org->may_publish[env->type]) {
        snprintf(why, sizeof why, "%s may not publish %s: add it to \"publish\" in the directory",
                 org->id, schakel_event_type_name(env->type));
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, why);
        return;
    }
    schakel_append_item_t *it = &p->items[p->n_items];
    memset(it, 0, sizeof *it);
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
        int code = plan_delivery(b, org, env, it, why);
        if (code) {
            entry_reject(p, i, code, why);
            return;
        }
    }
    it->event = e->data;
    it->event_len = e->len;
    it->event_id = env->event_id.data;
    it->type = env->type;
    it->subject = env->subject;
    memcpy(it->event_hash, p->hashes[i], SCHAKEL_SHA256_LEN);
    it->proof_index = (uint32_t)i;
    p->item_entry[p->n_items++] = i;
}

#define batch_reject(p, code, ...)                                              \
    do {                                                                        \
        (p)->batch_code = (code);                                               \
        snprintf((p)->batch_reason, sizeof (p)->batch_reason, __VA_ARGS__);     \
    } while (0)

static void *arena_zalloc(schakel_broker_t *b, size_t n)
{
    void *p = schakel_arena_alloc(b->arena, n);
    if (p) memset(p, 0, n);
    return p;
}

/* Checks a PUBLISH as a whole, then each event. The pending slot is set up
 * for an ACK whatever happens. */
static void prepare_publish(schakel_broker_t *b, schakel_wire_msg_t *m, pending_t *p)
{
    size_t len = zmq_msg_size(&m->body);
    if (len > SCHAKEL_MAX_FRAME_BYTES) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE,
                     "frame is %zu bytes; the limit is 8 MiB: send smaller batches", len);
        return;
    }
    p->pub = schakel__v1__publish__unpack(schakel_arena_allocator(b->arena), len,
                                          zmq_msg_data(&m->body));
    if (!p->pub) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                     "PUBLISH body (%zu bytes) does not decode as schakel.v1.Publish", len);
        return;
    }
    size_t n = p->pub->n_events;
    if (n == 0 || n > SCHAKEL_MAX_BATCH_EVENTS) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE,
                     "a batch holds 1 to 1024 events; this one has %zu", n);
        return;
    }
    p->n = n;
    p->entries = arena_zalloc(b, n * sizeof *p->entries);
    p->envs = arena_zalloc(b, n * sizeof *p->envs);
    p->hashes = arena_zalloc(b, n * sizeof *p->hashes);
    p->items = arena_zalloc(b, n * sizeof *p->items);
    p->item_entry = arena_zalloc(b, n * sizeof *p->item_entry);
    if (!p->entries || !p->envs || !p->hashes || !p->items || !p->item_entry) {
        p->n = 0;
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER,
                     "broker is out of memory (%zu events)", n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        schakel__v1__ack_entry__init(&p->entries[i]);
        schakel_sha256(p->pub->events[i].data, p->pub->events[i].len, p->hashes[i]);
    }
    const schakel_org_t *org = schakel_directory_by_id(b->dir, m->user);
    if (!org) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                     "%s is no longer in the directory", m->user);
        return;
    }
    p->signer = org->id;
    uint8_t digest[SCHAKEL_SHA256_LEN];
    schakel_batch_digest((const uint8_t(*)[SCHAKEL_SHA256_LEN])p->hashes, n, digest);
    if (p->pub->signature.len != SCHAKEL_ED25519_SIG_LEN ||
        schakel_ed25519_verify(org->sign_public, digest, sizeof digest, p->pub->signature.data) != 0) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_BAD_SIGNATURE,
                     "batch signature does not verify with the signing key of %s in the "
                     "directory; sign with that organisation's key file",
                     org->id);
        return;
    }
    for (size_t i = 0; i < n; i++) prepare_event(b, org, p, i);
}

static void send_ack(schakel_broker_t *b, pending_t *p)
{
    Schakel__V1__Ack ack = SCHAKEL__V1__ACK__INIT;
    Schakel__V1__AckEntry **ptrs = calloc(p->n ? p->n : 1, sizeof *ptrs);
    if (!ptrs) return;
    if (p->batch_code) {
        ack.batch_code = p->batch_code;
        ack.batch_reason = p->batch_reason;
        for (size_t i = 0; i < p->n; i++) {
            p->entries[i].code = p->batch_code;
            p->entries[i].seq = 0;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        ptrs[i] = &p->entries[i];
        if (p->entries[i].code) b->stat_rejected++;
        else b->stat_acked++;
    }
    ack.n_entries = p->n;
    ack.entries = ptrs;
    if (schakel_wire_send(b->router, &p->rid, "ACK", p->req_id, &ack.base, ZMQ_DONTWAIT) != 0)
        schakel_log(SCHAKEL_LOG_WARN, "broker", "event=ack_undeliverable req=%llu",
                    (unsigned long long)p->req_id);
    free(ptrs);
}

static void publish_head(schakel_broker_t *b, const char *stream, uint64_t seq)
{
    Schakel__V1__Head h = SCHAKEL__V1__HEAD__INIT;
    uint8_t buf[128];
    h.stream = (char *)stream;
    h.seq = seq;
    size_t n = schakel__v1__head__pack(&h, buf);
    zmq_send(b->pub, stream, strlen(stream), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(b->pub, buf, n, ZMQ_DONTWAIT);
}

/* Group commit: every accepted event of every waiting batch in one durable
 * transaction, then the ACKs. */
static void flush_pending(schakel_broker_t *b)
{
    if (b->n_pending == 0) return;
    schakel_append_batch_t *batches = calloc(b->n_pending, sizeof *batches);
    size_t nb = 0;
    int rc = batches ? 0 : SCHAKEL_ENOMEM;
    char why[SCHAKEL_ERRLEN] = "";
    for (size_t i = 0; batches && i < b->n_pending; i++) {
        pending_t *p = &b->pending[i];
        if (p->batch_code || p->n_items == 0) continue;
        schakel_append_batch_t *ab = &batches[nb++];
        ab->signer_org = p->signer;
        ab->signature = p->pub->signature.data;
        ab->hashes = (const uint8_t(*)[SCHAKEL_SHA256_LEN])p->hashes;
        ab->n_hashes = p->n;
        ab->items = p->items;
        ab->n_items = p->n_items;
    }
    if (nb) rc = schakel_store_append(b->store, batches, nb, now_ms(), why);
    if (rc) {
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=append_failed events=%zu reason=\"%s\"",
                    b->pending_events, why[0] ? why : schakel_strerror(rc));
        if (!why[0]) snprintf(why, sizeof why, "%s", schakel_strerror(rc));
    }
    for (size_t i = 0; i < b->n_pending; i++) {
        pending_t *p = &b->pending[i];
        for (size_t j = 0; j < p->n_items; j++) {
            Schakel__V1__AckEntry *e = &p->entries[p->item_entry[j]];
            if (rc) {
                char r[SCHAKEL_ERRLEN + 32];
                snprintf(r, sizeof r, "not stored, send again later: %s", why);
                entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
            } else {
                e->seq = p->items[j].seq;
                e->duplicate = p->items[j].duplicate;
                if (p->items[j].index_stream[0] && !p->items[j].duplicate)
                    publish_head(b, p->items[j].index_stream, p->items[j].seq);
            }
        }
        send_ack(b, p);
        pending_free(p);
    }
    free(batches);
    if (rc == 0 && nb) {
        schakel_head_t h;
        schakel_store_head(b->store, &h);
        publish_head(b, "all", h.seq);
    }
    b->n_pending = 0;
    b->pending_events = 0;
    schakel_arena_reset(b->arena);
}

/* ---- FETCH / COMMIT / PING ---- */

static void send_error(schakel_broker_t *b, schakel_wire_msg_t *m, int code, const char *reason)
{
    Schakel__V1__Error e = SCHAKEL__V1__ERROR__INIT;
    e.code = code;
    e.reason = (char *)reason;
    schakel_wire_send(b->router, &m->rid, "ERROR", m->req_id, &e.base, ZMQ_DONTWAIT);
}

static int may_read(schakel_broker_t *b, const char *user, const char *stream)
{
    const schakel_org_t *org = schakel_directory_by_id(b->dir, user);
    if (!org) return 0;
    if (org->rights & SCHAKEL_RIGHT_READ_ALL) return 1;
    return strncmp(stream, "org/", 4) == 0 && strcmp(stream + 4, user) == 0;
}

typedef struct {
    Schakel__V1__Delivered *recs;
    Schakel__V1__Delivered **ptrs;
    uint8_t **bufs;
    size_t n, cap;
} fetch_acc_t;

static int fetch_cb(void *arg, const schakel_record_t *rec)
{
    fetch_acc_t *a = arg;
    if (a->n == a->cap) return 1;
    Schakel__V1__Delivered *d = &a->recs[a->n];
    schakel__v1__delivered__init(d);
    d->seq = rec->seq;
    d->recorded_at = rec->recorded_at;
    d->hash.data = (uint8_t *)malloc(32);
    if (!d->hash.data) return SCHAKEL_ENOMEM;
    memcpy(d->hash.data, rec->hash, 32);
    d->hash.len = 32;
    if (rec->event) {
        d->event.data = malloc(rec->event_len ? rec->event_len : 1);
        if (!d->event.data) return SCHAKEL_ENOMEM;
        memcpy(d->event.data, rec->event, rec->event_len);
        d->event.len = rec->event_len;
    }
    a->ptrs[a->n++] = d;
    return 0;
}

static void handle_fetch(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Fetch *f =
        len <= 4096 ? schakel__v1__fetch__unpack(NULL, len, zmq_msg_data(&m->body)) : NULL;
    if (!f) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "FETCH body does not decode as schakel.v1.Fetch");
        return;
    }
    if (strlen(f->stream) >= SCHAKEL_STREAM_MAX || !may_read(b, m->user, f->stream)) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "%s may not read stream \"%.80s\": own stream is org/%s", m->user,
                 f->stream, m->user);
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, r);
        schakel__v1__fetch__free_unpacked(f, NULL);
        return;
    }
    uint64_t from = f->from_seq;
    if (from == 0 && f->consumer[0]) {
        char name[256];
        snprintf(name, sizeof name, "%s/%.80s/%s", m->user, f->consumer, f->stream);
        schakel_store_cursor_get(b->store, name, &from);
        from++;
    }
    size_t max = f->max_count ? f->max_count : 100;
    if (max > FETCH_MAX_COUNT) max = FETCH_MAX_COUNT;
    size_t max_bytes = f->max_bytes && f->max_bytes < FETCH_MAX_BYTES ? f->max_bytes : FETCH_MAX_BYTES;
    fetch_acc_t a = {0};
    a.cap = max;
    a.recs = calloc(max, sizeof *a.recs);
    a.ptrs = calloc(max, sizeof *a.ptrs);
    Schakel__V1__Batch out = SCHAKEL__V1__BATCH__INIT;
    uint64_t next = from;
    int rc = a.recs && a.ptrs ? schakel_store_read(b->store, f->stream, from, max, max_bytes,
                                                  fetch_cb, &a, &next)
                              : SCHAKEL_ENOMEM;
    if (rc < 0) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, schakel_strerror(rc));
    } else {
        schakel_head_t h;
        schakel_store_head(b->store, &h);
        out.stream = f->stream;
        out.records = a.ptrs;
        out.n_records = a.n;
        out.next_seq = next;
        out.head = h.seq;
        schakel_wire_send(b->router, &m->rid, "BATCH", m->req_id, &out.base, ZMQ_DONTWAIT);
    }
    for (size_t i = 0; i < a.n; i++) {
        free(a.recs[i].hash.data);
        free(a.recs[i].event.data);
    }
    free(a.recs);
    free(a.ptrs);
    schakel__v1__fetch__free_unpacked(f, NULL);
}

static void handle_commit(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Commit *c =
        len <= 4096 ? schakel__v1__commit__unpack(NULL, len, zmq_msg_data(&m->body)) : NULL;
    if (!c || !c->consumer[0] || strlen(c->consumer) > 80) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "COMMIT needs a schakel.v1.Commit with a consumer name of 1 to 80 bytes");
    } else if (!may_read(b, m->user, c->stream)) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                   "cursor for a stream this organisation may not read");
    } else {
        char name[256];
        snprintf(name, sizeof name, "%s/%s/%s", m->user, c->consumer, c->stream);
        int rc = schakel_store_cursor_set(b->store, name, c->seq);
        if (rc) send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, schakel_strerror(rc));
        else schakel_wire_send(b->router, &m->rid, "COMMITTED", m->req_id, &c->base, ZMQ_DONTWAIT);
    }
    if (c) schakel__v1__commit__free_unpacked(c, NULL);
}

static void handle_ping(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Ping *p =
        len <= 64 ? schakel__v1__ping__unpack(NULL, len, zmq_msg_data(&m->body)) : NULL;
    Schakel__V1__Pong pong = SCHAKEL__V1__PONG__INIT;
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    pong.nonce = p ? p->nonce : 0;
    pong.head = h.seq;
    pong.now = now_ms();
    schakel_wire_send(b->router, &m->rid, "PONG", m->req_id, &pong.base, ZMQ_DONTWAIT);
    if (p) schakel__v1__ping__free_unpacked(p, NULL);
}

static pending_t *pending_slot(schakel_broker_t *b)
{
    if (b->n_pending == b->cap_pending) {
        size_t cap = b->cap_pending ? b->cap_pending * 2 : 64;
        pending_t *np = realloc(b->pending, cap * sizeof *np);
        if (!np) return NULL;
        b->pending = np;
        b->cap_pending = cap;
    }
    pending_t *p = &b->pending[b->n_pending++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Reads one command; returns 1 if one was handled, 0 if none waited. */
static int handle_one(schakel_broker_t *b)
{
    schakel_wire_msg_t m;
    int rc = schakel_wire_recv(b->router, 1, &m, ZMQ_DONTWAIT);
    if (rc == SCHAKEL_EZMQ) {
        schakel_wire_close(&m);
        return 0;
    }
    if (rc == SCHAKEL_EDECODE) {
        send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "a command is 3 frames: name, 8-byte request id, protobuf body");
    } else if (strcmp(m.name, "PUBLISH") == 0) {
        pending_t *p = pending_slot(b);
        if (!p) {
            send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, "broker out of memory");
        } else {
            zmq_msg_init(&p->rid);
            zmq_msg_copy(&p->rid, &m.rid);
            p->req_id = m.req_id;
            prepare_publish(b, &m, p);
            b->pending_events += p->n_items;
        }
    } else if (strcmp(m.name, "FETCH") == 0) {
        handle_fetch(b, &m);
    } else if (strcmp(m.name, "COMMIT") == 0) {
        handle_commit(b, &m);
    } else if (strcmp(m.name, "PING") == 0) {
        handle_ping(b, &m);
    } else {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "unknown command \"%.16s\": PUBLISH, FETCH, COMMIT or PING", m.name);
        send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_UNKNOWN_COMMAND, r);
    }
    schakel_wire_close(&m);
    return 1;
}

int schakel_broker_run(schakel_broker_t *b)
{
    zmq_pollitem_t it = {b->router, 0, ZMQ_POLLIN, 0};
    int64_t last_reload = 0;
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=running");
    while (!atomic_load(&b->stop)) {
        int rc = zmq_poll(&it, 1, 100);
        if (rc < 0 && errno == ETERM) break;
        if (rc > 0) {
            while (b->pending_events < b->group_max && handle_one(b)) {
            }
            flush_pending(b);
        }
        int64_t now = now_ms();
        schakel_store_checkpoint(b->store, now);
        if (now - last_reload >= 1000) {
            directory_maybe_reload(b);
            last_reload = now;
        }
    }
    flush_pending(b);
    schakel_store_checkpoint(b->store, now_ms() + 3600 * 1000);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=stopped acked=%llu rejected=%llu",
                (unsigned long long)b->stat_acked, (unsigned long long)b->stat_rejected);
    return 0;
}

void schakel_broker_stop(schakel_broker_t *b)
{
    atomic_store(&b->stop, 1);
}

int schakel_broker_master_key(const char *data_dir, uint8_t key[32], char *why)
{
    char path[4096], hex[65];
    snprintf(path, sizeof path, "%s/master.key", data_dir);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, hex, 64);
        close(fd);
        hex[n > 0 ? n : 0] = 0;
        if (n != 64 || schakel_hex_decode(hex, key, 32) != 0)
            return schakel_fail(why, SCHAKEL_ECONFIG, "%s: expected 64 hex characters", path);
        return 0;
    }
    if (errno != ENOENT) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", path, strerror(errno));
    if (schakel_random(key, 32)) return schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes");
    schakel_hex_encode(key, 32, hex);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, hex, 64) != 64 || fsync(fd) != 0) {
        if (fd >= 0) close(fd);
        return schakel_fail(why, SCHAKEL_EIO, "%s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rename(tmp, path) != 0) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

schakel_broker_t *schakel_broker_new(void *ctx, const schakel_broker_config_t *cfg, char *why)
{
    schakel_broker_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->ctx = ctx;
    pthread_mutex_init(&b->dir_lock, NULL);
    b->group_max = cfg->group_max ? cfg->group_max : 8192;
    b->arena = schakel_arena_new(0);
    if (!b->arena) {
        schakel_fail(why, SCHAKEL_ENOMEM, "no memory for the broker's arena");
        goto fail;
    }
    const char *ep = cfg->endpoint ? cfg->endpoint : "tcp://127.0.0.1:7400";
    const char *pep = cfg->pub_endpoint ? cfg->pub_endpoint : "tcp://127.0.0.1:7401";
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", cfg->data_dir, strerror(errno));
        goto fail;
    }
    if (schakel_keys_load(&b->keys, cfg->key_path, why) != 0) goto fail;
    if (!b->keys.has_secret) {
        schakel_fail(why, SCHAKEL_ECONFIG, "%s holds no secret keys: give the broker's .key file",
                     cfg->key_path);
        goto fail;
    }
    b->dir_path = strdup(cfg->directory_path);
    struct stat st;
    if (!b->dir_path || stat(cfg->directory_path, &st) != 0) {
        schakel_fail(why, SCHAKEL_ECONFIG, "directory %s: %s", cfg->directory_path, strerror(errno));
        goto fail;
    }
    b->dir_mtime = st.st_mtim;
    b->dir = schakel_directory_load(cfg->directory_path, why);
    if (!b->dir) goto fail;

    schakel_lmdb_options_t o = {0};
    char logdir[4096];
    snprintf(logdir, sizeof logdir, "%s/log", cfg->data_dir);
    o.dir = logdir;
    if (schakel_broker_master_key(cfg->data_dir, o.master_key, why) != 0) goto fail;
    o.sign_secret = b->keys.sign_secret;
    o.checkpoint_every = cfg->checkpoint_every;
    o.checkpoint_ms = cfg->checkpoint_ms;
    o.map_initial = cfg->map_initial;
    o.map_max = cfg->map_max;
    b->store = schakel_store_open_lmdb(&o, why);
    memset(o.master_key, 0, sizeof o.master_key);
    if (!b->store) goto fail;

    /* ZAP before any bind: no connection is accepted unauthenticated. */
    b->zap = zmq_socket(ctx, ZMQ_REP);
    if (!b->zap || zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "ZAP handler: %s (one broker per process)", zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&b->zap_thread, NULL, zap_main, b) != 0) {
        schakel_fail(why, SCHAKEL_ENOMEM, "cannot start the ZAP thread");
        goto fail;
    }
    b->zap_running = 1;

    int64_t maxmsg = ZMQ_HARD_MAX_MSG;
    int linger = 1000, hwm = 100000;
    b->router = zmq_socket(ctx, ZMQ_ROUTER);
    b->pub = zmq_socket(ctx, ZMQ_PUB);
    if (!b->router || !b->pub || schakel_wire_curve_server(b->router, &b->keys) ||
        schakel_wire_curve_server(b->pub, &b->keys) ||
        zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(b->router, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(b->router, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(b->pub, ZMQ_LINGER, &linger, sizeof linger)) {
        schakel_fail(why, SCHAKEL_EZMQ, "socket set-up: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(b->router, ep) != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "cannot bind %s: %s", ep, zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(b->pub, pep) != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "cannot bind %s: %s", pep, zmq_strerror(errno));
        goto fail;
    }
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=started endpoint=%s pub=%s head=%llu orgs=%zu",
                ep, pep, (unsigned long long)h.seq, schakel_directory_count(b->dir));
    return b;
fail:
    schakel_broker_destroy(&b);
    return NULL;
}

void schakel_broker_destroy(schakel_broker_t **self_p)
{
    schakel_broker_t *b = *self_p;
    if (!b) return;
    atomic_store(&b->stop, 1);
    if (b->zap_running) pthread_join(b->zap_thread, NULL);
    if (b->router) zmq_close(b->router);
    if (b->pub) zmq_close(b->pub);
    if (b->zap) zmq_close(b->zap);
    for (size_t i = 0; i < b->n_pending; i++) pending_free(&b->pending[i]);
    free(b->pending);
    schakel_arena_destroy(&b->arena);
    schakel_store_close(&b->store);
    schakel_directory_destroy(&b->dir);
    free(b->dir_path);
    schakel_keys_wipe(&b->keys);
    pthread_mutex_destroy(&b->dir_lock);
    free(b);
    *self_p = NULL;
}
