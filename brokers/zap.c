/* ZAP, the first step of the data path: ZeroMQ asks this thread about
 * every new CURVE connection before it accepts it, and the answer names
 * the organisation whose public key it is in the directory. That name is
 * what every later command of the connection (PUBLISH, FETCH, ...) runs
 * as; the broker's own key is named "broker" (only ERASE is for it). Runs in its own thread; reads the directory under dir_lock. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "broker_impl.h"
#include "bytes.h"

/* The reply; its metadata (ZMTP property encoding: name length, name,
 * 4-byte big-endian value length, value) carries the connection's key as
 * "X-Curve-Key", which every message of the connection then has: the
 * broker checks it against the directory in force on each command, so a
 * key the directory replaced stops working on connections already open. */
static void zap_reply(void *sock, zmq_msg_t *req_id, const char *code, const char *text, const char *user,
                      const char *key_z85)
{
    static const char prop[] = "X-Curve-Key";
    uint8_t meta[1 + sizeof prop + 4 + SCHAKEL_Z85_KEY_LEN];
    size_t klen = strlen(key_z85), mlen = 0;
    if (klen == SCHAKEL_Z85_KEY_LEN) {
        meta[0] = (uint8_t)(sizeof prop - 1);
        memcpy(meta + 1, prop, sizeof prop - 1);
        mlen = sizeof prop;
        schakel_put_be32(meta + mlen, (uint32_t)klen);
        memcpy(meta + mlen + 4, key_z85, klen);
        mlen += 4 + klen;
    }
    int ok = zmq_send(sock, "1.0", 3, ZMQ_SNDMORE) >= 0 && zmq_msg_send(req_id, sock, ZMQ_SNDMORE) >= 0 &&
             zmq_send(sock, code, strlen(code), ZMQ_SNDMORE) >= 0 &&
             zmq_send(sock, text, strlen(text), ZMQ_SNDMORE) >= 0 &&
             zmq_send(sock, user, strlen(user), ZMQ_SNDMORE) >= 0 && zmq_send(sock, meta, mlen, 0) >= 0;
    /* ETERM: the broker is stopping, and the handshake with it */
    if (!ok && errno != ETERM)
        schakel_log(SCHAKEL_LOG_ERROR, "broker", "event=zap_reply_failed reason=\"%s\"", zmq_strerror(errno));
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
    char user[SCHAKEL_ID_MAX] = "", z85[SCHAKEL_Z85_KEY_LEN + 1] = "";
    const char *code = "400", *text = "unknown key";
    int curve = zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0;
    if (curve && n >= 7 && zmq_msg_size(&f[6]) == 32) {
        (void)zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32); /* 32 bytes: a multiple of 4, cannot fail */
        pthread_rwlock_rdlock(&b->dir_lock);
        const schakel_org_t *org = schakel_directory_by_curve(b->dir, z85);
        if (org) {
            snprintf(user, sizeof user, "%s", org->id);
            code = "200";
            text = "OK";
        }
        pthread_rwlock_unlock(&b->dir_lock);
        /* the broker's own key is the node's operator (ERASE); no
         * organisation may be called "broker" (directory_parse.c) */
        if (!org && strcmp(z85, b->keys.curve_public) == 0) {
            snprintf(user, sizeof user, "broker");
            code = "200";
            text = "OK";
        } else if (!org)
            schakel_log(SCHAKEL_LOG_WARN, "zap", "event=denied reason=unknown_key key=%.8s...", z85);
    } else {
        text = "CURVE required";
        schakel_log(SCHAKEL_LOG_WARN, "zap", "event=denied reason=mechanism");
    }
    zap_reply(b->zap, &f[1], code, text, user, code[0] == '2' ? z85 : "");
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

void *broker_zap_main(void *arg)
{
    schakel_broker_t *b = arg;
    (void)pthread_setname_np(pthread_self(), "zap");
    zmq_pollitem_t it = {b->zap, 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&b->stop)) {
        int rc = zmq_poll(&it, 1, 200);
        if (rc > 0) zap_handle(b);
        else if (rc < 0 && errno == ETERM) break;
    }
    return NULL;
}
