/* Checking, the second step of the data path: the command loop hands
 * each PUBLISH, as it came, to the checker threads (broker_publish_receive);
 * a checker decodes it into an arena, verifies the batch signature
 * against the directory and validates every event (lib/validate.h, then
 * who may publish what, then broker_plan_system for system events), and
 * puts it on the checked queue, where the command loop takes it in
 * groups (broker_take_checked) for commit.c. The checkers run while the
 * loop appends and flushes the group before; they share only the queues
 * (q_lock) and the directory (dir_lock, read). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_impl.h"
#include "validate.h"

/* A PUBLISH has come in: answered at once when it is over the frame cap
 * or the connection, or its organisation over all its connections, holds
 * too many unACKed PUBLISHes, else queued for the
 * checker as it came (no copy of the body). A connection's PUBLISHes
 * between receipt and its reading the ACK are bounded: the broker holds
 * them or their ACKs. Runs in the command loop's thread. */
void broker_publish_receive(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    peer_t *peer = broker_peer_find(b, &m->rid, m->user);
    pending_t *p = NULL;
    size_t len = zmq_msg_size(&m->body);
    if (len > SCHAKEL_MAX_FRAME_BYTES) { /* answered now: never held for the checker */
        Schakel__V1__Ack ack = SCHAKEL__V1__ACK__INIT;
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "frame is %zu bytes; the limit is 8 MiB: send smaller batches", len);
        ack.batch_code = SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE;
        ack.batch_reason = r;
        b->stat_rejected++;
        broker_stats_reject(b, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE);
        broker_send_reply(b, m, "ACK", &ack.base);
    } else if (peer && peer->publishing + atomic_load(&peer->acks) >= ACK_UNREAD_MAX) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r,
                 "%d PUBLISHes on this connection are not ACKed or their ACKs "
                 "not read yet: read them, then PUBLISH again",
                 ACK_UNREAD_MAX);
        b->stat_publish_refused++;
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
    } else if (broker_org_held(b, m->user).held >= ORG_ACK_UNREAD_MAX) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r,
                 "%d PUBLISHes on all connections of %s together are not ACKed or their "
                 "ACKs not read yet: read them, then PUBLISH again",
                 ORG_ACK_UNREAD_MAX, m->user);
        b->stat_publish_refused++;
        broker_org_refused(b, m->user, "publishes");
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
    } else if (!(p = calloc(1, sizeof *p))) {
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, "broker out of memory");
    } else { /* to the checker, as it came: no copy of the body */
        zmq_msg_init(&p->rid);
        zmq_msg_init(&p->body);
        (void)zmq_msg_move(&p->rid, &m->rid); /* both initialised: cannot fail */
        (void)zmq_msg_move(&p->body, &m->body);
        snprintf(p->user, sizeof p->user, "%s", m->user);
        p->req_id = m->req_id;
        if (peer) peer->publishing++;
        pthread_mutex_lock(&b->q_lock);
        if (b->in_tail) b->in_tail->next = p;
        else b->in_head = p;
        b->in_tail = p;
        b->in_flight++;
        pthread_cond_signal(&b->q_cond);
        pthread_mutex_unlock(&b->q_lock);
    }
}

static void free_reason(Schakel__V1__AckEntry *e)
{
    if (e->reason && e->reason != protobuf_c_empty_string) free(e->reason);
    e->reason = (char *)protobuf_c_empty_string;
}

void broker_entry_reject(pending_t *p, size_t i, Schakel__V1__RejectCode code, const char *reason)
{
    p->entries[i].code = code;
    free_reason(&p->entries[i]);
    char *r = strdup(reason);
    if (r) p->entries[i].reason = r;
}

#define ARENA_CHUNK (256u << 10)

void broker_pending_free(schakel_broker_t *b, pending_t *p)
{
    zmq_msg_close(&p->rid);
    zmq_msg_close(&p->body);
    for (size_t i = 0; i < p->n; i++)
        if (p->entries) free_reason(&p->entries[i]);
    if (p->arena) {
        schakel_arena_reset(p->arena);
        pthread_mutex_lock(&b->q_lock);
        if (b->n_spare < sizeof b->spare / sizeof b->spare[0])
            b->spare[b->n_spare++] = p->arena, p->arena = NULL;
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

#define batch_reject(p, code, ...)                                              \
    do {                                                                        \
        (p)->batch_code = (code);                                               \
        schakel_textf((p)->batch_reason, sizeof(p)->batch_reason, __VA_ARGS__); \
    } while (0)

static void *arena_zalloc(schakel_arena_t *a, size_t n)
{
    void *p = schakel_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

int broker_reject(reject_t *r, Schakel__V1__RejectCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->code = code;
    return SCHAKEL_EREJECTED;
}

/* Validates one event of a signed batch and fills its append item:
 * SCHAKEL_OK, or SCHAKEL_EREJECTED with the reject in rej. Validation's
 * own errors (SCHAKEL_EDECODE, SCHAKEL_EINVAL) become wire codes here and
 * nowhere else. */
static int check_event(schakel_broker_t *b, const schakel_org_t *org, pending_t *p, size_t i, reject_t *rej)
{
    char why[SCHAKEL_ERRLEN] = "";
    ProtobufCBinaryData *e = &p->pub->events[i];
    schakel_envelope_t *env =
        schakel_envelope_decode_with(e->data, e->len, schakel_arena_allocator(p->arena), why);
    if (!env)
        return broker_reject(rej,
                             e->len > SCHAKEL_MAX_EVENT_BYTES ? SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE
                                                              : SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
                             "%s", why);
    p->envs[i] = env;
    if (env->event_id.len == 16) {
        p->entries[i].event_id.data = env->event_id.data;
        p->entries[i].event_id.len = 16;
    }
    /* the rules on the log are the node's rule files, put there by the
     * bus under its own key: whatever the directory says, no organisation
     * changes what the services decide by; and only the broker records an
     * erasure, after it destroyed the key. Both before any other check. */
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE)
        return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                             "rules_update: only the bus itself puts rules on the log, from the node's "
                             "rule files; %s may not publish one",
                             org->id);
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE)
        return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                             "erasure: only the broker writes erasure events (schakel audit erase)");
    int vrc = schakel_envelope_validate_bytes(env, e->data, e->len, why);
    if (vrc != SCHAKEL_OK)
        return broker_reject(rej,
                             vrc == SCHAKEL_EDECODE ? SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED
                                                    : SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                             "%s", why);
    if (strcmp(env->source_org, org->id) != 0)
        return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_WRONG_SOURCE,
                             "source_org is \"%.63s\" but this connection is %s", env->source_org, org->id);
    schakel_append_item_t *it = &p->items[p->n_items];
    memset(it, 0, sizeof *it);
    /* A retry of an event this organisation stored before is answered as
     * a duplicate (or, with other bytes, a conflict) by the append, even
     * when the directory or the log has moved on since: a stored
     * directory_update is no longer above the version in force, a right
     * may be gone. Only a new event is judged by today's rules. */
    /* Whether it is stored already is looked up only where the answer
     * changes something: for an event today's rules refuse, or one the
     * broker plans (a system event). An allowed plain event needs no
     * lookup here: the append finds a duplicate by the same index, in the
     * transaction that would store it. A new system event carries the
     * answer to the append (absent_upto: no record up to there holds its
     * id), which then looks only at the records stored since. */
    int may = env->type > 0 && env->type < SCHAKEL_EVENT_TYPE_LIMIT && org->may_publish[env->type];
    int named = may && schakel_directory_check_named(b->dir, org, env, why) == 0;
    uint64_t stored;
    int known =
        (!named || broker_is_planned(env->type)) &&
        schakel_store_lookup_upto(b->store, org->id, env->event_id.data, &stored, &it->absent_upto) == 0;
    if (!known && !may)
        return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                             "%s may not publish %s: add it to \"publish\" in the directory", org->id,
                             schakel_event_type_name(env->type));
    if (!known && !named) return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, "%s", why);
    int rc = known ? SCHAKEL_OK : broker_plan_system(b, org, env, it, rej);
    if (rc != SCHAKEL_OK) return rc;
    it->event = e->data;
    it->event_len = e->len;
    it->event_id = env->event_id.data;
    it->type = env->type;
    /* an access log entry is the controller's record of who looked, not
     * the child's data: under the bus's key, which no erasure destroys
     * (privacy.md, "Erasure"), so that it survives the child's erasure
     * and a look gives the child no new data key */
    it->subject = env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS ? "" : env->subject;
    memcpy(it->event_hash, p->hashes[i], SCHAKEL_SHA256_LEN);
    it->proof_index = (uint32_t)i;
    p->item_entry[p->n_items++] = i;
    return SCHAKEL_OK;
}

/* Event i of a signed batch: an append item, or a reject in its entry. */
static void prepare_event(schakel_broker_t *b, const schakel_org_t *org, pending_t *p, size_t i)
{
    reject_t rej = {0};
    int rc = check_event(b, org, p, i, &rej);
    if (rc == SCHAKEL_EREJECTED) broker_entry_reject(p, i, rej.code, rej.reason);
    else if (rc != SCHAKEL_OK) /* an internal error is the broker's, never the event's */
        broker_entry_reject(p, i, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, schakel_strerror(rc));
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
    int crc = schakel_codec_check(&schakel__v1__publish__descriptor, zmq_msg_data(&p->body), len, inner);
    p->pub =
        crc ? NULL
            : schakel__v1__publish__unpack(schakel_arena_allocator(p->arena), len, zmq_msg_data(&p->body));
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
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, "broker is out of memory (%zu events)",
                     n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        schakel__v1__ack_entry__init(&p->entries[i]);
        schakel_sha256(p->pub->events[i].data, p->pub->events[i].len, p->hashes[i]);
    }
    const schakel_org_t *org = schakel_directory_by_id(b->dir, p->user);
    if (!org) {
        batch_reject(p, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED, "%s is no longer in the directory",
                     p->user);
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

/* Moves the batches at the front of the checking list that are checked
 * to the checked queue: a batch leaves checking only after every batch
 * that came before it, so groups, appends and seqs keep the order in
 * which PUBLISHes arrived (per connection, and over all of them). Under
 * q_lock. */
static void checked_in_order(schakel_broker_t *b)
{
    int moved = 0;
    while (b->chk_head && b->chk_head->checked) {
        pending_t *p = b->chk_head;
        b->chk_head = p->next;
        if (!b->chk_head) b->chk_tail = NULL;
        p->next = NULL;
        if (b->out_tail) b->out_tail->next = p;
        else b->out_head = p, b->out_since = schakel_wall_ms();
        b->out_tail = p;
        b->out_events += p->n_items;
        moved = 1;
    }
    /* the checkers share wake_tx, one at a time under q_lock */
    /* EAGAIN: a wake-up is pending already, which is all this says */
    if (moved) (void)zmq_send(b->wake_tx, "", 0, ZMQ_DONTWAIT);
}

void *broker_checker_main(void *arg)
{
    schakel_broker_t *b = arg;
    (void)pthread_setname_np(pthread_self(), "checker");
    pthread_mutex_lock(&b->q_lock);
    for (;;) {
        while (!b->in_head && !b->checker_stop) pthread_cond_wait(&b->q_cond, &b->q_lock);
        pending_t *p = b->in_head;
        if (!p) break; /* asked to stop, and nothing left to check */
        b->in_head = p->next;
        if (!b->in_head) b->in_tail = NULL;
        p->next = NULL;
        if (b->chk_tail) b->chk_tail->next = p;
        else b->chk_head = p;
        b->chk_tail = p;
        b->checking++;
        pthread_mutex_unlock(&b->q_lock);
        p->arena = arena_get(b);
        pthread_rwlock_rdlock(&b->dir_lock);
        prepare_publish(b, p);
        pthread_rwlock_unlock(&b->dir_lock);
        pthread_mutex_lock(&b->q_lock);
        p->checked = 1;
        b->checking--;
        checked_in_order(b);
    }
    pthread_mutex_unlock(&b->q_lock);
    return NULL;
}

/* One checker per core (the command loop, the publishers' CURVE and the
 * I/O threads share them too), at most MAX_CHECKERS: verifying the
 * Ed25519 batch signature and validating every field is the checker's
 * work, and batches are independent until they are appended. */
int broker_checkers_start(schakel_broker_t *b, size_t n, char *why)
{
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (size_t)cores : 1;
    }
    if (n > MAX_CHECKERS) n = MAX_CHECKERS;
    for (; b->n_checkers < n; b->n_checkers++)
        if (pthread_create(&b->checkers[b->n_checkers], NULL, broker_checker_main, b) != 0)
            return schakel_fail(why, SCHAKEL_ENOMEM, "cannot start checker thread %zu", b->n_checkers + 1);
    return 0;
}

/* Takes checked batches off the queue, up to group_max events (at least
 * one batch), in the order they came: when there are enough for a good
 * group, when the checker has nothing more coming, or when the oldest has
 * waited GROUP_WAIT_MS. One fsync for many batches is what makes the log
 * fast; waiting for a few more is cheaper than a commit of its own. With
 * all, take whatever there is (stopping). */
pending_t *broker_take_checked(schakel_broker_t *b, int all)
{
    pthread_mutex_lock(&b->q_lock);
    int due = all || b->out_events >= b->group_max / 2 || (!b->in_head && !b->checking) ||
              schakel_wall_ms() - b->out_since >= GROUP_WAIT_MS;
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
        else b->out_since = schakel_wall_ms();
        last->next = NULL;
    }
    pthread_mutex_unlock(&b->q_lock);
    return last ? list : NULL;
}

/* Stops the checkers after they have checked everything they were given. */
void broker_checker_finish(schakel_broker_t *b)
{
    if (!b->n_checkers) return;
    pthread_mutex_lock(&b->q_lock);
    b->checker_stop = 1;
    pthread_cond_broadcast(&b->q_cond);
    pthread_mutex_unlock(&b->q_lock);
    for (size_t i = 0; i < b->n_checkers; i++)
        (void)pthread_join(b->checkers[i], NULL); /* ours, joined once */
    b->n_checkers = 0;
}
