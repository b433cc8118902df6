/* The LMDB log's honest answers on a real LMDB in a temp directory: verify
 * tells an erased subject (an erasure record) from a data key that is
 * missing or corrupted, a subject erased and then published again reads
 * back erased-then-clear, and a reader killed inside a read transaction is
 * found and freed by the reader check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"
#include "error.h"
#include "store_audit.h"
#include "store_lmdb.h"
#include "store_fixture.h"

/* Appends n events of 100 bytes about subject in one batch; ids from base. */
static void append_n(schakel_store_t *s, unsigned base, size_t n, const char *subject)
{
    assert_int_equal(store_fx_append_n(s, base, n, 100, subject, NULL), 0);
}

typedef struct {
    size_t n, erased;
    uint64_t erased_seqs[64];
} seen_t;

static int count_cb(void *arg, const schakel_record_t *r)
{
    seen_t *s = arg;
    s->n++;
    if (!r->event && s->erased < 64) s->erased_seqs[s->erased++] = r->seq;
    return 0;
}

/* Damages the live data keys of the log in dir with LMDB itself, as a disk
 * fault or an intruder would: the first live key (60 bytes) gets a flipped
 * byte, the second is deleted. Erasure records (32 bytes) stay. */
static void damage_keys(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi keys;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "keys", 0, &keys), 0);
    assert_int_equal(mdb_cursor_open(txn, keys, &cur), 0);
    int live = 0;
    uint8_t flipped[60], flipped_key[16], gone_key[16];
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0 && live < 2; op = MDB_NEXT) {
        if (v.mv_size != 60) continue;
        if (live == 0) {
            memcpy(flipped, v.mv_data, 60);
            flipped[30] ^= 0x01;
            memcpy(flipped_key, k.mv_data, 16);
        } else {
            memcpy(gone_key, k.mv_data, 16);
        }
        live++;
    }
    mdb_cursor_close(cur);
    assert_int_equal(live, 2);
    MDB_val fk = {16, flipped_key}, fv = {60, flipped}, gk = {16, gone_key};
    assert_int_equal(mdb_put(txn, keys, &fk, &fv, 0), 0);
    assert_int_equal(mdb_del(txn, keys, &gk, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void verify_tells_erased_from_missing_and_corrupt(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    append_n(s, 1, 3, "child-erased");
    append_n(s, 100, 3, "child-two");
    append_n(s, 200, 3, "child-three");
    append_n(s, 300, 3, "child-kept");
    assert_int_equal(schakel_store_erase_subject(s, "child-erased"), 0);
    assert_int_equal(schakel_store_erase_subject(s, "child-erased"), SCHAKEL_ENOTFOUND);
    schakel_store_close(&s);

    /* an erasure alone verifies, and is counted as erased */
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), 0);
    assert_int_equal(r.erased, 3);
    assert_int_equal(r.keys_missing + r.keys_corrupt, 0);

    /* a damaged key and a deleted one are not erasures: the log fails */
    damage_keys(fx->dir);
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), SCHAKEL_ECORRUPT);
    assert_int_equal(r.erased, 3);
    assert_int_equal(r.keys_corrupt, 3);
    assert_int_equal(r.keys_missing, 3);
    assert_int_equal(r.records, 12);
    assert_true(r.bad_seq >= 4 && r.bad_seq <= 12);
    assert_non_null(strstr(r.why, "data key is"));
    printf("verify: erased %llu, keys_missing %llu, keys_corrupt %llu; first: %llu: %s\n",
           (unsigned long long)r.erased, (unsigned long long)r.keys_missing,
           (unsigned long long)r.keys_corrupt, (unsigned long long)r.bad_seq, r.why);
}

static void erased_subject_published_again(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    append_n(s, 1, 3, "child-one");
    append_n(s, 100, 2, "child-two");
    uint64_t upto = 0;
    int64_t at = 0;
    assert_int_equal(schakel_store_erased_before(s, "child-one", &upto, &at), SCHAKEL_ENOTFOUND);
    assert_int_equal(schakel_store_erase_subject(s, "child-one"), 0);
    /* erased, nothing since: when, and up to which record */
    assert_int_equal(schakel_store_erased_before(s, "child-one", &upto, &at), 0);
    assert_int_equal(upto, 5);
    assert_true(at > 0);
    assert_int_equal(schakel_store_erased_before(s, "child-never", &upto, &at), SCHAKEL_ENOTFOUND);
    append_n(s, 200, 2, "child-one"); /* seqs 6, 7: a new key behind the erasure record */
    assert_int_equal(schakel_store_erased_before(s, "child-one", &upto, &at), SCHAKEL_ENOTFOUND);
    seen_t seen = {0};
    uint64_t next;
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, count_cb, &seen, &next), 0);
    assert_int_equal(seen.n, 7);
    assert_int_equal(seen.erased, 3);
    assert_int_equal(seen.erased_seqs[0], 1);
    assert_int_equal(seen.erased_seqs[2], 3);
    schakel_store_close(&s);
    /* a fresh process (no key cache) reads the same */
    s = store_fx_open(fx, 0, 0, 0);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, count_cb, &seen, &next), 0);
    assert_int_equal(seen.erased, 3);
    assert_int_equal(schakel_store_erase_subject(s, "child-one"), 0); /* the new key too */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(schakel_store_read(s, "all", 1, 100, 1 << 20, count_cb, &seen, &next), 0);
    assert_int_equal(seen.erased, 5);
    schakel_store_close(&s);
    schakel_verify_report_t r;
    assert_int_equal(schakel_lmdb_verify(fx->dir, fx->sign_pub, fx->master, &r), 0);
    assert_int_equal(r.erased, 5);
}

static void killed_reader_is_cleared(void **state)
{
    fx_t *fx = *state;
    /* the broker keeps the log open (the first opener of an LMDB resets
     * its reader table, so only a running broker meets stale readers) */
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    append_n(s, 1, 3, "child-one");
    /* a reader (as `audit verify` is) killed inside its read transaction */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        MDB_env *env;
        MDB_txn *txn;
        if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
            mdb_env_open(env, fx->dir, MDB_RDONLY | MDB_NOTLS, 0600) ||
            mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    int cleared = -1;
    assert_int_equal(schakel_lmdb_reader_check(s, &cleared), 0);
    assert_int_equal(cleared, 1);
    assert_int_equal(schakel_lmdb_reader_check(s, &cleared), 0);
    assert_int_equal(cleared, 0);
    schakel_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(verify_tells_erased_from_missing_and_corrupt, store_fx_setup,
                                        store_fx_teardown),
        cmocka_unit_test_setup_teardown(erased_subject_published_again, store_fx_setup, store_fx_teardown),
        cmocka_unit_test_setup_teardown(killed_reader_is_cleared, store_fx_setup, store_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
