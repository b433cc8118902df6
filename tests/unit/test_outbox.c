/* The adapter's outbox at rest (issue 10): a real LMDB in a temp dir. No
 * event is in the file in clear - pending, after the ACK, or as a dead
 * letter - and the key is a 0600 file beside it; an outbox of the old
 * format (events in clear) is sealed in place on open; an outbox opened
 * with another key sends nothing rather than garbage. */
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
#include <unistd.h>

#include "bytes.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "outbox.h"

#define MARK "zq7MARKERout"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Does any file in dir hold needle? */
static int dir_has(const char *dir, const char *needle)
{
    const char *names[] = {"data.mdb", "lock.mdb", "outbox.key"};
    int found = 0;
    for (size_t i = 0; i < 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        char *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, f);
        found |= memmem(buf, n, needle, strlen(needle)) != NULL;
        free(buf);
        fclose(f);
    }
    return found;
}

static void event(uint8_t *buf, size_t *len, uint8_t id[16], int n)
{
    *len = (size_t)snprintf((char *)buf, 256, "event %d with case_ref " MARK "%d", n, n);
    memset(id, 0, 16);
    id[0] = (uint8_t)n;
}

static void no_event_rests_in_clear(void **state)
{
    (void)state;
    char dir[] = "/tmp/schakel-outbox-XXXXXX", why[256];
    assert_non_null(mkdtemp(dir));
    schakel_outbox_t *o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    char keypath[600];
    snprintf(keypath, sizeof keypath, "%s/outbox.key", dir);
    struct stat st;
    assert_int_equal(stat(keypath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    uint8_t bufs[3][256], ids[3][16];
    schakel_outbox_item_t items[3];
    for (int i = 0; i < 3; i++) {
        size_t len;
        event(bufs[i], &len, ids[i], i + 1);
        items[i] = (schakel_outbox_item_t){bufs[i], len, ids[i], 0};
    }
    assert_int_equal(schakel_outbox_put(o, items, 3, why), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(items[i].queued, 1);
    assert_false(dir_has(dir, MARK)); /* pending: sealed */

    /* the same bytes again: known; other bytes under a known id: refused */
    assert_int_equal(schakel_outbox_put(o, items, 1, why), 0);
    assert_int_equal(items[0].queued, 0);
    schakel_outbox_item_t changed = {(const uint8_t *)"changed", 7, ids[0], 0};
    assert_int_equal(schakel_outbox_put(o, &changed, 1, why), 0);
    assert_int_equal(changed.queued, -1);

    uint8_t *out[4];
    size_t lens[4];
    uint64_t keys[4];
    assert_int_equal(schakel_outbox_peek(o, 4, out, lens, keys), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lens[i], items[i].len);
        assert_memory_equal(out[i], bufs[i], lens[i]);
        free(out[i]);
    }
    /* one ACKed, one refused for good (a dead letter), one still pending */
    const char *reasons[2] = {NULL, "rejected by the broker: test"};
    assert_int_equal(schakel_outbox_done(o, keys, reasons, 2, 1), 0);
    assert_false(dir_has(dir, MARK));
    schakel_outbox_close(&o);

    /* reopened with its key: the pending one is sent as it was */
    o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    assert_int_equal(schakel_outbox_peek(o, 4, out, lens, keys), 1);
    assert_memory_equal(out[0], bufs[2], lens[0]);
    free(out[0]);
    schakel_outbox_close(&o);

    /* with another key it sends nothing (no garbage to the broker) */
    FILE *f = fopen(keypath, "w");
    fputs("0000000000000000000000000000000000000000000000000000000000000001\n", f);
    fclose(f);
    o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    assert_int_equal(schakel_outbox_peek(o, 4, out, lens, keys), 0);
    schakel_outbox_status_t s;
    assert_int_equal(schakel_outbox_status(o, &s), 0);
    assert_int_equal(s.pending, 1);
    schakel_outbox_close(&o);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* An outbox as the previous version wrote it: events in clear. */
static void old_outbox_is_sealed_on_open(void **state)
{
    (void)state;
    char dir[] = "/tmp/schakel-outbox-XXXXXX", why[256];
    assert_non_null(mkdtemp(dir));
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi pending, dead, ids, meta;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    mdb_dbi_open(txn, "pending", MDB_CREATE, &pending);
    mdb_dbi_open(txn, "dead", MDB_CREATE, &dead);
    mdb_dbi_open(txn, "ids", MDB_CREATE, &ids);
    mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
    uint8_t k1[8] = {0, 0, 0, 0, 0, 0, 0, 1}, k2[8] = {0, 0, 0, 0, 0, 0, 0, 2};
    char pv[64] = "\0\0\0\0\0\0\0\x05"
                  "old " MARK "P";
    char dv[64] = "a reason\0old " MARK "D";
    MDB_val a = {8, k1}, av = {8 + strlen(pv + 8), pv}, b = {8, k2}, bv = {9 + strlen(dv + 9), dv};
    assert_int_equal(mdb_put(txn, pending, &a, &av, 0), 0);
    assert_int_equal(mdb_put(txn, dead, &b, &bv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    schakel_outbox_t *o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    uint8_t *out[2];
    size_t lens[2];
    uint64_t keys[2];
    assert_int_equal(schakel_outbox_peek(o, 2, out, lens, keys), 1);
    assert_int_equal(lens[0], strlen("old " MARK "P"));
    assert_memory_equal(out[0], "old " MARK "P", lens[0]);
    free(out[0]);
    schakel_outbox_close(&o);
    /* the live pages hold no clear text (a compact copy has only those;
     * freed pages of the old file may: docs/privacy.md says what to do) */
    char copy[600];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    mkdir(copy, 0700);
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_env_copy2(env, copy, MDB_CP_COMPACT), 0);
    mdb_env_close(env);
    assert_false(dir_has(copy, MARK));
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

typedef struct {
    schakel_outbox_dead_t d[8];
    uint8_t event[8][256];
    size_t len[8], n;
} seen_t;

static int collect(void *arg, const schakel_outbox_dead_t *d, const uint8_t *event, size_t len)
{
    seen_t *s = arg;
    if (s->n == 8) return -1;
    s->d[s->n] = *d;
    s->len[s->n] = event ? len : 0;
    if (event) memcpy(s->event[s->n], event, len);
    s->n++;
    return 0;
}

/* Issue 11: dead letters can be listed (reason, when) and put back after
 * the cause is fixed; they are then sent again exactly as they were, and
 * come off the dead-letter count. A re-import still answers "known". */
static void dead_letters_are_listed_and_requeued(void **state)
{
    (void)state;
    char dir[] = "/tmp/schakel-outbox-XXXXXX", why[256];
    assert_non_null(mkdtemp(dir));
    schakel_outbox_t *o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    uint8_t bufs[3][256], ids[3][16];
    schakel_outbox_item_t items[3];
    for (int i = 0; i < 3; i++) {
        size_t len;
        event(bufs[i], &len, ids[i], i + 1);
        items[i] = (schakel_outbox_item_t){bufs[i], len, ids[i], 0};
    }
    assert_int_equal(schakel_outbox_put(o, items, 3, why), 0);
    uint8_t *out[4];
    size_t lens[4];
    uint64_t keys[4];
    assert_int_equal(schakel_outbox_peek(o, 4, out, lens, keys), 3);
    for (int i = 0; i < 3; i++) free(out[i]);
    const char *reasons[3] = {"rejected by the broker: not allowed", NULL, "rejected by the broker: again"};
    assert_int_equal(schakel_outbox_done(o, keys, reasons, 3, 1700000000123), 0);

    seen_t seen = {0};
    assert_int_equal(schakel_outbox_dead_letters(o, collect, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.d[0].reason, reasons[0]);
    assert_int_equal(seen.d[0].refused_ms, 1700000000123);
    assert_int_equal(seen.len[0], items[0].len);
    assert_memory_equal(seen.event[0], bufs[0], items[0].len);
    assert_string_equal(seen.d[1].reason, reasons[2]);
    schakel_outbox_status_t st;
    assert_int_equal(schakel_outbox_status(o, &st), 0);
    assert_int_equal(st.dead, 2);
    assert_int_equal(st.pending, 0);

    /* the first one back: pending again, as it was; one dead letter left */
    assert_int_equal(schakel_outbox_requeue(o, &seen.d[0].n, 1, 1700000001000, why), 0);
    assert_int_equal(schakel_outbox_status(o, &st), 0);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.pending, 1);
    assert_int_equal(schakel_outbox_peek(o, 4, out, lens, keys), 1);
    assert_int_equal(lens[0], items[0].len);
    assert_memory_equal(out[0], bufs[0], lens[0]);
    free(out[0]);
    assert_false(dir_has(dir, MARK)); /* sealed anew, not in clear */
    /* twice is an error that changes nothing */
    assert_int_equal(schakel_outbox_requeue(o, &seen.d[0].n, 1, 1700000001000, why), SCHAKEL_ENOTFOUND);
    assert_int_equal(schakel_outbox_status(o, &st), 0);
    assert_int_equal(st.pending, 1);
    /* a re-import of the same record is still known, not queued twice */
    assert_int_equal(schakel_outbox_put(o, items, 1, why), 0);
    assert_int_equal(items[0].queued, 0);
    /* ACKed this time */
    const char *ok[1] = {NULL};
    assert_int_equal(schakel_outbox_done(o, keys, ok, 1, 1700000002000), 0);
    assert_int_equal(schakel_outbox_status(o, &st), 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.acked, 2);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(schakel_outbox_dead_letters(o, collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.d[0].reason, reasons[2]);
    schakel_outbox_close(&o);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Does some offset of dir/data.mdb open, as entry n of clen sealed bytes,
 * with the key in dir/name? (What someone with the file and the key can
 * find, freed pages included.) */
static int opens_in_file(const char *dir, const char *name, uint64_t n, size_t clen)
{
    char path[600], why[256];
    uint8_t key[32], aad[8], out[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (schakel_secret_file(path, key, sizeof key, 0, NULL, why) != 0) return 0;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t size = 0;
    uint8_t *buf = (uint8_t *)schakel_file_read(path, 64 << 20, &size);
    assert_non_null(buf);
    schakel_put_be64(aad, n);
    int found = 0;
    for (size_t off = 0; !found && clen <= sizeof out && off + clen <= size; off++)
        found = schakel_aead_open(key, buf + off, aad, 8, buf + off + 12, clen - 12, out) == 0;
    free(buf);
    return found;
}

/* After the ACK an event leaves the outbox, but LMDB keeps the freed page
 * with its sealed copy: it must not open with the key on disk. An ACK that
 * empties the outbox replaces outbox.key (the dead letter sealed again);
 * a re-import is still known; a replacement cut short after its commit
 * (outbox.key.next left, outbox.key old) is finished at the next open. */
static void acknowledged_events_open_with_no_key_left(void **state)
{
    (void)state;
    char dir[] = "/tmp/schakel-outbox-XXXXXX", why[256], keypath[600], nextpath[600];
    assert_non_null(mkdtemp(dir));
    snprintf(keypath, sizeof keypath, "%s/outbox.key", dir);
    snprintf(nextpath, sizeof nextpath, "%s/outbox.key.next", dir);
    schakel_outbox_t *o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    enum { N = 8 };
    uint8_t bufs[N][256], ids[N][16];
    schakel_outbox_item_t items[N];
    for (int i = 0; i < N; i++) {
        size_t len;
        event(bufs[i], &len, ids[i], i + 1);
        items[i] = (schakel_outbox_item_t){bufs[i], len, ids[i], 0};
    }
    assert_int_equal(schakel_outbox_put(o, items, N, why), 0);
    assert_true(opens_in_file(dir, "outbox.key", 1, items[0].len + 28)); /* the search finds a live one */
    uint8_t *out[N];
    size_t lens[N];
    uint64_t keys[N];
    assert_int_equal(schakel_outbox_peek(o, N, out, lens, keys), N);
    for (int i = 0; i < N; i++) free(out[i]);
    const char *reasons[N] = {NULL, NULL, "rejected by the broker: test"};
    assert_int_equal(schakel_outbox_done(o, keys, reasons, N, 1), 0);
    for (int i = 0; i < N; i++)
        if (opens_in_file(dir, "outbox.key", keys[i], items[i].len + 28) && i != 2)
            fail_msg("ACKed event %d still opens with outbox.key in data.mdb", i + 1);
    assert_false(dir_has(dir, MARK));
    /* the dead letter is kept, under the new key; re-imports are known */
    seen_t seen = {0};
    assert_int_equal(schakel_outbox_dead_letters(o, collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_memory_equal(seen.event[0], bufs[2], items[2].len);
    assert_int_equal(schakel_outbox_put(o, items, N, why), 0);
    for (int i = 0; i < N; i++) assert_int_equal(items[i].queued, 0);
    schakel_outbox_close(&o);

    /* a replacement cut short: the key in force is in outbox.key.next */
    size_t kl = 0;
    char *key = schakel_file_read(keypath, 200, &kl);
    assert_non_null(key);
    assert_int_equal(schakel_file_write_atomic(nextpath, key, kl), 0);
    static const char other[] = "0000000000000000000000000000000000000000000000000000000000000001\n";
    assert_int_equal(schakel_file_write_atomic(keypath, other, strlen(other)), 0);
    o = schakel_outbox_open(dir, 0, why);
    assert_non_null(o);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(schakel_outbox_dead_letters(o, collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.len[0], items[2].len); /* it opens with the key in force */
    size_t kl2 = 0;
    char *now = schakel_file_read(keypath, 200, &kl2);
    assert_non_null(now);
    assert_int_equal(kl2, kl);
    assert_memory_equal(now, key, kl);
    assert_int_not_equal(access(nextpath, F_OK), 0);
    free(now);
    free(key);
    schakel_outbox_close(&o);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_event_rests_in_clear),
        cmocka_unit_test(old_outbox_is_sealed_on_open),
        cmocka_unit_test(dead_letters_are_listed_and_requeued),
        cmocka_unit_test(acknowledged_events_open_with_no_key_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
