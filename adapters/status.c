/* The adapter's health on the bus: an `adapter_status` event (counts, a
 * code and the version, nothing about any child) published by the
 * forwarder through its own signed connection, every minute and when the
 * state changes (the error code, the dead-letter count, the outbox
 * emptying or filling). It does not go through the outbox: a status is
 * state, not a fact to keep, and one the broker refuses never becomes a
 * dead letter. Routing delivers it to nobody; the operator reads it from
 * the log (/metrics). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_impl.h"
#include "client.h"
#include "codec.h"

#define STATUS_EVERY_MS 60000
#define STATUS_CHANGE_MIN_MS 1000 /* at most one status a second for changes */

void adapter_status_note_error(adapter_t *a, int code)
{
    atomic_store(&a->status_error, code);
}

/* The figures a status carries, now; an outbox that cannot be read gives
 * zeros and the code "outbox". */
static void status_figures(adapter_t *a, Schakel__V1__AdapterStatus *s, int64_t now_ms)
{
    schakel_outbox_status_t o;
    int code = atomic_load(&a->status_error);
    if (schakel_outbox_status(a->outbox, &o) != 0) {
        memset(&o, 0, sizeof o);
        code = SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_OUTBOX;
    }
    s->outbox_depth = o.pending;
    s->oldest_unacked_seconds = o.oldest_pending_ms && now_ms > o.oldest_pending_ms
                                    ? (uint64_t)(now_ms - o.oldest_pending_ms) / 1000
                                    : 0;
    s->dead_letters = o.dead;
    s->inbox_set_aside = adapter_inbox_set_aside_count(a);
    s->last_error = code ? (Schakel__V1__AdapterError)code : SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_NONE;
    s->adapter_version = (char *)ADAPTER_VERSION;
}

/* A change an operator should hear of now, not at the next minute. */
static int status_changed(const adapter_status_state_t *st, const Schakel__V1__AdapterStatus *s)
{
    return !st->sent_ms || st->last_error != (int)s->last_error || st->dead_letters != s->dead_letters ||
           st->outbox_empty != (s->outbox_depth == 0) || st->inbox_set_aside != s->inbox_set_aside;
}

/* Publishes s; 0 when the broker ACKed it (accepted or refused: a
 * refusal is logged once per reason and not retried before the next
 * minute). */
static int status_publish(adapter_t *a, schakel_client_t *c, adapter_status_state_t *st,
                          Schakel__V1__AdapterStatus *s, int64_t now_ms)
{
    schakel_envelope_t env = SCHAKEL__V1__ENVELOPE__INIT;
    uint8_t id[16];
    if (schakel_random(id, sizeof id) != 0) return -1;
    env.event_id.data = id;
    env.event_id.len = sizeof id;
    env.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS;
    env.source_org = a->conn.as_org;
    env.occurred_at = now_ms;
    env.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    env.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    env.body_case = SCHAKEL__V1__ENVELOPE__BODY_ADAPTER_STATUS;
    env.adapter_status = s;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (schakel_envelope_encode(&env, &buf, &len) != 0) return -1;
    Schakel__V1__Ack *ack = NULL;
    const uint8_t *bufs[1] = {buf};
    int rc = schakel_client_publish(c, bufs, &len, 1, &ack, 5000);
    free(buf);
    if (rc) return -1;
    const Schakel__V1__AckEntry *e = ack->n_entries ? ack->entries[0] : NULL;
    int code = e ? (int)e->code : (int)ack->batch_code;
    if (code && !st->refused) {
        char reason[SCHAKEL_ERRLEN + 32];
        snprintf(reason, sizeof reason, "%s", e && e->reason[0] ? e->reason : ack->batch_reason);
        schakel_reason_scrub(reason);
        schakel_log(SCHAKEL_LOG_WARN, "adapter",
                    "event=adapter_status_refused reason=\"%s\" fix=\"add adapter_status to this "
                    "organisation's publish list in the directory\"",
                    reason);
    }
    st->refused = code != 0;
    schakel__v1__ack__free_unpacked(ack, NULL);
    return 0;
}

void adapter_status_tick(adapter_t *a, schakel_client_t *c, adapter_status_state_t *st)
{
    int64_t now = schakel_wall_ms();
    Schakel__V1__AdapterStatus s = SCHAKEL__V1__ADAPTER_STATUS__INIT;
    status_figures(a, &s, now);
    int code = (int)s.last_error;
    /* no link: nothing would arrive; the first status after it comes back */
    if (code == SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_BROKER_UNREACHABLE ||
        code == SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_KEY_REFUSED)
        return;
    int due = !st->sent_ms || now - st->sent_ms >= STATUS_EVERY_MS;
    if (!due && !(status_changed(st, &s) && now - st->sent_ms >= STATUS_CHANGE_MIN_MS)) return;
    if (status_publish(a, c, st, &s, now) != 0) return; /* tried again at the next tick */
    st->sent_ms = now;
    st->last_error = code;
    st->dead_letters = s.dead_letters;
    st->inbox_set_aside = s.inbox_set_aside;
    st->outbox_empty = s.outbox_depth == 0;
    schakel_log(SCHAKEL_LOG_DEBUG, "adapter",
                "event=adapter_status outbox_depth=%llu oldest_unacked_s=%llu dead_letters=%llu code=%d",
                (unsigned long long)s.outbox_depth, (unsigned long long)s.oldest_unacked_seconds,
                (unsigned long long)s.dead_letters, code);
}
