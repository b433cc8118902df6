/* The outbox's keys (outbox_impl.h). outbox.key seals every event; LMDB
 * keeps freed pages with their old bytes, so an event deleted after its
 * ACK stays in data.mdb, sealed, until the page is reused: whoever has
 * outbox.key too could read it. So whenever an ACK empties the outbox the
 * key is replaced: the live entries (dead letters, anything pending) and
 * the MAC key are sealed again under a new key in one transaction, and the
 * old key is overwritten in its file. What the freed pages still hold then
 * opens with no key that exists.
 *
 * Crash safety: the new key is written to outbox.key.next (fsynced) before
 * the transaction, and overwrites outbox.key only after its commit; the
 * key that opens the sealed MAC key in meta is the right one, so an open
 * (or another process, the dead-letter commands, seeing meta "key_gen"
 * move) takes outbox.key.next when it opens it and outbox.key otherwise.
 * The ids' HMACs are under a MAC key of their own (meta "mac_key",
 * sealed), which a rotation keeps: a re-imported record is still known. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"
#include "logging.h"
#include "outbox_impl.h"

#define NEXT_FILE "outbox.key.next"
#define KEY_FILE "outbox.key"

/* Does the sealed MAC key in meta open with key? Then it is in mac. */
static int mac_opens(schakel_outbox_t *o, MDB_txn *txn, const uint8_t *key, uint8_t *mac)
{
    MDB_val k = {7, "mac_key"}, v;
    if (mdb_get(txn, o->meta, &k, &v) != 0) return 0;
    size_t len = 0;
    uint8_t *m = outbox_unseal_with(key, 0, v.mv_data, v.mv_size, &len);
    int ok = m && len == SCHAKEL_AEAD_KEY_LEN;
    if (ok) memcpy(mac, m, SCHAKEL_AEAD_KEY_LEN);
    if (m) memset(m, 0, len);
    free(m);
    return ok;
}

static int mac_store(schakel_outbox_t *o, MDB_txn *txn, const uint8_t *key, const uint8_t *mac)
{
    uint8_t sealed[SCHAKEL_AEAD_KEY_LEN + OUTBOX_SEAL_OVERHEAD];
    if (outbox_seal_with(key, 0, mac, SCHAKEL_AEAD_KEY_LEN, sealed) != 0) return SCHAKEL_ECRYPTO;
    MDB_val k = {7, "mac_key"}, v = {sizeof sealed, sealed};
    return mdb_put(txn, o->meta, &k, &v, 0);
}

static int path_of(const schakel_outbox_t *o, const char *name, char *out)
{
    return schakel_path_join(out, SCHAKEL_PATH_MAX, o->dir, name, NULL);
}

/* Writes key as hex into path over what it held (in place: the old key's
 * bytes where the file system keeps a file's blocks), fsynced. */
static int key_overwrite(const char *path, const uint8_t *key)
{
    char hex[2 * SCHAKEL_AEAD_KEY_LEN + 2];
    schakel_hex_encode(key, SCHAKEL_AEAD_KEY_LEN, hex);
    hex[2 * SCHAKEL_AEAD_KEY_LEN] = '\n';
    size_t n = 2 * SCHAKEL_AEAD_KEY_LEN + 1;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && pwrite(fd, hex, n, 0) == (ssize_t)n && ftruncate(fd, (off_t)n) == 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    memset(hex, 0, sizeof hex);
    return ok ? 0 : SCHAKEL_EIO;
}

static int key_write_new(const char *path, const uint8_t *key)
{
    char hex[2 * SCHAKEL_AEAD_KEY_LEN + 2];
    schakel_hex_encode(key, SCHAKEL_AEAD_KEY_LEN, hex);
    hex[2 * SCHAKEL_AEAD_KEY_LEN] = '\n';
    int rc = schakel_file_write_atomic(path, hex, 2 * SCHAKEL_AEAD_KEY_LEN + 1);
    memset(hex, 0, sizeof hex);
    return rc;
}

/* Takes the key of file name when it opens the MAC key. */
static int take_file_key(schakel_outbox_t *o, MDB_txn *txn, const char *name, uint64_t gen)
{
    char path[SCHAKEL_PATH_MAX];
    uint8_t key[SCHAKEL_AEAD_KEY_LEN], mac[SCHAKEL_AEAD_KEY_LEN];
    int ok = path_of(o, name, path) == 0 && schakel_secret_file(path, key, sizeof key, 0, NULL, NULL) == 0 &&
             mac_opens(o, txn, key, mac);
    if (ok) {
        pthread_mutex_lock(&o->key_mu);
        memcpy(o->key, key, sizeof key);
        memcpy(o->mac_key, mac, sizeof mac);
        o->key_gen = gen;
        o->mac_ok = 1;
        pthread_mutex_unlock(&o->key_mu);
    }
    memset(key, 0, sizeof key);
    memset(mac, 0, sizeof mac);
    return ok;
}

int outbox_keys_open(schakel_outbox_t *o, MDB_txn *txn, uint64_t format, char *why)
{
    char kp[SCHAKEL_PATH_MAX], np[SCHAKEL_PATH_MAX];
    if (path_of(o, KEY_FILE, kp) != 0 || path_of(o, NEXT_FILE, np) != 0)
        return schakel_fail(why, SCHAKEL_EIO, "outbox %s: path too long", o->dir);
    uint64_t gen = outbox_meta_u64(txn, o, "key_gen");
    if (format >= 3) {
        if (take_file_key(o, txn, NEXT_FILE, gen)) {              /* a rotation cut short after its commit */
            if (key_overwrite(kp, o->key) == 0) (void)unlink(np); /* else the next open again */
        } else if (mac_opens(o, txn, o->key, o->mac_key)) {
            o->mac_ok = 1;
            o->key_gen = gen;
            (void)unlink(np); /* cut short before the commit, or none: the old key is in force */
        } else {
            /* another key: nothing opens, nothing is sent; a MAC key of
             * its own so that puts still work (docs/privacy.md) */
            if (schakel_hmac_sha256(o->key, sizeof o->key, "schakel/v1/outbox/mac", 21, o->mac_key) != 0)
                return SCHAKEL_ECRYPTO;
            o->key_gen = gen;
        }
        return 0;
    }
    /* format 2: the ids' HMACs were under outbox.key; they go, and a MAC
     * key of its own is made (a re-import of a record sent before is sent
     * again, and the broker answers "duplicate") */
    if (schakel_random(o->mac_key, sizeof o->mac_key) != 0) return SCHAKEL_ECRYPTO;
    int rc = mac_store(o, txn, o->key, o->mac_key);
    if (rc == 0) rc = mdb_drop(txn, o->ids, 0);
    if (rc == 0) rc = outbox_meta_put(txn, o, "key_gen", 0);
    o->mac_ok = rc == 0;
    (void)unlink(np); /* none expected: from no rotation of ours */
    return rc;
}

void outbox_keys_fresh(schakel_outbox_t *o, MDB_txn *txn)
{
    uint64_t gen = outbox_meta_u64(txn, o, "key_gen");
    pthread_mutex_lock(&o->key_mu);
    int same = gen == o->key_gen;
    pthread_mutex_unlock(&o->key_mu);
    if (!same && !take_file_key(o, txn, NEXT_FILE, gen)) (void)take_file_key(o, txn, KEY_FILE, gen);
}

/* Seals every entry of table t again, from key old to key nk; one that
 * does not open with old stays as it is. head: bytes before the sealed
 * part (pending: the 8-byte put-time; dead: -1, the reason up to its NUL). */
static int reseal(MDB_txn *txn, MDB_dbi t, int head, const uint8_t *old, const uint8_t *nk, uint64_t *count)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, t, &cur);
    if (rc) return rc;
    MDB_val k, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0 && rc == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t h = head >= 0 ? (size_t)head : strnlen(v.mv_data, v.mv_size) + 1;
        if (k.mv_size != 8 || h >= v.mv_size) continue;
        uint64_t n = schakel_get_be64(k.mv_data);
        size_t len = 0;
        uint8_t *plain = outbox_unseal_with(old, n, (const uint8_t *)v.mv_data + h, v.mv_size - h, &len);
        if (!plain) continue;
        uint8_t *nv = malloc(v.mv_size);
        if (!nv) rc = SCHAKEL_ENOMEM;
        else {
            memcpy(nv, v.mv_data, h);
            rc = outbox_seal_with(nk, n, plain, len, nv + h);
            MDB_val nval = {v.mv_size, nv};
            if (rc == 0) rc = mdb_cursor_put(cur, &k, &nval, MDB_CURRENT);
            if (rc == 0) (*count)++;
            free(nv);
        }
        memset(plain, 0, len);
        free(plain);
    }
    mdb_cursor_close(cur);
    return rc;
}

void outbox_keys_rotate(schakel_outbox_t *o)
{
    char kp[SCHAKEL_PATH_MAX], np[SCHAKEL_PATH_MAX];
    uint8_t nk[SCHAKEL_AEAD_KEY_LEN], old[SCHAKEL_AEAD_KEY_LEN];
    MDB_txn *txn = NULL;
    uint64_t resealed = 0, gen = 0;
    if (!o->mac_ok || path_of(o, KEY_FILE, kp) != 0 || path_of(o, NEXT_FILE, np) != 0) return;
    int rc = schakel_random(nk, sizeof nk) != 0 ? SCHAKEL_ECRYPTO : key_write_new(np, nk);
    if (rc == 0) rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc == 0) {
        outbox_keys_fresh(o, txn);
        pthread_mutex_lock(&o->key_mu);
        memcpy(old, o->key, sizeof old);
        pthread_mutex_unlock(&o->key_mu);
        gen = outbox_meta_u64(txn, o, "key_gen") + 1;
        rc = reseal(txn, o->pending, 8, old, nk, &resealed);
        if (rc == 0) rc = reseal(txn, o->dead, -1, old, nk, &resealed);
        if (rc == 0) rc = mac_store(o, txn, nk, o->mac_key);
        if (rc == 0) rc = outbox_meta_put(txn, o, "key_gen", gen);
    }
    if (rc == 0) { /* in force before the commit: no write of this process comes in between */
        pthread_mutex_lock(&o->key_mu);
        memcpy(o->key, nk, sizeof nk);
        o->key_gen = gen;
        pthread_mutex_unlock(&o->key_mu);
        rc = mdb_txn_commit(txn);
        txn = NULL;
        if (rc) {
            pthread_mutex_lock(&o->key_mu);
            memcpy(o->key, old, sizeof old);
            o->key_gen = gen - 1;
            pthread_mutex_unlock(&o->key_mu);
        }
    }
    if (txn) mdb_txn_abort(txn);
    if (rc) {
        (void)unlink(np); /* the old key stays in force */
        schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=outbox_key_not_rotated reason=\"%s\"",
                    rc > 0 ? mdb_strerror(rc) : schakel_strerror(rc));
    } else if (key_overwrite(kp, nk) == 0) {
        (void)unlink(np);
        schakel_log(SCHAKEL_LOG_DEBUG, "adapter", "event=outbox_key_rotated resealed=%llu",
                    (unsigned long long)resealed);
    } else { /* outbox.key.next holds it: the next open installs it */
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=outbox_key_not_installed file=%s", kp);
    }
    memset(nk, 0, sizeof nk);
    memset(old, 0, sizeof old);
}
