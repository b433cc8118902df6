/* What the broker holds for each connection, and sending replies. The
 * table bounds what one peer, and all peers of one organisation together,
 * can make the broker hold (PUBLISHes not yet ACKed, BATCH and ACK replies
 * not read: protocol.md, "Limits");
 * a reply ZeroMQ will not take is counted and logged, never queued here.
 * Only the command loop's thread touches the table; ZeroMQ's I/O thread
 * counts its atomics down. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_impl.h"

/* A reply ZeroMQ would not take: the peer left (EHOSTUNREACH), or it has
 * SEND_HWM replies it has not read (EAGAIN). Counted and logged (at most
 * once a second), never queued in the broker. */
void broker_reply_dropped(schakel_broker_t *b, const char *name, uint64_t req_id)
{
    b->stat_replies_dropped++;
    int64_t now = schakel_wall_ms();
    if (now - b->last_drop_log < 1000) return;
    b->last_drop_log = now;
    schakel_log(SCHAKEL_LOG_WARN, "broker",
                "event=reply_dropped reply=%s req=%llu reason=%s "
                "dropped_total=%llu",
                name, (unsigned long long)req_id, errno == EAGAIN ? "peer_not_reading" : "peer_gone",
                (unsigned long long)b->stat_replies_dropped);
}

void broker_send_reply(schakel_broker_t *b, schakel_wire_msg_t *m, const char *name,
                       const ProtobufCMessage *msg)
{
    if (schakel_wire_send(b->router, &m->rid, name, m->req_id, msg, ZMQ_DONTWAIT) != 0)
        broker_reply_dropped(b, name, m->req_id);
}

void broker_send_error(schakel_broker_t *b, schakel_wire_msg_t *m, Schakel__V1__RejectCode code,
                       const char *reason)
{
    Schakel__V1__Error e = SCHAKEL__V1__ERROR__INIT;
    e.code = code;
    e.reason = (char *)reason;
    broker_send_reply(b, m, "ERROR", &e.base);
}

/* The connection's entry in the table of what the broker holds for it
 * (NULL when nothing and !org). Frees the entries of connections for
 * which it holds nothing any more: a connection that went away gives its
 * share back as ZeroMQ drops its replies. */
peer_t *broker_peer_find(schakel_broker_t *b, const zmq_msg_t *rid, const char *org)
{
    size_t len = zmq_msg_size((zmq_msg_t *)rid);
    const void *id = zmq_msg_data((zmq_msg_t *)rid);
    peer_t *found = NULL;
    for (peer_t **pp = &b->peers; *pp;) {
        peer_t *p = *pp;
        /* by organisation too: a routing id a peer chose may come back on
         * another organisation's connection while the old one's PUBLISHes
         * are still being checked */
        if (!found && p->rid_len == len && memcmp(p->rid, id, len) == 0 && (!org || !strcmp(p->org, org))) {
            found = p;
            pp = &p->next;
        } else if (atomic_load(&p->batches) == 0 && atomic_load(&p->acks) == 0 && p->publishing == 0) {
            *pp = p->next; /* nothing of it left in ZeroMQ: only we know it */
            free(p);
        } else {
            pp = &p->next;
        }
    }
    if (found || !org || len > sizeof found->rid) return found;
    found = calloc(1, sizeof *found);
    if (!found) return NULL;
    atomic_init(&found->batches, 0);
    atomic_init(&found->acks, 0);
    memcpy(found->rid, id, len);
    found->rid_len = len;
    snprintf(found->org, sizeof found->org, "%s", org); /* both SCHAKEL_ID_MAX */
    found->next = b->peers;
    b->peers = found;
    return found;
}

/* Summed over the table: it lists every connection that holds anything,
 * and only those, so a walk is as long as the one broker_peer_find makes. */
org_held_t broker_org_held(const schakel_broker_t *b, const char *org)
{
    org_held_t t = {0, 0};
    for (const peer_t *p = b->peers; p; p = p->next) {
        if (strcmp(p->org, org) != 0) continue;
        t.batches += atomic_load(&p->batches);
        t.held += p->publishing + atomic_load(&p->acks);
    }
    return t;
}

void broker_org_refused(schakel_broker_t *b, const char *org, const char *limit)
{
    b->stat_org_refused++;
    int64_t now = schakel_wall_ms();
    if (now - b->last_org_refused_log < 1000) return;
    b->last_org_refused_log = now;
    schakel_log(SCHAKEL_LOG_WARN, "broker", "event=org_limit org=%s limit=%s org_refused_total=%llu", org,
                limit, (unsigned long long)b->stat_org_refused);
}

/* Peers whose replies ZeroMQ still holds when the broker stops: wait
 * for the I/O thread to let go of them (the router is closed by now), then
 * free. An entry still counted after that is left: the I/O thread may yet
 * touch it. */
void broker_peers_free(schakel_broker_t *b)
{
    for (int i = 0; i < 200; i++) {
        int busy = 0;
        for (peer_t *p = b->peers; p; p = p->next)
            busy |= atomic_load(&p->batches) != 0 || atomic_load(&p->acks) != 0;
        if (!busy) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        (void)nanosleep(&ts, NULL); /* a signal cutting the pause short is harmless */
    }
    for (peer_t *p = b->peers, *next; p; p = next) {
        next = p->next;
        if (atomic_load(&p->batches) == 0 && atomic_load(&p->acks) == 0) free(p);
        else schakel_log(SCHAKEL_LOG_WARN, "broker", "event=peer_left_in_zeromq");
    }
    b->peers = NULL;
}
