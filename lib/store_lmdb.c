/* The embedded log backend on LMDB: one environment per broker, written by
 * one thread. Tuned for group commit: many small records appended in one
 * write transaction with one fsync, MDB_APPEND on the sequence key, and
 * reads that walk a cursor. Invariants are those of store.h; the chain hash
 * covers the encrypted record body, so erasure (deleting a data key) never
 * touches the chain.
 *
 * This file opens the environment and its tables, sizes the map, and
 * holds what every part shares (errors, the chain hash). The parts of
 * the data path: store_lmdb_append.c (append + fsync, checkpoints,
 * cursors), store_lmdb_read.c (reads for FETCH, lookups), and beside
 * them store_lmdb_keys.c (data keys, their cache, erasure) and
 * store_lmdb_audit.c (the read-only walk of `schakel audit`). */
#include "store_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "error.h"
#include "fileio.h"
#include "logging.h"
#include "store_lmdb_impl.h"

#define DISK_FULL                                                             \
    "the disk holding the log is full: the operator must free disk space or " \
    "move the log; nothing was stored, send again later"

int lmdb_err(int rc, char *why, const char *what)
{
    if (rc == MDB_MAP_FULL)
        return schakel_fail(why, SCHAKEL_EFULL,
                            "%s: the log's map is full: the operator must raise "
                            "map_max or move the log; nothing was stored, send again later",
                            what);
    if (rc == ENOSPC || rc == EDQUOT) return schakel_fail(why, SCHAKEL_EFULL, "%s: %s", what, DISK_FULL);
    return schakel_fail(why, SCHAKEL_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

/* A write of the log failed. LMDB reports a short write on a full disk as
 * EIO ("Input/output error"): when the disk under the log has less than a
 * megabyte left, say that it is full. */
int lmdb_write_err(lmdb_store_t *st, int rc, char *why, const char *what)
{
    const char *path = NULL;
    struct statvfs vfs;
    if (rc == EIO && mdb_env_get_path(st->env, &path) == 0 && path && statvfs(path, &vfs) == 0 &&
        (unsigned long long)vfs.f_bavail * vfs.f_frsize < (1ull << 20))
        rc = ENOSPC;
    return lmdb_err(rc, why, what);
}

/* h[n] = SHA-256("schakel/v1" || u64be(n) || h[n-1] || SHA-256(body)) */
void lmdb_chain_hash(uint64_t seq, const uint8_t prev[32], const uint8_t *body, size_t len, uint8_t out[32])
{
    uint8_t bh[32], s[8];
    schakel_sha256(body, len, bh);
    schakel_put_be64(s, seq);
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, "schakel/v1", 10);
    schakel_sha256_update(&h, s, 8);
    schakel_sha256_update(&h, prev, 32);
    schakel_sha256_update(&h, bh, 32);
    schakel_sha256_final(&h, out);
}

/* Grows the map when the next append could come near its end: LMDB cannot
 * grow it in the middle of a transaction, and MDB_MAP_FULL would cost the
 * whole group. */
int lmdb_ensure_room(lmdb_store_t *st, size_t incoming, char *why)
{
    MDB_envinfo info;
    MDB_stat stat;
    (void)mdb_env_info(st->env, &info); /* an open environment: they cannot fail */
    (void)mdb_env_stat(st->env, &stat);
    size_t used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
    size_t want = used + 4 * incoming + (1u << 20);
    if (want <= st->map_size / 4 * 3) return 0;
    size_t next = st->map_size * 2;
    while (next / 4 * 3 < want) next *= 2;
    if (next > st->map_max) next = st->map_max;
    if (next <= st->map_size) {
        if (used + incoming + (256u << 10) < st->map_size) return 0; /* let it try */
        return schakel_fail(why, SCHAKEL_EFULL,
                            "log map is at its limit of %zu bytes: raise map_max or move the log",
                            st->map_max);
    }
    pthread_rwlock_wrlock(&st->resize);
    int rc = mdb_env_set_mapsize(st->env, next);
    pthread_rwlock_unlock(&st->resize);
    if (rc) return lmdb_err(rc, why, "grow map");
    schakel_log(SCHAKEL_LOG_INFO, "store", "event=map_grown from=%zu to=%zu", st->map_size, next);
    st->map_size = next;
    return 0;
}

void schakel_lmdb_map_info(schakel_store_t *s, size_t *map_size, uint64_t *full_retries)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    *map_size = st->map_size;
    *full_retries = st->full_retries;
}

int schakel_lmdb_reader_check(schakel_store_t *s, int *cleared)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    int dead = 0;
    int rc = mdb_reader_check(st->env, &dead);
    *cleared = dead;
    return rc ? SCHAKEL_ESTORE : 0;
}

static void lmdb_head(schakel_store_t *s, schakel_head_t *head)
{
    *head = ((lmdb_store_t *)s)->head;
}

/* The locks of a store (store_lmdb_impl.h says what each guards). */
static void locks_init(lmdb_store_t *st)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->resize, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&st->key_lock, NULL);
    pthread_mutex_init(&st->durable_lock, NULL);
    pthread_condattr_t c;
    pthread_condattr_init(&c);
    pthread_condattr_setclock(&c, CLOCK_MONOTONIC);
    pthread_cond_init(&st->durable_cond, &c);
    pthread_condattr_destroy(&c);
}

static void locks_destroy(lmdb_store_t *st)
{
    pthread_rwlock_destroy(&st->resize);
    pthread_mutex_destroy(&st->key_lock);
    pthread_mutex_destroy(&st->durable_lock);
    pthread_cond_destroy(&st->durable_cond);
}

void lmdb_durable_set(lmdb_store_t *st, uint64_t seq)
{
    if (atomic_load(&st->durable_seq) >= seq) return;
    pthread_mutex_lock(&st->durable_lock);
    atomic_store(&st->durable_seq, seq);
    pthread_cond_broadcast(&st->durable_cond);
    pthread_mutex_unlock(&st->durable_lock);
}

uint64_t lmdb_wait_durable(schakel_store_t *s, uint64_t after, int timeout_ms)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&st->durable_lock);
    while (atomic_load(&st->durable_seq) <= after &&
           pthread_cond_timedwait(&st->durable_cond, &st->durable_lock, &until) == 0) {
    }
    uint64_t d = atomic_load(&st->durable_seq);
    pthread_mutex_unlock(&st->durable_lock);
    return d;
}

static void lmdb_close(schakel_store_t *s)
{
    lmdb_store_t *st = (lmdb_store_t *)s;
    if (st->env) mdb_env_close(st->env);
    lmdb_recent_free(st);
    locks_destroy(st);
    memset(st, 0, sizeof *st);
    free(st);
}

static const schakel_store_ops_t lmdb_ops = {
    lmdb_append,          lmdb_read,        lmdb_head,           lmdb_lookup,        lmdb_holds_id_at,
    lmdb_cursor_get,      lmdb_cursor_set,  lmdb_checkpoint,     lmdb_erase_subject, lmdb_close,
    lmdb_append_deferred, lmdb_sync,        lmdb_durable_seq,    lmdb_read_upto,     lmdb_wait_durable,
    lmdb_erased_before,   lmdb_lookup_upto, lmdb_read_upto_skip,
};

/* A cursor in open_dbis; on failure the transaction is aborted. */
static int cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cur, char *why)
{
    int rc = mdb_cursor_open(txn, dbi, cur);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, why, "open log cursor");
    }
    return 0;
}

/* Why a commit's flush makes the commit before it durable (LMDB 0.9,
 * mdb_txn_commit): a commit writes its dirty pages, fdatasyncs the file,
 * then writes its meta page, the one that makes the commit current, to
 * the same file. MDB_NOMETASYNC leaves out only the flush after that meta
 * write. So commit N+1's fdatasync also carries commit N's meta page, and
 * mdb_env_sync carries the last one. The log on disk stays consistent
 * meanwhile: a meta page reaches the disk only after its own data pages
 * were flushed, and commit N+1 reuses only pages freed by commit N-1 or
 * earlier (mdb_page_alloc takes free pages of transactions below the
 * writer's txnid - 1), so the snapshot of the last durable meta page is
 * never overwritten. A crash loses at most the commits whose meta page
 * was not flushed yet, never a durable one, and never leaves a torn tree. */
int lmdb_commit(lmdb_store_t *st, MDB_txn *txn, int wrote)
{
    uint64_t before = st->committed_seq;
    int rc = mdb_txn_commit(txn);
    if (rc) return rc;
    st->committed_seq = st->head.seq;
    /* LMDB commits a transaction that wrote nothing without any flush */
    if (wrote) lmdb_durable_set(st, before);
    return 0;
}

int lmdb_flush(lmdb_store_t *st)
{
    int rc = mdb_env_sync(st->env, 1);
    if (rc == 0) lmdb_durable_set(st, st->committed_seq);
    return rc;
}

int lmdb_commit_durable(lmdb_store_t *st, MDB_txn *txn)
{
    int rc = lmdb_commit(st, txn, 1);
    return rc ? rc : lmdb_flush(st);
}

static int open_dbis(lmdb_store_t *st, int read_only, char *why)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    if (rc) return lmdb_err(rc, why, "begin open");
    unsigned f = read_only ? 0 : MDB_CREATE;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } t[] = {{"events", &st->events},           {"streams", &st->streams}, {"cursors", &st->cursors},
             {"checkpoints", &st->checkpoints}, {"keys", &st->keys},       {"proofs", &st->proofs}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        rc = mdb_dbi_open(txn, t[i].name, f, t[i].dbi);
        if (rc) {
            mdb_txn_abort(txn);
            return schakel_fail(why, SCHAKEL_EIO, "%s: table %s: %s", "open log", t[i].name,
                                mdb_strerror(rc));
        }
    }
    /* The event-id index: `ids`; a log written before it has `by_id`
     * instead (built anew when opened for writing: lmdb_open_ids) */
    st->index = IDS;
    int old = mdb_dbi_open(txn, "by_id", 0, &st->by_id) == 0;
    rc = old && read_only ? MDB_NOTFOUND : mdb_dbi_open(txn, "ids", f, &st->ids);
    if (rc == MDB_NOTFOUND && old) st->index = OLD_BY_ID;
    else if (rc) {
        mdb_txn_abort(txn);
        return schakel_fail(why, SCHAKEL_EIO, "open log: table ids: %s", mdb_strerror(rc));
    }
    if (old && !read_only) st->index = OLD_BY_ID; /* to be rebuilt */
    /* The head: the last record. */
    MDB_cursor *cur;
    MDB_val k, v;
    if ((rc = cursor_open(txn, st->events, &cur, why)) != 0) return rc;
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8 && v.mv_size >= HDR_LEN) {
        st->head.seq = schakel_get_be64(k.mv_data);
        memcpy(st->head.hash, (uint8_t *)v.mv_data + 32, 32);
    }
    mdb_cursor_close(cur);
    if ((rc = cursor_open(txn, st->checkpoints, &cur, why)) != 0) return rc;
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
        st->cp_seq = schakel_get_be64(k.mv_data);
    mdb_cursor_close(cur);
    /* by_id in the form before ids were scoped: keys of 16 bytes (a scoped
     * key is at least 18) */
    if (st->index == OLD_BY_ID) {
        if ((rc = cursor_open(txn, st->by_id, &cur, why)) != 0) return rc;
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size == 16) st->index = OLD_BY_BARE_ID;
        mdb_cursor_close(cur);
    }
    rc = mdb_txn_commit(txn); /* also for read-only: an aborted txn closes its DBIs */
    return rc ? lmdb_err(rc, why, "commit open") : 0;
}

/* Closes the environment and opens it again, under the resize lock (no
 * other thread is in it meanwhile). What it is for: LMDB keeps the
 * buffers of pages it wrote in a list of its own and reuses them for
 * later pages, copying only their used parts into them, so the unused
 * middle of a page written later can carry bytes of a page written long
 * before; after an erasure those could be a copy of the erased key.
 * Closing frees that list; fresh buffers are zeroed (LMDB without
 * MDB_NOMEMINIT). The head, tables and map size are as before. A
 * failure leaves no environment: the caller cannot go on. */
int lmdb_reopen(lmdb_store_t *st, char *why)
{
    const char *path = NULL;
    char dir[SCHAKEL_PATH_MAX];
    if (mdb_env_get_path(st->env, &path) != 0 || !path || strlen(path) >= sizeof dir)
        return schakel_fail(why, SCHAKEL_ESTORE, "the log's directory is unknown");
    memcpy(dir, path, strlen(path) + 1);
    pthread_rwlock_wrlock(&st->resize);
    mdb_env_close(st->env);
    st->env = NULL;
    st->map_addr = NULL; /* the new map is elsewhere: lmdb_map_release looks again */
    int rc = mdb_env_create(&st->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(st->env, 16);
    if (rc == 0) rc = mdb_env_set_mapsize(st->env, st->map_size);
    if (rc == 0) rc = mdb_env_open(st->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600);
    int err = rc ? schakel_fail(why, SCHAKEL_ESTORE, "cannot open the log again: %s", mdb_strerror(rc))
                 : open_dbis(st, 0, why);
    pthread_rwlock_unlock(&st->resize);
    return err;
}

/* A log from before table `ids` (its index was `by_id`, in either form):
 * `ids` is built from the events table and `by_id` dropped, in one
 * transaction (all or nothing). */
static int rebuild_ids(lmdb_store_t *st, char *why)
{
    MDB_stat ms;
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, why, "begin rebuild");
    rc = mdb_stat(txn, st->events, &ms);
    mdb_txn_abort(txn);
    if (rc) return lmdb_err(rc, why, "stat events");
    rc = lmdb_ensure_room(st, ms.ms_entries * 64 + 4096, why);
    if (rc) return rc;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, why, "begin rebuild");
    rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &st->ids);
    if (rc == 0) rc = mdb_drop(txn, st->ids, 0);
    MDB_cursor *cur = NULL;
    if (rc == 0) rc = mdb_cursor_open(txn, st->events, &cur);
    MDB_val k, v;
    uint64_t n = 0;
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        int g = mdb_cursor_get(cur, &k, &v, op);
        if (g == MDB_NOTFOUND) break;
        if (g) {
            rc = g;
            break;
        }
        Schakel__V1__RecordBody *b =
            v.mv_size > HDR_LEN
                ? schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (uint8_t *)v.mv_data + HDR_LEN)
                : NULL;
        if (!b || b->event_id.len != 16 || k.mv_size != 8) {
            if (b) schakel__v1__record_body__free_unpacked(b, NULL);
            if (cur) mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            return schakel_fail(why, SCHAKEL_ECORRUPT,
                                "rebuilding the event-id index: record %llu does not decode; "
                                "run schakel audit verify",
                                (unsigned long long)(k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0));
        }
        uint8_t ik[IDS_KEY_LEN];
        ids_key(ik, b->event_id.data, schakel_get_be64(k.mv_data));
        MDB_val ikv = {IDS_KEY_LEN, ik}, sv = {0, ik};
        rc = mdb_put(txn, st->ids, &ikv, &sv, 0);
        schakel__v1__record_body__free_unpacked(b, NULL);
        n++;
    }
    if (cur) mdb_cursor_close(cur);
    if (rc == 0) rc = mdb_drop(txn, st->by_id, 1);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(rc, why, "rebuild the event-id index");
    }
    rc = lmdb_commit_durable(st, txn);
    if (rc) return lmdb_err(rc, why, "commit the rebuilt event-id index");
    schakel_log(SCHAKEL_LOG_INFO, "store", "event=id_index_rebuilt records=%llu", (unsigned long long)n);
    st->index = IDS;
    return 0;
}

schakel_store_t *schakel_store_open_lmdb(const schakel_lmdb_options_t *opts, char *why)
{
    lmdb_store_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->base.ops = &lmdb_ops;
    locks_init(st);
    st->read_only = opts->read_only;
    st->cp_every = opts->checkpoint_every ? opts->checkpoint_every : 1000;
    st->cp_ms = opts->checkpoint_ms ? opts->checkpoint_ms : 1000;
    st->map_size = opts->map_initial ? opts->map_initial : (size_t)64 << 20;
    st->map_max = opts->map_max ? opts->map_max : (size_t)1 << 40;
    if (st->map_size > st->map_max) st->map_size = st->map_max;
    if (schakel_random(st->nonce_prefix, sizeof st->nonce_prefix)) {
        schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes for nonces");
        locks_destroy(st);
        free(st);
        return NULL;
    }
    lmdb_derive(opts->master_key, "schakel/v1/key-id", st->kid_key);
    /* refuses only a key over 64 bytes; this one has 32 */
    SCHAKEL_DROP(schakel_hmac_sha256_key(&st->kid_hmac, st->kid_key, sizeof st->kid_key));
    lmdb_derive(opts->master_key, "schakel/v1/wrap", st->wrap_key);
    if (opts->sign_secret) {
        memcpy(st->sign_secret, opts->sign_secret, sizeof st->sign_secret);
        st->can_sign = 1;
    }
    if (!opts->read_only && mkdir(opts->dir, 0700) != 0 && errno != EEXIST) {
        schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", opts->dir, strerror(errno));
        goto fail;
    }
    int rc = mdb_env_create(&st->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(st->env, 16);
    if (rc == 0) rc = mdb_env_set_mapsize(st->env, st->map_size);
    /* MDB_NOMETASYNC: one flush per commit instead of two; lmdb_commit
     * says why the log stays consistent and what is durable when */
    if (rc == 0)
        rc = mdb_env_open(st->env, opts->dir, (opts->read_only ? MDB_RDONLY : MDB_NOMETASYNC) | MDB_NOTLS,
                          0600);
    if (rc) {
        schakel_fail(why, SCHAKEL_EIO, "cannot open log in %s: %s", opts->dir, mdb_strerror(rc));
        goto fail;
    }
    MDB_envinfo info;
    (void)mdb_env_info(st->env, &info); /* an open environment: cannot fail */
    st->map_size = info.me_mapsize;     /* an existing log may be larger */
    if (st->map_size > st->map_max) st->map_max = st->map_size;
    if (open_dbis(st, opts->read_only, why) != 0) goto fail;
    if (st->index != IDS && !opts->read_only && rebuild_ids(st, why) != 0) goto fail;
    st->committed_seq = st->head.seq;
    /* a process killed before its last meta page was flushed left it in
     * the page cache: flushed now, everything found is durable */
    if (!opts->read_only && (rc = lmdb_flush(st)) != 0) {
        schakel_fail(why, SCHAKEL_EIO, "cannot flush the log in %s: %s", opts->dir, mdb_strerror(rc));
        goto fail;
    }
    lmdb_durable_set(st, st->head.seq);
    return &st->base;
fail:
    if (st->env) mdb_env_close(st->env);
    locks_destroy(st);
    free(st);
    return NULL;
}
