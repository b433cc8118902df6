/* `schakel audit verify` checks every batch signature on the log: against
 * the signing key the directory on the log listed at that point (a key
 * rotated mid-log included), and that every record's source_org is the
 * organisation that signed its batch. The log is changed the way an
 * operator with write access to the file could: with liblmdb directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fileio.h"
#include "harness.h"
#include "store_lmdb.h"
#include "store_audit.h"
#include "store_lmdb_impl.h"

#define EVENTS 12
#define VICTIM 7 /* the 7th published event */

/* Runs audit verify with the broker's public key; its JSON into out. */
static int verify(harness_t *h, char *out, size_t cap)
{
    char path[512], bkey[512];
    snprintf(path, sizeof path, "%s/verify.json", h->dir);
    snprintf(bkey, sizeof bkey, "%s/broker.pub", h->keys);
    const char *args[] = {"audit", "verify", "--data", h->data, "--broker-key", bkey, NULL};
    int st = harness_run_tool(path, args);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    return st;
}

/* Runs `schakel audit` with args (NULL-ended, after "audit"); its
 * stdout into out. The exit status. */
static int run_audit(harness_t *h, const char *const *args, char *out, size_t cap)
{
    char path[512];
    const char *argv[16] = {"audit"};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    snprintf(path, sizeof path, "%s/audit.json", h->dir);
    int st = harness_run_tool(path, argv);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(out, 1, cap - 1, f) : 0;
    out[got] = 0;
    if (f) fclose(f);
    return st;
}

static void want_bad_seq(const char *out, uint64_t seq)
{
    char want[48];
    snprintf(want, sizeof want, "\"bad_seq\":%llu", (unsigned long long)seq);
    if (!strstr(out, want)) fail_msg("want %s in %s", want, out);
}

/* Fails naming seq, the same with one thread as with the pool. */
static void expect_bad(harness_t *h, uint64_t seq)
{
    char out[2048], bkey[512];
    assert_int_equal(verify(h, out, sizeof out), 1);
    want_bad_seq(out, seq);
    snprintf(bkey, sizeof bkey, "%s/broker.pub", h->keys);
    for (int t = 1; t <= 3; t++) {
        char n[4];
        snprintf(n, sizeof n, "%d", t);
        const char *args[] = {"verify", "--data", h->data, "--broker-key", bkey, "--threads", n, NULL};
        assert_int_equal(run_audit(h, args, out, sizeof out), 1);
        want_bad_seq(out, seq);
    }
}

typedef struct {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi events, proofs, checkpoints;
} rw_log_t;

static void log_open(harness_t *h, rw_log_t *l)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/log", h->data);
    assert_int_equal(mdb_env_create(&l->env), 0);
    mdb_env_set_maxdbs(l->env, 16);
    assert_int_equal(mdb_env_open(l->env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(l->env, NULL, 0, &l->txn), 0);
    assert_int_equal(mdb_dbi_open(l->txn, "events", 0, &l->events), 0);
    assert_int_equal(mdb_dbi_open(l->txn, "proofs", 0, &l->proofs), 0);
    assert_int_equal(mdb_dbi_open(l->txn, "checkpoints", 0, &l->checkpoints), 0);
}

static void log_commit(rw_log_t *l)
{
    assert_int_equal(mdb_txn_commit(l->txn), 0);
    mdb_env_close(l->env);
}

static void clean_log_verifies(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 0), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);
    char out[2048];
    assert_int_equal(verify(h, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"batch_signatures\":true"));
    /* the broker's directory, then one batch per event */
    assert_non_null(strstr(out, "\"signatures\":13,"));
    assert_non_null(strstr(out, "\"signatures_unchecked\":0,"));
}

/* One byte of one stored signature changed: not in the hash chain, so
 * only the signature check can tell. */
static void flipped_signature_is_named(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    uint64_t base = harness_head(h);
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 0), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);
    uint64_t victim = base + VICTIM;

    rw_log_t l;
    log_open(h, &l);
    uint8_t k[8], copy[4096];
    schakel_put_be64(k, victim);
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(l.txn, l.proofs, &key, &v), 0);
    assert_true(v.mv_size <= sizeof copy);
    memcpy(copy, v.mv_data, v.mv_size);
    Schakel__V1__BatchProof *p = schakel__v1__batch_proof__unpack(NULL, v.mv_size, copy);
    assert_non_null(p);
    assert_string_equal(p->signer_org, "school-a");
    assert_int_equal(p->signature.len, 64);
    uint8_t *at = memmem(copy, v.mv_size, p->signature.data, 64);
    assert_non_null(at);
    at[17] ^= 0x20;
    schakel__v1__batch_proof__free_unpacked(p, NULL);
    MDB_val nv = {v.mv_size, copy};
    assert_int_equal(mdb_put(l.txn, l.proofs, &key, &nv, 0), 0);
    log_commit(&l);

    expect_bad(h, victim);
}

/* A record says it came from smw-b, in a batch school-a signed. The
 * chain is rewritten after it and the checkpoints past it removed, as
 * someone who can write the file would. */
static void source_org_not_the_signer_fails(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    uint64_t base = harness_head(h);
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 0), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);
    uint64_t victim = base + VICTIM, head = base + EVENTS;

    rw_log_t l;
    log_open(h, &l);
    uint8_t prev[32], k[8];
    schakel_put_be64(k, victim - 1);
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(l.txn, l.events, &key, &v), 0);
    memcpy(prev, (uint8_t *)v.mv_data + 32, 32);
    for (uint64_t seq = victim; seq <= head; seq++) {
        schakel_put_be64(k, seq);
        assert_int_equal(mdb_get(l.txn, l.events, &key, &v), 0);
        Schakel__V1__RecordBody *b =
            schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (uint8_t *)v.mv_data + HDR_LEN);
        assert_non_null(b);
        char *was = b->source_org;
        if (seq == victim) b->source_org = "smw-b";
        size_t blen = schakel__v1__record_body__get_packed_size(b);
        uint8_t *rec = malloc(HDR_LEN + blen);
        schakel__v1__record_body__pack(b, rec + HDR_LEN);
        b->source_org = was;
        schakel__v1__record_body__free_unpacked(b, NULL);
        memcpy(rec, prev, 32);
        lmdb_chain_hash(seq, prev, rec + HDR_LEN, blen, rec + 32);
        memcpy(prev, rec + 32, 32);
        MDB_val nv = {HDR_LEN + blen, rec};
        assert_int_equal(mdb_put(l.txn, l.events, &key, &nv, 0), 0);
        free(rec);
    }
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(l.txn, l.checkpoints, &cur), 0);
    schakel_put_be64(k, victim);
    key.mv_size = 8;
    key.mv_data = k;
    while (mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) == 0) assert_int_equal(mdb_cursor_del(cur, 0), 0);
    mdb_cursor_close(cur);
    log_commit(&l);

    expect_bad(h, victim);
}

/* school-a gets new keys in directory version 2 (the broker puts it on
 * the log when it starts); old: its keys before. */
static void rotate_school_a(harness_t *h, schakel_keys_t *old)
{
    harness_keys(h, "school-a", old);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -f '%s'/school-a.*", h->keys);
    assert_int_equal(system(rm), 0);
    schakel_keys_t k;
    assert_int_equal(schakel_keys_generate(&k, "school-a"), 0);
    assert_int_equal(schakel_keys_save(&k, h->keys), 0);
    char sign[65];
    schakel_hex_encode(k.sign_public, 32, sign);
    json_error_t err;
    json_t *d = json_load_file(h->directory, 0, &err);
    assert_non_null(d);
    json_object_set_new(d, "version", json_integer(2));
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(d, "organisations"), i, o)
        if (!strcmp(json_string_value(json_object_get(o, "id")), "school-a")) {
            json_object_set_new(o, "sign_public", json_string(sign));
            json_object_set_new(o, "curve_public", json_string(k.curve_public));
        }
    assert_int_equal(json_dump_file(d, h->directory, JSON_INDENT(1)), 0);
    json_decref(d);
    schakel_keys_wipe(&k);
}

/* school-a gets new keys in a new directory version half-way: its batches
 * before verify with the old key, those after with the new one. */
static void key_rotation_mid_log_verifies(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 0), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);
    schakel_keys_t old;
    rotate_school_a(h, &old);
    assert_int_equal(harness_start(h), 0); /* puts version 2 on the log */
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 100), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);
    char out[2048];
    assert_int_equal(verify(h, out, sizeof out), 0);
    if (!strstr(out, "\"directories\":2")) fail_msg("%s", out);
    assert_non_null(strstr(out, "\"signatures\":26,"));
    assert_non_null(strstr(out, "\"replaced_key\":0"));
}

/* Appends one signal of school-a signed with keys k, stored at `at`, as
 * the broker's store would (the log opened directly). Returns its seq. */
static uint64_t append_signed(harness_t *h, const schakel_keys_t *k, int64_t at)
{
    char keypath[600], logdir[600], why[SCHAKEL_ERRLEN];
    snprintf(keypath, sizeof keypath, "%s/master.key", h->data);
    snprintf(logdir, sizeof logdir, "%s/log", h->data);
    schakel_lmdb_options_t lo = {0};
    lo.dir = logdir;
    assert_int_equal(schakel_secret_file(keypath, lo.master_key, 32, 0, NULL, why), 0);
    schakel_store_t *log = schakel_store_open_lmdb(&lo, why);
    assert_non_null(log);
    uint8_t id[16], *buf, hash[1][32], digest[32], sig[64];
    size_t len;
    harness_event_id(id);
    harness_signal("school-a", id, 500, &buf, &len);
    schakel_sha256(buf, len, hash[0]);
    schakel_batch_digest((const uint8_t(*)[32])hash, 1, digest);
    assert_int_equal(schakel_ed25519_sign(k->sign_secret, digest, 32, sig), 0);
    schakel_append_item_t it = {0};
    it.event = buf;
    it.event_len = len;
    it.event_id = id;
    it.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL;
    it.subject = "";
    memcpy(it.event_hash, hash[0], 32);
    schakel_append_batch_t b = {"school-a", sig, (const uint8_t(*)[32])hash, 1, &it, 1};
    assert_int_equal(schakel_store_append(log, &b, 1, at, why), 0);
    schakel_store_close(&log);
    free(buf);
    return it.seq;
}

/* The recorded_at of the last record (the directory_update). */
static int64_t head_recorded_at(harness_t *h)
{
    rw_log_t l;
    log_open(h, &l);
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(l.txn, l.events, &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_LAST), 0);
    Schakel__V1__RecordBody *b =
        schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (uint8_t *)v.mv_data + HDR_LEN);
    assert_non_null(b);
    assert_int_equal(b->type, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE);
    int64_t at = b->recorded_at;
    schakel__v1__record_body__free_unpacked(b, NULL);
    mdb_cursor_close(cur);
    log_commit(&l);
    return at;
}

/* A batch checked just before a key rotation is stored just after it:
 * the replaced key counts, for 10 s after the change; later it fails. */
static void replaced_key_counts_only_just_after_the_change(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_publish_signals(h, "school-a", 3, 0), 3);
    assert_int_equal(harness_shutdown(h), 0);
    schakel_keys_t old;
    rotate_school_a(h, &old);
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_shutdown(h), 0);
    int64_t at = head_recorded_at(h);

    append_signed(h, &old, at + 1000);
    char out[2048];
    assert_int_equal(verify(h, out, sizeof out), 0);
    if (!strstr(out, "\"replaced_key\":1")) fail_msg("%s", out);

    uint64_t late = append_signed(h, &old, at + 20000);
    expect_bad(h, late);
    schakel_keys_wipe(&old);
}

typedef struct {
    const char *subject;
    uint64_t first;
} first_t;

static int first_of(void *arg, const schakel_record_t *rec)
{
    first_t *f = arg;
    schakel_envelope_t *e = rec->event ? schakel_envelope_decode(rec->event, rec->event_len, NULL) : NULL;
    if (e && !f->first && !strcmp(e->subject, f->subject)) f->first = rec->seq;
    schakel_envelope_free(e);
    return 0;
}

/* A subject's data key destroyed (crypto-shredding) the way only someone
 * with the file and the master key can, with no `erasure` event on the
 * log: the batches still verify (they sign only hashes), but the log does
 * not, and verify names the subject's first record, not the subject. (A
 * key destroyed by `schakel audit erase`, with its event, verifies:
 * test_erasure.) */
static void key_destroyed_without_erasure_event_is_named(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 0), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);

    char keypath[600], logdir[600], why[SCHAKEL_ERRLEN], subject[65], label[32];
    uint8_t hash[32];
    snprintf(label, sizeof label, "synthetic-child-%u", 3u); /* harness_signal's subject 3 */
    schakel_sha256(label, strlen(label), hash);
    schakel_hex_encode(hash, 32, subject);
    snprintf(keypath, sizeof keypath, "%s/master.key", h->data);
    snprintf(logdir, sizeof logdir, "%s/log", h->data);
    schakel_lmdb_options_t lo = {0};
    lo.dir = logdir;
    assert_int_equal(schakel_secret_file(keypath, lo.master_key, 32, 0, NULL, why), 0);
    schakel_store_t *log = schakel_store_open_lmdb(&lo, why);
    assert_non_null(log);
    first_t f = {subject, 0};
    uint64_t next = 0;
    assert_int_equal(schakel_store_read(log, "all", 1, 1000, 1 << 22, first_of, &f, &next), 0);
    assert_true(f.first > 0);
    assert_int_equal(schakel_store_erase_subject(log, subject), 0);
    schakel_store_close(&log);

    char out[2048], want[64];
    assert_int_equal(verify(h, out, sizeof out), 1);
    snprintf(want, sizeof want, "\"bad_seq\":%llu", (unsigned long long)f.first);
    if (!strstr(out, "\"erased\":1,") || !strstr(out, "\"signatures\":13,") || !strstr(out, want) ||
        !strstr(out, "\"erasure_events\":0"))
        fail_msg("%s (want %s)", out, want);
    assert_null(strstr(out, subject));
}

/* A log of EVENTS signals of school-a after the broker's directory;
 * base: the head before them. */
static harness_t *published(void **state, uint64_t *base)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    *base = harness_head(h);
    assert_int_equal(harness_publish_signals(h, "school-a", EVENTS, 0), EVENTS);
    assert_int_equal(harness_shutdown(h), 0);
    return h;
}

/* The victim's batch proof signed again, over the same digest, with
 * smw-b's key: a valid signature, by the wrong organisation. */
static void resigned_by_another_org_fails(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    uint64_t victim = base + VICTIM;
    schakel_keys_t other;
    harness_keys(h, "smw-b", &other);
    rw_log_t l;
    log_open(h, &l);
    uint8_t k[8], digest[32], sig[64];
    schakel_put_be64(k, victim);
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(l.txn, l.proofs, &key, &v), 0);
    Schakel__V1__BatchProof *p = schakel__v1__batch_proof__unpack(NULL, v.mv_size, v.mv_data);
    assert_non_null(p);
    uint8_t(*hs)[32] = malloc(p->n_event_hashes * 32);
    for (size_t i = 0; i < p->n_event_hashes; i++) memcpy(hs[i], p->event_hashes[i].data, 32);
    schakel_batch_digest((const uint8_t(*)[32])hs, p->n_event_hashes, digest);
    free(hs);
    assert_int_equal(schakel_ed25519_sign(other.sign_secret, digest, 32, sig), 0);
    uint8_t *was = p->signature.data;
    p->signature.data = sig;
    size_t n = schakel__v1__batch_proof__get_packed_size(p);
    uint8_t *buf = malloc(n);
    schakel__v1__batch_proof__pack(p, buf);
    p->signature.data = was; /* the unpacked copy's, freed with it */
    MDB_val nv = {n, buf};
    assert_int_equal(mdb_put(l.txn, l.proofs, &key, &nv, 0), 0);
    log_commit(&l);
    free(buf);
    schakel__v1__batch_proof__free_unpacked(p, NULL);
    schakel_keys_wipe(&other);
    expect_bad(h, victim);
}

/* One record deleted from the events table. */
static void removed_record_is_named(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    uint64_t victim = base + VICTIM;
    rw_log_t l;
    log_open(h, &l);
    uint8_t k[8];
    schakel_put_be64(k, victim);
    MDB_val key = {8, k};
    assert_int_equal(mdb_del(l.txn, l.events, &key, NULL), 0);
    log_commit(&l);
    expect_bad(h, victim);
}

/* A key that is no sequence number, put just after the victim's and
 * after the last record: each is named as the sequence number it stands
 * in for, as a walk in one thread meets it. */
static void stray_key_is_named(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    for (int at_end = 0; at_end < 2; at_end++) {
        rw_log_t l;
        log_open(h, &l);
        MDB_cursor *c;
        MDB_val key, val, stray_val = {4, "odd"};
        uint8_t k[9] = {0};
        assert_int_equal(mdb_cursor_open(l.txn, l.events, &c), 0);
        assert_int_equal(mdb_cursor_get(c, &key, &val, MDB_LAST), 0);
        uint64_t at = at_end ? schakel_get_be64(key.mv_data) : base + VICTIM;
        mdb_cursor_close(c);
        schakel_put_be64(k, at);
        MDB_val stray = {9, k};
        assert_int_equal(mdb_put(l.txn, l.events, &stray, &stray_val, 0), 0);
        log_commit(&l);
        expect_bad(h, at + 1);
        log_open(h, &l);
        assert_int_equal(mdb_del(l.txn, l.events, &stray, NULL), 0);
        log_commit(&l);
    }
}

/* Two neighbouring records change places, each untouched inside. */
static void reordered_pair_is_named(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    uint64_t victim = base + VICTIM;
    rw_log_t l;
    log_open(h, &l);
    uint8_t ka[8], kb[8], *a, *b;
    schakel_put_be64(ka, victim);
    schakel_put_be64(kb, victim + 1);
    MDB_val keya = {8, ka}, keyb = {8, kb}, va, vb;
    assert_int_equal(mdb_get(l.txn, l.events, &keya, &va), 0);
    assert_int_equal(mdb_get(l.txn, l.events, &keyb, &vb), 0);
    a = malloc(va.mv_size), b = malloc(vb.mv_size);
    memcpy(a, va.mv_data, va.mv_size);
    memcpy(b, vb.mv_data, vb.mv_size);
    MDB_val na = {vb.mv_size, b}, nb = {va.mv_size, a};
    assert_int_equal(mdb_put(l.txn, l.events, &keya, &na, 0), 0);
    assert_int_equal(mdb_put(l.txn, l.events, &keyb, &nb, 0), 0);
    log_commit(&l);
    free(a), free(b);
    expect_bad(h, victim);
}

/* A checkpoint at the victim with the chain's true hash, signed by a key
 * that is not the broker's. */
static void forged_checkpoint_is_named(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    uint64_t victim = base + VICTIM;
    schakel_keys_t forger;
    assert_int_equal(schakel_keys_generate(&forger, "forger"), 0);
    rw_log_t l;
    log_open(h, &l);
    uint8_t k[8];
    schakel_put_be64(k, victim);
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(l.txn, l.events, &key, &v), 0);
    schakel_checkpoint_t c = {.seq = victim, .at = 1793610000000LL};
    memcpy(c.hash, (uint8_t *)v.mv_data + 32, 32);
    uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN], sig[64];
    schakel_checkpoint_message(&c, msg);
    assert_int_equal(schakel_ed25519_sign(forger.sign_secret, msg, sizeof msg, sig), 0);
    Schakel__V1__Checkpoint cp = SCHAKEL__V1__CHECKPOINT__INIT;
    cp.seq = victim;
    cp.at = c.at;
    cp.hash.data = c.hash, cp.hash.len = 32;
    cp.signature.data = sig, cp.signature.len = 64;
    uint8_t buf[256];
    size_t n = schakel__v1__checkpoint__pack(&cp, buf);
    MDB_val nv = {n, buf};
    assert_int_equal(mdb_put(l.txn, l.checkpoints, &key, &nv, 0), 0);
    log_commit(&l);
    schakel_keys_wipe(&forger);
    expect_bad(h, victim);
}

/* export, then verify --archive with the broker's key */
static int export_and_verify(harness_t *h, const char *from, char *out, size_t cap)
{
    char arc[512], bkey[512], skey[512];
    snprintf(arc, sizeof arc, "%s/archive", h->dir);
    snprintf(bkey, sizeof bkey, "%s/broker.pub", h->keys);
    snprintf(skey, sizeof skey, "%s/broker.key", h->keys);
    const char *ex[] = {"export", "--data", h->data, "--out",        arc,  "--segment",
                        "5",      "--from", from,    "--broker-key", skey, NULL};
    if (run_audit(h, ex, out, cap) != 0) fail_msg("export: %s", out);
    assert_non_null(strstr(out, "\"ok\":true"));
    const char *ve[] = {"verify", "--archive", arc, "--broker-key", bkey, NULL};
    return run_audit(h, ve, out, cap);
}

static void clean_export_verifies(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    char out[2048];
    assert_int_equal(export_and_verify(h, "1", out, sizeof out), 0);
    if (!strstr(out, "\"ok\":true") || !strstr(out, "\"signatures\":13,") || !strstr(out, "\"segments\":3,"))
        fail_msg("%s", out);
}

/* From the middle of the log: the directory before it comes along. */
static void export_from_the_middle_verifies(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    char out[2048], from[24];
    snprintf(from, sizeof from, "%llu", (unsigned long long)(base + 3));
    assert_int_equal(export_and_verify(h, from, out, sizeof out), 0);
    if (!strstr(out, "\"ok\":true") || !strstr(out, "\"directories\":1,")) fail_msg("%s", out);
}

/* One byte of the victim's record flipped in the exported archive (the
 * record's event hash, as it sits in the segment file). */
static void flipped_byte_in_archive_is_named(void **state)
{
    uint64_t base;
    harness_t *h = published(state, &base);
    uint64_t victim = base + VICTIM;
    char out[2048], path[600];
    assert_int_equal(export_and_verify(h, "1", out, sizeof out), 0);
    rw_log_t l;
    log_open(h, &l);
    uint8_t k[8], needle[32];
    schakel_put_be64(k, victim);
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(l.txn, l.events, &key, &v), 0);
    memcpy(needle, (uint8_t *)v.mv_data + 32, 32); /* the record's own hash */
    log_commit(&l);
    /* segments of 5: the victim is in segment (victim - 1) / 5 + 1 */
    snprintf(path, sizeof path, "%s/archive/segment-%06llu.sca", h->dir,
             (unsigned long long)((victim - 1) / 5 + 1));
    size_t n;
    uint8_t *buf = (uint8_t *)schakel_file_read(path, 1 << 24, &n);
    assert_non_null(buf);
    uint8_t *at = memmem(buf, n, needle, 32);
    assert_non_null(at);
    at[100] ^= 0x01; /* in its body, after prev || hash */
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
    free(buf);
    char arc[512], bkey[512];
    snprintf(arc, sizeof arc, "%s/archive", h->dir);
    snprintf(bkey, sizeof bkey, "%s/broker.pub", h->keys);
    const char *ve[] = {"verify", "--archive", arc, "--broker-key", bkey, NULL};
    assert_int_equal(run_audit(h, ve, out, sizeof out), 1);
    want_bad_seq(out, victim);
}

static int teardown(void **state)
{
    harness_t *h = *state;
    harness_destroy(&h);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(clean_log_verifies, teardown),
        cmocka_unit_test_teardown(flipped_signature_is_named, teardown),
        cmocka_unit_test_teardown(source_org_not_the_signer_fails, teardown),
        cmocka_unit_test_teardown(key_rotation_mid_log_verifies, teardown),
        cmocka_unit_test_teardown(key_destroyed_without_erasure_event_is_named, teardown),
        cmocka_unit_test_teardown(replaced_key_counts_only_just_after_the_change, teardown),
        cmocka_unit_test_teardown(resigned_by_another_org_fails, teardown),
        cmocka_unit_test_teardown(removed_record_is_named, teardown),
        cmocka_unit_test_teardown(stray_key_is_named, teardown),
        cmocka_unit_test_teardown(reordered_pair_is_named, teardown),
        cmocka_unit_test_teardown(forged_checkpoint_is_named, teardown),
        cmocka_unit_test_teardown(clean_export_verifies, teardown),
        cmocka_unit_test_teardown(export_from_the_middle_verifies, teardown),
        cmocka_unit_test_teardown(flipped_byte_in_archive_is_named, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
