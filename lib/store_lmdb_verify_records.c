/* Stage A of `schakel audit verify` (store_lmdb_verify.c), on any thread
 * of the pool: a chunk of the window's records walked with the thread's
 * own cursor, each record's previous-hash against the record before in the
 * chunk, then each record checked on its own (its hash, its body, its
 * payload against its signed event hash) and its batch proof read ahead
 * for stage B. */
#include <lmdb.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "crypto.h"
#include "error.h"
#include "store_lmdb_verify_impl.h"

#define PREFETCH_GROUP 8 /* records whose key sets are fetched ahead together */

static size_t wset_of(const uint8_t id[KEY_ID_LEN])
{
    return ((unsigned)id[0] << 16 | (unsigned)id[1] << 8 | id[2]) % WKEY_SETS;
}

/* With 20,000 children the sets are megabytes: a lookup that waits for
 * its set cost more than the record's AES-GCM. Fetched a group ahead. */
static void wkey_prefetch(const worker_t *w, const Schakel__V1__RecordBody *b)
{
    if (b->key_id.len != KEY_ID_LEN) return;
    const char *set = (const char *)&w->keys[wset_of(b->key_id.data)];
    _Static_assert(sizeof(wset_t) == 256, "a set is four cache lines");
    for (int line = 0; line < 4; line++) verify_fetch_line(set + 64 * line);
}

static int wkey(worker_t *w, const uint8_t id[KEY_ID_LEN], uint8_t key[SCHAKEL_AEAD_KEY_LEN], uint64_t *upto)
{
    lmdb_store_t *st = w->pool->st;
    size_t si = wset_of(id);
    wset_t *set = &w->keys[si];
    for (int i = 0; i < CACHE_WAYS; i++) {
        key_slot_t *s = &set->way[i];
        if (s->used && memcmp(s->id, id, KEY_ID_LEN) == 0) {
            memcpy(key, s->key, SCHAKEL_AEAD_KEY_LEN);
            *upto = s->erased_upto;
            return 0;
        }
    }
    *upto = 0;
    MDB_val k = {KEY_ID_LEN, (void *)id}, v;
    int rc = mdb_get(w->txn, st->keys, &k, &v);
    if (rc == MDB_NOTFOUND) return SCHAKEL_ENOTFOUND;
    if (rc) return SCHAKEL_ESTORE;
    if (lmdb_is_tomb(&v)) {
        *upto = schakel_get_be64((const uint8_t *)v.mv_data + 16);
        if (v.mv_size == TOMB_LEN) return SCHAKEL_ENOTFOUND; /* erased; no new key yet */
        v.mv_data = (uint8_t *)v.mv_data + TOMB_LEN, v.mv_size -= TOMB_LEN;
    }
    const uint8_t *wr = v.mv_data;
    if (v.mv_size != WRAPPED_LEN ||
        schakel_aead_open(st->wrap_key, wr, id, KEY_ID_LEN, wr + SCHAKEL_AEAD_NONCE_LEN,
                          WRAPPED_LEN - SCHAKEL_AEAD_NONCE_LEN, key) != 0)
        return SCHAKEL_ECRYPTO;
    key_slot_t *s = &set->way[w->victim[si]++ % CACHE_WAYS];
    memcpy(s->id, id, KEY_ID_LEN);
    memcpy(s->key, key, SCHAKEL_AEAD_KEY_LEN);
    s->erased_upto = *upto;
    s->used = 1;
    return 0;
}

/* The payload against its signed event hash, as verify_payload in
 * store_lmdb_audit.c does for one thread. */
static void check_payload(worker_t *w, slot_t *s, const Schakel__V1__RecordBody *b)
{
    uint8_t dk[SCHAKEL_AEAD_KEY_LEN];
    uint64_t upto = 0;
    int krc = b->key_id.len == KEY_ID_LEN ? wkey(w, b->key_id.data, dk, &upto) : SCHAKEL_ECORRUPT;
    if (s->seq <= upto) {
        s->erased = 1;
        s->erased_upto = upto;
    } else if (krc == SCHAKEL_ENOTFOUND) {
        s->key_problem = 1;
        s->key_why = upto ? "data key is missing for a record after its subject's erasure"
                          : "data key is missing and there is no erasure record for it";
    } else if (krc != 0) {
        s->key_problem = 2;
        s->key_why = "data key is corrupted: it does not unwrap with the master key";
    } else if (b->ciphertext.len < SCHAKEL_AEAD_TAG_LEN || b->nonce.len != 12 || b->event_id.len != 16 ||
               b->event_hash.len != 32) {
        s->fail = "record body is missing fields";
    } else {
        size_t n = b->ciphertext.len - SCHAKEL_AEAD_TAG_LEN;
        uint8_t small[4096], aad[24], h[32]; /* the plaintext is hashed, then dropped */
        uint8_t *plain = n <= sizeof small ? small : schakel_arena_alloc(w->arena, n);
        if (!plain) {
            s->fail = "out of memory";
            return;
        }
        schakel_put_be64(aad, s->seq);
        memcpy(aad + 8, b->event_id.data, 16);
        if (schakel_aead_open(dk, b->nonce.data, aad, 24, b->ciphertext.data, b->ciphertext.len, plain) !=
            0) {
            s->fail = "payload does not decrypt (altered or wrong key)";
            return;
        }
        schakel_sha256(plain, n, h);
        if (memcmp(h, b->event_hash.data, 32) != 0) s->fail = "payload does not match its signed event hash";
    }
}

/* The record's own hash and its body; the payload is checked apart
 * (check_payload), a group of records later. */
static void check_record(worker_t *w, slot_t *s)
{
    pool_t *p = w->pool;
    s->done = 1;
    if (s->len < HDR_LEN) {
        s->fail = "record is truncated";
        return;
    }
    uint8_t h[32];
    lmdb_chain_hash(s->seq, s->rec, s->rec + HDR_LEN, s->len - HDR_LEN, h);
    if (memcmp(h, s->rec + 32, 32) != 0) {
        s->fail = "hash does not match the record's contents";
        return;
    }
    if (!p->bodies) return;
    Schakel__V1__RecordBody *b =
        lmdb_body_unpack(schakel_arena_allocator(w->arena), s->rec + HDR_LEN, s->len - HDR_LEN);
    s->body = b;
    if (!b) s->fail = "record body does not decode";
    else if (b->seq != s->seq) s->fail = "record body names another sequence number";
    else if (p->payloads) wkey_prefetch(w, b);
}

/* A key of the events table that is not a seq sits where seq `at` should
 * be: the walk reports that seq missing, as a walk in one thread would. */
static void note_odd(pool_t *p, uint64_t at)
{
    uint64_t cur = __atomic_load_n(&p->odd_at, __ATOMIC_RELAXED);
    while ((!cur || at < cur) &&
           !__atomic_compare_exchange_n(&p->odd_at, &cur, at, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* Fills slots lo..hi from this thread's own cursor: each thread walks its
 * own part of the table, so the walk and its page faults are shared. The
 * part that holds the last seq goes on to the end of the table. */
static int walk_chunk(worker_t *w, size_t lo, size_t hi)
{
    pool_t *p = w->pool;
    memset(&p->slots[lo], 0, (hi - lo) * sizeof *p->slots);
    uint8_t from[8], to[8];
    schakel_put_be64(from, p->base + lo);
    schakel_put_be64(to, p->base + hi);
    int open_end = p->base + hi > p->last;
    MDB_val key = {8, from}, end = {8, to}, val;
    uint64_t prev = p->base + lo - 1;
    const slot_t *before = NULL; /* the record just before, in this chunk */
    for (int op = MDB_SET_RANGE; mdb_cursor_get(w->cur, &key, &val, (MDB_cursor_op)op) == 0; op = MDB_NEXT) {
        if (key.mv_size != 8) { /* keys of 8 bytes compare as their seqs: LMDB's compare for the rest */
            if (!open_end && mdb_cmp(w->txn, p->st->events, &key, &end) >= 0) break;
            note_odd(p, prev + 1);
            continue;
        }
        uint64_t seq = schakel_get_be64(key.mv_data);
        if (seq < p->base + lo || seq - p->base >= hi) break; /* past the chunk (or the end) */
        slot_t *sl = &p->slots[seq - p->base];
        sl->rec = val.mv_data;
        sl->len = val.mv_size;
        sl->present = 1;
        /* what stage B would compare, in this chunk's cache lines: B then
         * reads no record but a chunk's first */
        if (before && seq == prev + 1 && before->len >= HDR_LEN && sl->len >= HDR_LEN)
            sl->link = memcmp(sl->rec, before->rec + 32, 32) == 0 ? LINK_GOOD : LINK_BAD;
        sl->seq = prev = seq;
        before = sl;
    }
    return 0;
}

/* Records i..to of the stage A: each one's hash and body, then, a group
 * later, their payloads and batch proofs, so that the key sets and proofs
 * come in meanwhile. 1 when one failed: what comes after it in the chunk
 * does not count, what comes before is checked whole. */
static int check_records(worker_t *w, size_t i, size_t to)
{
    pool_t *p = w->pool;
    for (; i < to; i += PREFETCH_GROUP) {
        size_t end = to - i < PREFETCH_GROUP ? to : i + PREFETCH_GROUP, j, k;
        MDB_val pv[PREFETCH_GROUP] = {{0}};
        for (j = i; j < end; j++) {
            slot_t *s = &p->slots[j];
            if (!s->present) break; /* stage B names it missing */
            check_record(w, s);
            if (s->fail) break;
            if (p->proofs && s->body->proof_seq == s->seq)
                lmdb_proof_fetch(w->txn, p->st->proofs, s->seq, &pv[j - i]);
        }
        for (k = i; p->payloads && k < j; k++) {
            check_payload(w, &p->slots[k], p->slots[k].body);
            if (p->slots[k].fail) break;
        }
        for (size_t m = i; m < j; m++)
            if (pv[m - i].mv_data)
                lmdb_proof_decode(schakel_arena_allocator(w->arena), &pv[m - i], &p->slots[m].proof);
        if (j < end || (p->payloads && k < j)) return 1;
    }
    return 0;
}

void lmdb_verify_chunk(worker_t *w, size_t lo, size_t hi)
{
    (void)walk_chunk(w, lo, hi);
    (void)check_records(w, lo, hi); /* a failure is in its slot, for stage B */
}
