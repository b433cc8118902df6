/* The LMDB log's data keys: every subject's payloads are encrypted with a
 * key of its own, stored wrapped by the master key in table `keys` under
 * an id derived from the subject; two set-associative caches (subject ->
 * key id, key id -> key) keep a busy region from unwrapping a key per
 * record. Erasure replaces a subject's key with an erasure record: its
 * payloads can no longer be read, the chain still verifies. Called from
 * append (a new subject gets a key), read and audit. */
#include "store_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "logging.h"
#include "store_lmdb_impl.h"

void lmdb_derive(const uint8_t master[32], const char *label, uint8_t out[32])
{
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, label, strlen(label));
    schakel_sha256_update(&h, master, 32);
    schakel_sha256_final(&h, out);
}

void lmdb_key_id_of(lmdb_store_t *st, const char *subject, uint8_t id[KEY_ID_LEN])
{
    /* a pseudonym is uniform hex already: its first characters make the
     * set index; anything else (the empty subject) lands in set 0 */
    size_t n = strlen(subject);
    uint32_t h = 0;
    for (size_t i = 0; i < n && i < 8; i++) h = h << 4 | (uint32_t)(subject[i] & 0x0f);
    subject_set_t *set = &st->subjects[h % CACHE_SETS];
    for (int w = 0; w < CACHE_WAYS; w++) {
        subject_slot_t *slot = &set->way[w];
        if (slot->used && memcmp(slot->subject, subject, n + 1) == 0) {
            memcpy(id, slot->id, KEY_ID_LEN);
            return;
        }
    }
    uint8_t mac[32];
    if (schakel_hmac_sha256_with(&st->kid_hmac, subject, n, mac) != 0) {
        /* a wrong key id would store or read payloads under another
         * subject's key; the crypto library failing here (out of memory)
         * is not something a caller can fix: stop, the log is intact */
        schakel_log(SCHAKEL_LOG_ERROR, "store", "event=key_id_failed reason=\"HMAC-SHA-256 failed\"");
        abort();
    }
    memcpy(id, mac, KEY_ID_LEN);
    if (n < sizeof set->way[0].subject) {
        subject_slot_t *slot = &set->way[set->next++ % CACHE_WAYS];
        memcpy(slot->subject, subject, n + 1);
        memcpy(slot->id, id, KEY_ID_LEN);
        slot->used = 1;
    }
}

static key_set_t *key_set(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN])
{
    return &st->cache[((unsigned)id[0] << 8 | id[1]) % CACHE_SETS];
}

static key_slot_t *cached(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN])
{
    key_set_t *set = key_set(st, id);
    for (int w = 0; w < CACHE_WAYS; w++)
        if (set->way[w].used && memcmp(set->way[w].id, id, KEY_ID_LEN) == 0) return &set->way[w];
    return NULL;
}

int lmdb_key_cache_get(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN], uint8_t key[SCHAKEL_AEAD_KEY_LEN],
                       uint64_t *erased_upto)
{
    pthread_mutex_lock(&st->key_lock);
    key_slot_t *slot = cached(st, id);
    if (slot) {
        memcpy(key, slot->key, SCHAKEL_AEAD_KEY_LEN);
        *erased_upto = slot->erased_upto;
    }
    pthread_mutex_unlock(&st->key_lock);
    return slot != NULL;
}

static void key_cache_put(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN],
                          const uint8_t key[SCHAKEL_AEAD_KEY_LEN], uint64_t erased_upto)
{
    pthread_mutex_lock(&st->key_lock);
    key_slot_t *slot = cached(st, id); /* another reader may have put it meanwhile */
    if (!slot) {
        key_set_t *set = key_set(st, id);
        slot = &set->way[set->next++ % CACHE_WAYS];
    }
    memcpy(slot->id, id, KEY_ID_LEN);
    memcpy(slot->key, key, SCHAKEL_AEAD_KEY_LEN);
    slot->erased_upto = erased_upto;
    slot->used = 1;
    pthread_mutex_unlock(&st->key_lock);
}

void lmdb_key_cache_drop(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN])
{
    pthread_mutex_lock(&st->key_lock);
    key_slot_t *slot = cached(st, id);
    if (slot) memset(slot, 0, sizeof *slot);
    pthread_mutex_unlock(&st->key_lock);
}

void lmdb_key_cache_clear(lmdb_store_t *st)
{
    pthread_mutex_lock(&st->key_lock);
    memset(st->cache, 0, sizeof st->cache);
    pthread_mutex_unlock(&st->key_lock);
}

/* n random bytes from the store's pool: a region with many new children
 * needs a fresh key for each, and one RAND_bytes call per key costs more
 * than the rest of its record. The pool is wiped as it is used. */
static int pool_random(lmdb_store_t *st, uint8_t *out, size_t n)
{
    if (n > sizeof st->pool) return schakel_random(out, n);
    if (st->pool_left < n) {
        if (schakel_random(st->pool, sizeof st->pool) != 0) return SCHAKEL_ECRYPTO;
        st->pool_left = sizeof st->pool;
    }
    uint8_t *from = st->pool + sizeof st->pool - st->pool_left;
    memcpy(out, from, n);
    memset(from, 0, n);
    st->pool_left -= n;
    return 0;
}

int lmdb_is_tomb(const MDB_val *v)
{
    return (v->mv_size == TOMB_LEN || v->mv_size == TOMB_LEN + WRAPPED_LEN) &&
           memcmp(v->mv_data, TOMB_MAGIC, 16) == 0;
}

/* Finds the data key for key id `id`; with create, makes and stores one
 * in txn when there is none (after an erasure record: behind it).
 * *erased_upto: records of this key id up to that seq were erased (0:
 * none). SCHAKEL_ENOTFOUND when there is no key: with *erased_upto > 0 it
 * was erased, else it is missing; SCHAKEL_ECORRUPT/ECRYPTO when the stored
 * key is damaged. */
int lmdb_data_key_ex(lmdb_store_t *st, MDB_txn *txn, const uint8_t id[KEY_ID_LEN], int create,
                     uint8_t key[SCHAKEL_AEAD_KEY_LEN], uint64_t *erased_upto, char *why)
{
    *erased_upto = 0;
    if (lmdb_key_cache_get(st, id, key, erased_upto)) return 0;
    MDB_val k = {KEY_ID_LEN, (void *)id}, v;
    int rc = mdb_get(txn, st->keys, &k, &v);
    uint8_t tomb[TOMB_LEN];
    int has_tomb = 0;
    if (rc == 0 && lmdb_is_tomb(&v)) {
        *erased_upto = schakel_get_be64((const uint8_t *)v.mv_data + 16);
        memcpy(tomb, v.mv_data, TOMB_LEN);
        has_tomb = 1;
        if (v.mv_size == TOMB_LEN) rc = MDB_NOTFOUND; /* erased; no new key yet */
        else v.mv_data = (uint8_t *)v.mv_data + TOMB_LEN, v.mv_size -= TOMB_LEN;
    }
    if (rc == 0) {
        if (v.mv_size != WRAPPED_LEN)
            return schakel_fail(why, SCHAKEL_ECORRUPT, "data key record has the wrong size");
        const uint8_t *w = v.mv_data;
        if (schakel_aead_open(st->wrap_key, w, id, KEY_ID_LEN, w + SCHAKEL_AEAD_NONCE_LEN,
                              WRAPPED_LEN - SCHAKEL_AEAD_NONCE_LEN, key) != 0)
            return schakel_fail(why, SCHAKEL_ECRYPTO, "data key does not unwrap: wrong master key?");
    } else if (rc == MDB_NOTFOUND) {
        if (!create) return SCHAKEL_ENOTFOUND;
        uint8_t val[TOMB_LEN + WRAPPED_LEN], *w = val + (has_tomb ? TOMB_LEN : 0);
        if (has_tomb) memcpy(val, tomb, TOMB_LEN);
        if (pool_random(st, key, SCHAKEL_AEAD_KEY_LEN) || pool_random(st, w, SCHAKEL_AEAD_NONCE_LEN))
            return schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes for a data key");
        if (schakel_aead_seal(st->wrap_key, w, id, KEY_ID_LEN, key, SCHAKEL_AEAD_KEY_LEN,
                              w + SCHAKEL_AEAD_NONCE_LEN) != 0)
            return schakel_fail(why, SCHAKEL_ECRYPTO, "data key could not be wrapped");
        v.mv_size = (has_tomb ? TOMB_LEN : 0) + WRAPPED_LEN;
        v.mv_data = val;
        rc = mdb_put(txn, st->keys, &k, &v, 0);
        if (rc) return lmdb_err(rc, why, "store data key");
    } else {
        return lmdb_err(rc, why, "read data key");
    }
    key_cache_put(st, id, key, *erased_upto);
    return 0;
}

int lmdb_data_key(lmdb_store_t *st, MDB_txn *txn, const uint8_t id[KEY_ID_LEN], int create,
                  uint8_t key[SCHAKEL_AEAD_KEY_LEN], char *why)
{
    uint64_t upto;
    return lmdb_data_key_ex(st, txn, id, create, key, &upto, why);
}

/* Overwrites with zeros every copy of the n bytes `secret` in the log's
 * data file; *copies: how many there were. LMDB never writes a page in
 * place: each change of a page of `keys` (a new subject's key beside
 * this one, the erasure) wrote a new copy and freed the old, which keeps
 * its bytes until LMDB reuses it, and a page buffer reused in memory can
 * carry them into the unused middle of a later page. Called after the
 * erasure is committed, with no write in between: the tree in force no
 * longer holds the bytes, so every copy lies in a freed page or in an
 * unused gap, and zeroing it changes nothing LMDB reads (a reader still on
 * an older snapshot finds this subject's key corrupt, nothing else). */
static int scrub_copies(lmdb_store_t *st, const uint8_t *secret, size_t n, uint64_t *copies)
{
    enum { CHUNK = 1 << 20 };
    *copies = 0;
    int fd = -1;
    struct stat sb;
    if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) != 0) return SCHAKEL_EIO;
    uint8_t *buf = malloc(CHUNK);
    static const uint8_t zeros[64];
    if (!buf || n > sizeof zeros || n < 16) {
        free(buf);
        return buf ? SCHAKEL_EINVAL : SCHAKEL_ENOMEM;
    }
    int rc = 0;
    /* chunks overlap by n - 1 bytes: a copy across a boundary is found */
    for (off_t at = 0; rc == 0 && at < sb.st_size; at += CHUNK - (off_t)(n - 1)) {
        ssize_t got = pread(fd, buf, CHUNK, at);
        if (got < 0) {
            rc = SCHAKEL_EIO;
            break;
        }
        if ((size_t)got < n) break;
        for (const uint8_t *p = buf, *end = buf + got;
             rc == 0 && (p = memmem(p, (size_t)(end - p), secret, n)); p += n) {
            if (pwrite(fd, zeros, n, at + (p - buf)) != (ssize_t)n) rc = SCHAKEL_EIO;
            else (*copies)++;
        }
        if ((size_t)got < CHUNK) break;
    }
    free(buf);
    if (rc == 0 && *copies && fdatasync(fd) != 0) rc = SCHAKEL_EIO;
    return rc;
}

/* Replaces the subject's data key by an erasure record: which records it
 * erased (up to the head now) and when. Nothing decrypts them again, and
 * `audit verify` tells them from records whose key is missing or damaged.
 * Then every copy of the wrapped key left in the file is overwritten
 * (scrub_copies): with the master key, a copy would still unwrap. The
 * environment is opened again in between (lmdb_reopen), so that no page
 * buffer LMDB keeps in memory writes a copy back later. */
int lmdb_erase_subject(schakel_store_t *s, const char *subject)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only) return SCHAKEL_EPERM;
    uint8_t kid[KEY_ID_LEN];
    lmdb_key_id_of(st, subject, kid);
    int rc = lmdb_ensure_room(st, 256, NULL);
    if (rc) return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin erase");
    MDB_val k = {KEY_ID_LEN, kid}, v;
    rc = mdb_get(txn, st->keys, &k, &v);
    if (rc || (lmdb_is_tomb(&v) && v.mv_size == TOMB_LEN)) { /* no key, or erased already */
        mdb_txn_abort(txn);
        return rc == 0 || rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : lmdb_err(rc, NULL, "erase");
    }
    /* the wrapped key as stored (behind an earlier erasure record, if any) */
    uint8_t wrapped[WRAPPED_LEN];
    size_t skip = lmdb_is_tomb(&v) ? TOMB_LEN : 0;
    int have_wrapped = v.mv_size == skip + WRAPPED_LEN;
    if (have_wrapped) memcpy(wrapped, (const uint8_t *)v.mv_data + skip, WRAPPED_LEN);
    uint8_t tomb[TOMB_LEN];
    memcpy(tomb, TOMB_MAGIC, 16);
    schakel_put_be64(tomb + 16, st->head.seq);
    schakel_put_be64(tomb + 24, (uint64_t)schakel_wall_ms());
    MDB_val tv = {TOMB_LEN, tomb};
    rc = mdb_put(txn, st->keys, &k, &tv, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, NULL, "erase");
    }
    rc = lmdb_commit_durable(st, txn); /* an erasure survives power loss */
    /* A reader in another thread that began before the commit may still
     * put the old key in the cache: the slot is dropped again once no
     * reader is left (the resize lock, for writing). A reader after that
     * reads the erasure record in its snapshot. */
    lmdb_key_cache_drop(st, kid);
    pthread_rwlock_wrlock(&st->resize);
    lmdb_key_cache_drop(st, kid);
    pthread_rwlock_unlock(&st->resize);
    if (rc) return lmdb_write_err(st, rc, NULL, "commit erase");
    /* LMDB's page buffers in memory may hold copies too, and would write
     * them into later pages: dropped before the file is searched */
    char why[SCHAKEL_ERRLEN] = "";
    if (lmdb_reopen(st, why) != 0) {
        /* the erasure is durable; without an environment nothing can go
         * on, and a restart opens the log as it is */
        schakel_log(SCHAKEL_LOG_ERROR, "store", "event=reopen_failed reason=\"%s\"", why);
        abort();
    }
    uint64_t copies = 0;
    rc = have_wrapped ? scrub_copies(st, wrapped, WRAPPED_LEN, &copies) : 0;
    memset(wrapped, 0, sizeof wrapped);
    if (rc)
        schakel_log(SCHAKEL_LOG_ERROR, "store", "event=erase_scrub_failed reason=\"%s\"",
                    schakel_strerror(rc));
    else
        schakel_log(SCHAKEL_LOG_INFO, "store", "event=erased seq=%llu copies_overwritten=%llu",
                    (unsigned long long)st->head.seq, (unsigned long long)copies);
    return rc ? SCHAKEL_EIO : 0;
}

/* An erasure record alone under the subject's key id: erased, and no
 * event about it since (which would have made a new key beside it). */
int lmdb_erased_before(schakel_store_t *s, const char *subject, uint64_t *upto, int64_t *at_ms)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    uint8_t kid[KEY_ID_LEN];
    lmdb_key_id_of(st, subject, kid);
    MDB_txn *txn;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0) return SCHAKEL_ESTORE;
    MDB_val k = {KEY_ID_LEN, kid}, v;
    int rc = mdb_get(txn, st->keys, &k, &v);
    int alone = rc == 0 && lmdb_is_tomb(&v) && v.mv_size == TOMB_LEN;
    if (alone) {
        *upto = schakel_get_be64((const uint8_t *)v.mv_data + 16);
        *at_ms = (int64_t)schakel_get_be64((const uint8_t *)v.mv_data + 24);
    }
    mdb_txn_abort(txn);
    return alone ? 0 : rc == 0 || rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : SCHAKEL_ESTORE;
}
