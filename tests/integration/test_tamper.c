/* Tamper evidence: change one byte of one stored record in the LMDB file
 * and `schakel audit verify` must fail and name that record; an untouched
 * log must verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define EVENTS 60
#define VICTIM 23 /* the 23rd published event */

/* Copies the stored value of record seq out of the log. */
static size_t stored_value(const char *logdir, uint64_t seq, uint8_t *out, size_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, logdir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "events", 0, &dbi), 0);
    uint8_t k[8];
    for (int i = 7; i >= 0; i--, seq >>= 8) k[i] = (uint8_t)seq;
    MDB_val key = {8, k}, v;
    assert_int_equal(mdb_get(txn, dbi, &key, &v), 0);
    assert_true(v.mv_size <= cap);
    memcpy(out, v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return v.mv_size;
}

/* Flips one byte at offset off of the first place where needle stands. */
static void flip_in_file(const char *path, const uint8_t *needle, size_t nlen, size_t off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    uint8_t *all = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(fread(all, 1, (size_t)size, f), (size_t)size);
    uint8_t *at = memmem(all, (size_t)size, needle, nlen);
    assert_non_null(at);
    /* exactly one copy, or the flip could land in a stale page */
    assert_null(memmem(at + 1, (size_t)size - (size_t)(at + 1 - all), needle, nlen));
    fseek(f, (long)(at - all) + (long)off, SEEK_SET);
    uint8_t b = at[off] ^ 0x01;
    fwrite(&b, 1, 1, f);
    fclose(f);
    free(all);
}

/* Runs audit verify; with payloads 0 the master key is not used, so only
 * the hash chain can tell. */
static int verify_status(harness_t *h, char *out, size_t cap, int payloads)
{
    char path[512];
    snprintf(path, sizeof path, "%s/verify.json", h->dir);
    const char *args[] = {"audit", "verify", "--data", h->data, payloads ? NULL : "--no-payloads", NULL};
    int st = harness_run_tool(path, args);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    return st;
}

static void one_changed_byte_is_named(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    uint64_t base = harness_head(h); /* the broker's own records: the directory */
    schakel_client_t *c = harness_client(h, "school-a");
    for (int i = 0; i < EVENTS; i++) {
        uint8_t id[16], *buf;
        size_t len;
        harness_event_id(id);
        harness_signal("school-a", id, (unsigned)i, &buf, &len);
        Schakel__V1__Ack *a = harness_publish1(c, buf, len);
        assert_non_null(a);
        assert_int_equal(a->entries[0]->seq, base + (uint64_t)i + 1);
        schakel__v1__ack__free_unpacked(a, NULL);
        free(buf);
    }
    schakel_client_destroy(&c);
    assert_int_equal(harness_shutdown(h), 0);

    char out[1024];
    for (int payloads = 0; payloads < 2; payloads++) {
        assert_int_equal(verify_status(h, out, sizeof out, payloads), 0);
        assert_non_null(strstr(out, "\"ok\":true"));
        char want[32];
        snprintf(want, sizeof want, "\"records\":%llu", (unsigned long long)(base + EVENTS));
        assert_non_null(strstr(out, want));
    }

    char logdir[512], file[600];
    snprintf(logdir, sizeof logdir, "%s/log", h->data);
    snprintf(file, sizeof file, "%s/data.mdb", logdir);
    uint8_t val[4096];
    size_t vlen = stored_value(logdir, base + VICTIM, val, sizeof val);
    /* a 48-byte window from the middle of the encrypted body */
    size_t mid = 64 + (vlen - 64) / 2 - 24;
    flip_in_file(file, val + mid, 48, 10);

    for (int payloads = 0; payloads < 2; payloads++) {
        int st = verify_status(h, out, sizeof out, payloads);
        assert_int_equal(st, 1);
        assert_non_null(strstr(out, "\"ok\":false"));
        char want[32];
        snprintf(want, sizeof want, "\"bad_seq\":%llu", (unsigned long long)(base + VICTIM));
        assert_non_null(strstr(out, want));
    }
}

/* An operator who holds the broker's keys can write a whole new log that
 * verifies on its own; checkpoints that organisations kept elsewhere
 * still expose it. */
static void kept_checkpoints_expose_a_rewritten_log(void **state)
{
    harness_t *h = *state = harness_new();
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_publish_signals(h, "school-a", 30, 0), 30);
    uint64_t head = harness_head(h);
    assert_int_equal(harness_shutdown(h), 0); /* writes a checkpoint at the head */

    char kept[512], out[1024];
    snprintf(kept, sizeof kept, "%s/kept.jsonl", h->dir);
    const char *exp[] = {"audit", "checkpoints", "--data", h->data, NULL};
    assert_int_equal(harness_run_tool(kept, exp), 0);
    FILE *f = fopen(kept, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    fclose(f);
    char want[32];
    snprintf(want, sizeof want, "\"seq\":%llu,", (unsigned long long)head);
    assert_non_null(strstr(out, want));

    char res[512];
    snprintf(res, sizeof res, "%s/verify.json", h->dir);
    const char *ver[] = {"audit", "verify", "--data", h->data, "--checkpoints", kept, NULL};
    assert_int_equal(harness_run_tool(res, ver), 0);

    /* the rewrite: a fresh log with other events, same broker keys */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/log'", h->data);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(harness_publish_signals(h, "school-a", 30, 1000), 30);
    assert_int_equal(harness_shutdown(h), 0);

    const char *plain[] = {"audit", "verify", "--data", h->data, NULL};
    assert_int_equal(harness_run_tool(res, plain), 0); /* consistent on its own */
    assert_int_equal(harness_run_tool(res, ver), 1);   /* but not with what was kept */
    f = fopen(res, "r");
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    fclose(f);
    assert_non_null(strstr(out, "\"kept_checkpoints\":0"));
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
        cmocka_unit_test_teardown(one_changed_byte_is_named, teardown),
        cmocka_unit_test_teardown(kept_checkpoints_expose_a_rewritten_log, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
