/* The outbox on LMDB. Tables:
 *   pending   u64be(n) -> i64 put-time || sealed event (oldest first)
 *   ids       event id -> HMAC-SHA-256(key, event): every id ever put
 *   dead      u64be(n) -> reason NUL sealed event
 *   dead_at   u64be(n) -> i64be(when the broker refused it) (absent for
 *             letters of older versions)
 *   meta      name -> value (counters, cursor, last error, "format",
 *             "key_gen", "mac_key": the sealed MAC key of ids)
 * No event is in the file in clear (LMDB keeps freed pages, so deleting
 * after the ACK would not be enough): a sealed event is nonce(12) ||
 * AES-256-GCM(key, event, aad = u64be(n)) || tag(16), under the key in
 * DIR/outbox.key (0600, made on first open), which is replaced whenever
 * an ACK empties the outbox (outbox_key.c): acknowledged events left in
 * freed pages then open with no key that exists. A copy of the LMDB file
 * without that key reveals event ids, counts and times, not content.
 * Workload: bursts of puts (a file, an HTTP batch) and a steady drain by
 * one forwarder; every put is one fsynced transaction. */
#include "outbox.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bytes.h"
#include "clock.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "outbox_impl.h"

#define MAP_SIZE ((size_t)64 << 30) /* sparse */
#define FORMAT 3 /* 1 (no "format" in meta): events in clear; 2: ids' HMACs under outbox.key */
#define SEAL_OVERHEAD OUTBOX_SEAL_OVERHEAD

uint64_t outbox_meta_u64(MDB_txn *txn, schakel_outbox_t *o, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    return mdb_get(txn, o->meta, &k, &v) == 0 && v.mv_size == 8 ? schakel_get_be64(v.mv_data) : 0;
}

int outbox_meta_put(MDB_txn *txn, schakel_outbox_t *o, const char *name, uint64_t value)
{
    uint8_t b[8];
    schakel_put_be64(b, value);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return mdb_put(txn, o->meta, &k, &v, 0);
}

int outbox_seal_with(const uint8_t *key, uint64_t n, const uint8_t *event, size_t len, uint8_t *out)
{
    uint8_t aad[8];
    schakel_put_be64(aad, n);
    if (schakel_random(out, SCHAKEL_AEAD_NONCE_LEN) != 0) return SCHAKEL_ECRYPTO;
    return schakel_aead_seal(key, out, aad, 8, event, len, out + SCHAKEL_AEAD_NONCE_LEN);
}

uint8_t *outbox_unseal_with(const uint8_t *key, uint64_t n, const uint8_t *in, size_t clen, size_t *len)
{
    uint8_t aad[8];
    if (clen <= SEAL_OVERHEAD) return NULL;
    schakel_put_be64(aad, n);
    uint8_t *out = malloc(clen - SEAL_OVERHEAD);
    if (out && schakel_aead_open(key, in, aad, 8, in + SCHAKEL_AEAD_NONCE_LEN, clen - SCHAKEL_AEAD_NONCE_LEN,
                                 out) != 0) {
        free(out);
        out = NULL;
    }
    *len = clen - SEAL_OVERHEAD;
    return out;
}

/* The key in force (a rotation may swap it on another thread). */
static void key_now(schakel_outbox_t *o, uint8_t *key, uint8_t *mac)
{
    pthread_mutex_lock(&o->key_mu);
    if (key) memcpy(key, o->key, sizeof o->key);
    if (mac) memcpy(mac, o->mac_key, sizeof o->mac_key);
    pthread_mutex_unlock(&o->key_mu);
}

/* Seals event into out (len + SEAL_OVERHEAD bytes) for entry n. */
static int seal(schakel_outbox_t *o, uint64_t n, const uint8_t *event, size_t len, uint8_t *out)
{
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    key_now(o, key, NULL);
    int rc = outbox_seal_with(key, n, event, len, out);
    memset(key, 0, sizeof key);
    return rc;
}

/* Opens a sealed entry n into a malloc'd buffer; NULL when it does not
 * open (another key, or altered). */
static uint8_t *unseal(schakel_outbox_t *o, uint64_t n, const uint8_t *in, size_t clen, size_t *len)
{
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    key_now(o, key, NULL);
    uint8_t *out = outbox_unseal_with(key, n, in, clen, len);
    memset(key, 0, sizeof key);
    return out;
}

static int event_mac(schakel_outbox_t *o, const uint8_t *event, size_t len, uint8_t mac[SCHAKEL_SHA256_LEN])
{
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    key_now(o, NULL, key);
    int rc = schakel_hmac_sha256(key, sizeof key, event, len, mac);
    memset(key, 0, sizeof key);
    return rc;
}

/* An outbox of format 1 kept events in clear: seal every pending and dead
 * event in place and forget the plain hashes of ids (a re-import of an old
 * record is then sent again, and the broker answers "duplicate"). Freed
 * pages of the old file may still hold the old clear text: docs/privacy.md
 * says how to be rid of them. */
static int upgrade(schakel_outbox_t *o, MDB_txn *txn)
{
    MDB_dbi tables[2] = {o->pending, o->dead};
    int rc = 0;
    for (int t = 0; t < 2 && rc == 0; t++) {
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(txn, tables[t], &cur)) != 0) break;
        MDB_val k, v;
        for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0 && rc == 0;
             g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 8) continue;
            /* pending: 8-byte time, then the event; dead: reason NUL event */
            const uint8_t *p = v.mv_data;
            size_t head = t == 0 ? 8 : strnlen(v.mv_data, v.mv_size) + 1;
            if (head > v.mv_size) continue;
            size_t elen = v.mv_size - head, nlen = head + elen + SEAL_OVERHEAD;
            uint8_t *nv = malloc(nlen);
            if (!nv) {
                rc = ENOMEM;
                break;
            }
            memcpy(nv, p, head);
            rc = seal(o, schakel_get_be64(k.mv_data), p + head, elen, nv + head);
            MDB_val nval = {nlen, nv};
            if (rc == 0) rc = mdb_cursor_put(cur, &k, &nval, MDB_CURRENT);
            free(nv);
        }
        mdb_cursor_close(cur);
    }
    if (rc == 0) rc = mdb_drop(txn, o->ids, 0);
    return rc;
}

schakel_outbox_t *schakel_outbox_open(const char *dir, int read_only, char *why)
{
    schakel_outbox_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    if (schakel_path_fmt(o->dir, sizeof o->dir, why, "%s", dir) != 0) {
        free(o);
        return NULL;
    }
    pthread_mutex_init(&o->key_mu, NULL);
    if (!read_only && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", dir, strerror(errno));
        free(o);
        return NULL;
    }
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&o->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(o->env, 8);
    if (rc == 0) rc = mdb_env_set_mapsize(o->env, MAP_SIZE);
    if (rc == 0) rc = mdb_env_open(o->env, dir, MDB_NOTLS | (read_only ? MDB_RDONLY : 0), 0600);
    if (rc == 0) rc = mdb_txn_begin(o->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    unsigned f = read_only ? 0 : MDB_CREATE;
    if (rc == 0) rc = mdb_dbi_open(txn, "pending", f, &o->pending);
    if (rc == 0) rc = mdb_dbi_open(txn, "ids", f, &o->ids);
    if (rc == 0) rc = mdb_dbi_open(txn, "dead", f, &o->dead);
    if (rc == 0) rc = mdb_dbi_open(txn, "meta", f, &o->meta);
    if (rc == 0) {
        int r = mdb_dbi_open(txn, "dead_at", f, &o->dead_at);
        if (r == 0) o->has_dead_at = 1;
        else if (!(read_only && r == MDB_NOTFOUND)) rc = r;
    }
    if (rc == 0 && !read_only) {
        char kp[SCHAKEL_PATH_MAX];
        int krc = schakel_path_join(kp, sizeof kp, dir, "outbox.key", why);
        if (krc == 0) krc = schakel_secret_file(kp, o->key, sizeof o->key, 1, NULL, why);
        if (krc) {
            mdb_txn_abort(txn);
            mdb_env_close(o->env);
            free(o);
            return NULL;
        }
        uint64_t format = outbox_meta_u64(txn, o, "format");
        if (format < 2) rc = upgrade(o, txn);
        if (rc == 0 && format < FORMAT) rc = outbox_meta_put(txn, o, "format", FORMAT);
        if (rc == 0) rc = outbox_keys_open(o, txn, format, why);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn) mdb_txn_abort(txn);
    if (rc) {
        schakel_fail(why, SCHAKEL_EIO, "outbox %s: %s", dir, mdb_strerror(rc));
        if (o->env) mdb_env_close(o->env);
        free(o);
        return NULL;
    }
    return o;
}

void schakel_outbox_close(schakel_outbox_t **self_p)
{
    schakel_outbox_t *o = *self_p;
    if (!o) return;
    mdb_env_close(o->env);
    memset(o->key, 0, sizeof o->key);
    memset(o->mac_key, 0, sizeof o->mac_key);
    pthread_mutex_destroy(&o->key_mu);
    free(o);
    *self_p = NULL;
}

int schakel_outbox_put(schakel_outbox_t *o, schakel_outbox_item_t *items, size_t n, char *why)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc) return schakel_fail(why, SCHAKEL_ESTORE, "outbox: %s", mdb_strerror(rc));
    outbox_keys_fresh(o, txn);
    uint64_t next = outbox_meta_u64(txn, o, "next");
    for (size_t i = 0; i < n && rc == 0; i++) {
        MDB_val k = {16, (void *)items[i].id}, v;
        uint8_t hash[SCHAKEL_SHA256_LEN], key[8];
        if (event_mac(o, items[i].event, items[i].len, hash) != 0) {
            rc = SCHAKEL_ECRYPTO;
            break;
        }
        items[i].queued = 0;
        if (mdb_get(txn, o->ids, &k, &v) == 0) { /* known: the same, or a changed record */
            if (v.mv_size != sizeof hash || memcmp(v.mv_data, hash, sizeof hash) != 0) items[i].queued = -1;
            continue;
        }
        MDB_val sv = {sizeof hash, hash};
        rc = mdb_put(txn, o->ids, &k, &sv, 0);
        schakel_put_be64(key, ++next);
        MDB_val pk = {8, key}, pv = {8 + items[i].len + SEAL_OVERHEAD, NULL};
        if (rc == 0) rc = mdb_put(txn, o->pending, &pk, &pv, MDB_APPEND | MDB_RESERVE);
        if (rc == 0) {
            schakel_put_be64(pv.mv_data, (uint64_t)schakel_wall_ms());
            if (seal(o, next, items[i].event, items[i].len, (uint8_t *)pv.mv_data + 8) != 0) {
                rc = SCHAKEL_ECRYPTO;
                break;
            }
            items[i].queued = 1;
        }
    }
    if (rc == 0) rc = outbox_meta_put(txn, o, "next", next);
    if (rc == SCHAKEL_ECRYPTO) {
        mdb_txn_abort(txn);
        return schakel_fail(why, rc, "outbox: cannot seal an event");
    }
    if (rc) {
        mdb_txn_abort(txn);
        return schakel_fail(why, rc == MDB_MAP_FULL ? SCHAKEL_EFULL : SCHAKEL_ESTORE, "outbox: %s",
                            mdb_strerror(rc));
    }
    rc = mdb_txn_commit(txn); /* fsync: durable before the input is acknowledged */
    return rc ? schakel_fail(why, SCHAKEL_ESTORE, "outbox: %s", mdb_strerror(rc)) : 0;
}

size_t schakel_outbox_peek(schakel_outbox_t *o, size_t max, uint8_t **bufs, size_t *lens, uint64_t *keys)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn) != 0) return 0;
    outbox_keys_fresh(o, txn);
    size_t n = 0;
    if (mdb_cursor_open(txn, o->pending, &cur) == 0) {
        MDB_val k, v;
        for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0 && n < max;
             g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 8 || v.mv_size <= 8) continue;
            bufs[n] =
                unseal(o, schakel_get_be64(k.mv_data), (uint8_t *)v.mv_data + 8, v.mv_size - 8, &lens[n]);
            if (!bufs[n]) continue; /* another key, or altered: stays pending (outbox_depth shows it) */
            keys[n] = schakel_get_be64(k.mv_data);
            n++;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return n;
}

int schakel_outbox_done(schakel_outbox_t *o, const uint64_t *keys, const char *const *reasons, size_t n,
                        int64_t now_ms)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc) return SCHAKEL_ESTORE;
    uint64_t acked = outbox_meta_u64(txn, o, "acked"), dead = outbox_meta_u64(txn, o, "dead");
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t key[8];
        schakel_put_be64(key, keys[i]);
        MDB_val k = {8, key}, v;
        if (mdb_get(txn, o->pending, &k, &v) != 0 || v.mv_size <= 8) continue;
        size_t elen = v.mv_size - 8;
        uint8_t *ev = malloc(elen);
        if (!ev) {
            rc = ENOMEM;
            break;
        }
        memcpy(ev, (uint8_t *)v.mv_data + 8, elen);
        rc = mdb_del(txn, o->pending, &k, NULL);
        if (rc == 0 && reasons[i]) {
            size_t rl = strlen(reasons[i]) + 1;
            MDB_val dv = {rl + elen, NULL};
            rc = mdb_put(txn, o->dead, &k, &dv, MDB_RESERVE);
            if (rc == 0) {
                memcpy(dv.mv_data, reasons[i], rl);
                memcpy((uint8_t *)dv.mv_data + rl, ev, elen);
            }
            uint8_t at[8];
            schakel_put_be64(at, (uint64_t)now_ms);
            MDB_val av = {8, at};
            if (rc == 0 && o->has_dead_at) rc = mdb_put(txn, o->dead_at, &k, &av, 0);
            dead++;
        } else {
            acked++;
        }
        free(ev);
    }
    if (rc == 0) rc = outbox_meta_put(txn, o, "acked", acked);
    if (rc == 0) rc = outbox_meta_put(txn, o, "dead", dead);
    if (rc == 0) rc = outbox_meta_put(txn, o, "last_ack", (uint64_t)now_ms);
    MDB_stat st;
    int empty = rc == 0 && mdb_stat(txn, o->pending, &st) == 0 && st.ms_entries == 0;
    if (rc) {
        mdb_txn_abort(txn);
        return SCHAKEL_ESTORE;
    }
    if (mdb_txn_commit(txn)) return SCHAKEL_ESTORE;
    /* what the ACKed events left in freed pages: under a key that goes */
    if (empty) outbox_keys_rotate(o);
    return 0;
}

void schakel_outbox_error(schakel_outbox_t *o, const char *reason, int64_t now_ms)
{
    MDB_txn *txn;
    if (mdb_txn_begin(o->env, NULL, 0, &txn) != 0) return;
    MDB_val k = {10, "last_error"}, v = {strlen(reason) + 1, (void *)reason};
    /* a note for `adapter status`: losing it loses no letter */
    if (mdb_put(txn, o->meta, &k, &v, 0) == 0 &&
        outbox_meta_put(txn, o, "last_error_at", (uint64_t)now_ms) == 0)
        (void)mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
}

uint64_t schakel_outbox_get(schakel_outbox_t *o, const char *name)
{
    MDB_txn *txn;
    if (mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn) != 0) return 0;
    uint64_t v = outbox_meta_u64(txn, o, name);
    mdb_txn_abort(txn);
    return v;
}

int schakel_outbox_set(schakel_outbox_t *o, const char *name, uint64_t value)
{
    MDB_txn *txn;
    if (mdb_txn_begin(o->env, NULL, 0, &txn) != 0) return SCHAKEL_ESTORE;
    if (outbox_meta_put(txn, o, name, value) != 0) {
        mdb_txn_abort(txn);
        return SCHAKEL_ESTORE;
    }
    return mdb_txn_commit(txn) ? SCHAKEL_ESTORE : 0;
}

int schakel_outbox_status(schakel_outbox_t *o, schakel_outbox_status_t *s)
{
    memset(s, 0, sizeof *s);
    MDB_txn *txn;
    if (mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn) != 0) return SCHAKEL_ESTORE;
    MDB_stat st;
    if (mdb_stat(txn, o->pending, &st) == 0) s->pending = st.ms_entries;
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(txn, o->pending, &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && v.mv_size >= 8)
            s->oldest_pending_ms = (int64_t)schakel_get_be64(v.mv_data);
        mdb_cursor_close(cur);
    }
    s->acked = outbox_meta_u64(txn, o, "acked");
    s->dead = outbox_meta_u64(txn, o, "dead");
    s->last_ack_ms = (int64_t)outbox_meta_u64(txn, o, "last_ack");
    s->last_error_ms = (int64_t)outbox_meta_u64(txn, o, "last_error_at");
    s->inbox_cursor = outbox_meta_u64(txn, o, "inbox_cursor");
    MDB_val ek = {10, "last_error"};
    if (mdb_get(txn, o->meta, &ek, &v) == 0)
        snprintf(s->last_error, sizeof s->last_error, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
    mdb_txn_abort(txn);
    return 0;
}

/* ---- dead letters: listing them, and sending them again ---- */

/* Splits a dead entry into its reason and its sealed event. */
static int dead_parts(const MDB_val *v, const char **reason, size_t *rlen, const uint8_t **sealed,
                      size_t *slen)
{
    size_t r = strnlen(v->mv_data, v->mv_size);
    if (r >= v->mv_size) return -1;
    *reason = v->mv_data;
    *rlen = r;
    *sealed = (const uint8_t *)v->mv_data + r + 1;
    *slen = v->mv_size - r - 1;
    return 0;
}

int schakel_outbox_dead_letters(schakel_outbox_t *o, schakel_outbox_dead_fn fn, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn) != 0) return SCHAKEL_ESTORE;
    outbox_keys_fresh(o, txn);
    if (mdb_cursor_open(txn, o->dead, &cur) != 0) {
        mdb_txn_abort(txn);
        return SCHAKEL_ESTORE;
    }
    int rc = 0;
    MDB_val k, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0 && rc == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *reason;
        const uint8_t *sealed;
        size_t rlen, slen;
        if (k.mv_size != 8 || dead_parts(&v, &reason, &rlen, &sealed, &slen) != 0) continue;
        schakel_outbox_dead_t d;
        memset(&d, 0, sizeof d);
        d.n = schakel_get_be64(k.mv_data);
        snprintf(d.reason, sizeof d.reason, "%.*s", (int)rlen, reason);
        MDB_val av;
        if (o->has_dead_at && mdb_get(txn, o->dead_at, &k, &av) == 0 && av.mv_size == 8)
            d.refused_ms = (int64_t)schakel_get_be64(av.mv_data);
        size_t len = 0;
        uint8_t *event = unseal(o, d.n, sealed, slen, &len); /* NULL: another key, or altered */
        rc = fn(arg, &d, event, event ? len : 0);
        free(event);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* Moves dead letter n back to the end of pending, sealed anew for its new
 * place, with now as its put-time. 0, SCHAKEL_ENOTFOUND (no such letter),
 * SCHAKEL_ECRYPTO (it does not open with this outbox's key) or an LMDB
 * code. */
static int requeue_one(schakel_outbox_t *o, MDB_txn *txn, uint64_t n, uint64_t *next, int64_t now_ms)
{
    uint8_t key[8];
    schakel_put_be64(key, n);
    MDB_val k = {8, key}, v;
    const char *reason;
    const uint8_t *sealed;
    size_t rlen, slen, len = 0;
    if (mdb_get(txn, o->dead, &k, &v) != 0 || dead_parts(&v, &reason, &rlen, &sealed, &slen) != 0)
        return SCHAKEL_ENOTFOUND;
    uint8_t *event = unseal(o, n, sealed, slen, &len);
    if (!event) return SCHAKEL_ECRYPTO;
    uint8_t nk[8];
    schakel_put_be64(nk, ++*next);
    MDB_val pk = {8, nk}, pv = {8 + len + SEAL_OVERHEAD, NULL};
    int rc = mdb_put(txn, o->pending, &pk, &pv, MDB_APPEND | MDB_RESERVE);
    if (rc == 0) {
        schakel_put_be64(pv.mv_data, (uint64_t)now_ms);
        if (seal(o, *next, event, len, (uint8_t *)pv.mv_data + 8) != 0) rc = SCHAKEL_ECRYPTO;
    }
    memset(event, 0, len);
    free(event);
    if (rc == 0) rc = mdb_del(txn, o->dead, &k, NULL);
    if (rc == 0 && o->has_dead_at) {
        int r = mdb_del(txn, o->dead_at, &k, NULL);
        if (r != 0 && r != MDB_NOTFOUND) rc = r;
    }
    return rc;
}

int schakel_outbox_requeue(schakel_outbox_t *o, const uint64_t *ns, size_t count, int64_t now_ms, char *why)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc) return schakel_fail(why, SCHAKEL_ESTORE, "outbox: %s", mdb_strerror(rc));
    outbox_keys_fresh(o, txn);
    uint64_t next = outbox_meta_u64(txn, o, "next"), dead = outbox_meta_u64(txn, o, "dead");
    size_t i = 0;
    for (; i < count && rc == 0; i++) {
        rc = requeue_one(o, txn, ns[i], &next, now_ms);
        if (rc == 0 && dead) dead--;
    }
    if (rc == 0) rc = outbox_meta_put(txn, o, "next", next);
    if (rc == 0) rc = outbox_meta_put(txn, o, "dead", dead);
    if (rc == 0) rc = mdb_txn_commit(txn); /* fsync: in the outbox before we say so */
    else mdb_txn_abort(txn);
    if (rc == SCHAKEL_ENOTFOUND)
        return schakel_fail(why, rc,
                            "dead letter %zu of %zu is no longer there (requeued already?): nothing "
                            "was changed",
                            i, count);
    if (rc == SCHAKEL_ECRYPTO)
        return schakel_fail(why, rc,
                            "a dead letter does not open with this outbox's key (outbox.key replaced?): "
                            "nothing was changed");
    return rc ? schakel_fail(why, rc == MDB_MAP_FULL ? SCHAKEL_EFULL : SCHAKEL_ESTORE, "outbox: %s",
                             mdb_strerror(rc))
              : 0;
}
