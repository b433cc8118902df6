/* One service's part of the replay check, in a thread of its own: the
 * engine runs over every record of the log with an empty state in a
 * temporary directory, and every event it derives is compared, byte for
 * byte, with the copy of the same id on the log. Most copies come after
 * the record that derived them (live, the service publishes after its
 * group): those are compared when the service reaches the copy in its
 * own walk, from the batch in memory, so that no record is read twice and
 * the log's index of ids is never asked: every event of the service is
 * met on the way. The service's events on the log that it did not derive
 * are found at the end from the list of them it kept. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "crypto.h"
#include "service_replay_impl.h"

/* Records per write transaction of the engine's state. */
#define COMMIT_EVERY 16384

/* ---- the first difference ---- */

static int before(uint64_t at, uint64_t index, const replay_bad_t *b)
{
    return !b->set || at < b->at || (at == b->at && index < b->index);
}

static void bad(replay_svc_t *p, uint64_t at, uint64_t index, uint64_t seq, const char *what,
                const uint8_t *id)
{
    if (!before(at, index, &p->bad)) return;
    p->bad = (replay_bad_t){at, index, seq, what, {0}, 1};
    memcpy(p->bad.id, id, 16);
}

static void judge(replay_svc_t *p, const replay_pending_t *d, uint64_t log_seq, const uint8_t *event,
                  size_t len)
{
    if (event && len == d->len && memcmp(event, d->bytes, len) == 0) {
        p->r->same++;
    } else {
        p->r->differ++;
        bad(p, d->at, d->index, log_seq, "differs from the log:", d->id);
    }
}

/* ---- ids ---- */

static size_t id_slot(const replay_idmap_t *m, const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    uint64_t h = a ^ (b * 0x9e3779b97f4a7c15ULL); /* ids are hashes, mostly; mixed all the same */
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    size_t i = (size_t)h & (m->cap - 1);
    while (m->slots[i].val && memcmp(m->slots[i].key, id, 16) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

static uint64_t idmap_get(const replay_idmap_t *m, const uint8_t id[16])
{
    return m->cap ? m->slots[id_slot(m, id)].val : 0;
}

/* Sets id's value (not 0) unless it has one. */
static int idmap_add(replay_idmap_t *m, const uint8_t id[16], uint64_t val)
{
    if (2 * (m->n + 1) > m->cap) { /* at most half full */
        replay_idmap_t g = {NULL, m->cap ? m->cap * 2 : 4096, 0};
        g.slots = calloc(g.cap, sizeof *g.slots);
        if (!g.slots) return SCHAKEL_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].val) continue;
            g.slots[id_slot(&g, m->slots[i].key)] = m->slots[i];
            g.n++;
        }
        free(m->slots);
        *m = g;
    }
    replay_slot_t *sl = &m->slots[id_slot(m, id)];
    if (sl->val) return 0;
    memcpy(sl->key, id, 16);
    sl->val = val;
    m->n++;
    return 0;
}

void replay_idmap_free(replay_idmap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- copies on the log before the record that derived them: read back ---- */

typedef struct {
    const uint8_t *want;
    size_t len;
    int same;
} compare_t;

static int compare_cb(void *arg, const schakel_record_t *rec)
{
    compare_t *c = arg;
    c->same = rec->event && rec->event_len == c->len && memcmp(rec->event, c->want, c->len) == 0;
    return 1;
}

static int judge_read_back(replay_svc_t *p, const replay_pending_t *d, uint64_t log_seq)
{
    compare_t c = {d->bytes, d->len, 0};
    uint64_t next;
    int rc = schakel_store_read(&p->view.base, "all", log_seq, 1, 1, compare_cb, &c, &next);
    if (rc < 0) /* not a difference: the log could not be read */
        return schakel_fail(p->why, rc, "%s: cannot read seq %llu of the log back", p->ops->name,
                            (unsigned long long)log_seq);
    judge(p, d, log_seq, c.same ? d->bytes : NULL, d->len); /* c.same: the bytes on the log are these */
    return 0;
}

/* ---- what the engine derived ---- */

static int keep_id(replay_svc_t *p, const uint8_t id[16])
{
    if (p->n_ids == p->cap_ids) {
        size_t cap = p->cap_ids ? p->cap_ids * 2 : 4096;
        void *ni = realloc(p->ids, cap * 16);
        if (!ni) return SCHAKEL_ENOMEM;
        p->ids = ni;
        p->cap_ids = cap;
    }
    memcpy(p->ids[p->n_ids++], id, 16);
    return 0;
}

/* Waits for the copy of a derived event (bytes taken); first: what
 * waiting has for its id. */
static int wait_for_copy(replay_svc_t *p, const replay_pending_t *d, uint64_t first)
{
    if (p->n_pend == p->cap_pend) {
        size_t cap = p->cap_pend ? p->cap_pend * 2 : 4096;
        void *np = realloc(p->pend, cap * sizeof *p->pend);
        if (!np) return SCHAKEL_ENOMEM;
        p->pend = np;
        p->cap_pend = cap;
    }
    size_t i = p->n_pend++;
    p->pend[i] = *d;
    p->pend[i].next = 0;
    p->pend[i].met = 0;
    if (!first) return idmap_add(&p->waiting, d->id, i + 1);
    size_t k = (size_t)first - 1; /* the same id derived again: rare */
    while (p->pend[k].next) k = p->pend[k].next - 1;
    p->pend[k].next = i + 1;
    return 0;
}

/* Reads a varint at b[*i]; 0 when it runs past n. */
static int varint(const uint8_t *b, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *i < n && shift < 64; shift += 7) {
        uint8_t c = b[(*i)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return 1;
    }
    return 0;
}

/* The event id (Envelope field 1, 16 bytes) of an event the engine
 * emitted, read from its encoding without decoding the rest (the
 * engine's events were encoded by schakel_emit; a decode of each only for
 * its id was 7% of the routing thread). 0 when it has none of 16 bytes
 * or the encoding does not parse; the last occurrence counts, as when
 * decoding. */
static int emitted_id(const uint8_t *b, size_t n, uint8_t id[16])
{
    int found = 0;
    for (size_t i = 0; i < n;) {
        uint64_t key, v;
        if (!varint(b, n, &i, &key)) return 0;
        switch (key & 7) {
        case 0:
            if (!varint(b, n, &i, &v)) return 0;
            break;
        case 1:
        case 5:
            if (n - i < ((key & 7) == 1 ? 8u : 4u)) return 0;
            i += (key & 7) == 1 ? 8 : 4;
            break;
        case 2:
            if (!varint(b, n, &i, &v) || v > n - i) return 0;
            if (key >> 3 == 1) {
                found = v == 16;
                if (found) memcpy(id, b + i, 16);
            }
            i += (size_t)v;
            break;
        default: return 0; /* groups: not in schakel's messages */
        }
    }
    return found;
}

/* Each event the record at seq made the engine emit: compared with its
 * copy on the log now when the service has met it (it came first), else
 * when it meets it. The service's own events are all met in the walk, so
 * no lookup in the log's index is needed. A copy met is found in copies
 * (met before anything derived its id: rare) or as the seq the first
 * derived event waiting for it keeps (the same id derived again: rare);
 * so the common case costs one probe of waiting here and one when the
 * copy is met, and copies stays small. */
static int check_output(replay_svc_t *p, uint64_t seq)
{
    for (size_t i = 0; i < p->out.n; i++) {
        replay_pending_t d = {seq, i, p->out.bufs[i], p->out.lens[i], {0}, 0, 0};
        if (!emitted_id(d.bytes, d.len, d.id)) continue;
        p->r->emitted++;
        if (keep_id(p, d.id)) return SCHAKEL_ENOMEM;
        uint64_t at = p->copies.n ? idmap_get(&p->copies, d.id) : 0;
        uint64_t first = at ? 0 : idmap_get(&p->waiting, d.id);
        if (first) at = p->pend[first - 1].met;
        if (at) {
            int rc = judge_read_back(p, &d, at);
            if (rc) return rc;
            continue;
        }
        if (wait_for_copy(p, &d, first)) return SCHAKEL_ENOMEM;
        p->out.bufs[i] = NULL; /* p->pend has it */
    }
    service_emit_clear(&p->out);
    return 0;
}

/* A record of the service's own: kept for the end (extra), and compared
 * with every derived event that waited for it. */
static int keep_own(replay_svc_t *p, const replay_item_t *it)
{
    if (!it->source_org || strcmp(it->source_org, p->org) != 0) return 0;
    if (p->n_own == p->cap_own) {
        size_t cap = p->cap_own ? p->cap_own * 2 : 4096;
        void *no = realloc(p->own, cap * sizeof *p->own);
        if (!no) return SCHAKEL_ENOMEM;
        p->own = no;
        p->cap_own = cap;
    }
    p->own[p->n_own].seq = it->seq;
    p->own[p->n_own].erased = it->env == NULL;
    memcpy(p->own[p->n_own++].id, it->event_id, 16);
    size_t first = (size_t)idmap_get(&p->waiting, it->event_id);
    if (!first) return idmap_add(&p->copies, it->event_id, it->seq); /* met before it was derived */
    if (!p->pend[first - 1].met) p->pend[first - 1].met = it->seq;
    for (size_t k = first; k; k = p->pend[k - 1].next) {
        replay_pending_t *d = &p->pend[k - 1];
        if (!d->bytes) continue; /* met its copy before */
        judge(p, d, it->seq, it->event, it->event_len);
        free(d->bytes);
        d->bytes = NULL;
    }
    return 0;
}

/* ---- one record ---- */

static int replay_item(replay_svc_t *p, const replay_item_t *it)
{
    int rc = keep_own(p, it);
    p->r->head = it->seq;
    if (rc || (p->upto && it->seq > p->upto)) return rc; /* beyond: only the log's copies are met */
    schakel_logrec_t lr;
    service_make_rec(&p->s, &lr, it->seq, it->recorded_at, it->env, it->source_org, p->src);
    rc = p->ops->process(p->engine, p->txn, &lr, &p->out, p->why);
    p->r->records++;
    if (rc) return rc;
    rc = check_output(p, it->seq);
    if (rc) return rc;
    if (++p->since_commit == COMMIT_EVERY) { /* bound the transaction */
        p->since_commit = 0;
        if (mdb_txn_commit(p->txn) != 0 || mdb_txn_begin(p->s.env, NULL, 0, &p->txn) != 0) {
            p->txn = NULL;
            return schakel_fail(p->why, SCHAKEL_ESTORE, "%s: cannot commit the replay's state", p->ops->name);
        }
        p->s.txn++;
    }
    return 0;
}

/* ---- the end ---- */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* The service's events on the log that the replay did not derive. One
 * whose payload was erased is about an erased event, which the replay
 * cannot read either: not derived, and not extra. */
static void find_extra(replay_svc_t *p)
{
    if (p->n_ids) qsort(p->ids, p->n_ids, 16, cmp_id);
    for (size_t i = 0; i < p->n_own; i++) {
        if (p->own[i].erased) continue;
        if (p->n_ids && bsearch(p->own[i].id, p->ids, p->n_ids, 16, cmp_id)) continue;
        p->r->extra++;
        bad(p, UINT64_MAX, p->own[i].seq, p->own[i].seq, "on the log but not derived:", p->own[i].id);
    }
}

static void finish(replay_svc_t *p)
{
    for (size_t i = 0; i < p->n_pend; i++) { /* derived, never met on the log */
        replay_pending_t *d = &p->pend[i];
        if (!d->bytes) continue;
        if (p->rc == 0) {
            p->r->missing++;
            bad(p, d->at, d->index, d->at, "not on the log:", d->id);
        }
        free(d->bytes);
        d->bytes = NULL;
    }
    if (p->rc == 0) find_extra(p);
    if (p->bad.set) {
        char hex[33];
        schakel_hex_encode(p->bad.id, 16, hex);
        p->r->first_bad_seq = p->bad.seq;
        snprintf(p->r->why, sizeof p->r->why, "%s %s", p->bad.what, hex);
    }
}

/* ---- the thread ---- */

static replay_batch_t *next_batch(replay_feed_t *f, uint64_t k)
{
    pthread_mutex_lock(&f->lock);
    while (f->produced <= k) pthread_cond_wait(&f->ready, &f->lock);
    replay_batch_t *b = f->ring[k % REPLAY_RING];
    pthread_mutex_unlock(&f->lock);
    return b;
}

static void let_go(replay_svc_t *p, replay_batch_t *b)
{
    replay_feed_t *f = p->feed;
    pthread_mutex_lock(&f->lock);
    if (--b->refs == 0) pthread_cond_broadcast(&f->freed);
    pthread_mutex_unlock(&f->lock);
}

/* Keeps b as the newest batch held; lets the oldest go. */
static void hold(replay_svc_t *p, replay_batch_t *b)
{
    if (p->held[REPLAY_HOLD - 1]) let_go(p, p->held[REPLAY_HOLD - 1]);
    memmove(&p->held[1], &p->held[0], (REPLAY_HOLD - 1) * sizeof p->held[0]);
    p->held[0] = b;
}

void *replay_svc_main(void *arg)
{
    replay_svc_t *p = arg;
    /* begun here: an LMDB write transaction belongs to its thread */
    if (mdb_txn_begin(p->s.env, NULL, 0, &p->txn) != 0) {
        p->txn = NULL;
        p->rc = schakel_fail(p->why, SCHAKEL_ESTORE, "%s: cannot begin the replay's state", p->ops->name);
    }
    for (uint64_t k = 0;; k++) {
        replay_batch_t *b = next_batch(p->feed, k);
        hold(p, b);
        for (size_t i = 0; p->rc == 0 && i < b->n; i++) p->rc = replay_item(p, &b->items[i]);
        if (b->n == 0) break;
    }
    if (p->txn) mdb_txn_abort(p->txn);
    p->txn = NULL;
    finish(p); /* may still read from the batches held */
    for (int i = 0; i < REPLAY_HOLD; i++)
        if (p->held[i]) let_go(p, p->held[i]);
    memset(p->held, 0, sizeof p->held);
    return NULL;
}

/* ---- reading back ---- */

static const replay_item_t *held_item(const replay_svc_t *p, uint64_t seq)
{
    for (int i = 0; i < REPLAY_HOLD && p->held[i]; i++) {
        const replay_batch_t *b = p->held[i];
        if (b->n && seq >= b->items[0].seq && seq - b->items[0].seq < b->n) {
            const replay_item_t *it = &b->items[seq - b->items[0].seq];
            return it->seq == seq ? it : NULL; /* seqs are contiguous; checked all the same */
        }
    }
    return NULL;
}

/* The engine's read back without a copy: the event a held batch decoded
 * for every service (schakel_log_event_held). */
static int view_held(void *arg, uint64_t seq, const schakel_envelope_t **env)
{
    const replay_item_t *it = held_item(arg, seq);
    *env = it ? it->env : NULL;
    return it != NULL;
}

/* A store read of one record of "all" that a held batch has is answered
 * from it; anything else goes to the one log handle, under its lock. */
static int view_read(schakel_store_t *s, const char *stream, uint64_t from_seq, size_t max_count,
                     size_t max_bytes, schakel_record_fn fn, void *arg, uint64_t *next_seq)
{
    replay_svc_t *p = ((replay_view_t *)s)->svc;
    const replay_item_t *it = max_count == 1 && !strcmp(stream, "all") ? held_item(p, from_seq) : NULL;
    schakel_record_t rec = {0};
    if (!it) {
        /* the reader has kept it, if it is a kind kept, once it handed
         * out the batch with it (held[0] is the last handed to us) */
        const replay_batch_t *last = p->held[0];
        if (max_count == 1 && last && last->n && from_seq <= last->items[last->n - 1].seq &&
            !strcmp(stream, "all") && replay_cache_get(p->feed->cache, from_seq, &rec)) {
            *next_seq = from_seq + 1;
            return fn(arg, &rec);
        }
        return schakel_store_read(p->shared, stream, from_seq, max_count, max_bytes, fn, arg, next_seq);
    }
    rec.seq = rec.position = it->seq;
    rec.recorded_at = it->recorded_at;
    rec.event = it->event;
    rec.event_len = it->event_len;
    rec.event_id = it->event_id;
    rec.type = it->type;
    rec.source_org = it->source_org;
    *next_seq = it->seq + 1;
    return fn(arg, &rec);
}

static int view_lookup(schakel_store_t *s, const char *source_org, const uint8_t *event_id, uint64_t *seq)
{
    return schakel_store_lookup(((replay_view_t *)s)->svc->log, source_org, event_id, seq);
}

/* What the engines and the check use: reads and lookups. */
static const schakel_store_ops_t view_ops = {.read = view_read, .lookup = view_lookup};

/* ---- state ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int replay_svc_open(replay_svc_t *p)
{
    snprintf(p->dir, sizeof p->dir, "/tmp/schakel-replay-XXXXXX");
    if (!mkdtemp(p->dir)) {
        p->dir[0] = 0;
        return schakel_fail(p->why, SCHAKEL_EIO, "cannot make a temp directory: %s", strerror(errno));
    }
    p->src = calloc(1, sizeof *p->src);
    if (!p->src) return schakel_fail(p->why, SCHAKEL_ENOMEM, "out of memory");
    p->view.base.ops = &view_ops;
    p->view.svc = p;
    p->src->store = &p->view.base;
    p->src->held = view_held;
    p->src->held_arg = p;
    /* The replay's state is thrown away at the end and rebuilt by running
     * again: it needs no durability, so no fsync at each commit
     * (MDB_NOSYNC), and a stray write through the map could only spoil
     * this run, so pages are written in place (MDB_WRITEMAP): no copy of
     * each dirty page at commit, no lookup in the dirty list per page. */
    int rc = service_state_open_flags(&p->s, p->dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP, p->ops,
                                      p->engine, p->why);
    p->s_open = 1;
    return rc;
}

void replay_svc_close(replay_svc_t *p)
{
    if (p->txn) mdb_txn_abort(p->txn);
    p->txn = NULL;
    for (size_t i = 0; i < p->n_pend; i++) free(p->pend[i].bytes);
    free(p->pend);
    replay_idmap_free(&p->waiting);
    replay_idmap_free(&p->copies);
    free(p->ids);
    free(p->own);
    service_emit_free(&p->out);
    if (p->s_open) service_state_close(&p->s);
    free(p->src);
    if (p->dir[0]) nftw(p->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
