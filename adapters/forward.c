/* The forwarder: takes what the outbox holds, in order, signs it in
 * batches and PUBLISHes it to the broker, retrying with back-off until
 * each event is ACKed (then it leaves the outbox) or rejected (then it
 * becomes a dead letter with the broker's reason). Runs in its own
 * thread, woken when an input puts events in the outbox. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "adapter_impl.h"
#include "client.h"

void adapter_wake_forwarder(adapter_t *a)
{
    pthread_mutex_lock(&a->wake_lock);
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->wake_lock);
}

void *adapter_forward_main(void *arg)
{
    adapter_t *a = arg;
    schakel_client_options_t o = {0};
    o.endpoint = a->conn.endpoint;
    o.server_public = a->conn.server_public;
    o.keys = &a->conn.keys;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_client_t *c = schakel_client_new(a->ctx, &o, why);
    if (!c) {
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=forwarder_failed reason=\"%s\"", why);
        return NULL;
    }
    int backoff = 100;
    adapter_status_state_t status = {0};
    while (!atomic_load(&a->stop)) {
        adapter_status_tick(a, c, &status);
        uint8_t *bufs[FORWARD_BATCH];
        size_t lens[FORWARD_BATCH];
        uint64_t keys[FORWARD_BATCH];
        size_t n = schakel_outbox_peek(a->outbox, FORWARD_BATCH, bufs, lens, keys);
        if (!n) {
            pthread_mutex_lock(&a->wake_lock);
            struct timespec ts;
            (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for this clock */
            ts.tv_sec += 1; /* new rows wake it; the second is for the status and retries */
            /* woken or timed out: either way the outbox is looked at again */
            (void)pthread_cond_timedwait(&a->wake, &a->wake_lock, &ts);
            pthread_mutex_unlock(&a->wake_lock);
            continue;
        }
        Schakel__V1__Ack *ack = NULL;
        int rc = schakel_client_publish(c, (const uint8_t *const *)bufs, lens, n, &ack, 10000);
        for (size_t i = 0; i < n; i++) free(bufs[i]);
        if (rc) {
            snprintf(why, sizeof why, "%s",
                     rc == SCHAKEL_EAUTH ? "the broker refused this organisation's key"
                                         : "no ACK from the broker: will send again");
            schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=forward_retry events=%zu reason=\"%s\"", n, why);
            adapter_status_note_error(a, rc == SCHAKEL_EAUTH
                                             ? SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_KEY_REFUSED
                                             : SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_BROKER_UNREACHABLE);
            schakel_outbox_error(a->outbox, why, schakel_wall_ms());
            for (int t = 0; t < backoff && !atomic_load(&a->stop); t += 50) usleep(50000);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        backoff = 100;
        char reasons[FORWARD_BATCH][SCHAKEL_ERRLEN + 32];
        const char *rp[FORWARD_BATCH];
        size_t rejected = 0;
        for (size_t i = 0; i < n; i++) {
            const Schakel__V1__AckEntry *e = i < ack->n_entries ? ack->entries[i] : NULL;
            int code = e ? (int)e->code : (int)ack->batch_code;
            rp[i] = NULL;
            if (code) {
                snprintf(reasons[i], sizeof reasons[i], "rejected by the broker: %s",
                         e && e->reason[0] ? e->reason : ack->batch_reason);
                schakel_reason_scrub(reasons[i]); /* the validator's reasons may quote a value */
                rp[i] = reasons[i];
                rejected++;
            }
        }
        if (rejected) {
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=dead_letters count=%zu reason=\"%s\"", rejected,
                        rp[0] ? rp[0] : "");
            schakel_outbox_error(a->outbox, rp[0] ? rp[0] : "rejected by the broker", schakel_wall_ms());
        }
        schakel__v1__ack__free_unpacked(ack, NULL);
        int outcome = rejected ? SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_EVENTS_REJECTED
                               : SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_NONE;
        if (schakel_outbox_done(a->outbox, keys, rp, n, schakel_wall_ms()) != 0) {
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=outbox_not_updated");
            outcome = SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_OUTBOX;
        }
        adapter_status_note_error(a, outcome);
    }
    schakel_client_destroy(&c);
    return NULL;
}
