/* `schakel audit export`: archive segments of an LMDB log (archive.h,
 * docs/audit.md). Reads the log read-only in one transaction. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "bytes.h"
#include "clock.h"
#include "fileio.h"
#include "store_lmdb.h"
#include "store_lmdb_impl.h"

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int oom;
    uint64_t count[6]; /* entries of each kind */
} out_t;

static void put(out_t *o, const void *p, size_t n)
{
    if (o->oom) return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 1u << 20;
        while (cap < o->len + n) cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b) {
            o->oom = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void entry(out_t *o, int kind, uint64_t seq, const void *p, size_t n)
{
    uint8_t h[13];
    o->count[kind]++;
    h[0] = (uint8_t)kind;
    h[1] = (uint8_t)((n + 8) >> 24), h[2] = (uint8_t)((n + 8) >> 16), h[3] = (uint8_t)((n + 8) >> 8);
    h[4] = (uint8_t)(n + 8);
    schakel_put_be64(h + 5, seq);
    put(o, h, sizeof h);
    put(o, p, n);
}

typedef struct {
    lmdb_store_t *st;
    MDB_txn *txn;
    char *why;
    uint64_t from; /* the archive's first record */
} ex_t;

/* A directory_update record: its stored bytes as kind (record or
 * context), then its plaintext envelope. */
static int directory_entries(ex_t *x, out_t *o, uint64_t seq, const MDB_val *v, int kind)
{
    Schakel__V1__RecordBody *b =
        schakel__v1__record_body__unpack(NULL, v->mv_size - HDR_LEN, (const uint8_t *)v->mv_data + HDR_LEN);
    if (!b)
        return schakel_fail(x->why, SCHAKEL_ECORRUPT, "record %llu does not decode", (unsigned long long)seq);
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc = lmdb_record_open(x->st, x->txn, seq, b, &plain, &plen);
    schakel__v1__record_body__free_unpacked(b, NULL);
    if (rc)
        return schakel_fail(x->why, SCHAKEL_ECORRUPT, "directory_update %llu does not decrypt: %s",
                            (unsigned long long)seq, schakel_strerror(rc));
    if (kind == SCHAKEL_ARC_CONTEXT) entry(o, kind, seq, v->mv_data, v->mv_size);
    entry(o, SCHAKEL_ARC_DIRECTORY, seq, plain, plen);
    free(plain);
    return 0;
}

/* The last two directory_updates before from: the one in force there and
 * the one it replaced (for the replaced-key rule). */
static int context(ex_t *x, out_t *o, uint64_t from)
{
    uint64_t found[2] = {0, 0};
    MDB_cursor *cur;
    MDB_val k, v;
    if (from <= 1) return 0;
    if (mdb_cursor_open(x->txn, x->st->events, &cur)) return SCHAKEL_ESTORE;
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        uint64_t seq = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0;
        if (seq >= from) break;
        if (v.mv_size < HDR_LEN) continue;
        Schakel__V1__RecordBody *b =
            schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (const uint8_t *)v.mv_data + HDR_LEN);
        if (b && b->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE)
            found[0] = found[1], found[1] = seq;
        if (b) schakel__v1__record_body__free_unpacked(b, NULL);
    }
    mdb_cursor_close(cur);
    for (int i = 0; i < 2; i++) {
        if (!found[i]) continue;
        uint8_t kk[8];
        schakel_put_be64(kk, found[i]);
        MDB_val key = {8, kk};
        if (mdb_get(x->txn, x->st->events, &key, &v)) return SCHAKEL_ESTORE;
        int rc = directory_entries(x, o, found[i], &v, SCHAKEL_ARC_CONTEXT);
        if (rc) return rc;
    }
    return 0;
}

/* A segment that starts in the middle of a batch: that batch's proof
 * first, under its own seq (before the segment's first record). */
static int opening_proof(ex_t *x, out_t *o, uint64_t seq, const MDB_val *v)
{
    Schakel__V1__RecordBody *b =
        schakel__v1__record_body__unpack(NULL, v->mv_size - HDR_LEN, (const uint8_t *)v->mv_data + HDR_LEN);
    uint64_t ps = b ? b->proof_seq : seq;
    if (b) schakel__v1__record_body__free_unpacked(b, NULL);
    if (ps >= seq) return 0;
    uint8_t kk[8];
    schakel_put_be64(kk, ps);
    MDB_val k = {8, kk}, pv;
    if (mdb_get(x->txn, x->st->proofs, &k, &pv) == 0) entry(o, SCHAKEL_ARC_PROOF, ps, pv.mv_data, pv.mv_size);
    return 0;
}

/* One segment: records first..last with their proofs and directories,
 * then the checkpoints in that range. */
static int segment(ex_t *x, out_t *o, uint64_t first, uint64_t last)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t kk[8];
    schakel_put_be64(kk, first);
    k.mv_size = 8, k.mv_data = kk;
    int rc = mdb_cursor_open(x->txn, x->st->events, &cur) ? SCHAKEL_ESTORE : 0;
    for (int op = MDB_SET_RANGE; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        uint64_t seq = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0;
        if (seq > last) break;
        if (seq == first && first == x->from && v.mv_size >= HDR_LEN) rc = opening_proof(x, o, seq, &v);
        if (rc) break;
        entry(o, SCHAKEL_ARC_RECORD, seq, v.mv_data, v.mv_size);
        MDB_val pk = {8, k.mv_data}, pv;
        if (mdb_get(x->txn, x->st->proofs, &pk, &pv) == 0)
            entry(o, SCHAKEL_ARC_PROOF, seq, pv.mv_data, pv.mv_size);
        if (v.mv_size < HDR_LEN) continue; /* verify names it */
        Schakel__V1__RecordBody *b =
            schakel__v1__record_body__unpack(NULL, v.mv_size - HDR_LEN, (const uint8_t *)v.mv_data + HDR_LEN);
        int dir = b && b->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE;
        if (b) schakel__v1__record_body__free_unpacked(b, NULL);
        if (dir) rc = directory_entries(x, o, seq, &v, SCHAKEL_ARC_RECORD);
    }
    mdb_cursor_close(cur);
    if (rc) return rc;
    if (mdb_cursor_open(x->txn, x->st->checkpoints, &cur)) return SCHAKEL_ESTORE;
    k.mv_size = 8, k.mv_data = kk;
    schakel_put_be64(kk, first);
    for (int op = MDB_SET_RANGE; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        uint64_t seq = k.mv_size == 8 ? schakel_get_be64(k.mv_data) : 0;
        if (seq > last) break;
        entry(o, SCHAKEL_ARC_CHECKPOINT, seq, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    return 0;
}

int schakel_archive_export(const char *log_dir, const uint8_t master_key[SCHAKEL_AEAD_KEY_LEN],
                           const uint8_t broker_secret[SCHAKEL_ED25519_SEC_LEN],
                           const uint8_t broker_public[SCHAKEL_ED25519_PUB_LEN], const char *out_dir,
                           const schakel_archive_opts_t *opts, schakel_archive_report_t *rep, char *why)
{
    memset(rep, 0, sizeof *rep);
    char path[SCHAKEL_PATH_MAX];
    if (mkdir(out_dir, 0700) != 0 && errno != EEXIST)
        return schakel_fail(why, SCHAKEL_EIO, "%s: %s", out_dir, strerror(errno));
    int rc = schakel_path_join(path, sizeof path, out_dir, "segment-000001.sca", why);
    if (rc) return rc;
    if (access(path, F_OK) == 0)
        return schakel_fail(why, SCHAKEL_EEXIST, "%s holds segments already: export into an empty directory",
                            out_dir);
    schakel_lmdb_options_t lo = {0};
    lo.dir = log_dir;
    lo.read_only = 1;
    memcpy(lo.master_key, master_key, sizeof lo.master_key);
    schakel_store_t *s = schakel_store_open_lmdb(&lo, why);
    memset(lo.master_key, 0, sizeof lo.master_key);
    if (!s) return SCHAKEL_EIO;
    ex_t x = {(lmdb_store_t *)s, NULL, why, 0};
    if (mdb_txn_begin(x.st->env, NULL, MDB_RDONLY, &x.txn)) {
        schakel_store_close(&s);
        return schakel_fail(why, SCHAKEL_ESTORE, "cannot read the log");
    }
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t head = 0;
    if (mdb_cursor_open(x.txn, x.st->events, &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) head = schakel_get_be64(k.mv_data);
        mdb_cursor_close(cur);
    }
    uint64_t from = opts && opts->from ? opts->from : 1, to = opts && opts->to ? opts->to : head;
    uint64_t per = opts && opts->segment_records ? opts->segment_records : 100000;
    if (to > head) to = head;
    x.from = from;
    rc = from > to ? schakel_fail(why, SCHAKEL_EINVAL, "no records from %llu to %llu (the log ends at %llu)",
                                  (unsigned long long)from, (unsigned long long)to, (unsigned long long)head)
                   : 0;
    uint8_t prev[32] = {0};
    out_t o = {0};
    for (uint64_t first = from, no = 1; rc == 0 && first <= to; first += per, no++) {
        uint64_t last = to - first < per ? to : first + per - 1;
        uint8_t hdr[SCHAKEL_ARCHIVE_HDR_LEN];
        memcpy(hdr, SCHAKEL_ARCHIVE_MAGIC, 16);
        hdr[16] = hdr[17] = hdr[18] = 0, hdr[19] = 1;
        schakel_put_be64(hdr + 20, no);
        schakel_put_be64(hdr + 28, first);
        schakel_put_be64(hdr + 36, last);
        memcpy(hdr + 44, prev, 32);
        memcpy(hdr + 76, broker_public, 32);
        schakel_put_be64(hdr + 108, (uint64_t)schakel_wall_ms());
        o.len = 0;
        put(&o, hdr, sizeof hdr);
        if (no == 1) rc = context(&x, &o, from);
        if (rc == 0) rc = segment(&x, &o, first, last);
        uint8_t digest[32], msg[18 + 32], sig[64];
        if (rc == 0 && o.oom) rc = schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
        if (rc == 0) {
            schakel_sha256(o.buf, o.len, digest);
            memcpy(msg, "schakel/v1/archive", 18);
            memcpy(msg + 18, digest, 32);
            rc = schakel_ed25519_sign(broker_secret, msg, sizeof msg, sig);
        }
        put(&o, digest, 32);
        put(&o, sig, 64);
        if (rc == 0)
            rc = schakel_path_fmt(path, sizeof path, why, "%s/segment-%06llu.sca", out_dir,
                                  (unsigned long long)no);
        if (rc == 0 && !o.oom && schakel_file_write_atomic(path, o.buf, o.len) != 0)
            rc = schakel_fail(why, SCHAKEL_EIO, "%s: cannot write", path);
        memcpy(prev, digest, 32);
        rep->segments++;
    }
    free(o.buf);
    if (rc == 0) {
        rep->first = from, rep->last = to, rep->records = o.count[SCHAKEL_ARC_RECORD];
        rep->proofs = o.count[SCHAKEL_ARC_PROOF];
        rep->checkpoints = o.count[SCHAKEL_ARC_CHECKPOINT];
        rep->directories = o.count[SCHAKEL_ARC_DIRECTORY];
    }
    mdb_txn_abort(x.txn);
    schakel_store_close(&s);
    return rc;
}
