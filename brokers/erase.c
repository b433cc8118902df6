/* Erasure on request of the node's operator: ERASE destroys a child's
 * data key in the log (the store overwrites every copy of it left in the
 * file) and puts an `erasure` event of the broker's own on the log, who
 * asked, why and up to which record, never content. Only a connection
 * that authenticated with the broker's own key may ask (zap.c names it
 * "broker"): whoever holds DATA/keys/broker.key runs the node; no
 * organisation's key can. Runs in the command loop's thread, between
 * groups, like every write of the log. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_impl.h"
#include "bytes.h"
#include "validate.h"

#define ERASE_BODY_MAX 4096
static int pseudonym_ok(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* What is wrong with an ERASE, for its ERROR; NULL when nothing is. */
static const char *erase_invalid(const Schakel__V1__Erase *e)
{
    if (!pseudonym_ok(e->subject))
        return "ERASE subject: a pseudonym of 64 lower-case hex characters is needed";
    if (!protobuf_c_enum_descriptor_get_value(&schakel__v1__erasure_basis__descriptor, (int)e->basis) ||
        e->basis == SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_UNSPECIFIED)
        return "ERASE basis: give one of the codes of ErasureBasis (docs/privacy.md)";
    if (!schakel_ref_text_valid(e->purpose))
        return "ERASE purpose: " SCHAKEL_REF_TEXT_SHAPE " (a reference, never a name)";
    if (!schakel_ref_text_valid(e->requested_by)) return "ERASE requested_by: " SCHAKEL_REF_TEXT_SHAPE;
    return NULL;
}

/* "org/<id>" of every organisation in the directory in force, for the
 * erasure to reach each one's adapter (its inbox removes the child's
 * deliveries it still holds). The broker cannot tell who holds copies
 * without opening every delivery, and the event carries no content, so
 * it goes to all (docs/privacy.md). NULL (and *n 0) when out of memory. */
static char **erasure_recipients(schakel_broker_t *b, size_t *n)
{
    pthread_rwlock_rdlock(&b->dir_lock);
    size_t count = schakel_directory_count(b->dir);
    char **names = calloc(count ? count : 1, sizeof *names);
    *n = 0;
    for (size_t i = 0; names && i < count; i++) {
        const schakel_org_t *o = schakel_directory_at(b->dir, i);
        char *s = malloc(SCHAKEL_STREAM_MAX);
        if (!s) {
            for (size_t j = 0; j < *n; j++) free(names[j]);
            free(names);
            names = NULL;
            *n = 0;
            break;
        }
        int w = snprintf(s, SCHAKEL_STREAM_MAX, "org/%s", o->id);
        if (w < 0 || w >= SCHAKEL_STREAM_MAX) { /* cannot be: ids are shorter (directory.c) */
            free(s);
            continue;
        }
        names[(*n)++] = s;
    }
    pthread_rwlock_unlock(&b->dir_lock);
    return names;
}

static void recipients_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* Logs the erasure event, into `all` and every organisation's stream; its
 * id derives from the subject and the last seq erased, so a repeat after
 * a crash is a duplicate. The seq, or 0 when the append failed (an alarm:
 * broker_append_own). */
static uint64_t erasure_to_log(schakel_broker_t *b, const Schakel__V1__Erase *req, uint64_t upto,
                               uint8_t id[16])
{
    uint8_t what[64 + 8];
    memcpy(what, req->subject, 64);
    schakel_put_be64(what + 64, upto);
    schakel_envelope_t env;
    broker_own_envelope(&env, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE, "schakel/v1/erasure", what,
                        sizeof what, id);
    Schakel__V1__Erasure er = SCHAKEL__V1__ERASURE__INIT;
    er.erased_subject = req->subject;
    er.basis = req->basis;
    er.purpose = req->purpose;
    er.requested_by = req->requested_by;
    er.erased_upto = upto;
    env.erasure = &er;
    uint64_t seq = 0;
    size_t n = 0;
    char **to = erasure_recipients(b, &n);
    if (!to) /* the erasure itself is done; it is on the log, in `all` */
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=erasure_not_fanned_out reason=\"out of memory\"");
    int rc = broker_append_own_to(b, &env, (const char *const *)to, n, &seq);
    recipients_free(to, n);
    return rc == 0 ? seq : 0;
}

int broker_erase(schakel_broker_t *b, const Schakel__V1__Erase *req, Schakel__V1__Erased *out, uint8_t id[16])
{
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    int rc = schakel_store_erase_subject(b->store, req->subject);
    if (rc == SCHAKEL_ENOTFOUND) {
        out->no_key = 1;
        uint64_t upto = 0;
        int64_t at = 0;
        out->already_erased = schakel_store_erased_before(b->store, req->subject, &upto, &at) == 0;
        if (out->already_erased) {
            out->erased_upto = upto;
            out->erased_at = at;
        }
        schakel_log(SCHAKEL_LOG_INFO, "broker", "event=erase_no_key basis=%d already_erased=%d",
                    (int)req->basis, (int)out->already_erased);
        return 0;
    }
    if (rc != 0 && rc != SCHAKEL_EIO) return rc;
    if (rc == SCHAKEL_EIO) { /* the key is gone; a copy of it may be left in a freed page */
        b->alarms++;
        schakel_log(SCHAKEL_LOG_ERROR, "broker",
                    "event=erase_not_scrubbed alarm=erase_not_scrubbed alarms=%llu",
                    (unsigned long long)b->alarms);
    }
    out->erased_upto = h.seq;
    out->seq = erasure_to_log(b, req, h.seq, id);
    out->event_id.data = id;
    out->event_id.len = 16;
    schakel_log(SCHAKEL_LOG_INFO, "broker", "event=subject_erased erased_upto=%llu seq=%llu basis=%d",
                (unsigned long long)h.seq, (unsigned long long)out->seq, (int)req->basis);
    return 0;
}

void broker_serve_erase(schakel_broker_t *b, schakel_wire_msg_t *m)
{
    if (strcmp(m->user, "broker") != 0) {
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                          "ERASE is for the node's operator: connect with the broker's own key "
                          "(schakel audit erase)");
        return;
    }
    size_t len = zmq_msg_size(&m->body);
    if (len > ERASE_BODY_MAX) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "ERASE body is %zu bytes; the limit is %d", len, ERASE_BODY_MAX);
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE, r);
        return;
    }
    Schakel__V1__Erase *req = schakel__v1__erase__unpack(NULL, len, zmq_msg_data(&m->body));
    const char *bad = req ? erase_invalid(req) : "ERASE body does not decode as schakel.v1.Erase";
    if (bad) {
        broker_send_error(
            b, m, req ? SCHAKEL__V1__REJECT_CODE__REJECT_INVALID : SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED,
            bad);
        if (req) schakel__v1__erase__free_unpacked(req, NULL);
        return;
    }
    Schakel__V1__Erased out = SCHAKEL__V1__ERASED__INIT;
    uint8_t id[16];
    int rc = broker_erase(b, req, &out, id);
    if (rc == SCHAKEL_EPERM) { /* the store cannot erase (the jetstream log, for now) */
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED,
                          "this node's log (jetstream) cannot erase a subject yet: its "
                          "stream keeps the data keys (docs/scale-out.md)");
    } else if (rc) {
        char r[SCHAKEL_ERRLEN];
        snprintf(r, sizeof r, "nothing was erased: %s; ask again", schakel_strerror(rc));
        broker_send_error(b, m, SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
    } else {
        broker_send_reply(b, m, "ERASED", &out.base);
    }
    schakel__v1__erase__free_unpacked(req, NULL);
}
