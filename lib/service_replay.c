/* The replay check of a service (`schakel audit replay`): runs the engine
 * over a log on disk, read-only, from the start, in a state of its own in
 * a temporary directory, and compares every event it derives, byte for
 * byte, with the copy on the log; then looks for events of the service on
 * the log that it did not derive. Equal bytes are the proof that the
 * service's decisions follow from the log and its rules alone (the log's
 * time, ids derived from what they are about). */
#include "service.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "error.h"
#include "service_impl.h"
#include "store_lmdb.h"

typedef struct {
    schakel_store_t *log;
    schakel_logsrc_t src; /* reads from log (no cache: it is local) */
    state_t *s;
    const schakel_engine_ops_t *ops;
    void *engine;
    MDB_txn *txn;
    schakel_emit_t out;
    schakel_replay_report_t *r;
    uint8_t (*ids)[16];
    size_t n_ids, cap_ids;
    const char *org;
    int rc;
    char why[SCHAKEL_ERRLEN];
} replay_t;

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

static void replay_bad(replay_t *p, uint64_t seq, const char *what, const uint8_t *id)
{
    if (p->r->first_bad_seq) return;
    char hex[33];
    schakel_hex_encode(id, 16, hex);
    p->r->first_bad_seq = seq;
    snprintf(p->r->why, sizeof p->r->why, "%s %s", what, hex);
}

static int replay_record(void *arg, const schakel_record_t *rec)
{
    replay_t *p = arg;
    schakel_envelope_t *env = rec->event ? schakel_envelope_decode(rec->event, rec->event_len, NULL) : NULL;
    schakel_logrec_t lr;
    service_make_rec(p->s, &lr, rec->seq, rec->recorded_at, env, rec->source_org, &p->src);
    p->rc = p->ops->process(p->engine, p->txn, &lr, &p->out, p->why);
    schakel_envelope_free(env);
    p->r->records++;
    if (p->rc) return 1;
    for (size_t i = 0; i < p->out.n; i++) {
        schakel_envelope_t *e = schakel_envelope_decode(p->out.bufs[i], p->out.lens[i], NULL);
        if (!e) continue;
        uint8_t id[16];
        memcpy(id, e->event_id.data, 16);
        schakel_envelope_free(e);
        p->r->emitted++;
        if (p->n_ids == p->cap_ids) {
            size_t cap = p->cap_ids ? p->cap_ids * 2 : 4096;
            void *ni = realloc(p->ids, cap * 16);
            if (!ni) {
                p->rc = SCHAKEL_ENOMEM;
                return 1;
            }
            p->ids = ni;
            p->cap_ids = cap;
        }
        memcpy(p->ids[p->n_ids++], id, 16);
        uint64_t seq, next;
        if (schakel_store_lookup(p->log, p->org, id, &seq) != 0) {
            p->r->missing++;
            replay_bad(p, rec->seq, "not on the log:", id);
            continue;
        }
        compare_t c = {p->out.bufs[i], p->out.lens[i], 0};
        int rc = schakel_store_read(p->log, "all", seq, 1, 1, compare_cb, &c, &next);
        if (rc < 0) { /* not a difference: the log could not be read */
            p->rc = rc;
            return 1;
        }
        if (c.same) {
            p->r->same++;
        } else {
            p->r->differ++;
            replay_bad(p, seq, "differs from the log:", id);
        }
    }
    service_emit_clear(&p->out);
    if (p->r->records % 4096 == 0) { /* bound the transaction */
        if (mdb_txn_commit(p->txn) != 0 || mdb_txn_begin(p->s->env, NULL, 0, &p->txn) != 0) {
            p->txn = NULL;
            p->rc = SCHAKEL_ESTORE;
            return 1;
        }
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int extra_record(void *arg, const schakel_record_t *rec)
{
    replay_t *p = arg;
    if (!rec->source_org || strcmp(rec->source_org, p->org) != 0) return 0;
    if (!p->n_ids || !bsearch(rec->event_id, p->ids, p->n_ids, 16, cmp_id)) {
        p->r->extra++;
        replay_bad(p, rec->seq, "on the log but not derived:", rec->event_id);
    }
    return 0;
}

/* Reads the whole log through fn. */
static int walk_log(schakel_store_t *log, schakel_record_fn fn, replay_t *p)
{
    uint64_t from = 1, next = 1;
    for (;;) {
        int rc = schakel_store_read(log, "all", from, 1000, 4u << 20, fn, p, &next);
        if (rc < 0) return rc;
        if (rc > 0 || p->rc) return p->rc;
        if (next == from) return 0;
        from = next;
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int schakel_service_replay(const char *logdir, const uint8_t master_key[32], const schakel_engine_ops_t *ops,
                           void *engine, const char *org_id, schakel_replay_report_t *r)
{
    memset(r, 0, sizeof *r);
    schakel_lmdb_options_t lo = {0};
    lo.dir = logdir;
    lo.read_only = 1;
    memcpy(lo.master_key, master_key, 32);
    replay_t *p = calloc(1, sizeof *p); /* the log source's cache is large for a stack */
    if (!p) {
        memset(lo.master_key, 0, 32);
        snprintf(r->why, sizeof r->why, "out of memory");
        return SCHAKEL_ENOMEM;
    }
    p->r = r;
    p->ops = ops;
    p->engine = engine;
    p->org = org_id;
    p->log = schakel_store_open_lmdb(&lo, p->why);
    p->src.store = p->log;
    memset(lo.master_key, 0, 32);
    if (!p->log) {
        snprintf(r->why, sizeof r->why, "%s", p->why);
        free(p);
        return SCHAKEL_EIO;
    }
    char dir[] = "/tmp/schakel-replay-XXXXXX";
    state_t s;
    int rc;
    if (!mkdtemp(dir)) {
        schakel_store_close(&p->log);
        free(p);
        snprintf(r->why, sizeof r->why, "cannot make a temp directory: %s", strerror(errno));
        return SCHAKEL_EIO;
    }
    p->s = &s;
    rc = service_state_open(&s, dir, ops, engine, p->why);
    if (rc == 0 && mdb_txn_begin(s.env, NULL, 0, &p->txn) != 0) rc = SCHAKEL_ESTORE;
    if (rc == 0) rc = walk_log(p->log, replay_record, p);
    if (p->txn) mdb_txn_abort(p->txn);
    if (rc == 0) {
        if (p->n_ids) qsort(p->ids, p->n_ids, 16, cmp_id);
        rc = walk_log(p->log, extra_record, p);
    }
    if (rc && !r->why[0]) snprintf(r->why, sizeof r->why, "%s", p->why[0] ? p->why : schakel_strerror(rc));
    service_emit_free(&p->out);
    free(p->ids);
    service_state_close(&s);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    schakel_store_close(&p->log);
    free(p);
    if (rc) return rc;
    return r->differ || r->missing || r->extra ? SCHAKEL_ECORRUPT : 0;
}
