/* The links of the hash chain in `schakel audit verify`, on a real LMDB:
 * a record whose previous-hash field alone was changed (its own hash made
 * right again, as someone with write access to the file could) is named,
 * wherever it sits in the verify's chunks and windows, whatever the
 * number of threads; and a clean log's head hash is the store's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "store_audit.h"
#include "store_lmdb_impl.h"
#include "store_fixture.h"

/* More than a window of 16,384 records (store_lmdb_verify_impl.h), in
 * chunks of 512. */
#define RECORDS 16900
#define BATCH 1000

static int with_log(void **state)
{
    if (store_fx_setup(state)) return -1;
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    for (unsigned at = 0; at < RECORDS; at += BATCH) {
        size_t n = RECORDS - at < BATCH ? RECORDS - at : BATCH;
        if (store_fx_append_n(s, at, n, 24, "aa", NULL) != 0) return -1;
    }
    schakel_store_close(&s);
    return 0;
}

/* The events table of the log in fx->dir, in a write transaction. */
static MDB_env *events_open(fx_t *fx, MDB_txn **txn, MDB_dbi *events)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, fx->dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, "events", 0, events), 0);
    return env;
}

static void events_put(fx_t *fx, uint64_t seq, const uint8_t *rec, size_t len)
{
    MDB_txn *txn;
    MDB_dbi events;
    MDB_env *env = events_open(fx, &txn, &events);
    uint8_t k[8];
    schakel_put_be64(k, seq);
    MDB_val key = {8, k}, v = {len, (void *)rec};
    assert_int_equal(mdb_put(txn, events, &key, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The record at seq with its previous-hash changed and its own hash taken
 * again over that: only its link to the record before is wrong. Its bytes
 * as they were into was (at most cap); their length. */
static size_t relink(fx_t *fx, uint64_t seq, uint8_t *was, size_t cap)
{
    MDB_txn *txn;
    MDB_dbi events;
    MDB_env *env = events_open(fx, &txn, &events);
    uint8_t k[8];
    schakel_put_be64(k, seq);
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(txn, events, &key, &v), 0);
    size_t len = v.mv_size;
    assert_true(len > HDR_LEN && len <= cap);
    memcpy(was, v.mv_data, len);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    uint8_t *rec = malloc(len);
    memcpy(rec, was, len);
    rec[0] ^= 1;
    lmdb_chain_hash(seq, rec, rec + HDR_LEN, len - HDR_LEN, rec + 32);
    events_put(fx, seq, rec, len);
    free(rec);
    return len;
}

static void verify_with(fx_t *fx, unsigned threads, schakel_verify_report_t *r, int want)
{
    schakel_verify_opts_t o = {.threads = threads};
    assert_int_equal(
        schakel_lmdb_verify_opts(fx->dir, fx->sign_pub, fx->master, SCHAKEL_VERIFY_PAYLOADS, &o, r), want);
}

/* A chunk's first record, one inside a chunk, the last of a chunk, a
 * window's first and second, the log's last. */
static void changed_link_is_named_wherever_it_sits(void **state)
{
    fx_t *fx = *state;
    const uint64_t victims[] = {7, 512, 513, 1025, 16385, 16386, RECORDS};
    for (size_t v = 0; v < sizeof victims / sizeof *victims; v++) {
        uint8_t was[4096];
        size_t len = relink(fx, victims[v], was, sizeof was);
        for (unsigned t = 1; t <= 3; t++) {
            schakel_verify_report_t r;
            verify_with(fx, t, &r, SCHAKEL_ECORRUPT);
            if (r.bad_seq != victims[v] || !strstr(r.why, "previous-hash"))
                fail_msg("seq %llu, %u threads: bad_seq %llu: %s", (unsigned long long)victims[v], t,
                         (unsigned long long)r.bad_seq, r.why);
            assert_int_equal(r.records, victims[v] - 1);
        }
        events_put(fx, victims[v], was, len);
    }
    schakel_verify_report_t r;
    verify_with(fx, 2, &r, 0);
}

static void clean_log_names_the_stores_head_with_any_threads(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    schakel_head_t h;
    schakel_store_head(s, &h);
    schakel_store_close(&s);
    assert_int_equal(h.seq, RECORDS);
    for (unsigned t = 1; t <= 3; t++) {
        schakel_verify_report_t r;
        verify_with(fx, t, &r, 0);
        assert_int_equal(r.records, RECORDS);
        assert_int_equal(r.head, RECORDS);
        assert_memory_equal(r.head_hash, h.hash, 32);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(changed_link_is_named_wherever_it_sits, with_log, store_fx_teardown),
        cmocka_unit_test_setup_teardown(clean_log_names_the_stores_head_with_any_threads, with_log,
                                        store_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
