/* The embedded log backend on LMDB: one environment per broker, written by
 * one thread. Tuned for group commit: many small records appended in one
 * write transaction with one fsync, MDB_APPEND on the sequence key, and
 * reads that walk a cursor. Invariants are those of store.h; the chain hash
 * covers the encrypted record body, so erasure (deleting a data key) never
 * touches the chain. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "error.h"
#include "logging.h"
#include "schakel/v1/bus.pb-c.h"

#define KEY_ID_LEN 16
#define WRAPPED_LEN (SCHAKEL_AEAD_NONCE_LEN + SCHAKEL_AEAD_KEY_LEN + SCHAKEL_AEAD_TAG_LEN)
#define HDR_LEN (2 * SCHAKEL_SHA256_LEN) /* prev_hash || hash before the body */
/* An erasure record in table `keys`, under the erased key's id:
 * "schakel-erased\0\0" (16) || u64be(last seq erased) || i64be(at, unix ms).
 * Alone: the subject's key was erased. Followed by a wrapped key: a new key
 * for the subject's records after `last seq erased`. */
#define TOMB_MAGIC "schakel-erased\0"
#define TOMB_LEN 32
/* Two 4-way set-associative caches of 32768 entries each (~4.6 MiB): a
 * direct-mapped cache thrashes once a few thousand children are active. */
#define CACHE_SETS 8192
#define CACHE_WAYS 4

typedef struct {
    uint8_t id[KEY_ID_LEN];
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    uint64_t erased_upto; /* records up to this seq were erased (old key) */
    int used;
} key_slot_t;

/* subject -> key id is a keyed hash that never changes, so this cache
 * needs no invalidation, not even on erasure. */
typedef struct {
    char subject[65];
    uint8_t id[KEY_ID_LEN];
    int used;
} subject_slot_t;

typedef struct {
    key_slot_t way[CACHE_WAYS];
    unsigned next; /* round-robin victim */
} key_set_t;

typedef struct {
    subject_slot_t way[CACHE_WAYS];
    unsigned next;
} subject_set_t;

typedef struct {
    schakel_store_t base;
    MDB_env *env;
    MDB_dbi events, by_id, streams, cursors, checkpoints, keys, proofs;
    uint8_t kid_key[SCHAKEL_SHA256_LEN];  /* derives key ids from subjects */
    uint8_t wrap_key[SCHAKEL_AEAD_KEY_LEN]; /* wraps data keys */
    uint8_t sign_secret[SCHAKEL_ED25519_SEC_LEN];
    int can_sign;
    uint64_t cp_every;
    int64_t cp_ms;
    uint64_t cp_seq;       /* last checkpoint */
    int64_t cp_at;
    size_t map_size, map_max;
    uint64_t full_retries;
    /* growing the map needs no transaction open in the process: readers in
     * other threads (event_id_at) hold it shared */
    pthread_rwlock_t resize;
    schakel_head_t head;
    int read_only;
    int legacy_by_id;        /* read-only log whose by_id is keyed by the bare id */
    uint8_t nonce_prefix[4]; /* nonce = prefix || u64be(seq): unique per data key */
    uint8_t pool[4096];      /* random bytes for new data keys, drawn a page at a time */
    size_t pool_left;
    key_set_t cache[CACHE_SETS];
    subject_set_t subjects[CACHE_SETS];
} lmdb_store_t;

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t rd64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | in[i];
    return v;
}

#define DISK_FULL "the disk holding the log is full: the operator must free disk space or " \
                  "move the log; nothing was stored, send again later"

static int lmdb_err(int rc, char *why, const char *what)
{
    if (rc == MDB_MAP_FULL)
        return schakel_fail(why, SCHAKEL_EFULL, "%s: the log's map is full: the operator must raise "
                            "map_max or move the log; nothing was stored, send again later", what);
    if (rc == ENOSPC || rc == EDQUOT) return schakel_fail(why, SCHAKEL_EFULL, "%s: %s", what, DISK_FULL);
    return schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

/* A write of the log failed. LMDB reports a short write on a full disk as
 * EIO ("Input/output error"): when the disk under the log has less than a
 * megabyte left, say that it is full. */
static int write_err(lmdb_store_t *st, int rc, char *why, const char *what)
{
    const char *path = NULL;
    struct statvfs vfs;
    if (rc == EIO && mdb_env_get_path(st->env, &path) == 0 && path && statvfs(path, &vfs) == 0 &&
        (unsigned long long)vfs.f_bavail * vfs.f_frsize < (1ull << 20))
        rc = ENOSPC;
    return lmdb_err(rc, why, what);
}

/* h[n] = SHA-256("schakel/v1" || u64be(n) || h[n-1] || SHA-256(body)) */
static void chain_hash(uint64_t seq, const uint8_t prev[32], const uint8_t *body, size_t len,
                       uint8_t out[32])
{
    uint8_t bh[32], s[8];
    schakel_sha256(body, len, bh);
    be64(s, seq);
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, "schakel/v1", 10);
    schakel_sha256_update(&h, s, 8);
    schakel_sha256_update(&h, prev, 32);
    schakel_sha256_update(&h, bh, 32);
    schakel_sha256_final(&h, out);
}

static void derive(const uint8_t master[32], const char *label, uint8_t out[32])
{
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, label, strlen(label));
    schakel_sha256_update(&h, master, 32);
    schakel_sha256_final(&h, out);
}

static void key_id_of(lmdb_store_t *st, const char *subject, uint8_t id[KEY_ID_LEN])
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
    schakel_hmac_sha256(st->kid_key, sizeof st->kid_key, subject, n, mac);
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

static key_slot_t *key_cached(lmdb_store_t *st, const uint8_t id[KEY_ID_LEN])
{
    key_set_t *set = key_set(st, id);
    for (int w = 0; w < CACHE_WAYS; w++)
        if (set->way[w].used && memcmp(set->way[w].id, id, KEY_ID_LEN) == 0) return &set->way[w];
    return NULL;
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

static int is_tomb(const MDB_val *v)
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
static int data_key_ex(lmdb_store_t *st, MDB_txn *txn, const uint8_t id[KEY_ID_LEN], int create,
                       uint8_t key[SCHAKEL_AEAD_KEY_LEN], uint64_t *erased_upto, char *why)
{
    *erased_upto = 0;
    key_slot_t *slot = key_cached(st, id);
    if (slot) {
        memcpy(key, slot->key, SCHAKEL_AEAD_KEY_LEN);
        *erased_upto = slot->erased_upto;
        return 0;
    }
    MDB_val k = {KEY_ID_LEN, (void *)id}, v;
    int rc = mdb_get(txn, st->keys, &k, &v);
    uint8_t tomb[TOMB_LEN];
    int has_tomb = 0;
    if (rc == 0 && is_tomb(&v)) {
        *erased_upto = rd64((const uint8_t *)v.mv_data + 16);
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
    key_set_t *set = key_set(st, id);
    slot = &set->way[set->next++ % CACHE_WAYS];
    memcpy(slot->id, id, KEY_ID_LEN);
    memcpy(slot->key, key, SCHAKEL_AEAD_KEY_LEN);
    slot->erased_upto = *erased_upto;
    slot->used = 1;
    return 0;
}

static int data_key(lmdb_store_t *st, MDB_txn *txn, const uint8_t id[KEY_ID_LEN], int create,
                    uint8_t key[SCHAKEL_AEAD_KEY_LEN], char *why)
{
    uint64_t upto;
    return data_key_ex(st, txn, id, create, key, &upto, why);
}

/* Grows the map when the next append could come near its end: LMDB cannot
 * grow it in the middle of a transaction, and MDB_MAP_FULL would cost the
 * whole group. */
static int ensure_room(lmdb_store_t *st, size_t incoming, char *why)
{
    MDB_envinfo info;
    MDB_stat stat;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &stat);
    size_t used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
    size_t want = used + 4 * incoming + (1u << 20);
    if (want <= st->map_size / 4 * 3) return 0;
    size_t next = st->map_size * 2;
    while (next / 4 * 3 < want) next *= 2;
    if (next > st->map_max) next = st->map_max;
    if (next <= st->map_size) {
        if (used + incoming + (256u << 10) < st->map_size) return 0; /* let it try */
        return schakel_fail(why, SCHAKEL_EFULL,
                            "log map is at its limit of %zu bytes: raise map_max or move the log",
                            st->map_max);
    }
    pthread_rwlock_wrlock(&st->resize);
    int rc = mdb_env_set_mapsize(st->env, next);
    pthread_rwlock_unlock(&st->resize);
    if (rc) return lmdb_err(rc, why, "grow map");
    schakel_log(SCHAKEL_LOG_INFO, "store", "event=map_grown from=%zu to=%zu", st->map_size, next);
    st->map_size = next;
    return 0;
}

void schakel_checkpoint_message(const schakel_checkpoint_t *cp,
                                uint8_t out[SCHAKEL_CHECKPOINT_MSG_LEN])
{
    memcpy(out, "schakel/v1/checkpoint", 21);
    be64(out + 21, cp->seq);
    memcpy(out + 29, cp->hash, 32);
    be64(out + 61, (uint64_t)cp->at);
}

static int put_checkpoint(lmdb_store_t *st, MDB_txn *txn, int64_t now_ms, char *why)
{
    schakel_checkpoint_t c = {.seq = st->head.seq, .at = now_ms};
    memcpy(c.hash, st->head.hash, 32);
    uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN];
    schakel_checkpoint_message(&c, msg);
    if (schakel_ed25519_sign(st->sign_secret, msg, sizeof msg, c.signature) != 0)
        return schakel_fail(why, SCHAKEL_ECRYPTO, "checkpoint could not be signed");
    Schakel__V1__Checkpoint cp = SCHAKEL__V1__CHECKPOINT__INIT;
    cp.seq = c.seq;
    cp.hash.data = c.hash;
    cp.hash.len = 32;
    cp.at = c.at;
    cp.signature.data = c.signature;
    cp.signature.len = sizeof c.signature;
    uint8_t buf[256], k[8];
    size_t n = schakel__v1__checkpoint__pack(&cp, buf);
    be64(k, cp.seq);
    MDB_val kv = {8, k}, vv = {n, buf};
    int rc = mdb_put(txn, st->checkpoints, &kv, &vv, MDB_APPEND);
    if (rc) return lmdb_err(rc, why, "store checkpoint");
    return 0;
}

/* The by_id key of an event: its publisher's id, a NUL, the 16-byte event
 * id. Ids are scoped to the organisation that published them, so no
 * organisation can take another's id first. */
#define ID_KEY_ORG_MAX 63 /* organisation ids are 1 to 63 characters */
#define ID_KEY_MAX (ID_KEY_ORG_MAX + 1 + 16)
static size_t id_key(uint8_t out[ID_KEY_MAX], const char *org, const uint8_t id[16])
{
    size_t n = strnlen(org ? org : "", ID_KEY_ORG_MAX);
    memcpy(out, org ? org : "", n);
    out[n] = 0;
    memcpy(out + n + 1, id, 16);
    return n + 17;
}

/* For a duplicate id: is the stored event at seq the same bytes? A
 * publisher that reuses an id for another event gets a reject, never a
 * silent "already stored". */
static int same_event(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const uint8_t hash[32],
                      int *conflict, char *why)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(txn, st->events, &k, &v);
    if (rc) return lmdb_err(rc, why, "read duplicate");
    Schakel__V1__RecordBody *b = v.mv_size > HDR_LEN
        ? schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (uint8_t *)v.mv_data + HDR_LEN)
        : NULL;
    if (!b) return schakel_fail(why, SCHAKEL_ECORRUPT, "record %llu does not decode",
                                (unsigned long long)seq);
    *conflict = b->event_hash.len != 32 || memcmp(b->event_hash.data, hash, 32) != 0;
    schakel__v1__record_body__free_unpacked(b, NULL);
    return 0;
}

static int append_one(lmdb_store_t *st, MDB_txn *txn, const schakel_append_batch_t *b,
                      schakel_append_item_t *it, uint64_t *proof_seq, int64_t now_ms, char *why)
{
    uint8_t ik[ID_KEY_MAX];
    MDB_val k = {id_key(ik, b->signer_org, it->event_id), ik}, v;
    int rc = mdb_get(txn, st->by_id, &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        it->seq = rd64(v.mv_data);
        it->duplicate = 1;
        return same_event(st, txn, it->seq, it->event_hash, &it->conflict, why);
    }
    if (rc != MDB_NOTFOUND && rc != 0) return lmdb_err(rc, why, "dedup lookup");

    uint64_t seq = st->head.seq + 1;
    if (*proof_seq == 0) *proof_seq = seq;
    uint8_t kid[KEY_ID_LEN], dk[SCHAKEL_AEAD_KEY_LEN], nonce[SCHAKEL_AEAD_NONCE_LEN], aad[24];
    key_id_of(st, it->subject ? it->subject : "", kid);
    rc = data_key(st, txn, kid, 1, dk, why);
    if (rc) return rc;
    memcpy(nonce, st->nonce_prefix, 4);
    be64(nonce + 4, seq);
    be64(aad, seq);
    memcpy(aad + 8, it->event_id, 16);
    size_t clen = it->event_len + SCHAKEL_AEAD_TAG_LEN;
    uint8_t *ct = malloc(clen);
    if (!ct) return SCHAKEL_ENOMEM;
    rc = schakel_aead_seal(dk, nonce, aad, sizeof aad, it->event, it->event_len, ct);
    if (rc) {
        free(ct);
        return schakel_fail(why, SCHAKEL_ECRYPTO, "payload could not be encrypted");
    }

    Schakel__V1__RecordBody body = SCHAKEL__V1__RECORD_BODY__INIT;
    body.seq = seq;
    body.recorded_at = now_ms;
    body.event_id.data = (uint8_t *)it->event_id;
    body.event_id.len = 16;
    body.type = it->type;
    body.source_org = (char *)b->signer_org;
    body.key_id.data = kid;
    body.key_id.len = KEY_ID_LEN;
    body.nonce.data = nonce;
    body.nonce.len = sizeof nonce;
    body.ciphertext.data = ct;
    body.ciphertext.len = clen;
    body.event_hash.data = it->event_hash;
    body.event_hash.len = 32;
    body.proof_seq = *proof_seq;
    body.proof_index = it->proof_index;

    size_t blen = schakel__v1__record_body__get_packed_size(&body);
    uint8_t key[8];
    be64(key, seq);
    MDB_val kv = {8, key}, vv = {HDR_LEN + blen, NULL};
    rc = mdb_put(txn, st->events, &kv, &vv, MDB_APPEND | MDB_RESERVE);
    if (rc) {
        free(ct);
        return lmdb_err(rc, why, "append record");
    }
    uint8_t *out = vv.mv_data;
    schakel__v1__record_body__pack(&body, out + HDR_LEN);
    free(ct);
    memcpy(out, st->head.hash, 32);
    chain_hash(seq, st->head.hash, out + HDR_LEN, blen, out + 32);

    MDB_val sv = {8, key};
    rc = mdb_put(txn, st->by_id, &k, &sv, MDB_NOOVERWRITE);
    if (rc) return lmdb_err(rc, why, "index event id");

    for (size_t x = 0; x < it->n_index; x++) {
        uint8_t sk[SCHAKEL_STREAM_MAX + 9];
        size_t sl = strnlen(it->index[x].stream, SCHAKEL_STREAM_MAX - 1);
        memcpy(sk, it->index[x].stream, sl);
        sk[sl] = 0;
        /* The entry's place in the stream is this record's seq, so a
         * delivery decided later (a hold released) comes after everything
         * the stream already holds and no reader's cursor has passed it.
         * The value names the record delivered when it is another one. */
        be64(sk + sl + 1, seq);
        uint8_t target[8];
        uint64_t to = it->index[x].seq ? it->index[x].seq : seq;
        be64(target, to);
        MDB_val skv = {sl + 9, sk}, tv = {to == seq ? 0 : 8, target};
        rc = mdb_put(txn, st->streams, &skv, &tv, 0);
        if (rc) return lmdb_err(rc, why, "index stream");
    }
    st->head.seq = seq;
    memcpy(st->head.hash, out + 32, 32);
    it->seq = seq;
    it->duplicate = 0;
    return 0;
}

static int put_proof(lmdb_store_t *st, MDB_txn *txn, const schakel_append_batch_t *b,
                     uint64_t proof_seq, char *why)
{
    Schakel__V1__BatchProof p = SCHAKEL__V1__BATCH_PROOF__INIT;
    ProtobufCBinaryData *hs = calloc(b->n_hashes ? b->n_hashes : 1, sizeof *hs);
    if (!hs) return SCHAKEL_ENOMEM;
    for (size_t i = 0; i < b->n_hashes; i++) {
        hs[i].data = (uint8_t *)b->hashes[i];
        hs[i].len = 32;
    }
    p.signer_org = (char *)b->signer_org;
    p.signature.data = (uint8_t *)b->signature;
    p.signature.len = SCHAKEL_ED25519_SIG_LEN;
    p.n_event_hashes = b->n_hashes;
    p.event_hashes = hs;
    uint8_t k[8];
    be64(k, proof_seq);
    MDB_val kv = {8, k}, vv = {schakel__v1__batch_proof__get_packed_size(&p), NULL};
    int rc = mdb_put(txn, st->proofs, &kv, &vv, MDB_APPEND | MDB_RESERVE);
    if (rc == 0) schakel__v1__batch_proof__pack(&p, vv.mv_data);
    free(hs);
    return rc ? lmdb_err(rc, why, "store batch proof") : 0;
}

static int try_append(lmdb_store_t *st, schakel_append_batch_t *batches, size_t n, int64_t now_ms,
                      char *why)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, why, "begin append");
    for (size_t i = 0; i < n && rc == 0; i++) {
        schakel_append_batch_t *b = &batches[i];
        uint64_t proof_seq = 0;
        for (size_t j = 0; j < b->n_items && rc == 0; j++)
            rc = append_one(st, txn, b, &b->items[j], &proof_seq, now_ms, why);
        if (rc == 0 && proof_seq) rc = put_proof(st, txn, b, proof_seq, why);
    }
    int cp = 0;
    if (rc == 0 && st->can_sign && st->head.seq >= st->cp_seq + st->cp_every) {
        rc = put_checkpoint(st, txn, now_ms, why);
        cp = 1;
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn); /* fsyncs: durable before any ACK */
    if (rc) return write_err(st, rc, why, "commit append");
    if (cp) {
        st->cp_seq = st->head.seq;
        st->cp_at = now_ms;
    }
    return 0;
}

static int lmdb_append(schakel_store_t *s, schakel_append_batch_t *batches, size_t n,
                       int64_t now_ms, char *why)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only) return schakel_fail(why, SCHAKEL_EPERM, "store is read-only");
    size_t incoming = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < batches[i].n_items; j++)
            incoming += batches[i].items[j].event_len + 256;
    for (int attempt = 0;; attempt++) {
        int rc = ensure_room(st, incoming, why);
        if (rc) return rc;
        schakel_head_t saved = st->head;
        rc = try_append(st, batches, n, now_ms, why);
        if (rc == 0) return 0;
        st->head = saved; /* the transaction is gone; so are its seqs */
        /* A failed commit may have left cached keys that never landed, and
         * its seqs will be used again: new nonces for them. */
        memset(st->cache, 0, sizeof st->cache);
        if (schakel_random(st->nonce_prefix, sizeof st->nonce_prefix))
            return schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes for nonces");
        if (rc != SCHAKEL_EFULL || attempt > 0) return rc;
        if (st->map_size >= st->map_max) return rc;
        st->full_retries++;
        schakel_log(SCHAKEL_LOG_WARN, "store", "event=map_full_retry map=%zu", st->map_size);
        size_t next = st->map_size * 2 > st->map_max ? st->map_max : st->map_size * 2;
        pthread_rwlock_wrlock(&st->resize);
        int grown = mdb_env_set_mapsize(st->env, next);
        pthread_rwlock_unlock(&st->resize);
        if (grown != 0) return rc;
        st->map_size = next;
    }
}

typedef struct {
    lmdb_store_t *st;
    MDB_txn *txn;
} reader_t;

/* Decodes one stored value and hands it to fn; decrypts with the data key. */
static int deliver(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, uint64_t position,
                   const MDB_val *v, schakel_record_fn fn, void *arg, size_t *bytes)
{
    if (v->mv_size < HDR_LEN) return SCHAKEL_ECORRUPT;
    const uint8_t *p = v->mv_data;
    Schakel__V1__RecordBody *body =
        schakel__v1__record_body__unpack(NULL, v->mv_size - HDR_LEN, p + HDR_LEN);
    if (!body) return SCHAKEL_ECORRUPT;
    schakel_record_t rec = {0};
    rec.seq = seq;
    rec.position = position;
    rec.recorded_at = body->recorded_at;
    rec.hash = p + 32;
    rec.event_id = body->event_id.data;
    rec.type = body->type;
    rec.source_org = body->source_org;
    uint8_t *plain = NULL;
    uint8_t dk[SCHAKEL_AEAD_KEY_LEN];
    uint64_t erased_upto = 0;
    int rc = 0;
    if (body->key_id.len == KEY_ID_LEN && body->nonce.len == SCHAKEL_AEAD_NONCE_LEN &&
        body->ciphertext.len >= SCHAKEL_AEAD_TAG_LEN &&
        data_key_ex(st, txn, body->key_id.data, 0, dk, &erased_upto, NULL) == 0 &&
        seq > erased_upto) {
        size_t plen = body->ciphertext.len - SCHAKEL_AEAD_TAG_LEN;
        uint8_t aad[24];
        be64(aad, seq);
        memcpy(aad + 8, body->event_id.data, body->event_id.len == 16 ? 16 : 0);
        plain = malloc(plen ? plen : 1);
        if (!plain) {
            rc = SCHAKEL_ENOMEM;
            goto out;
        }
        if (schakel_aead_open(dk, body->nonce.data, aad, sizeof aad, body->ciphertext.data,
                              body->ciphertext.len, plain) != 0) {
            rc = SCHAKEL_ECORRUPT;
            goto out;
        }
        rec.event = plain;
        rec.event_len = plen;
    }
    *bytes += rec.event_len;
    rc = fn(arg, &rec);
out:
    free(plain);
    schakel__v1__record_body__free_unpacked(body, NULL);
    return rc;
}

static int lmdb_read(schakel_store_t *s, const char *stream, uint64_t from_seq, size_t max_count,
                     size_t max_bytes, schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin read");
    if (from_seq == 0) from_seq = 1;
    *next_seq = from_seq;
    size_t count = 0, bytes = 0;
    int all = strcmp(stream, "all") == 0;
    rc = mdb_cursor_open(txn, all ? st->events : st->streams, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, NULL, "open cursor");
    }
    uint8_t key[SCHAKEL_STREAM_MAX + 9];
    size_t sl = strnlen(stream, SCHAKEL_STREAM_MAX - 1);
    MDB_val k, v;
    if (all) {
        be64(key, from_seq);
        k.mv_size = 8;
    } else {
        memcpy(key, stream, sl);
        key[sl] = 0;
        be64(key + sl + 1, from_seq);
        k.mv_size = sl + 9;
    }
    k.mv_data = key;
    int op = MDB_SET_RANGE;
    int out = 0;
    while (count < max_count && (count == 0 || bytes < max_bytes)) {
        rc = mdb_cursor_get(cur, &k, &v, op);
        op = MDB_NEXT;
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) break;
        uint64_t seq, position;
        if (all) {
            seq = position = rd64(k.mv_data);
        } else {
            if (k.mv_size != sl + 9 || memcmp(k.mv_data, key, sl + 1) != 0) break;
            /* an empty value: the entry is the record at its own place */
            position = rd64((uint8_t *)k.mv_data + sl + 1);
            seq = v.mv_size == 8 ? rd64(v.mv_data) : position;
            uint8_t ek8[8];
            be64(ek8, seq);
            MDB_val ek = {8, ek8};
            rc = mdb_get(txn, st->events, &ek, &v);
            if (rc) break;
        }
        out = deliver(st, txn, seq, position, &v, fn, arg, &bytes);
        count++;
        *next_seq = position + 1;
        if (out) break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc) return lmdb_err(rc, NULL, "read");
    return out;
}

void schakel_lmdb_map_info(schakel_store_t *s, size_t *map_size, uint64_t *full_retries)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    *map_size = st->map_size;
    *full_retries = st->full_retries;
}

int schakel_lmdb_reader_check(schakel_store_t *s, int *cleared)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    int dead = 0;
    int rc = mdb_reader_check(st->env, &dead);
    *cleared = dead;
    return rc ? SCHAKEL_ESTORE : 0;
}

static int lmdb_head(schakel_store_t *s, schakel_head_t *head)
{
    *head = ((lmdb_store_t *)s)->head;
    return 0;
}

/* The publisher named in the record at seq equals org? */
static int record_from(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const char *org)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    if (mdb_get(txn, st->events, &k, &v) != 0 || v.mv_size <= HDR_LEN) return 0;
    Schakel__V1__RecordBody *b = schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN,
                                                                  (uint8_t *)v.mv_data + HDR_LEN);
    int same = b && b->source_org && strcmp(b->source_org, org) == 0;
    if (b) schakel__v1__record_body__free_unpacked(b, NULL);
    return same;
}

static int lmdb_lookup(schakel_store_t *s, const char *source_org, const uint8_t *event_id,
                       uint64_t *seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    pthread_rwlock_rdlock(&st->resize); /* the broker's checker thread calls this */
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) {
        pthread_rwlock_unlock(&st->resize);
        return SCHAKEL_ESTORE;
    }
    uint8_t ik[ID_KEY_MAX];
    MDB_val k = {id_key(ik, source_org, event_id), ik}, v;
    if (st->legacy_by_id) { /* ids were unique across the log: check the publisher */
        k.mv_size = 16;
        k.mv_data = (void *)event_id;
    }
    int rc = mdb_get(txn, st->by_id, &k, &v);
    if (rc == 0 && v.mv_size != 8) rc = MDB_NOTFOUND;
    if (rc == 0 && st->legacy_by_id && !record_from(st, txn, rd64(v.mv_data), source_org))
        rc = MDB_NOTFOUND;
    if (rc == 0) *seq = rd64(v.mv_data);
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : SCHAKEL_ESTORE;
}

static int lmdb_event_id_at(schakel_store_t *s, uint64_t seq, uint8_t out[16])
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    pthread_rwlock_rdlock(&st->resize);
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) {
        pthread_rwlock_unlock(&st->resize);
        return SCHAKEL_ESTORE;
    }
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(txn, st->events, &k, &v);
    int ret = rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : rc ? SCHAKEL_ESTORE : 0;
    if (ret == 0) {
        Schakel__V1__RecordBody *b = v.mv_size > HDR_LEN
            ? schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN,
                                               (uint8_t *)v.mv_data + HDR_LEN)
            : NULL;
        if (b && b->event_id.len == 16) memcpy(out, b->event_id.data, 16);
        else ret = SCHAKEL_ECORRUPT;
        if (b) schakel__v1__record_body__free_unpacked(b, NULL);
    }
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    return ret;
}

static int lmdb_cursor_get(schakel_store_t *s, const char *name, uint64_t *seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    *seq = 0;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) return SCHAKEL_ESTORE;
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, st->cursors, &k, &v);
    if (rc == 0 && v.mv_size == 8) *seq = rd64(v.mv_data);
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SCHAKEL_ESTORE;
}

static int lmdb_cursor_set(schakel_store_t *s, const char *name, uint64_t seq)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only) return SCHAKEL_EPERM;
    int rc = ensure_room(st, 256, NULL);
    if (rc) return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin cursor");
    uint8_t b[8];
    be64(b, seq);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    rc = mdb_put(txn, st->cursors, &k, &v, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, NULL, "store cursor");
    }
    rc = mdb_txn_commit(txn);
    return rc ? lmdb_err(rc, NULL, "commit cursor") : 0;
}

static int lmdb_checkpoint(schakel_store_t *s, int64_t now_ms)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only || !st->can_sign || st->head.seq == st->cp_seq) return 0;
    if (now_ms - st->cp_at < st->cp_ms) return 0;
    int rc = ensure_room(st, 256, NULL);
    if (rc) return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin checkpoint");
    rc = put_checkpoint(st, txn, now_ms, NULL);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc) return lmdb_err(rc, NULL, "commit checkpoint");
    st->cp_seq = st->head.seq;
    st->cp_at = now_ms;
    return 0;
}

/* Replaces the subject's data key by an erasure record: which records it
 * erased (up to the head now) and when. Nothing decrypts them again, and
 * `audit verify` tells them from records whose key is missing or damaged. */
static int lmdb_erase_subject(schakel_store_t *s, const char *subject)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->read_only) return SCHAKEL_EPERM;
    uint8_t kid[KEY_ID_LEN];
    key_id_of(st, subject, kid);
    int rc = ensure_room(st, 256, NULL);
    if (rc) return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, NULL, "begin erase");
    MDB_val k = {KEY_ID_LEN, kid}, v;
    rc = mdb_get(txn, st->keys, &k, &v);
    if (rc || (is_tomb(&v) && v.mv_size == TOMB_LEN)) { /* no key, or erased already */
        mdb_txn_abort(txn);
        return rc == 0 || rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : lmdb_err(rc, NULL, "erase");
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint8_t tomb[TOMB_LEN];
    memcpy(tomb, TOMB_MAGIC, 16);
    be64(tomb + 16, st->head.seq);
    be64(tomb + 24, (uint64_t)((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000));
    MDB_val tv = {TOMB_LEN, tomb};
    rc = mdb_put(txn, st->keys, &k, &tv, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, NULL, "erase");
    }
    rc = mdb_txn_commit(txn);
    key_slot_t *slot = key_cached(st, kid);
    if (slot) memset(slot, 0, sizeof *slot);
    return rc ? write_err(st, rc, NULL, "commit erase") : 0;
}

static void lmdb_close(schakel_store_t *s)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->env) mdb_env_close(st->env);
    pthread_rwlock_destroy(&st->resize);
    memset(st, 0, sizeof *st);
    free(st);
}

static const schakel_store_ops_t lmdb_ops = {
    lmdb_append, lmdb_read, lmdb_head, lmdb_lookup, lmdb_event_id_at, lmdb_cursor_get,
    lmdb_cursor_set, lmdb_checkpoint, lmdb_erase_subject, lmdb_close,
};

static int open_dbis(lmdb_store_t *st, int read_only, char *why)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    if (rc) return lmdb_err(rc, why, "begin open");
    unsigned f = read_only ? 0 : MDB_CREATE;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } t[] = {{"events", &st->events},   {"by_id", &st->by_id},
             {"streams", &st->streams}, {"cursors", &st->cursors},
             {"checkpoints", &st->checkpoints}, {"keys", &st->keys},
             {"proofs", &st->proofs}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        rc = mdb_dbi_open(txn, t[i].name, f, t[i].dbi);
        if (rc) {
            mdb_txn_abort(txn);
            return schakel_fail(why, SCHAKEL_EIO, "%s: table %s: %s", "open log", t[i].name,
                                mdb_strerror(rc));
        }
    }
    /* The head: the last record. */
    MDB_cursor *cur;
    MDB_val k, v;
    mdb_cursor_open(txn, st->events, &cur);
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8 && v.mv_size >= HDR_LEN) {
        st->head.seq = rd64(k.mv_data);
        memcpy(st->head.hash, (uint8_t *)v.mv_data + 32, 32);
    }
    mdb_cursor_close(cur);
    mdb_cursor_open(txn, st->checkpoints, &cur);
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) st->cp_seq = rd64(k.mv_data);
    mdb_cursor_close(cur);
    /* by_id in the form before ids were scoped: keys of 16 bytes (a scoped
     * key is at least 18) */
    mdb_cursor_open(txn, st->by_id, &cur);
    if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size == 16) st->legacy_by_id = 1;
    mdb_cursor_close(cur);
    rc = mdb_txn_commit(txn); /* also for read-only: an aborted txn closes its DBIs */
    return rc ? lmdb_err(rc, why, "commit open") : 0;
}

/* A log from before ids were scoped to their publisher: the by_id table
 * is rebuilt from the events table, in one transaction (all or nothing). */
static int rebuild_by_id(lmdb_store_t *st, char *why)
{
    MDB_stat ms;
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, why, "begin rebuild");
    mdb_stat(txn, st->by_id, &ms);
    mdb_txn_abort(txn);
    rc = ensure_room(st, ms.ms_entries * 96 + 4096, why);
    if (rc) return rc;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, why, "begin rebuild");
    rc = mdb_drop(txn, st->by_id, 0);
    MDB_cursor *cur = NULL;
    if (rc == 0) rc = mdb_cursor_open(txn, st->events, &cur);
    MDB_val k, v;
    uint64_t n = 0;
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        int g = mdb_cursor_get(cur, &k, &v, op);
        if (g == MDB_NOTFOUND) break;
        if (g) {
            rc = g;
            break;
        }
        Schakel__V1__RecordBody *b = v.mv_size > HDR_LEN
            ? schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (uint8_t *)v.mv_data + HDR_LEN)
            : NULL;
        if (!b || b->event_id.len != 16 || k.mv_size != 8) {
            if (b) schakel__v1__record_body__free_unpacked(b, NULL);
            if (cur) mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            return schakel_fail(why, SCHAKEL_ECORRUPT,
                                "rebuilding the event-id index: record %llu does not decode; "
                                "run schakel audit verify", (unsigned long long)(k.mv_size == 8 ? rd64(k.mv_data) : 0));
        }
        uint8_t ik[ID_KEY_MAX];
        MDB_val ikv = {id_key(ik, b->source_org, b->event_id.data), ik}, sv = {8, k.mv_data};
        rc = mdb_put(txn, st->by_id, &ikv, &sv, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) rc = 0; /* cannot happen: ids were unique */
        schakel__v1__record_body__free_unpacked(b, NULL);
        n++;
    }
    if (cur) mdb_cursor_close(cur);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, why, "rebuild the event-id index");
    }
    rc = mdb_txn_commit(txn);
    if (rc) return lmdb_err(rc, why, "commit the rebuilt event-id index");
    schakel_log(SCHAKEL_LOG_INFO, "store", "event=by_id_rebuilt records=%llu", (unsigned long long)n);
    st->legacy_by_id = 0;
    return 0;
}

schakel_store_t *schakel_store_open_lmdb(const schakel_lmdb_options_t *opts, char *why)
{
    lmdb_store_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->base.ops = &lmdb_ops;
    pthread_rwlock_init(&st->resize, NULL);
    st->read_only = opts->read_only;
    st->cp_every = opts->checkpoint_every ? opts->checkpoint_every : 1000;
    st->cp_ms = opts->checkpoint_ms ? opts->checkpoint_ms : 1000;
    st->map_size = opts->map_initial ? opts->map_initial : (size_t)64 << 20;
    st->map_max = opts->map_max ? opts->map_max : (size_t)1 << 40;
    if (st->map_size > st->map_max) st->map_size = st->map_max;
    if (schakel_random(st->nonce_prefix, sizeof st->nonce_prefix)) {
        schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes for nonces");
        pthread_rwlock_destroy(&st->resize);
        free(st);
        return NULL;
    }
    derive(opts->master_key, "schakel/v1/key-id", st->kid_key);
    derive(opts->master_key, "schakel/v1/wrap", st->wrap_key);
    if (opts->sign_secret) {
        memcpy(st->sign_secret, opts->sign_secret, sizeof st->sign_secret);
        st->can_sign = 1;
    }
    if (!opts->read_only && mkdir(opts->dir, 0700) != 0 && errno != EEXIST) {
        schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", opts->dir, strerror(errno));
        goto fail;
    }
    int rc = mdb_env_create(&st->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(st->env, 16);
    if (rc == 0) rc = mdb_env_set_mapsize(st->env, st->map_size);
    if (rc == 0) rc = mdb_env_open(st->env, opts->dir, (opts->read_only ? MDB_RDONLY : 0) | MDB_NOTLS, 0600);
    if (rc) {
        schakel_fail(why, SCHAKEL_EIO, "cannot open log in %s: %s", opts->dir, mdb_strerror(rc));
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize; /* an existing log may be larger */
    if (st->map_size > st->map_max) st->map_max = st->map_size;
    if (open_dbis(st, opts->read_only, why) != 0) goto fail;
    if (st->legacy_by_id && !opts->read_only && rebuild_by_id(st, why) != 0) goto fail;
    return &st->base;
fail:
    if (st->env) mdb_env_close(st->env);
    pthread_rwlock_destroy(&st->resize);
    free(st);
    return NULL;
}

/* ---- audit: walk the chain read-only ---- */

static int verify_fail(schakel_verify_report_t *r, uint64_t seq, const char *msg)
{
    r->bad_seq = seq;
    snprintf(r->why, sizeof r->why, "%s", msg);
    return SCHAKEL_ECORRUPT;
}

/* A record whose data key is missing or damaged: counted, and the first
 * one named, while the walk goes on; the log then does not verify. */
static void key_problem(schakel_verify_report_t *r, uint64_t seq, uint64_t *count, const char *msg)
{
    (*count)++;
    if (r->bad_seq) return;
    r->bad_seq = seq;
    snprintf(r->why, sizeof r->why, "%s", msg);
}

/* With a master key: the payload decrypts and hashes to event_hash. A
 * record erased by an erasure record counts as erased; a key that is gone
 * without one (missing) or does not unwrap (corrupt) is a failure. */
static int verify_payload(lmdb_store_t *st, MDB_txn *txn, uint64_t seq, const uint8_t *body,
                          size_t blen, schakel_verify_report_t *r)
{
    Schakel__V1__RecordBody *b = schakel__v1__record_body__unpack(NULL, blen, body);
    if (!b) return verify_fail(r, seq, "record body does not decode");
    int rc = 0, krc = SCHAKEL_ECORRUPT;
    uint8_t dk[SCHAKEL_AEAD_KEY_LEN];
    uint64_t upto = 0;
    if (b->key_id.len == KEY_ID_LEN) krc = data_key_ex(st, txn, b->key_id.data, 0, dk, &upto, NULL);
    if (b->seq != seq) {
        rc = verify_fail(r, seq, "record body names another sequence number");
    } else if (seq <= upto) {
        r->erased++;
    } else if (krc == SCHAKEL_ENOTFOUND) {
        key_problem(r, seq, &r->keys_missing,
                    upto ? "data key is missing for a record after its subject's erasure"
                         : "data key is missing and there is no erasure record for it");
    } else if (krc != 0) {
        key_problem(r, seq, &r->keys_corrupt, "data key is corrupted: it does not unwrap with the "
                                              "master key");
    } else if (b->ciphertext.len < SCHAKEL_AEAD_TAG_LEN || b->nonce.len != 12 ||
               b->event_id.len != 16 || b->event_hash.len != 32) {
        rc = verify_fail(r, seq, "record body is missing fields");
    } else {
        size_t plen = b->ciphertext.len - SCHAKEL_AEAD_TAG_LEN;
        uint8_t *plain = malloc(plen ? plen : 1), aad[24], h[32];
        be64(aad, seq);
        memcpy(aad + 8, b->event_id.data, 16);
        if (!plain) rc = SCHAKEL_ENOMEM;
        else if (schakel_aead_open(dk, b->nonce.data, aad, 24, b->ciphertext.data,
                                   b->ciphertext.len, plain) != 0)
            rc = verify_fail(r, seq, "payload does not decrypt (altered or wrong key)");
        else {
            schakel_sha256(plain, plen, h);
            if (memcmp(h, b->event_hash.data, 32) != 0)
                rc = verify_fail(r, seq, "payload does not match its signed event hash");
        }
        free(plain);
    }
    schakel__v1__record_body__free_unpacked(b, NULL);
    return rc;
}

static int verify_checkpoints(lmdb_store_t *st, MDB_txn *txn, const uint8_t *broker_pub,
                              schakel_verify_report_t *r)
{
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(txn, st->checkpoints, &cur)) return SCHAKEL_ESTORE;
    int rc = 0, op = MDB_FIRST;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        Schakel__V1__Checkpoint *cp = schakel__v1__checkpoint__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t seq = k.mv_size == 8 ? rd64(k.mv_data) : 0;
        if (!cp || cp->seq != seq || cp->hash.len != 32 || cp->signature.len != 64) {
            rc = verify_fail(r, seq, "checkpoint does not decode");
        } else if (seq > r->head) {
            rc = verify_fail(r, seq, "checkpoint is beyond the last record: records were removed");
        } else {
            uint8_t ek[8];
            be64(ek, seq);
            MDB_val kk = {8, ek}, vv;
            if (mdb_get(txn, st->events, &kk, &vv) != 0 || vv.mv_size < HDR_LEN ||
                memcmp((uint8_t *)vv.mv_data + 32, cp->hash.data, 32) != 0) {
                rc = verify_fail(r, seq, "checkpoint hash differs from the chain");
            } else if (broker_pub) {
                schakel_checkpoint_t c = {.seq = seq, .at = cp->at};
                memcpy(c.hash, cp->hash.data, 32);
                uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN];
                schakel_checkpoint_message(&c, msg);
                if (schakel_ed25519_verify(broker_pub, msg, sizeof msg, cp->signature.data) != 0)
                    rc = verify_fail(r, seq, "checkpoint signature does not verify");
            }
            if (rc == 0) r->checkpoints++;
        }
        if (cp) schakel__v1__checkpoint__free_unpacked(cp, NULL);
    }
    mdb_cursor_close(cur);
    return rc;
}

int schakel_lmdb_verify(const char *dir, const uint8_t *broker_pub, const uint8_t *master_key,
                        schakel_verify_report_t *r)
{
    memset(r, 0, sizeof *r);
    schakel_lmdb_options_t o = {0};
    o.dir = dir;
    o.read_only = 1;
    if (master_key) memcpy(o.master_key, master_key, sizeof o.master_key);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_store_t *s = schakel_store_open_lmdb(&o, why);
    if (!s) {
        snprintf(r->why, sizeof r->why, "%s", why);
        return SCHAKEL_EIO;
    }
    lmdb_store_t *st = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        schakel_store_close(&s);
        return SCHAKEL_ESTORE;
    }
    mdb_cursor_open(txn, st->events, &cur);
    uint8_t prev[32] = {0}, h[32];
    uint64_t expect = 1;
    int op = MDB_FIRST;
    rc = 0;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        uint64_t seq = k.mv_size == 8 ? rd64(k.mv_data) : 0;
        const uint8_t *p = v.mv_data;
        if (seq != expect) {
            rc = verify_fail(r, expect, "record is missing (sequence numbers jump)");
        } else if (v.mv_size < HDR_LEN) {
            rc = verify_fail(r, seq, "record is truncated");
        } else if (memcmp(p, prev, 32) != 0) {
            rc = verify_fail(r, seq, "previous-hash field does not match the record before");
        } else {
            chain_hash(seq, prev, p + HDR_LEN, v.mv_size - HDR_LEN, h);
            if (memcmp(h, p + 32, 32) != 0)
                rc = verify_fail(r, seq, "hash does not match the record's contents");
            else if (master_key)
                rc = verify_payload(st, txn, seq, p + HDR_LEN, v.mv_size - HDR_LEN, r);
        }
        if (rc) break;
        memcpy(prev, h, 32);
        r->records++;
        r->head = seq;
        expect = seq + 1;
    }
    mdb_cursor_close(cur);
    memcpy(r->head_hash, prev, 32);
    if (rc == 0) rc = verify_checkpoints(st, txn, broker_pub, r);
    if (rc == 0 && (r->keys_missing || r->keys_corrupt)) rc = SCHAKEL_ECORRUPT;
    mdb_txn_abort(txn);
    schakel_store_close(&s);
    return rc;
}

/* Opens dir read-only for one of the audit readers below. */
static lmdb_store_t *open_audit(const char *dir, MDB_txn **txn)
{
    schakel_lmdb_options_t o = {0};
    o.dir = dir;
    o.read_only = 1;
    schakel_store_t *s = schakel_store_open_lmdb(&o, NULL);
    if (!s) return NULL;
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn) != 0) {
        schakel_store_close(&s);
        return NULL;
    }
    return st;
}

static void close_audit(lmdb_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    schakel_store_t *s = &st->base;
    schakel_store_close(&s);
}

int schakel_lmdb_checkpoints(const char *dir, uint64_t from_seq,
                             int (*fn)(void *arg, const schakel_checkpoint_t *cp), void *arg)
{
    MDB_txn *txn;
    lmdb_store_t *st = open_audit(dir, &txn);
    if (!st) return SCHAKEL_EIO;
    MDB_cursor *cur;
    uint8_t key[8];
    be64(key, from_seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_cursor_open(txn, st->checkpoints, &cur) ? SCHAKEL_ESTORE : 0;
    int op = MDB_SET_RANGE;
    while (rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        Schakel__V1__Checkpoint *cp = schakel__v1__checkpoint__unpack(NULL, v.mv_size, v.mv_data);
        if (!cp || cp->hash.len != 32 || cp->signature.len != 64) {
            rc = SCHAKEL_ECORRUPT;
        } else {
            schakel_checkpoint_t c = {.seq = cp->seq, .at = cp->at};
            memcpy(c.hash, cp->hash.data, 32);
            memcpy(c.signature, cp->signature.data, 64);
            if (fn(arg, &c)) op = -1;
        }
        if (cp) schakel__v1__checkpoint__free_unpacked(cp, NULL);
        if (op < 0) break;
    }
    if (rc != SCHAKEL_ESTORE) mdb_cursor_close(cur);
    close_audit(st, txn);
    return rc;
}

int schakel_lmdb_hash_at(const char *dir, uint64_t seq, uint8_t out[SCHAKEL_SHA256_LEN])
{
    MDB_txn *txn;
    lmdb_store_t *st = open_audit(dir, &txn);
    if (!st) return SCHAKEL_EIO;
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(txn, st->events, &k, &v);
    int ret = rc == MDB_NOTFOUND ? SCHAKEL_ENOTFOUND : rc ? SCHAKEL_ESTORE : 0;
    if (ret == 0 && v.mv_size < HDR_LEN) ret = SCHAKEL_ECORRUPT;
    if (ret == 0) memcpy(out, (uint8_t *)v.mv_data + 32, 32);
    close_audit(st, txn);
    return ret;
}
