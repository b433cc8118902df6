/* The broker's command loop. Workload: many publishers sending pipelined
 * signed batches. The loop hands each PUBLISH to a checker thread, which
 * decodes, validates and verifies it while the loop appends and fsyncs the
 * batches checked before; the loop then appends every checked batch in one
 * durable LMDB transaction and sends the ACKs. Nothing is ACKed before it
 * is fsynced; nothing invalid is stored; a bad peer gets a reject with a
 * reason and the loop goes on serving the others. Only the loop writes the
 * log and owns the sockets; the directory is shared under dir_lock. */
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
#include "fileio.h"
#include "keys.h"
#include "logging.h"
#include "store.h"
#include "wire.h"

#define FETCH_MAX_COUNT 2000
#define DIRECTORY_CURSOR "broker/directory" /* seq of the last directory_update */
#define FETCH_MAX_BYTES (4u << 20)
#define ZMQ_HARD_MAX_MSG (16LL << 20) /* past this libzmq drops the peer: 8 MiB frames and room to say "too large" */
/* Bounded memory per connection (protocol.md, "Limits"): replies waiting
 * for a peer that does not read them are what grows a node. */
#define SEND_HWM 1000          /* replies queued per connection, then EAGAIN */
#define RECV_HWM 64            /* commands queued per connection, then TCP waits */
#define FETCH_UNREAD_MAX 4     /* BATCH replies per connection not yet taken */
#define ACK_UNREAD_MAX 128     /* PUBLISHes per connection not ACKed or ACK not yet taken */
#define FETCH_BODY_MAX 4096
#define COMMIT_BODY_MAX 4096
#define PING_BODY_MAX 64
#define READER_CHECK_MS 60000  /* stale LMDB readers (killed auditors) */

/* A connection with BATCH or ACK replies still in its send queue, by
 * routing id. ZeroMQ's I/O thread counts them down as it takes them; only
 * the command loop counts up, finds, adds and frees. */
typedef struct peer {
    struct peer *next;
    atomic_uint batches, acks;
    unsigned publishing;            /* PUBLISHes received, not yet ACKed */
    size_t rid_len;
    uint8_t rid[256];
} peer_t;

/* One PUBLISH on its way: received by the command loop, checked by the
 * checker thread, appended and ACKed by the command loop. Everything it
 * decodes lives in its own arena. */
typedef struct pending {
    struct pending *next;
    zmq_msg_t rid, body;
    char user[SCHAKEL_ID_MAX];
    schakel_arena_t *arena;
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
    atomic_int stop;
    size_t group_max;
    /* The checker thread decodes, validates and verifies PUBLISHes while
     * the command loop appends and fsyncs the previous group. */
    pthread_t checker;
    int checker_running, checker_stop;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    pending_t *in_head, *in_tail;   /* received, not yet checked */
    pending_t *out_head, *out_tail; /* checked, waiting for a commit */
    size_t in_flight;               /* in either queue or being checked */
    size_t out_events;              /* accepted events waiting for a commit */
    int checking;                   /* the checker is on a batch now */
    int64_t out_since;              /* when the oldest checked batch came out */
    void *wake_tx, *wake_rx;        /* inproc PAIR: "something is checked" */
    schakel_arena_t *spare[32];     /* arenas to reuse (under q_lock) */
    size_t n_spare;
    uint64_t stat_acked, stat_rejected;
    uint64_t alarms; /* own appends refused: in every PONG; the operator's alert */
    int64_t tick_ms, last_tick;
    peer_t *peers;                  /* connections with PUBLISHes or replies held */
    uint64_t stat_fetch_refused, stat_publish_refused, stat_replies_dropped;
    int64_t last_drop_log, last_reader_check;
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

static void publish_head(schakel_broker_t *b, const char *stream, uint64_t seq);

static void directory_swap(schakel_broker_t *b, schakel_directory_t *d)
{
    pthread_mutex_lock(&b->dir_lock);
    schakel_directory_t *old = b->dir;
    b->dir = d;
    pthread_mutex_unlock(&b->dir_lock);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_loaded version=%llu orgs=%zu",
                (unsigned long long)schakel_directory_version(d), schakel_directory_count(d));
    schakel_directory_destroy(&old);
}

/* Appends an event of the broker's own (source "broker", signed with the
 * broker's key): the directory in force and the clock. Called between
 * groups, never while PUBLISHes wait. 0 or an error code. An append that
 * fails, or whose id was stored before with other bytes, is an alarm:
 * an error log line, and b->alarms, which every PONG reports. */
static int append_own(schakel_broker_t *b, schakel_envelope_t *env)
{
    uint8_t *buf;
    size_t len;
    int rc = schakel_envelope_encode(env, &buf, &len);
    if (rc) return rc;
    uint8_t hash[1][SCHAKEL_SHA256_LEN], digest[SCHAKEL_SHA256_LEN], sig[SCHAKEL_ED25519_SIG_LEN];
    schakel_sha256(buf, len, hash[0]);
    schakel_batch_digest((const uint8_t(*)[SCHAKEL_SHA256_LEN])hash, 1, digest);
    rc = schakel_ed25519_sign(b->keys.sign_secret, digest, sizeof digest, sig);
    schakel_append_item_t it = {0};
    it.event = buf;
    it.event_len = len;
    it.event_id = env->event_id.data;
    it.type = env->type;
    it.subject = "";
    memcpy(it.event_hash, hash[0], sizeof it.event_hash);
    schakel_append_batch_t batch = {"broker", sig, (const uint8_t(*)[SCHAKEL_SHA256_LEN])hash, 1,
                                    &it, 1};
    char why[SCHAKEL_ERRLEN] = "";
    if (rc == 0) rc = schakel_store_append(b->store, &batch, 1, now_ms(), why);
    free(buf);
    /* a directory's id is derived from its whole text: the same id in the
     * broker's own namespace is the same directory, logged before a crash
     * with another occurred_at */
    if (rc == 0 && it.conflict && env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE)
        it.conflict = 0;
    if (rc == 0 && it.conflict) {
        rc = SCHAKEL_ECORRUPT;
        snprintf(why, sizeof why, "its id was stored before for a different event");
    }
    if (rc) {
        char hex[33];
        schakel_hex_encode(env->event_id.data, 16, hex);
        b->alarms++;
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=own_append_failed alarm=own_append_refused "
                    "type=%s id=%s reason=\"%s\" alarms=%llu", schakel_event_type_name(env->type), hex,
                    why[0] ? why : schakel_strerror(rc), (unsigned long long)b->alarms);
        return rc;
    }
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE)
        schakel_store_cursor_set(b->store, DIRECTORY_CURSOR, it.seq);
    publish_head(b, "all", it.seq);
    return 0;
}

/* An envelope of the broker's own with a derived id: the same content
 * gives the same id, so a repeat after a crash is a duplicate. */
static void own_envelope(schakel_envelope_t *env, int type, const char *label, const void *data,
                         size_t len, uint8_t id[16])
{
    uint8_t h[SCHAKEL_SHA256_LEN];
    schakel_sha256_t c;
    schakel_sha256_init(&c);
    schakel_sha256_update(&c, label, strlen(label));
    schakel_sha256_update(&c, data, len);
    schakel_sha256_final(&c, h);
    memcpy(id, h, 16);
    schakel__v1__envelope__init(env);
    env->event_id.data = id;
    env->event_id.len = 16;
    env->type = type;
    env->source_org = "broker";
    env->occurred_at = now_ms();
    env->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    env->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    env->body_case = (Schakel__V1__Envelope__BodyCase)type;
}

typedef struct {
    uint64_t version;
    char *doc;
} dir_read_t;

static int read_directory_cb(void *arg, const schakel_record_t *rec)
{
    dir_read_t *r = arg;
    schakel_envelope_t *env = rec->event ? schakel_envelope_decode_with(
        rec->event, rec->event_len, NULL, NULL) : NULL;
    if (env && env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE) {
        r->version = env->directory_update->version;
        r->doc = strdup(env->directory_update->document_json);
    }
    schakel_envelope_free(env);
    return 1;
}

/* The version and document of the directory_update at seq. */
static uint64_t record_directory(schakel_broker_t *b, uint64_t seq, char **doc)
{
    dir_read_t r = {0, NULL};
    uint64_t next;
    schakel_store_read(b->store, "all", seq, 1, 1, read_directory_cb, &r, &next);
    if (doc) *doc = r.doc;
    else free(r.doc);
    return r.version;
}

/* The version of the last directory_update on the log (0: none), and its
 * document when doc is not NULL (caller frees). */
static uint64_t directory_on_log(schakel_broker_t *b, char **doc)
{
    uint64_t seq = 0;
    if (doc) *doc = NULL;
    if (schakel_store_cursor_get(b->store, DIRECTORY_CURSOR, &seq) != 0 || !seq) return 0;
    return record_directory(b, seq, doc);
}

/* Puts the directory in force on the log when the log has an older one or
 * none: every directory that routed anything is on the log. */
static void directory_to_log(schakel_broker_t *b)
{
    if (directory_on_log(b, NULL) >= schakel_directory_version(b->dir)) return;
    const char *text = schakel_directory_text(b->dir);
    schakel_envelope_t env;
    Schakel__V1__DirectoryUpdate u = SCHAKEL__V1__DIRECTORY_UPDATE__INIT;
    uint8_t id[16];
    own_envelope(&env, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE,
                 "schakel/v1/directory", text, strlen(text), id);
    u.version = schakel_directory_version(b->dir);
    u.document_json = (char *)text;
    env.directory_update = &u;
    if (append_own(b, &env) == 0)
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_logged version=%llu",
                    (unsigned long long)u.version);
}

/* A directory_update at seq is on the log: it is in force from now on,
 * and written to the directory file so that the operator and a restart
 * see it. */
static void directory_install(schakel_broker_t *b, const char *doc, uint64_t seq)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_parse(doc, strlen(doc), why);
    if (!d) { /* checked before it was stored: cannot happen */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=directory_rejected seq=%llu reason=\"%s\"",
                    (unsigned long long)seq, why);
        return;
    }
    if (schakel_file_write_atomic(b->dir_path, doc, strlen(doc)) != 0)
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=directory_not_written path=%s "
                    "reason=\"%s\"", b->dir_path, strerror(errno));
    struct stat st;
    if (stat(b->dir_path, &st) == 0) b->dir_mtime = st.st_mtim;
    schakel_store_cursor_set(b->store, DIRECTORY_CURSOR, seq);
    directory_swap(b, d);
}

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
    directory_swap(b, d);
    directory_to_log(b);
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

#define ARENA_CHUNK (256u << 10)
#define MAX_IN_FLIGHT 512 /* PUBLISHes between receipt and ACK; then ZeroMQ queues */

static void pending_free(schakel_broker_t *b, pending_t *p)
{
    zmq_msg_close(&p->rid);
    zmq_msg_close(&p->body);
    for (size_t i = 0; i < p->n; i++)
        if (p->entries) free_reason(&p->entries[i]);
    if (p->arena) {
        schakel_arena_reset(p->arena);
        pthread_mutex_lock(&b->q_lock);
        if (b->n_spare < sizeof b->spare / sizeof b->spare[0]) b->spare[b->n_spare++] = p->arena, p->arena = NULL;
        pthread_mutex_unlock(&b->q_lock);
        schakel_arena_destroy(&p->arena);
    }
    free(p);
}

static schakel_arena_t *arena_get(schakel_broker_t *b)
{
    schakel_arena_t *a = NULL;
    pthread_mutex_lock(&b->q_lock);
    if (b->n_spare) a = b->spare[--b->n_spare];
    pthread_mutex_unlock(&b->q_lock);
    return a ? a : schakel_arena_new(ARENA_CHUNK);
}

static void add_index(schakel_append_item_t *it, const char *prefix, const char *name, uint64_t seq)
{
    if (it->n_index >= SCHAKEL_MAX_INDEX) return;
    snprintf(it->index[it->n_index].stream, SCHAKEL_STREAM_MAX, "%s%s", prefix, name);
    it->index[it->n_index++].seq = seq;
}

/* A decision must be about an event that is on the log: the event id at
 * about_seq is about_event_id. Indexes the decision into about/<id>, so
 * that `schakel explain` finds every decision about an event. */
static int check_about(schakel_broker_t *b, const ProtobufCBinaryData *about_id, uint64_t about_seq,
                       const char *field, schakel_append_item_t *it, char *why)
{
    uint8_t id[16];
    if (about_id->len != 16 || schakel_store_event_id_at(b->store, about_seq, id) != 0 ||
        memcmp(id, about_id->data, 16) != 0)
        return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                            "%s.about_seq: no event with about_event_id at seq %llu", field,
                            (unsigned long long)about_seq);
    char hex[33];
    schakel_hex_encode(id, 16, hex);
    add_index(it, "about/", hex, 0);
    return 0;
}

/* What the broker itself does with system events, beyond storing them:
 * consent decisions deliver (the event or the decision into org/<id>),
 * directory updates replace the directory, clock ticks move time. Each
 * needs its right in the directory. Returns 0 or a reject code. */
static int plan_system(schakel_broker_t *b, const schakel_org_t *org, const schakel_envelope_t *env,
                       schakel_append_item_t *it, char *why)
{
    switch ((int)env->type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION: {
        const Schakel__V1__RoutingDecision *r = env->routing_decision;
        int rc = check_about(b, &r->about_event_id, r->about_seq, "routing_decision", it, why);
        if (rc || !r->inform_org[0]) return rc;
        /* the publisher hears which of the organisations it named were refused */
        if (!schakel_directory_by_id(b->dir, r->inform_org))
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                "routing_decision.inform_org: %s is not in the directory", r->inform_org);
        add_index(it, "org/", r->inform_org, 0);
        return 0;
    }
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION: {
        const Schakel__V1__ConsentDecision *d = env->consent_decision;
        if (!(org->rights & SCHAKEL_RIGHT_DECIDE))
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                                "consent_decision: %s has no \"decide\" right in the directory",
                                org->id);
        const char *names[2] = {d->recipient_org, d->inform_org};
        for (int k = 0; k < 2; k++)
            if (names[k][0] && !schakel_directory_by_id(b->dir, names[k]))
                return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                    "consent_decision.%s: %s is not in the directory",
                                    k ? "inform_org" : "recipient_org", names[k]);
        int rc = check_about(b, &d->about_event_id, d->about_seq, "consent_decision", it, why);
        if (rc) return rc;
        if (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER)
            add_index(it, "org/", d->recipient_org, d->about_seq);
        else if (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY)
            add_index(it, "org/", d->recipient_org, 0);
        if (d->inform_org[0] && strcmp(d->inform_org, d->recipient_org) != 0)
            add_index(it, "org/", d->inform_org, 0);
        return 0;
    }
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE: {
        const Schakel__V1__DirectoryUpdate *u = env->directory_update;
        if (!(org->rights & SCHAKEL_RIGHT_DIRECTORY))
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                                "directory_update: %s has no \"directory\" right", org->id);
        char inner[SCHAKEL_ERRLEN];
        schakel_directory_t *d =
            schakel_directory_parse(u->document_json, strlen(u->document_json), inner);
        if (!d)
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                "directory_update.document_json: %s", inner);
        uint64_t v = schakel_directory_version(d);
        size_t keepers = schakel_directory_count_right(d, SCHAKEL_RIGHT_DIRECTORY);
        schakel_directory_destroy(&d);
        if (!keepers) /* else nobody could change it on the bus again */
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                "directory_update.document_json: no organisation keeps the "
                                "\"directory\" right; keep an admin (edit the node's file to "
                                "remove the last one)");
        if (v != u->version || v <= schakel_directory_version(b->dir))
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                "directory_update.version: %llu must equal the document's and be "
                                "above the version in force, %llu", (unsigned long long)u->version,
                                (unsigned long long)schakel_directory_version(b->dir));
        return 0;
    }
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK:
        if (!(org->rights & SCHAKEL_RIGHT_CLOCK))
            return schakel_fail(why, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                                "clock_tick: %s has no \"clock\" right", org->id);
        return 0;
    default: return 0;
    }
}

/* Validates one event of a signed batch; fills an append item or rejects. */
static void prepare_event(schakel_broker_t *b, const schakel_org_t *org, pending_t *p, size_t i)
{
    char why[SCHAKEL_ERRLEN] = "";
    ProtobufCBinaryData *e = &p->pub->events[i];
    schakel_envelope_t *env =
        schakel_envelope_decode_with(e->data, e->len, schakel_arena_allocator(p->arena), why);
    if (!env) {
        entry_reject(p, i, e->len > SCHAKEL_MAX_EVENT_BYTES ? SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE
                                                             : SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                     why);
        return;
    }
    p->envs[i] = env;
    if (env->event_id.len == 16) {
        p->entries[i].event_id.data = env->event_id.data;
        p->entries[i].event_id.len = 16;
    }
    int vrc = schakel_envelope_validate_bytes(env, e->data, e->len, why);
    if (vrc != 0) {
        entry_reject(p, i, vrc == SCHAKEL_EDECODE ? SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED
                                                  : SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, why);
        return;
    }
    if (strcmp(env->source_org, org->id) != 0) {
        snprintf(why, sizeof why, "source_org is \"%.63s\" but this connection is %s",
                 env->source_org, org->id);
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_WRONG_SOURCE, why);
        return;
    }
    schakel_append_item_t *it = &p->items[p->n_items];
    memset(it, 0, sizeof *it);
    /* A retry of an event this organisation stored before is answered as
     * a duplicate (or, with other bytes, a conflict) by the append, even
     * when the directory or the log has moved on since: a stored
     * directory_update is no longer above the version in force, a right
     * may be gone. Only a new event is judged by today's rules. */
    uint64_t stored;
    int known = schakel_store_lookup(b->store, org->id, env->event_id.data, &stored) == 0;
    if (!known && (env->type <= 0 || env->type >= SCHAKEL_EVENT_TYPE_LIMIT || !org->may_publish[env->type])) {
        snprintf(why, sizeof why, "%s may not publish %s: add it to \"publish\" in the directory",
                 org->id, schakel_event_type_name(env->type));
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, why);
        return;
    }
    if (!known && schakel_directory_check_named(b->dir, org, env, why) != 0) {
        entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, why);
        return;
    }
    int code = known ? 0 : plan_system(b, org, env, it, why);
    if (code) {
        entry_reject(p, i, code, why);
        return;
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

static void *arena_zalloc(schakel_arena_t *a, size_t n)
{
    void *p = schakel_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

/* Checks a PUBLISH as a whole, then each event. The pending slot is set up
 * for an ACK whatever happens. Runs in the checker thread, with the
 * directory locked. */
static void prepare_publish(schakel_broker_t *b, pending_t *p)
{
    size_t len = zmq_msg_size(&p->body);
    if (!p->arena) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, "broker is out of memory");
        return;
    }
    if (len > SCHAKEL_MAX_FRAME_BYTES) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE,
                     "frame is %zu bytes; the limit is 8 MiB: send smaller batches", len);
        return;
    }
    char inner[SCHAKEL_ERRLEN];
    int crc = schakel_codec_check(&schakel__v1__publish__descriptor, zmq_msg_data(&p->body), len,
                                  inner);
    p->pub = crc ? NULL : schakel__v1__publish__unpack(schakel_arena_allocator(p->arena), len,
                                                       zmq_msg_data(&p->body));
    if (crc == SCHAKEL_EINVAL) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, "PUBLISH body: %s", inner);
        return;
    }
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
    p->entries = arena_zalloc(p->arena, n * sizeof *p->entries);
    p->envs = arena_zalloc(p->arena, n * sizeof *p->envs);
    p->hashes = arena_zalloc(p->arena, n * sizeof *p->hashes);
    p->items = arena_zalloc(p->arena, n * sizeof *p->items);
    p->item_entry = arena_zalloc(p->arena, n * sizeof *p->item_entry);
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
    const schakel_org_t *org = schakel_directory_by_id(b->dir, p->user);
    if (!org) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                     "%s is no longer in the directory", p->user);
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

static peer_t *peer_find(schakel_broker_t *b, const zmq_msg_t *rid, int create);

static void send_ack(schakel_broker_t *b, pending_t *p)
{
    Schakel__V1__Ack ack = SCHAKEL__V1__ACK__INIT;
    peer_t *peer = peer_find(b, &p->rid, 1);
    if (peer && peer->publishing) peer->publishing--; /* held as its ACK from here on */
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
    if ((peer ? schakel_wire_send_counted(b->router, &p->rid, "ACK", p->req_id, &ack.base,
                                          ZMQ_DONTWAIT, &peer->acks)
              : schakel_wire_send(b->router, &p->rid, "ACK", p->req_id, &ack.base, ZMQ_DONTWAIT)) != 0)
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

/* Group commit: every accepted event of every checked batch in one
 * durable transaction, then the ACKs. Takes the list and frees it. */
static void flush(schakel_broker_t *b, pending_t *list)
{
    size_t n_pending = 0, events = 0;
    for (pending_t *p = list; p; p = p->next) n_pending++, events += p->n_items;
    if (!n_pending) return;
    schakel_append_batch_t *batches = calloc(n_pending, sizeof *batches);
    size_t nb = 0;
    int rc = batches ? 0 : SCHAKEL_ENOMEM;
    char why[SCHAKEL_ERRLEN] = "";
    for (pending_t *p = list; batches && p; p = p->next) {
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
                    events, why[0] ? why : schakel_strerror(rc));
        if (!why[0]) snprintf(why, sizeof why, "%s", schakel_strerror(rc));
    }
    for (pending_t *p = list, *next; p; p = next) {
        next = p->next;
        for (size_t j = 0; j < p->n_items; j++) {
            Schakel__V1__AckEntry *e = &p->entries[p->item_entry[j]];
            if (rc) {
                char r[SCHAKEL_ERRLEN + 32];
                snprintf(r, sizeof r, "not stored, send again later: %s", why);
                entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
            } else if (p->items[j].conflict) {
                entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                             "event_id: already used for a different event: ids must be unique");
            } else {
                schakel_append_item_t *it = &p->items[j];
                e->seq = it->seq;
                e->duplicate = it->duplicate;
                /* wake-ups for org/<id> only: every key may subscribe to
                 * any topic, and about/<event id> would tell it which
                 * event was decided on, and when */
                for (size_t x = 0; x < it->n_index && !it->duplicate; x++)
                    if (!strncmp(it->index[x].stream, "org/", 4))
                        publish_head(b, it->index[x].stream, it->seq);
                if (it->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE && !it->duplicate)
                    directory_install(b, p->envs[p->item_entry[j]]->directory_update->document_json,
                                      it->seq);
            }
        }
        send_ack(b, p);
        pending_free(b, p);
    }
    free(batches);
    if (rc == 0 && nb) {
        schakel_head_t h;
        schakel_store_head(b->store, &h);
        publish_head(b, "all", h.seq);
    }
}

/* ---- the checker thread ---- */

static void *checker_main(void *arg)
{
    schakel_broker_t *b = arg;
    pthread_mutex_lock(&b->q_lock);
    for (;;) {
        while (!b->in_head && !b->checker_stop) pthread_cond_wait(&b->q_cond, &b->q_lock);
        pending_t *p = b->in_head;
        if (!p) break; /* asked to stop, and nothing left to check */
        b->in_head = p->next;
        if (!b->in_head) b->in_tail = NULL;
        b->checking = 1;
        pthread_mutex_unlock(&b->q_lock);
        p->next = NULL;
        p->arena = arena_get(b);
        pthread_mutex_lock(&b->dir_lock);
        prepare_publish(b, p);
        pthread_mutex_unlock(&b->dir_lock);
        pthread_mutex_lock(&b->q_lock);
        if (b->out_tail) b->out_tail->next = p;
        else b->out_head = p, b->out_since = now_ms();
        b->out_tail = p;
        b->out_events += p->n_items;
        b->checking = 0;
        zmq_send(b->wake_tx, "", 0, ZMQ_DONTWAIT);
    }
    pthread_mutex_unlock(&b->q_lock);
    return NULL;
}

#define GROUP_WAIT_MS 5 /* the longest a checked batch waits for company */

/* Takes checked batches off the queue, up to group_max events (at least
 * one batch), in the order they came: when there are enough for a good
 * group, when the checker has nothing more coming, or when the oldest has
 * waited GROUP_WAIT_MS. One fsync for many batches is what makes the log
 * fast; waiting for a few more is cheaper than a commit of its own. With
 * all, take whatever there is (stopping). */
static pending_t *take_checked(schakel_broker_t *b, int all)
{
    pthread_mutex_lock(&b->q_lock);
    int due = all || b->out_events >= b->group_max / 2 || (!b->in_head && !b->checking) ||
              now_ms() - b->out_since >= GROUP_WAIT_MS;
    pending_t *list = due ? b->out_head : NULL, *last = NULL;
    size_t events = 0;
    for (pending_t *p = list; p && (events < b->group_max || !last); p = p->next) {
        events += p->n_items;
        last = p;
        b->in_flight--;
    }
    if (last) {
        b->out_head = last->next;
        b->out_events -= events;
        if (!b->out_head) b->out_tail = NULL;
        else b->out_since = now_ms();
        last->next = NULL;
    }
    pthread_mutex_unlock(&b->q_lock);
    return last ? list : NULL;
}

/* ---- FETCH / COMMIT / PING ---- */

/* A reply ZeroMQ would not take: the peer left (EHOSTUNREACH), or it has
 * SEND_HWM replies it has not read (EAGAIN). Counted and logged (at most
 * once a second), never queued in the broker. */
static void reply_dropped(schakel_broker_t *b, const char *name, uint64_t req_id)
{
    b->stat_replies_dropped++;
    int64_t now = now_ms();
    if (now - b->last_drop_log < 1000) return;
    b->last_drop_log = now;
    schakel_log(SCHAKEL_LOG_WARN, "broker", "event=reply_dropped reply=%s req=%llu reason=%s "
                "dropped_total=%llu", name, (unsigned long long)req_id,
                errno == EAGAIN ? "peer_not_reading" : "peer_gone",
                (unsigned long long)b->stat_replies_dropped);
}

static void send_reply(schakel_broker_t *b, schakel_wire_msg_t *m, const char *name,
                       const ProtobufCMessage *msg)
{
    if (schakel_wire_send(b->router, &m->rid, name, m->req_id, msg, ZMQ_DONTWAIT) != 0)
        reply_dropped(b, name, m->req_id);
}

static void send_error(schakel_broker_t *b, schakel_wire_msg_t *m, int code, const char *reason)
{
    Schakel__V1__Error e = SCHAKEL__V1__ERROR__INIT;
    e.code = code;
    e.reason = (char *)reason;
    send_reply(b, m, "ERROR", &e.base);
}

/* The connection's entry in the table of what the broker holds for it
 * (NULL when nothing and !create). Frees the entries of connections for
 * which it holds nothing any more. */
static peer_t *peer_find(schakel_broker_t *b, const zmq_msg_t *rid, int create)
{
    size_t len = zmq_msg_size((zmq_msg_t *)rid);
    const void *id = zmq_msg_data((zmq_msg_t *)rid);
    peer_t *found = NULL;
    for (peer_t **pp = &b->peers; *pp;) {
        peer_t *p = *pp;
        if (!found && p->rid_len == len && memcmp(p->rid, id, len) == 0) {
            found = p;
            pp = &p->next;
        } else if (atomic_load(&p->batches) == 0 && atomic_load(&p->acks) == 0 &&
                   p->publishing == 0) {
            *pp = p->next; /* nothing of it left in ZeroMQ: only we know it */
            free(p);
        } else {
            pp = &p->next;
        }
    }
    if (found || !create || len > sizeof found->rid) return found;
    found = calloc(1, sizeof *found);
    if (!found) return NULL;
    atomic_init(&found->batches, 0);
    atomic_init(&found->acks, 0);
    memcpy(found->rid, id, len);
    found->rid_len = len;
    found->next = b->peers;
    b->peers = found;
    return found;
}

/* Peers whose replies ZeroMQ still holds when the broker stops: wait
 * for the I/O thread to let go of them (the router is closed by now), then
 * free. An entry still counted after that is left: the I/O thread may yet
 * touch it. */
static void peers_free(schakel_broker_t *b)
{
    for (int i = 0; i < 200; i++) {
        int busy = 0;
        for (peer_t *p = b->peers; p; p = p->next)
            busy |= atomic_load(&p->batches) != 0 || atomic_load(&p->acks) != 0;
        if (!busy) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (peer_t *p = b->peers, *next; p; p = next) {
        next = p->next;
        if (atomic_load(&p->batches) == 0 && atomic_load(&p->acks) == 0) free(p);
        else schakel_log(SCHAKEL_LOG_WARN, "broker", "event=peer_left_in_zeromq");
    }
    b->peers = NULL;
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
    d->position = rec->position;
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

/* A command body over its cap is REJECT_TOO_LARGE, one that does not decode
 * REJECT_MALFORMED (protocol.md §2). Returns 0 when the body may be decoded. */
static int body_over_cap(schakel_broker_t *b, schakel_wire_msg_t *m, const char *cmd, size_t cap)
{
    size_t len = zmq_msg_size(&m->body);
    if (len <= cap) return 0;
    char r[SCHAKEL_ERRLEN];
    snprintf(r, sizeof r, "%s body is %zu bytes; the limit is %zu", cmd, len, cap);
    send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE, r);
    return 1;
}

static void handle_fetch(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (body_over_cap(b, m, "FETCH", FETCH_BODY_MAX)) return;
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Fetch *f = schakel__v1__fetch__unpack(NULL, len, zmq_msg_data(&m->body));
    if (!f) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "FETCH body does not decode as schakel.v1.Fetch");
        return;
    }
    if (strlen(f->consumer) > 80) { /* as COMMIT: never a cut name's cursor */
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "FETCH consumer name is over 80 bytes: use a name of 1 to 80 bytes");
        schakel__v1__fetch__free_unpacked(f, NULL);
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
    /* Before any work: a connection that has not taken its last BATCHes
     * from the broker gets no more of them until it does. */
    peer_t *peer = peer_find(b, &m->rid, 1);
    if (!peer || atomic_load(&peer->batches) >= FETCH_UNREAD_MAX) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "%d BATCH replies to this connection are not read yet: read them, "
                 "then FETCH again", FETCH_UNREAD_MAX);
        b->stat_fetch_refused++;
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER,
                   peer ? r : "broker out of memory");
        schakel__v1__fetch__free_unpacked(f, NULL);
        return;
    }
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    uint64_t from = f->from_seq;
    if (from == 0 && f->consumer[0]) {
        char name[256];
        snprintf(name, sizeof name, "%s/%.80s/%s", m->user, f->consumer, f->stream);
        schakel_store_cursor_get(b->store, name, &from);
        if (from > h.seq) { /* stored before cursors were checked: never wrap */
            char r[SCHAKEL_ERRLEN];
            snprintf(r, sizeof r, "the committed cursor of consumer \"%.80s\" is %llu, beyond the "
                     "head %llu: COMMIT a seq of at most %llu, or FETCH with from_seq",
                     f->consumer, (unsigned long long)from, (unsigned long long)h.seq,
                     (unsigned long long)h.seq);
            send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, r);
            schakel__v1__fetch__free_unpacked(f, NULL);
            return;
        }
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
        schakel_store_head(b->store, &h);
        out.stream = f->stream;
        out.records = a.ptrs;
        out.n_records = a.n;
        out.next_seq = next;
        out.head = h.seq;
        if (schakel_wire_send_counted(b->router, &m->rid, "BATCH", m->req_id, &out.base,
                                      ZMQ_DONTWAIT, &peer->batches) != 0)
            reply_dropped(b, "BATCH", m->req_id);
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
    if (body_over_cap(b, m, "COMMIT", COMMIT_BODY_MAX)) return;
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Commit *c = schakel__v1__commit__unpack(NULL, len, zmq_msg_data(&m->body));
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    if (!c || !c->consumer[0] || strlen(c->consumer) > 80) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "COMMIT needs a schakel.v1.Commit with a consumer name of 1 to 80 bytes");
    } else if (!may_read(b, m->user, c->stream)) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                   "cursor for a stream this organisation may not read");
    } else if (c->seq > h.seq) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "seq %llu is beyond the head of the log, %llu: commit the last seq "
                 "you handled", (unsigned long long)c->seq, (unsigned long long)h.seq);
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, r);
    } else {
        char name[256];
        snprintf(name, sizeof name, "%s/%s/%s", m->user, c->consumer, c->stream);
        int rc = schakel_store_cursor_set(b->store, name, c->seq);
        if (rc) send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, schakel_strerror(rc));
        else send_reply(b, m, "COMMITTED", &c->base);
    }
    if (c) schakel__v1__commit__free_unpacked(c, NULL);
}

static void handle_ping(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (body_over_cap(b, m, "PING", PING_BODY_MAX)) return;
    size_t len = zmq_msg_size(&m->body);
    Schakel__V1__Ping *p = schakel__v1__ping__unpack(NULL, len, zmq_msg_data(&m->body));
    if (!p) {
        send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                   "PING body does not decode as schakel.v1.Ping");
        return;
    }
    Schakel__V1__Pong pong = SCHAKEL__V1__PONG__INIT;
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    pong.nonce = p->nonce;
    pong.head = h.seq;
    pong.now = now_ms();
    pong.alarms = b->alarms;
    send_reply(b, m, "PONG", &pong.base);
    schakel__v1__ping__free_unpacked(p, NULL);
}

/* Checks the body of a FETCH, COMMIT or PING over its full length before
 * it is unpacked (unknown fields, a NUL in a stream or consumer name);
 * larger bodies are left to the size check of each command. Returns 1 when
 * it may go on, 0 when an ERROR was sent. */
static int body_checked(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    const ProtobufCMessageDescriptor *d = !strcmp(m->name, "FETCH")    ? &schakel__v1__fetch__descriptor
                                          : !strcmp(m->name, "COMMIT") ? &schakel__v1__commit__descriptor
                                          : !strcmp(m->name, "PING")   ? &schakel__v1__ping__descriptor
                                                                        : NULL;
    size_t len = zmq_msg_size(&m->body);
    /* over its cap, the command's handler answers REJECT_TOO_LARGE */
    if (!d || len > (d == &schakel__v1__ping__descriptor ? 64u : 4096u)) return 1;
    char why[SCHAKEL_ERRLEN], r[SCHAKEL_ERRLEN];
    int rc = schakel_codec_check(d, zmq_msg_data(&m->body), len, why);
    if (!rc) return 1;
    snprintf(r, sizeof r, "%s body: %s", m->name, why);
    send_error(b, m, rc == SCHAKEL_EINVAL ? SCHAKEL__V1__REJECT_CODE__REJECT_INVALID
                                          : SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED, r);
    return 0;
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
    } else if (!body_checked(b, &m)) {
        /* answered */
    } else if (strcmp(m.name, "PUBLISH") == 0) {
        /* a connection's PUBLISHes between receipt and its reading the
         * ACK are bounded: the broker holds them or their ACKs */
        peer_t *peer = peer_find(b, &m.rid, 1);
        pending_t *p = NULL;
        size_t len = zmq_msg_size(&m.body);
        if (len > SCHAKEL_MAX_FRAME_BYTES) { /* answered now: never held for the checker */
            Schakel__V1__Ack ack = SCHAKEL__V1__ACK__INIT;
            char r[SCHAKEL_ERRLEN];
            snprintf(r, sizeof r, "frame is %zu bytes; the limit is 8 MiB: send smaller batches", len);
            ack.batch_code = SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE;
            ack.batch_reason = r;
            b->stat_rejected++;
            send_reply(b, &m, "ACK", &ack.base);
        } else if (peer && peer->publishing + atomic_load(&peer->acks) >= ACK_UNREAD_MAX) {
            char r[SCHAKEL_ERRLEN];
            snprintf(r, sizeof r, "%d PUBLISHes on this connection are not ACKed or their ACKs "
                     "not read yet: read them, then PUBLISH again", ACK_UNREAD_MAX);
            b->stat_publish_refused++;
            send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
        } else if (!(p = calloc(1, sizeof *p))) {
            send_error(b, &m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, "broker out of memory");
        } else { /* to the checker, as it came: no copy of the body */
            zmq_msg_init(&p->rid);
            zmq_msg_init(&p->body);
            zmq_msg_move(&p->rid, &m.rid);
            zmq_msg_move(&p->body, &m.body);
            snprintf(p->user, sizeof p->user, "%s", m.user);
            p->req_id = m.req_id;
            if (peer) peer->publishing++;
            pthread_mutex_lock(&b->q_lock);
            if (b->in_tail) b->in_tail->next = p;
            else b->in_head = p;
            b->in_tail = p;
            b->in_flight++;
            pthread_cond_signal(&b->q_cond);
            pthread_mutex_unlock(&b->q_lock);
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

/* At start: the newer of the directory file and the last directory on
 * the log wins, and both end up the same. */
static void directory_sync(schakel_broker_t *b)
{
    char *doc = NULL;
    uint64_t seq = 0;
    schakel_store_cursor_get(b->store, DIRECTORY_CURSOR, &seq);
    uint64_t logged = seq ? record_directory(b, seq, &doc) : 0;
    if (logged > schakel_directory_version(b->dir) && doc) {
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_from_log version=%llu seq=%llu",
                    (unsigned long long)logged, (unsigned long long)seq);
        directory_install(b, doc, seq);
    } else {
        directory_to_log(b);
    }
    free(doc);
}

/* The broker's clock on the log: services time holds and deadlines by the
 * log, never by their own wall clock, so that replay is deterministic. */
static void clock_tick(schakel_broker_t *b, int64_t now)
{
    schakel_envelope_t env;
    Schakel__V1__ClockTick t = SCHAKEL__V1__CLOCK_TICK__INIT;
    uint8_t id[16], at[8];
    for (int i = 0; i < 8; i++) at[i] = (uint8_t)((uint64_t)now >> (56 - 8 * i));
    own_envelope(&env, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK, "schakel/v1/tick", at,
                 sizeof at, id);
    t.at_ms = now;
    env.occurred_at = now; /* the same tick is the same bytes */
    env.clock_tick = &t;
    append_own(b, &env);
}

/* Are checked batches waiting for their group to fill? */
static int out_waiting(schakel_broker_t *b)
{
    pthread_mutex_lock(&b->q_lock);
    int n = b->out_head != NULL;
    pthread_mutex_unlock(&b->q_lock);
    return n;
}

static size_t in_flight(schakel_broker_t *b)
{
    pthread_mutex_lock(&b->q_lock);
    size_t n = b->in_flight;
    pthread_mutex_unlock(&b->q_lock);
    return n;
}

/* Stops the checker after it has checked everything it was given. */
static void checker_finish(schakel_broker_t *b)
{
    if (!b->checker_running) return;
    pthread_mutex_lock(&b->q_lock);
    b->checker_stop = 1;
    pthread_cond_signal(&b->q_cond);
    pthread_mutex_unlock(&b->q_lock);
    pthread_join(b->checker, NULL);
    b->checker_running = 0;
}

/* A process killed inside a read of the log (`audit verify`, a tail)
 * keeps its LMDB reader slot, and with it every page freed since: the map
 * only grows. Cleared at start and every READER_CHECK_MS. */
static void reader_check(schakel_broker_t *b, int64_t now, int at_start)
{
    int cleared = 0;
    b->last_reader_check = now;
    if (schakel_lmdb_reader_check(b->store, &cleared) != 0)
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=reader_check_failed");
    else if (cleared || at_start)
        schakel_log(cleared ? SCHAKEL_LOG_WARN : SCHAKEL_LOG_INFO, "broker",
                    "event=stale_readers_cleared count=%d", cleared);
}

int schakel_broker_run(schakel_broker_t *b)
{
    zmq_pollitem_t it[2] = {{b->router, 0, ZMQ_POLLIN, 0}, {b->wake_rx, 0, ZMQ_POLLIN, 0}};
    int64_t last_reload = 0;
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=running");
    while (!atomic_load(&b->stop)) {
        /* with batches in flight, the router waits for the checker */
        it[0].events = in_flight(b) < MAX_IN_FLIGHT ? ZMQ_POLLIN : 0;
        int rc = zmq_poll(it, 2, out_waiting(b) ? 1 : 100);
        if (rc < 0 && errno == ETERM) break;
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN))
            while (in_flight(b) < MAX_IN_FLIGHT && handle_one(b)) {
            }
        if (rc > 0 && (it[1].revents & ZMQ_POLLIN))
            while (zmq_recv(b->wake_rx, NULL, 0, ZMQ_DONTWAIT) >= 0) {
            }
        pending_t *ready;
        while ((ready = take_checked(b, 0))) flush(b, ready);
        int64_t now = now_ms();
        if (b->tick_ms > 0 && now - b->last_tick >= b->tick_ms) {
            clock_tick(b, now);
            b->last_tick = now;
        }
        schakel_store_checkpoint(b->store, now);
        if (now - b->last_reader_check >= READER_CHECK_MS) reader_check(b, now, 0);
        if (now - last_reload >= 1000) {
            directory_maybe_reload(b);
            last_reload = now;
        }
    }
    checker_finish(b); /* every batch received is checked, appended and ACKed */
    pending_t *ready;
    while ((ready = take_checked(b, 1))) flush(b, ready);
    schakel_store_checkpoint(b->store, now_ms() + 3600 * 1000);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=stopped acked=%llu rejected=%llu "
                "fetch_refused=%llu publish_refused=%llu replies_dropped=%llu",
                (unsigned long long)b->stat_acked, (unsigned long long)b->stat_rejected,
                (unsigned long long)b->stat_fetch_refused, (unsigned long long)b->stat_publish_refused,
                (unsigned long long)b->stat_replies_dropped);
    return 0;
}

void schakel_broker_stop(schakel_broker_t *b)
{
    atomic_store(&b->stop, 1);
}

int schakel_broker_master_key(const char *data_dir, uint8_t key[32], char *why)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/master.key", data_dir);
    return schakel_secret_file(path, key, 32, 1, NULL, why);
}

schakel_broker_t *schakel_broker_new(void *ctx, const schakel_broker_config_t *cfg, char *why)
{
    schakel_broker_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->ctx = ctx;
    pthread_mutex_init(&b->dir_lock, NULL);
    b->group_max = cfg->group_max ? cfg->group_max : 8192;
    b->tick_ms = cfg->tick_ms ? cfg->tick_ms : 60000;
    b->last_tick = now_ms();
    pthread_mutex_init(&b->q_lock, NULL);
    pthread_cond_init(&b->q_cond, NULL);
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
    reader_check(b, now_ms(), 1);

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
    int linger = 1000, sndhwm = SEND_HWM, rcvhwm = RECV_HWM, mandatory = 1;
    b->router = zmq_socket(ctx, ZMQ_ROUTER);
    b->pub = zmq_socket(ctx, ZMQ_PUB);
    if (!b->router || !b->pub || schakel_wire_curve_server(b->router, &b->keys) ||
        schakel_wire_curve_server(b->pub, &b->keys) ||
        zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(b->router, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) ||
        zmq_setsockopt(b->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
        /* a full or gone peer is an error we count, not a silent drop */
        zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory) ||
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
    char wake[64];
    snprintf(wake, sizeof wake, "inproc://schakel-broker-checker-%p", (void *)b);
    b->wake_rx = zmq_socket(ctx, ZMQ_PAIR);
    b->wake_tx = zmq_socket(ctx, ZMQ_PAIR);
    if (!b->wake_rx || !b->wake_tx || zmq_bind(b->wake_rx, wake) != 0 || zmq_connect(b->wake_tx, wake) != 0 ||
        zmq_setsockopt(b->wake_tx, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        schakel_fail(why, SCHAKEL_EZMQ, "checker wake-up: %s", zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&b->checker, NULL, checker_main, b) != 0) {
        schakel_fail(why, SCHAKEL_ENOMEM, "cannot start the checker thread");
        goto fail;
    }
    b->checker_running = 1;
    directory_sync(b);
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
    peers_free(b);
    checker_finish(b);
    for (pending_t *lists[2] = {b->in_head, b->out_head}, **l = lists; l < lists + 2; l++)
        for (pending_t *p = *l, *next; p; p = next) {
            next = p->next;
            pending_free(b, p);
        }
    for (size_t i = 0; i < b->n_spare; i++) schakel_arena_destroy(&b->spare[i]);
    if (b->wake_tx) zmq_close(b->wake_tx);
    if (b->wake_rx) zmq_close(b->wake_rx);
    schakel_store_close(&b->store);
    schakel_directory_destroy(&b->dir);
    free(b->dir_path);
    schakel_keys_wipe(&b->keys);
    pthread_mutex_destroy(&b->dir_lock);
    pthread_mutex_destroy(&b->q_lock);
    pthread_cond_destroy(&b->q_cond);
    free(b);
    *self_p = NULL;
}
