/* Commit and ACK, the step after checking: every accepted event of a
 * group of checked batches goes into one LMDB transaction, and each batch
 * is ACKed, with a seq per event or the reason it was refused, only once
 * that transaction is durable (broker_commit_group says when). New heads
 * are announced on the PUB socket, also only once durable, so that
 * readers FETCH. Runs in the command loop's thread, the only writer of
 * the log. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_impl.h"

static void send_ack(schakel_broker_t *b, pending_t *p)
{
    Schakel__V1__Ack ack = SCHAKEL__V1__ACK__INIT;
    peer_t *peer = broker_peer_find(b, &p->rid, p->user);
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
        if (p->entries[i].code) b->stat_rejected++, broker_stats_reject(b, p->entries[i].code);
        else b->stat_acked++;
    }
    ack.n_entries = p->n;
    ack.entries = ptrs;
    if ((peer ? schakel_wire_send_counted(b->router, &p->rid, "ACK", p->req_id, &ack.base, ZMQ_DONTWAIT,
                                          &peer->acks)
              : schakel_wire_send(b->router, &p->rid, "ACK", p->req_id, &ack.base, ZMQ_DONTWAIT)) != 0)
        schakel_log(SCHAKEL_LOG_WARN, "broker", "event=ack_undeliverable req=%llu",
                    (unsigned long long)p->req_id);
    free(ptrs);
}

void broker_publish_head(schakel_broker_t *b, const char *stream, uint64_t seq)
{
    Schakel__V1__Head h = SCHAKEL__V1__HEAD__INIT;
    uint8_t buf[128];
    h.stream = (char *)stream;
    h.seq = seq;
    size_t n = schakel__v1__head__pack(&h, buf);
    /* A head is a wake-up, not data: a PUB socket drops for a slow
     * subscriber (EAGAIN never happens on PUB), and a reader that misses
     * one still FETCHes on its poll (docs/protocol.md), so a failed send
     * loses nothing. */
    (void)zmq_send(b->pub, stream, strlen(stream), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    (void)zmq_send(b->pub, buf, n, ZMQ_DONTWAIT);
}

/* ACKs and announces every held batch the log now holds durably, in the
 * order they were committed. */
void broker_release_durable(schakel_broker_t *b)
{
    uint64_t durable = schakel_store_durable_seq(b->store);
    int released = 0;
    while (b->held_head && b->held_head->need <= durable) {
        pending_t *p = b->held_head;
        b->held_head = p->next;
        if (!b->held_head) b->held_tail = NULL;
        /* wake-ups for org/<id> only: every key may subscribe to any
         * topic, and about/<event id> would tell it which event was
         * decided on, and when */
        for (size_t j = 0; j < p->n_items; j++) {
            schakel_append_item_t *it = &p->items[j];
            if (p->entries[p->item_entry[j]].code || it->duplicate) continue;
            for (size_t x = 0; x < it->n_index; x++)
                if (!strncmp(it->index[x].stream, "org/", 4))
                    broker_publish_head(b, it->index[x].stream, it->seq);
        }
        send_ack(b, p);
        broker_pending_free(b, p);
        released = 1;
    }
    /* what is left was committed just now: its wait starts now */
    if (released) b->held_since = b->held_head ? schakel_wall_ms() : 0;
    if (released) broker_publish_head(b, "all", durable);
}

/* Flushes the last commit (its meta page) so that every held ACK can go.
 * A failed flush leaves the held batches committed but not known durable:
 * they are answered "send again" (a resend is found as a duplicate). */
void broker_sync(schakel_broker_t *b)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    if (!b->held_head && schakel_store_durable_seq(b->store) >= h.seq) return;
    int rc = schakel_store_sync(b->store, why);
    if (rc) {
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=sync_failed reason=\"%s\"",
                    why[0] ? why : schakel_strerror(rc));
        char r[SCHAKEL_ERRLEN + 32];
        schakel_textf(r, sizeof r, "not known to be stored, send again later: %s",
                      why[0] ? why : schakel_strerror(rc));
        for (pending_t *p = b->held_head; p; p = p->next) {
            for (size_t j = 0; j < p->n_items; j++)
                broker_entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
            p->need = 0;
        }
    }
    broker_release_durable(b);
}

/* The checker judged each directory_update against the directory in force
 * then; another update may have been installed since, or come earlier in
 * this group. Versions only go up: one that is no longer above the last
 * accepted one (and not a retry of one already stored) is taken out of its
 * batch and rejected as the checker would have. */
static void recheck_directory_updates(schakel_broker_t *b, pending_t *list)
{
    uint64_t in_force = schakel_directory_version(b->dir);
    const char *last_signer = NULL; /* the update of this group that set in_force */
    const uint8_t *last_id = NULL;
    for (pending_t *p = list; p; p = p->next) {
        if (p->batch_code) continue;
        size_t kept = 0;
        for (size_t j = 0; j < p->n_items; j++) {
            const schakel_envelope_t *env = p->envs[p->item_entry[j]];
            uint64_t stored;
            if (p->items[j].type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE &&
                schakel_store_lookup(b->store, p->signer, p->items[j].event_id, &stored) != 0) {
                uint64_t v = env->directory_update->version;
                int again =
                    last_id && !strcmp(last_signer, p->signer) && !memcmp(last_id, p->items[j].event_id, 16);
                if (v <= in_force && !again) { /* (again: the append stores it once, a duplicate) */
                    char r[SCHAKEL_ERRLEN];
                    snprintf(r, sizeof r, DIRECTORY_VERSION_REASON, (unsigned long long)v,
                             (unsigned long long)in_force);
                    broker_entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_INVALID, r);
                    continue;
                }
                in_force = v;
                last_signer = p->signer, last_id = p->items[j].event_id;
            }
            p->items[kept] = p->items[j];
            p->item_entry[kept++] = p->item_entry[j];
        }
        p->n_items = kept;
    }
}

/* Group commit: every accepted event of every checked batch in one
 * transaction, committed with one flush of its data pages but not yet of
 * its meta page (schakel_store_append_deferred): the group is durable
 * once the next group's flush or a sync has carried its meta page too.
 * Its ACKs are held until then (broker_release_durable), so an ACKed
 * event survives SIGKILL and power loss, and the loop pays one flush per
 * group under load instead of two. Takes the list. */
void broker_commit_group(schakel_broker_t *b, pending_t *list)
{
    size_t n_pending = 0, events = 0;
    recheck_directory_updates(b, list);
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
    if (nb) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = schakel_store_append_deferred(b->store, batches, nb, schakel_wall_ms(), why);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        if (!rc) broker_stats_commit(b, us > 0 ? (uint64_t)us : 0, events);
    }
    if (rc) {
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=append_failed events=%zu reason=\"%s\"", events,
                    why[0] ? why : schakel_strerror(rc));
        if (!why[0]) snprintf(why, sizeof why, "%s", schakel_strerror(rc));
    }
    schakel_head_t h;
    schakel_store_head(b->store, &h);
    for (pending_t *p = list, *next; p; p = next) {
        next = p->next;
        for (size_t j = 0; j < p->n_items; j++) {
            Schakel__V1__AckEntry *e = &p->entries[p->item_entry[j]];
            if (rc) {
                char r[SCHAKEL_ERRLEN + 32];
                snprintf(r, sizeof r, "not stored, send again later: %s", why);
                broker_entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER, r);
            } else if (p->items[j].conflict) {
                broker_entry_reject(p, p->item_entry[j], SCHAKEL__V1__REJECT_CODE__REJECT_INVALID,
                                    "event_id: already used for a different event: ids must be unique");
            } else {
                schakel_append_item_t *it = &p->items[j];
                e->seq = it->seq;
                e->duplicate = it->duplicate;
                if (it->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE && !it->duplicate)
                    broker_directory_install(b, p->envs[p->item_entry[j]]->directory_update->document_json,
                                             it->seq);
            }
        }
        /* a duplicate names a seq that may not be durable yet either: every
         * ACK waits for the head as it is after this commit */
        p->need = h.seq;
        p->next = NULL;
        if (b->held_tail) b->held_tail->next = p;
        else b->held_head = p, b->held_since = schakel_wall_ms();
        b->held_tail = p;
    }
    free(batches);
    /* this commit's flush made the groups before it durable */
    broker_release_durable(b);
}
