/* The feedback engine on the broker's `erasure` event: every loop about
 * the erased child goes, with its steps and its indexes, as a replay,
 * which cannot read the child's erased referral, signal, report,
 * handover or MAZL request, never opens it. News about such a loop after
 * the erasure then moves nothing and earns no status, live and in replay
 * alike, and no reminder about it is sent. */
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "feedback_impl.h"

/* Deletes key from dbi; one that is not there is no error. */
static int del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t len)
{
    MDB_val k = {len, (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

/* Deletes every entry of history whose key begins with the loop key. */
static int del_history(schakel_feedback_t *f, MDB_txn *txn, const uint8_t key[16])
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, f->history, &cur) != 0) return SCHAKEL_ESTORE;
    int rc;
    for (;;) { /* found again each time: the cursor does not move on after a delete */
        MDB_val k = {16, (void *)key}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc || k.mv_size < 16 || memcmp(k.mv_data, key, 16) != 0) break;
        /* a redirect's intake found the loop by its seq too */
        MDB_val e;
        if (k.mv_size == 24 &&
            schakel_kv_get(txn, f->by_event, (const uint8_t *)k.mv_data + 16, 8, &e) == 0 &&
            e.mv_size == 16 && memcmp(e.mv_data, key, 16) == 0 &&
            (rc = del(txn, f->by_event, (const uint8_t *)k.mv_data + 16, 8)) != 0)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc) break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SCHAKEL_ESTORE;
}

/* A loop's entries outside `loops`: open, history, by_event, by_referral. */
static int del_loop_indexes(schakel_feedback_t *f, MDB_txn *txn, const uint8_t key[16], const loop_t *l)
{
    uint8_t sk[8], rk[32];
    schakel_put_be64(sk, l->event_seq);
    memcpy(rk, l->referral_id, 16);
    memcpy(rk + 16, key, 16);
    int rc = del(txn, f->open, key, 16);
    if (rc == 0) rc = del_history(f, txn, key);
    if (rc == 0) rc = del(txn, f->by_event, sk, 8);
    if (rc == 0) rc = del(txn, f->by_referral, rk, 32);
    return rc;
}

int feedback_forget(schakel_feedback_t *f, MDB_txn *txn, const char *subject, size_t *n)
{
    *n = 0;
    if (!subject || strlen(subject) != 64) return 0;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, f->loops, &cur) != 0) return SCHAKEL_ESTORE;
    MDB_val k, v;
    int rc;
    for (int op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
        loop_t l;
        if (k.mv_size != 16 || v.mv_size != sizeof l) continue;
        memcpy(&l, v.mv_data, sizeof l);
        if (strcmp(l.subject, subject) != 0) continue;
        uint8_t key[16];
        memcpy(key, k.mv_data, 16);
        rc = del_loop_indexes(f, txn, key, &l);
        if (rc == 0) rc = mdb_cursor_del(cur, 0);
        if (rc) break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SCHAKEL_ESTORE;
}
