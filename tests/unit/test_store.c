/* The LMDB log backend on a real LMDB in a temp directory: append and read
 * back, dedup, the hash chain and checkpoints, erasure, map growth, and a
 * full map reported as "retry later" with nothing half-written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "error.h"
#include "store_audit.h"
#include "store_lmdb.h"
#include "schakel/v1/bus.pb-c.h"
#include "store_fixture.h"

typedef struct {
    size_t n;
    uint64_t last;
    size_t erased;
    int bad;
} seen_t;

static int count_cb(void *arg, const schakel_record_t *r)
{
    seen_t *s = arg;
    if (r->seq != s->last + 1) s->bad = 1;
    s->last = r->seq;
    s->n++;
    if (!r->event) s->erased++;
    else if (r->event_len && r->event[0] != r->event_id[0]) s->bad = 1;
    return 0;
}

static void append_read_and_verify(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    uint64_t first = 0;
    assert_int_equal(store_fx_append_n(s, 1000, 25, 300, "aa", &first), 0);
    assert_int_equal(first, 1);
    seen_t seen = {0};
    uint64_t next;
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, count_cb, &seen, &next), 0);
    assert_int_equal(seen.n, 25);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(next, 26);
    schakel_store_close(&s);
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), 0);
    assert_int_equal(r.records, 25);
    assert_true(r.checkpoints >= 1);
    /* a wrong broker key makes checkpoints fail */
    uint8_t other[32], osec[32];
    schakel_ed25519_keygen(other, osec);
    assert_int_equal(schakel_lmdb_verify(fx->dir, other, NULL, &r), SCHAKEL_ECORRUPT);
}

/* A deferred append is readable at once but durable only once a later
 * flush has carried its meta page: the next commit that writes, a sync, a
 * durable write. An append of duplicates alone writes nothing and LMDB
 * flushes nothing for it, so it makes nothing durable. */
static void deferred_append_is_durable_with_the_next_flush(void **state)
{
    fx_t *fx = *state;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_store_t *s = store_fx_open(fx, 1000000, 0, 0);
    assert_int_equal(schakel_store_durable_seq(s), 0);
    assert_int_equal(store_fx_append_as(s, 1, 1000, 5, 100, "aa", NULL), 0);
    schakel_head_t h;
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 5);
    assert_int_equal(schakel_store_durable_seq(s), 0);
    assert_int_equal(store_fx_append_as(s, 1, 1000, 5, 100, "aa", NULL), 0); /* duplicates */
    assert_int_equal(schakel_store_durable_seq(s), 0);
    assert_int_equal(store_fx_append_as(s, 1, 2000, 5, 100, "aa", NULL), 0);
    assert_int_equal(schakel_store_durable_seq(s), 5);
    assert_int_equal(schakel_store_sync(s, why), 0);
    assert_int_equal(schakel_store_durable_seq(s), 10);
    assert_int_equal(store_fx_append_as(s, 1, 3000, 5, 100, "aa", NULL), 0);
    assert_int_equal(schakel_store_cursor_set(s, "c", 15), 0);
    assert_int_equal(schakel_store_durable_seq(s), 15);
    assert_int_equal(store_fx_append_n(s, 4000, 5, 100, "aa", NULL), 0);
    assert_int_equal(schakel_store_durable_seq(s), 20);
    schakel_store_close(&s);
    s = store_fx_open(fx, 1000000, 0, 0); /* what a log holds when opened is durable */
    assert_int_equal(schakel_store_durable_seq(s), 20);
    schakel_store_close(&s);
}

static void duplicates_keep_first_seq(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    uint64_t a = 0, b = 0;
    assert_int_equal(store_fx_append_n(s, 1, 5, 100, "aa", &a), 0);
    assert_int_equal(store_fx_append_n(s, 1, 5, 100, "aa", &b), 0);
    assert_int_equal(a, b);
    schakel_head_t h;
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 5);
    schakel_store_close(&s);
    /* reopening keeps the head and the dedup index */
    s = store_fx_open(fx, 10, 0, 0);
    assert_int_equal(store_fx_append_n(s, 1, 5, 100, "aa", &b), 0);
    assert_int_equal(b, a);
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 5);
    schakel_store_close(&s);
}

static void erasure_keeps_the_chain(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    assert_int_equal(store_fx_append_n(s, 1, 3, 100, "child-one", NULL), 0);
    assert_int_equal(store_fx_append_n(s, 100, 3, 100, "child-two", NULL), 0);
    assert_int_equal(schakel_store_erase_subject(s, "child-one"), 0);
    seen_t seen = {0};
    uint64_t next;
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, count_cb, &seen, &next), 0);
    assert_int_equal(seen.n, 6);
    assert_int_equal(seen.erased, 3);
    schakel_store_close(&s);
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), 0);
    assert_int_equal(r.erased, 3);
}

typedef struct {
    size_t n, whole, bare;
    int bad;
} skip_seen_t;

static int skip_cb(void *arg, const schakel_record_t *r)
{
    skip_seen_t *s = arg;
    s->n++;
    if (r->type != 100 || !r->source_org || strcmp(r->source_org, "school-a") != 0 || !r->event_id)
        s->bad = 1;
    if (r->event) s->whole++;
    else s->bad |= r->event_len != 0, s->bare++;
    return 0;
}

/* A reader that does nothing with some types (a service's runner in a
 * node) gets those records without their payload: seq, type, publisher
 * and id as always, nothing decrypted; every other record whole. */
static void skipped_types_come_without_their_payload(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    assert_int_equal(store_fx_append_n(s, 1, 5, 100, "child-one", NULL), 0); /* type 100 */
    schakel_type_set_t skip = {{0}};
    schakel_type_set_add(&skip, 100);
    assert_true(schakel_type_set_has(&skip, 100));
    assert_false(schakel_type_set_has(&skip, 101));
    uint64_t next;
    skip_seen_t seen = {0};
    assert_int_equal(schakel_store_read_upto_skip(s, "all", 1, 5, 100, 1 << 20, &skip, skip_cb, &seen, &next),
                     0);
    assert_int_equal(seen.n, 5);
    assert_int_equal(seen.bare, 5);
    assert_int_equal(seen.bad, 0);
    schakel_type_set_t other = {{0}};
    schakel_type_set_add(&other, 101);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(
        schakel_store_read_upto_skip(s, "all", 1, 5, 100, 1 << 20, &other, skip_cb, &seen, &next), 0);
    assert_int_equal(seen.whole, 5);
    assert_int_equal(seen.bad, 0);
    schakel_store_close(&s);
}

static void map_grows_before_full(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 256 << 10, 0);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(store_fx_append_n(s, i * 1000, 200, 600, "aa", NULL), 0);
    schakel_head_t h;
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 8000);
    size_t map;
    uint64_t retries;
    schakel_lmdb_map_info(s, &map, &retries);
    assert_true(map > (256u << 10));
    assert_int_equal(retries, 0); /* grown ahead of time, never after a full map */
    schakel_store_close(&s);
}

static void full_map_is_retry_later(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 256 << 10, 2 << 20);
    int rc = 0;
    unsigned i = 0;
    schakel_head_t before = {0}, after;
    for (; i < 1000 && rc == 0; i++) {
        schakel_store_head(s, &before);
        rc = store_fx_append_n(s, i * 1000, 100, 500, "aa", NULL);
    }
    assert_int_equal(rc, SCHAKEL_EFULL);
    schakel_store_head(s, &after);
    assert_int_equal(after.seq, before.seq); /* nothing half-written */
    assert_true(after.seq > 0);
    /* reads still work, and the log verifies */
    seen_t seen = {0};
    uint64_t next;
    assert_int_equal(schakel_store_read(s, "all", 1, 10, 1 << 20, count_cb, &seen, &next), 0);
    assert_int_equal(seen.n, 10);
    schakel_store_close(&s);
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), 0);
    assert_int_equal(r.records, after.seq);
}

/* Appends one event of `len` bytes of `fill` with id as org; fills *out. */
static void append_as(schakel_store_t *s, const char *org, const uint8_t id[16], int fill,
                      schakel_append_item_t *out)
{
    uint8_t data[64], hash[1][32], sig[64] = {1};
    memset(data, fill, sizeof data);
    memset(out, 0, sizeof *out);
    out->event = data;
    out->event_len = sizeof data;
    out->event_id = id;
    out->type = 100;
    out->subject = "aa";
    schakel_sha256(data, sizeof data, out->event_hash);
    memcpy(hash[0], out->event_hash, 32);
    schakel_append_batch_t b = {org, sig, (const uint8_t(*)[32])hash, 1, out, 1};
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_store_append(s, &b, 1, 1795000000000LL, why), 0);
}

static void ids_are_scoped_to_their_publisher(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    uint8_t id[16] = {7, 7, 7};
    schakel_append_item_t it;
    /* another organisation takes the id first: the owner's event is still stored */
    append_as(s, "school-b", id, 0xbb, &it);
    assert_int_equal(it.seq, 1);
    append_as(s, "school-a", id, 0xaa, &it);
    assert_int_equal(it.seq, 2);
    assert_false(it.duplicate);
    assert_false(it.conflict);
    /* a retry by the owner is a duplicate of its own copy */
    append_as(s, "school-a", id, 0xaa, &it);
    assert_int_equal(it.seq, 2);
    assert_true(it.duplicate);
    assert_false(it.conflict);
    /* other bytes under its own id: a conflict, nothing stored */
    append_as(s, "school-a", id, 0xcc, &it);
    assert_true(it.conflict);
    uint64_t seq = 0;
    assert_int_equal(schakel_store_lookup(s, "school-a", id, &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(schakel_store_lookup(s, "school-b", id, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(schakel_store_lookup(s, "school-c", id, &seq), SCHAKEL_ENOTFOUND);
    schakel_head_t h;
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 2);
    schakel_store_close(&s);
}

/* n events of 64 bytes of fill, each with its id and the absent_upto its
 * checker found, in one signed batch of org: one append. */
static void append_told(schakel_store_t *s, const char *org, const uint8_t (*ids)[16], size_t n, int fill,
                        uint64_t absent_upto, schakel_append_item_t *out)
{
    uint8_t data[64], hash[2][32], sig[64] = {1};
    memset(data, fill, sizeof data);
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].event = data;
        out[i].event_len = sizeof data;
        out[i].event_id = ids[i];
        out[i].type = 100;
        out[i].subject = "aa";
        out[i].absent_upto = absent_upto;
        out[i].proof_index = (uint32_t)i;
        schakel_sha256(data, sizeof data, out[i].event_hash);
        memcpy(hash[i], out[i].event_hash, 32);
    }
    schakel_append_batch_t b = {org, sig, (const uint8_t(*)[32])hash, n, out, n};
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_store_append(s, &b, 1, 1795000000000LL, why), 0);
}

/* The broker's checker finds a new decision's id absent up to the head it
 * saw (absent_upto); the append then skips the index where no record
 * since can hold the id. A copy stored after that head, in a group
 * before or earlier in the same one, or before a restart, is still
 * found: a duplicate, stored once. */
static void an_id_absent_when_checked_but_stored_since_is_a_duplicate(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    uint8_t ids[2][16] = {{9, 9, 9}, {8, 8, 8}}, other[1][16] = {{1}};
    schakel_append_item_t it[2];
    append_told(s, "svc-consent", other, 1, 0x11, 0, it);
    uint64_t seq = 0, upto = 0;
    assert_int_equal(schakel_store_lookup_upto(s, "svc-consent", ids[0], &seq, &upto), SCHAKEL_ENOTFOUND);
    assert_int_equal(upto, 1);
    append_told(s, "svc-consent", ids, 1, 0x22, upto, it);
    assert_int_equal(it[0].seq, 2);
    assert_false(it[0].duplicate);
    /* a second copy, checked before the first was stored */
    append_told(s, "svc-consent", ids, 1, 0x22, upto, it);
    assert_int_equal(it[0].seq, 2);
    assert_true(it[0].duplicate);
    /* two copies in one batch, both checked before either was stored */
    uint8_t twice[2][16] = {{8, 8, 8}, {8, 8, 8}};
    append_told(s, "svc-consent", twice, 2, 0x33, 2, it);
    assert_int_equal(it[0].seq, 3);
    assert_false(it[0].duplicate);
    assert_int_equal(it[1].seq, 3);
    assert_true(it[1].duplicate);
    schakel_store_close(&s);
    /* a restarted broker has seen no append yet: the index answers */
    s = store_fx_open(fx, 10, 0, 0);
    append_told(s, "svc-consent", ids, 1, 0x22, 1, it);
    assert_int_equal(it[0].seq, 2);
    assert_true(it[0].duplicate);
    schakel_head_t h;
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 3);
    schakel_store_close(&s);
}

/* Turns the log in dir into one written before table `ids`: its index is
 * `by_id`, keyed by org || 0 || id (or, bare, by the 16-byte id alone, as
 * before ids were scoped), made from the events table; `ids` is dropped. */
static void make_old_index(const char *dir, int bare)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi events, ids, by_id;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, (size_t)64 << 20);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "events", 0, &events), 0);
    assert_int_equal(mdb_dbi_open(txn, "ids", 0, &ids), 0);
    assert_int_equal(mdb_dbi_open(txn, "by_id", MDB_CREATE, &by_id), 0);
    assert_int_equal(mdb_cursor_open(txn, events, &cur), 0);
    size_t n = 0;
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT, n++) {
        Schakel__V1__RecordBody *b =
            schakel__v1__record_body__unpack(NULL, v.mv_size - 64, (uint8_t *)v.mv_data + 64);
        assert_non_null(b);
        uint8_t key[80];
        size_t kl = strlen(b->source_org);
        memcpy(key, b->source_org, kl + 1);
        memcpy(key + kl + 1, b->event_id.data, 16);
        MDB_val kk = {bare ? 16 : kl + 17, bare ? key + kl + 1 : key}, vv = {8, k.mv_data};
        assert_int_equal(mdb_put(txn, by_id, &kk, &vv, 0), 0);
        schakel__v1__record_body__free_unpacked(b, NULL);
    }
    mdb_cursor_close(cur);
    assert_true(n > 0);
    assert_int_equal(mdb_drop(txn, ids, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int has_table(const char *dir, const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int has = mdb_dbi_open(txn, name, 0, &dbi) == 0;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return has;
}

static void old_index_is_rebuilt(fx_t *fx, int bare)
{
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    uint8_t id[16] = {9, 9, 9};
    schakel_append_item_t it;
    append_as(s, "school-a", id, 0xaa, &it);
    assert_int_equal(store_fx_append_n(s, 100, 3, 50, "aa", NULL), 0);
    schakel_store_close(&s);
    make_old_index(fx->dir, bare);

    /* read-only (an auditor): the old table, checked against the publisher */
    schakel_lmdb_options_t o = {0};
    o.dir = fx->dir;
    o.read_only = 1;
    memcpy(o.master_key, fx->master, 32);
    char why[SCHAKEL_ERRLEN] = "";
    s = schakel_store_open_lmdb(&o, why);
    assert_non_null(s);
    uint64_t seq = 0;
    assert_int_equal(schakel_store_lookup(s, "school-a", id, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(schakel_store_lookup(s, "school-b", id, &seq), SCHAKEL_ENOTFOUND);
    schakel_store_close(&s);
    assert_false(has_table(fx->dir, "ids"));

    /* for writing: `ids` built, `by_id` gone, scoped like any other */
    s = store_fx_open(fx, 10, 0, 0);
    seq = 0;
    assert_int_equal(schakel_store_lookup(s, "school-a", id, &seq), 0);
    assert_int_equal(seq, 1);
    append_as(s, "school-a", id, 0xaa, &it);
    assert_true(it.duplicate);
    assert_int_equal(it.seq, 1);
    append_as(s, "school-b", id, 0xbb, &it);
    assert_false(it.duplicate);
    assert_int_equal(it.seq, 5);
    assert_int_equal(store_fx_append_n(s, 100, 3, 50, "aa", NULL), 0); /* the 3 again: duplicates */
    schakel_head_t h;
    schakel_store_head(s, &h);
    assert_int_equal(h.seq, 5);
    schakel_store_close(&s);
    assert_true(has_table(fx->dir, "ids"));
    assert_false(has_table(fx->dir, "by_id"));
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), 0);
}

static void old_scoped_index_is_rebuilt(void **state)
{
    old_index_is_rebuilt(*state, 0);
}

static void old_bare_index_is_rebuilt(void **state)
{
    old_index_is_rebuilt(*state, 1);
}

/* Table `ids` is keyed by the event id and the seq: an entry with the id
 * whose record is another organisation's event is never taken for this
 * one, whatever its record's id (a damaged or forged entry too). */
static void foreign_id_entry_is_not_a_duplicate(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 10, 0, 0);
    uint8_t id[16] = {1, 2, 3}, other[16] = {4, 5, 6};
    schakel_append_item_t it;
    append_as(s, "school-b", other, 0xbb, &it);
    assert_int_equal(it.seq, 1);
    schakel_store_close(&s);

    /* a key with school-a's id that points at school-b's record */
    uint8_t key[24] = {0};
    memcpy(key, id, 16);
    key[23] = 1;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi ids;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, fx->dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "ids", 0, &ids), 0);
    MDB_val k = {24, key}, v = {0, key};
    assert_int_equal(mdb_put(txn, ids, &k, &v, MDB_NOOVERWRITE), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    s = store_fx_open(fx, 10, 0, 0);
    uint64_t seq = 0;
    assert_int_equal(schakel_store_lookup(s, "school-a", id, &seq), SCHAKEL_ENOTFOUND);
    append_as(s, "school-a", id, 0xaa, &it);
    assert_false(it.duplicate);
    assert_false(it.conflict);
    assert_int_equal(it.seq, 2);
    append_as(s, "school-a", id, 0xaa, &it); /* its own retry: past the collision */
    assert_true(it.duplicate);
    assert_int_equal(it.seq, 2);
    assert_int_equal(schakel_store_lookup(s, "school-a", id, &seq), 0);
    assert_int_equal(seq, 2);
    schakel_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(append_read_and_verify, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(duplicates_keep_first_seq, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(deferred_append_is_durable_with_the_next_flush, store_fx_setup,
                                        store_fx_teardown),
        cmocka_unit_test_setup_teardown(erasure_keeps_the_chain, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(skipped_types_come_without_their_payload, store_fx_setup,
                                        store_fx_teardown),
        cmocka_unit_test_setup_teardown(map_grows_before_full, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(full_map_is_retry_later, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(ids_are_scoped_to_their_publisher, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(an_id_absent_when_checked_but_stored_since_is_a_duplicate,
                                        store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(old_scoped_index_is_rebuilt, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(old_bare_index_is_rebuilt, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(foreign_id_entry_is_not_a_duplicate, store_fx_setup,
                                        store_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
