/* System events: what the broker does with an event beyond storing it,
 * and the events it writes itself. Checking calls broker_plan_system for
 * each new event: a routing or consent decision must be about an event on
 * the log and names whom it is delivered to (the index entries that put
 * it into org/<id> when commit.c appends it); a directory_update and a
 * clock_tick need their right. The directory is kept in step with the
 * log: the newer of file and log wins at start (broker_directory_sync),
 * a changed file is put on the log, and an accepted directory_update is
 * installed (broker_directory_install). The broker's own events (the
 * directory, clock ticks) are appended between groups by the command
 * loop's thread, which alone writes the log. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "broker_impl.h"
#include "fileio.h"

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
                       const char *field, schakel_append_item_t *it, reject_t *rej)
{
    if (about_id->len != 16 || schakel_store_holds_id_at(b->store, about_seq, about_id->data) != 0)
        return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                             "%s.about_seq: no event with about_event_id at seq %llu", field,
                             (unsigned long long)about_seq);
    char hex[33];
    schakel_hex_encode(about_id->data, 16, hex);
    add_index(it, "about/", hex, 0);
    return 0;
}

int broker_is_planned(int type)
{
    switch (type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK: return 1;
    default: return 0;
    }
}

/* What the broker itself does with system events, beyond storing them:
 * consent decisions deliver (the event or the decision into org/<id>),
 * directory updates replace the directory, clock ticks move time. Each
 * needs its right in the directory. Returns SCHAKEL_OK, or
 * SCHAKEL_EREJECTED with the reject in rej. */
int broker_plan_system(schakel_broker_t *b, const schakel_org_t *org, const schakel_envelope_t *env,
                       schakel_append_item_t *it, reject_t *rej)
{
    switch ((int)env->type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION: {
        const Schakel__V1__RoutingDecision *r = env->routing_decision;
        int rc = check_about(b, &r->about_event_id, r->about_seq, "routing_decision", it, rej);
        if (rc || !r->inform_org[0]) return rc;
        /* the publisher hears which of the organisations it named were refused */
        if (!schakel_directory_by_id(b->dir, r->inform_org))
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                 "routing_decision.inform_org: %s is not in the directory", r->inform_org);
        add_index(it, "org/", r->inform_org, 0);
        return 0;
    }
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION: {
        const Schakel__V1__ConsentDecision *d = env->consent_decision;
        if (!(org->rights & SCHAKEL_RIGHT_DECIDE))
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                                 "consent_decision: %s has no \"decide\" right in the directory", org->id);
        const char *names[2] = {d->recipient_org, d->inform_org};
        for (int k = 0; k < 2; k++)
            if (names[k][0] && !schakel_directory_by_id(b->dir, names[k]))
                return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                     "consent_decision.%s: %s is not in the directory",
                                     k ? "inform_org" : "recipient_org", names[k]);
        int rc = check_about(b, &d->about_event_id, d->about_seq, "consent_decision", it, rej);
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
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                                 "directory_update: %s has no \"directory\" right", org->id);
        char inner[SCHAKEL_ERRLEN];
        schakel_directory_t *d = schakel_directory_parse(u->document_json, strlen(u->document_json), inner);
        if (!d)
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                 "directory_update.document_json: %s", inner);
        uint64_t v = schakel_directory_version(d);
        size_t keepers = schakel_directory_count_right(d, SCHAKEL_RIGHT_DIRECTORY);
        schakel_directory_destroy(&d);
        if (!keepers) /* else nobody could change it on the bus again */
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                 "directory_update.document_json: no organisation keeps the "
                                 "\"directory\" right; keep an admin (edit the node's file to "
                                 "remove the last one)");
        if (v != u->version || v <= schakel_directory_version(b->dir))
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, DIRECTORY_VERSION_REASON,
                                 (unsigned long long)u->version,
                                 (unsigned long long)schakel_directory_version(b->dir));
        return 0;
    }
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK:
        if (!(org->rights & SCHAKEL_RIGHT_CLOCK))
            return broker_reject(rej, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                                 "clock_tick: %s has no \"clock\" right", org->id);
        return 0;
    default: return 0;
    }
}

static void directory_swap(schakel_broker_t *b, schakel_directory_t *d)
{
    pthread_rwlock_wrlock(&b->dir_lock);
    schakel_directory_t *old = b->dir;
    b->dir = d;
    pthread_rwlock_unlock(&b->dir_lock);
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_loaded version=%llu orgs=%zu",
                (unsigned long long)schakel_directory_version(d), schakel_directory_count(d));
    schakel_directory_destroy(&old);
}

/* Notes where the directory in force is on the log. Failing, the next
 * start reads the older one there and puts the file's on the log again:
 * logged, as nothing is lost. */
static void directory_cursor_set(schakel_broker_t *b, uint64_t seq)
{
    int rc = schakel_store_cursor_set(b->store, DIRECTORY_CURSOR, seq);
    if (rc)
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=directory_cursor_not_set seq=%llu reason=\"%s\"",
                    (unsigned long long)seq, schakel_strerror(rc));
}

/* Appends an event of the broker's own (source "broker", signed with the
 * broker's key): the directory in force and the clock. Called between
 * groups, never while PUBLISHes wait. 0 or an error code. An append that
 * fails, or whose id was stored before with other bytes, is an alarm:
 * an error log line, and b->alarms, which every PONG reports. */
int broker_append_own(schakel_broker_t *b, schakel_envelope_t *env, uint64_t *seq)
{
    return broker_append_own_to(b, env, NULL, 0, seq);
}

int broker_append_own_to(schakel_broker_t *b, schakel_envelope_t *env, const char *const *fanout,
                         size_t n_fanout, uint64_t *seq)
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
    it.fanout = fanout;
    it.n_fanout = n_fanout;
    memcpy(it.event_hash, hash[0], sizeof it.event_hash);
    schakel_append_batch_t batch = {"broker", sig, (const uint8_t(*)[SCHAKEL_SHA256_LEN])hash, 1, &it, 1};
    char why[SCHAKEL_ERRLEN] = "";
    if (rc == 0) rc = schakel_store_append(b->store, &batch, 1, schakel_wall_ms(), why);
    free(buf);
    /* a directory's or rules' id is derived from its whole text: the same
     * id in the broker's own namespace is the same document, logged
     * before a crash with another occurred_at */
    if (rc == 0 && it.conflict && SCHAKEL_IS_DOCUMENT_EVENT(env->type)) it.conflict = 0;
    if (rc == 0 && it.conflict) {
        rc = SCHAKEL_ECORRUPT;
        snprintf(why, sizeof why, "its id was stored before for a different event");
    }
    if (rc) {
        char hex[33];
        schakel_hex_encode(env->event_id.data, 16, hex);
        b->alarms++;
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=own_append_failed alarm=own_append_refused "
                    "type=%s id=%s reason=\"%s\" alarms=%llu",
                    schakel_event_type_name(env->type), hex, why[0] ? why : schakel_strerror(rc),
                    (unsigned long long)b->alarms);
        return rc;
    }
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE) directory_cursor_set(b, it.seq);
    if (seq) *seq = it.seq;
    for (size_t i = 0; i < n_fanout; i++) broker_publish_head(b, fanout[i], it.seq);
    broker_publish_head(b, "all", it.seq);
    return 0;
}

/* An envelope of the broker's own with a derived id: the same content
 * gives the same id, so a repeat after a crash is a duplicate. */
void broker_own_envelope(schakel_envelope_t *env, int type, const char *label, const void *data, size_t len,
                         uint8_t id[16])
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
    env->occurred_at = schakel_wall_ms();
    env->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    env->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    env->body_case = (Schakel__V1__Envelope__BodyCase)type;
}

static int read_own_cb(void *arg, const schakel_record_t *rec)
{
    schakel_envelope_t **env = arg;
    if (rec->event) *env = schakel_envelope_decode_with(rec->event, rec->event_len, NULL, NULL);
    return 1;
}

schakel_envelope_t *broker_own_at(schakel_broker_t *b, uint64_t seq, int type)
{
    schakel_envelope_t *env = NULL;
    uint64_t next;
    int rc = schakel_store_read(b->store, "all", seq, 1, 1, read_own_cb, &env, &next);
    if (rc < 0) /* as if none: the file stays in force */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=own_event_unreadable seq=%llu type=%s reason=\"%s\"",
                    (unsigned long long)seq, schakel_event_type_name(type), schakel_strerror(rc));
    if (env && (int)env->type != type) {
        schakel_envelope_free(env);
        env = NULL;
    }
    return env;
}

/* The version and document of the directory_update at seq. */
static uint64_t record_directory(schakel_broker_t *b, uint64_t seq, char **doc)
{
    schakel_envelope_t *env = broker_own_at(b, seq, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE);
    uint64_t version = env ? env->directory_update->version : 0;
    if (doc) *doc = env ? strdup(env->directory_update->document_json) : NULL;
    schakel_envelope_free(env);
    return version;
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
    broker_own_envelope(&env, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE, "schakel/v1/directory",
                        text, strlen(text), id);
    u.version = schakel_directory_version(b->dir);
    u.document_json = (char *)text;
    env.directory_update = &u;
    if (broker_append_own(b, &env, NULL) == 0)
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_logged version=%llu",
                    (unsigned long long)u.version);
}

/* A directory_update at seq is on the log: it is in force from now on,
 * and written to the directory file so that the operator and a restart
 * see it. */
void broker_directory_install(schakel_broker_t *b, const char *doc, uint64_t seq)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_parse(doc, strlen(doc), why);
    if (!d) { /* checked before it was stored: cannot happen */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=directory_rejected seq=%llu reason=\"%s\"",
                    (unsigned long long)seq, why);
        return;
    }
    if (schakel_file_write_atomic(b->dir_path, doc, strlen(doc)) != 0)
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=directory_not_written path=%s "
                    "reason=\"%s\"",
                    b->dir_path, strerror(errno));
    struct stat st;
    if (stat(b->dir_path, &st) == 0) b->dir_mtime = st.st_mtim;
    directory_cursor_set(b, seq);
    directory_swap(b, d);
}

void broker_directory_maybe_reload(schakel_broker_t *b)
{
    struct stat st;
    if (stat(b->dir_path, &st) != 0) return;
    if (st.st_mtim.tv_sec == b->dir_mtime.tv_sec && st.st_mtim.tv_nsec == b->dir_mtime.tv_nsec) return;
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

/* At start: the newer of the directory file and the last directory on
 * the log wins, and both end up the same. */
void broker_directory_sync(schakel_broker_t *b)
{
    char *doc = NULL;
    uint64_t seq = 0;
    int rc = schakel_store_cursor_get(b->store, DIRECTORY_CURSOR, &seq);
    if (rc) /* as if none: the file's directory goes on the log */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=directory_cursor_unreadable reason=\"%s\"",
                    schakel_strerror(rc));
    uint64_t logged = seq ? record_directory(b, seq, &doc) : 0;
    if (logged > schakel_directory_version(b->dir) && doc) {
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=directory_from_log version=%llu seq=%llu",
                    (unsigned long long)logged, (unsigned long long)seq);
        broker_directory_install(b, doc, seq);
    } else {
        directory_to_log(b);
    }
    free(doc);
}

/* The broker's clock on the log: services time holds and deadlines by the
 * log, never by their own wall clock, so that replay is deterministic. */
void broker_clock_tick(schakel_broker_t *b, int64_t now)
{
    schakel_envelope_t env;
    Schakel__V1__ClockTick t = SCHAKEL__V1__CLOCK_TICK__INIT;
    uint8_t id[16], at[8];
    schakel_put_be64(at, (uint64_t)now);
    broker_own_envelope(&env, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK, "schakel/v1/tick", at,
                        sizeof at, id);
    t.at_ms = now;
    env.occurred_at = now; /* the same tick is the same bytes */
    env.clock_tick = &t;
    broker_append_own(b, &env, NULL);
}
