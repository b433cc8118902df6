/* The consent engine on the broker's `erasure` event: everything it
 * keeps about the erased child goes (its consents, holds, the match
 * index's entries and marks, the deliveries and loop origins about it),
 * in the transaction that moves the cursor past the erasure. A replay,
 * which cannot read the child's erased events, never learnt any of it:
 * so a later event about the child (under a new key) is decided live as
 * in replay, on no consent given before the erasure, and a delivery held
 * for the child is never delivered (privacy.md, "Erasure"). */
#include <string.h>

#include "consent_impl.h"
#include "error.h"
#include "logging.h"

typedef int (*match_fn)(const MDB_val *k, const MDB_val *v, const char *subject);

/* Deletes every entry of dbi that match says is the child's: from the
 * first key with prefix (len bytes) on while keys keep that prefix, or,
 * with no prefix, a scan of the whole table (erasures are rare). */
static int forget_where(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t len, match_fn match,
                        const char *subject, size_t *n)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, dbi, &cur) != 0) return SCHAKEL_ESTORE;
    MDB_val k = {len, (void *)prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, len ? MDB_SET_RANGE : MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (len && (k.mv_size < len || memcmp(k.mv_data, prefix, len) != 0)) break;
        if (!match(&k, &v, subject)) continue;
        /* the cursor stands on the next entry after a delete; MDB_NEXT
         * then does not move it */
        if ((rc = mdb_cursor_del(cur, 0)) != 0) break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SCHAKEL_ESTORE;
}

/* Keyed by the child: holds, matches, match_told, by_subject. */
static int key_starts(const MDB_val *k, const MDB_val *v, const char *subject)
{
    (void)v;
    return k->mv_size >= SUBJECT_LEN && !memcmp(k->mv_data, subject, SUBJECT_LEN);
}

/* Keyed by a deadline, then the child: deadlines, match_deadlines (also
 * the keys a later signal left behind, match.c). */
static int key_after_deadline(const MDB_val *k, const MDB_val *v, const char *subject)
{
    (void)v;
    return k->mv_size >= 8 + SUBJECT_LEN && !memcmp((const uint8_t *)k->mv_data + 8, subject, SUBJECT_LEN);
}

/* A delivery's value, a loop origin's value: about the child. */
static int value_names(const MDB_val *k, const MDB_val *v, const char *subject)
{
    (void)k;
    return v->mv_size >= SUBJECT_LEN && memmem(v->mv_data, v->mv_size, subject, SUBJECT_LEN) != NULL;
}

/* The child's consents, found through by_subject (subject || consent key). */
static int forget_consents(schakel_consent_t *c, MDB_txn *txn, const char *subject, size_t *n)
{
    for (;;) { /* one at a time: two tables change under the cursor */
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, c->by_subject, &cur) != 0) return SCHAKEL_ESTORE;
        MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
        uint8_t key[SUBJECT_LEN + CONSENT_KEY_MAX];
        size_t kl = 0;
        if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 && key_starts(&k, &v, subject) &&
            k.mv_size <= sizeof key) {
            kl = k.mv_size;
            memcpy(key, k.mv_data, kl);
        }
        mdb_cursor_close(cur);
        if (!kl) return 0;
        int rc = schakel_kv_del(txn, c->by_subject, key, kl);
        if (rc == 0 && kl > SUBJECT_LEN)
            rc = schakel_kv_del(txn, c->consents, key + SUBJECT_LEN, kl - SUBJECT_LEN);
        if (rc == 0 && kl > SUBJECT_LEN) consent_cache_drop(c, key + SUBJECT_LEN, kl - SUBJECT_LEN);
        if (rc) return rc;
        (*n)++;
    }
}

int consent_forget(schakel_consent_t *c, MDB_txn *txn, const char *subject, uint64_t seq)
{
    if (!subject || strlen(subject) != SUBJECT_LEN) return 0;
    size_t consents = 0, holds = 0, matches = 0, loops = 0, other = 0;
    int rc = forget_consents(c, txn, subject, &consents);
    if (rc == 0) rc = forget_where(txn, c->holds, subject, SUBJECT_LEN, key_starts, subject, &holds);
    if (rc == 0) rc = forget_where(txn, c->deadlines, NULL, 0, key_after_deadline, subject, &other);
    if (rc == 0) rc = forget_where(txn, c->matches, subject, SUBJECT_LEN, key_starts, subject, &matches);
    if (rc == 0) rc = forget_where(txn, c->match_deadlines, NULL, 0, key_after_deadline, subject, &other);
    if (rc == 0) rc = forget_where(txn, c->match_told, subject, SUBJECT_LEN, key_starts, subject, &other);
    if (rc == 0) rc = forget_where(txn, c->deliveries, NULL, 0, value_names, subject, &loops);
    if (rc == 0) rc = forget_where(txn, c->origins, NULL, 0, value_names, subject, &other);
    if (rc == 0)
        schakel_log(SCHAKEL_LOG_INFO, "consent",
                    "event=subject_forgotten seq=%llu consents=%zu holds=%zu matches=%zu deliveries=%zu",
                    (unsigned long long)seq, consents, holds, matches, loops);
    return rc;
}
