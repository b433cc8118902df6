/* Every erasure in the audit walk has its event (store_lmdb_verify.c,
 * SCHAKEL_VERIFY_ERASURES): an erasure record in table `keys` lies beside
 * the chain, where whoever can write the file could put one; the broker's
 * signed `erasure` event lies on it. For every data key whose records the
 * walk found erased, the log must hold an `erasure` event of the broker
 * whose erased_subject has that key id and whose erased_upto reaches the
 * erasure record's. Kept per key id in an open-addressed table; the
 * events come after the records they erase, so the check is at the end.
 * A failure names the first erased record of that subject, never the
 * pseudonym. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "store_audit.h"
#include "store_lmdb_impl.h"

typedef struct {
    uint8_t id[KEY_ID_LEN];
    uint64_t first_seq;  /* first erased record of this key id (0: none seen) */
    uint64_t tomb_upto;  /* the erasure record's last erased seq */
    uint64_t event_upto; /* the largest erased_upto of its erasure events */
    uint8_t used;
} erasure_t;

struct lmdb_erasures {
    erasure_t *slot;
    size_t cap, n; /* cap a power of two, n at most cap / 2 */
};

lmdb_erasures_t *lmdb_erasures_new(void)
{
    lmdb_erasures_t *e = calloc(1, sizeof *e);
    if (e && !(e->slot = calloc(e->cap = 64, sizeof *e->slot))) {
        free(e);
        e = NULL;
    }
    return e;
}

void lmdb_erasures_free(lmdb_erasures_t **ep)
{
    if (!ep || !*ep) return;
    free((*ep)->slot);
    free(*ep);
    *ep = NULL;
}

static erasure_t *find(erasure_t *slot, size_t cap, const uint8_t id[KEY_ID_LEN])
{
    size_t i = ((size_t)id[0] << 24 | (size_t)id[1] << 16 | (size_t)id[2] << 8 | id[3]) & (cap - 1);
    while (slot[i].used && memcmp(slot[i].id, id, KEY_ID_LEN) != 0) i = (i + 1) & (cap - 1);
    return &slot[i];
}

/* The entry of key id id, made when new; NULL when out of memory. */
static erasure_t *entry(lmdb_erasures_t *e, const uint8_t id[KEY_ID_LEN])
{
    erasure_t *x = find(e->slot, e->cap, id);
    if (x->used) return x;
    if (e->n + 1 > e->cap / 2) {
        erasure_t *bigger = calloc(e->cap * 2, sizeof *bigger);
        if (!bigger) return NULL;
        for (size_t i = 0; i < e->cap; i++)
            if (e->slot[i].used) *find(bigger, e->cap * 2, e->slot[i].id) = e->slot[i];
        free(e->slot);
        e->slot = bigger;
        e->cap *= 2;
        x = find(e->slot, e->cap, id);
    }
    memcpy(x->id, id, KEY_ID_LEN);
    x->used = 1;
    e->n++;
    return x;
}

/* A broker's erasure event: the key id of the subject it erased. */
static int take_event(lmdb_erasures_t *e, lmdb_store_t *st, MDB_txn *txn, uint64_t seq,
                      const Schakel__V1__RecordBody *b, schakel_verify_report_t *r)
{
    uint8_t *plain = NULL;
    size_t plen = 0;
    if (lmdb_record_open(st, txn, seq, b, &plain, &plen) != 0)
        return lmdb_verify_fail(r, seq, "erasure event cannot be read");
    schakel_envelope_t *env = schakel_envelope_decode_with(plain, plen, NULL, NULL);
    free(plain);
    if (!env || env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE || !env->erasure ||
        !env->erasure->erased_subject) {
        schakel_envelope_free(env);
        return lmdb_verify_fail(r, seq, "erasure event does not decode");
    }
    uint8_t id[KEY_ID_LEN];
    lmdb_key_id_of(st, env->erasure->erased_subject, id);
    uint64_t upto = env->erasure->erased_upto;
    schakel_envelope_free(env);
    erasure_t *x = entry(e, id);
    if (!x) return lmdb_verify_fail(r, seq, "out of memory");
    if (upto > x->event_upto) x->event_upto = upto;
    r->erasure_events++;
    return 0;
}

int lmdb_erasures_record(lmdb_erasures_t *e, lmdb_store_t *st, MDB_txn *txn, uint64_t seq,
                         const Schakel__V1__RecordBody *b, uint64_t erased_upto, schakel_verify_report_t *r)
{
    if (erased_upto && b->key_id.len == KEY_ID_LEN) {
        erasure_t *x = entry(e, b->key_id.data);
        if (!x) return lmdb_verify_fail(r, seq, "out of memory");
        if (!x->first_seq) x->first_seq = seq;
        if (erased_upto > x->tomb_upto) x->tomb_upto = erased_upto;
    }
    if (b->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE && b->source_org &&
        !strcmp(b->source_org, "broker"))
        return take_event(e, st, txn, seq, b, r);
    return 0;
}

int lmdb_erasures_finish(lmdb_erasures_t *e, schakel_verify_report_t *r)
{
    uint64_t bad = 0;
    for (size_t i = 0; i < e->cap; i++) {
        const erasure_t *x = &e->slot[i];
        if (x->used && x->first_seq && x->event_upto < x->tomb_upto && (!bad || x->first_seq < bad))
            bad = x->first_seq;
    }
    if (!bad) return 0;
    return lmdb_verify_fail(r, bad,
                            "the data key of this record's subject was destroyed with no erasure event on "
                            "the log for it (erased outside schakel audit erase, or its event was lost)");
}
