/* `schakel audit verify --archive`: checks archive segments (archive.h,
 * docs/audit.md) with nothing but the files: no broker, no master key, no
 * network. The same checks as the walk of a live log (store_lmdb_sigs.c),
 * payloads excepted: they stay encrypted. One thread, in file order. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "bytes.h"
#include "codec.h"
#include "directory.h"
#include "fileio.h"
#include "store_lmdb_impl.h"

#define REPLACED_KEY_MS 10000 /* as store_lmdb_sigs.c */
#define MAX_MOVED 256
#define MAX_SEGMENT_BYTES ((size_t)4 << 30)

typedef struct {
    schakel_verify_report_t *r;
    uint8_t key[32];
    int have_key;
    uint8_t prev_digest[32];
    uint64_t expect; /* next record; 0 before the first */
    uint8_t prev[32];
    schakel_directory_t *dir, *replaced;
    uint64_t dir_version;
    int64_t dir_at;
    char moved[MAX_MOVED][64];
    size_t n_moved;
    Schakel__V1__BatchProof *batch;
    uint64_t batch_seq;
    uint8_t (*hashes)[32]; /* of this segment's records, from first */
    uint64_t first, last;
} av_t;

__attribute__((format(printf, 3, 4))) static int bad(av_t *a, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    a->r->bad_seq = seq;
    vsnprintf(a->r->why, sizeof a->r->why, fmt, ap);
    va_end(ap);
    return SCHAKEL_ECORRUPT;
}

typedef struct {
    int kind;
    uint64_t seq;
    const uint8_t *p; /* after the seq */
    size_t n;
} ent_t;

/* The entry at *off (moved past it): 1, 0 at the end, -1 when malformed. */
static int next_entry(const uint8_t *buf, size_t end, size_t *off, ent_t *e)
{
    if (*off == end) return 0;
    if (end - *off < 13) return -1;
    const uint8_t *h = buf + *off;
    size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
    if (len < 8 || len > end - *off - 5) return -1;
    e->kind = h[0];
    e->seq = schakel_get_be64(h + 5);
    e->p = h + 13;
    e->n = len - 8;
    *off += 5 + len;
    return 1;
}

/* A directory's plaintext envelope against the event hash its record
 * carries; in force after that record. */
static int take_directory(av_t *a, const ent_t *e, const Schakel__V1__RecordBody *b, int64_t at)
{
    uint8_t h[32];
    schakel_sha256(e->p, e->n, h);
    if (b->event_hash.len != 32 || memcmp(h, b->event_hash.data, 32) != 0)
        return bad(a, e->seq, "the directory in the archive is not the one its record's event hash names");
    schakel_envelope_t *env = schakel_envelope_decode_with(e->p, e->n, NULL, NULL);
    const char *doc = env && env->directory_update ? env->directory_update->document_json : NULL;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = doc ? schakel_directory_parse(doc, strlen(doc), why) : NULL;
    schakel_envelope_free(env);
    if (!d) return bad(a, e->seq, "directory_update does not parse: %s", why[0] ? why : "no document");
    schakel_directory_destroy(&a->replaced);
    a->replaced = a->dir;
    a->dir = d;
    a->dir_version = schakel_directory_version(d);
    a->dir_at = at;
    a->n_moved = 0;
    a->r->directories++;
    return 0;
}

static int has_moved(const av_t *a, const char *org)
{
    for (size_t i = 0; i < a->n_moved; i++)
        if (!strcmp(a->moved[i], org)) return 1;
    return 0;
}

/* The batch that starts at seq, from the proof entry e. */
static int start_batch(av_t *a, uint64_t seq, int64_t at, const ent_t *e)
{
    if (a->batch) schakel__v1__batch_proof__free_unpacked(a->batch, NULL);
    a->batch = schakel__v1__batch_proof__unpack(NULL, e->n, e->p);
    a->batch_seq = seq;
    const Schakel__V1__BatchProof *p = a->batch;
    int ok = p && p->signature.len == 64 && p->n_event_hashes > 0 &&
             p->n_event_hashes <= SCHAKEL_MAX_BATCH_EVENTS && p->signer_org;
    for (size_t i = 0; ok && i < p->n_event_hashes; i++) ok = p->event_hashes[i].len == 32;
    if (!ok) return bad(a, seq, "the batch proof does not decode");
    a->r->batches++;
    uint8_t(*hs)[32] = malloc(p->n_event_hashes * 32), digest[32];
    if (!hs) return SCHAKEL_ENOMEM;
    for (size_t i = 0; i < p->n_event_hashes; i++) memcpy(hs[i], p->event_hashes[i].data, 32);
    schakel_batch_digest((const uint8_t(*)[32])hs, p->n_event_hashes, digest);
    free(hs);
    const uint8_t *sig = p->signature.data;
    a->r->signatures++;
    if (!strcmp(p->signer_org, "broker")) {
        if (schakel_ed25519_verify(a->key, digest, 32, sig) == 0) return 0;
        return bad(a, seq, "batch signature of broker does not verify with the broker's key");
    }
    if (!a->dir)
        return bad(a, seq, "batch signed by %s comes before any directory in the archive", p->signer_org);
    const schakel_org_t *org = schakel_directory_by_id(a->dir, p->signer_org);
    const schakel_org_t *old = a->replaced ? schakel_directory_by_id(a->replaced, p->signer_org) : NULL;
    if (org && schakel_ed25519_verify(org->sign_public, digest, 32, sig) == 0) {
        if (a->replaced && !has_moved(a, p->signer_org) && a->n_moved < MAX_MOVED)
            snprintf(a->moved[a->n_moved++], 64, "%s", p->signer_org);
        return 0;
    }
    if (old && at - a->dir_at <= REPLACED_KEY_MS && !has_moved(a, p->signer_org) &&
        schakel_ed25519_verify(old->sign_public, digest, 32, sig) == 0) {
        a->r->sigs_replaced_key++;
        return 0;
    }
    if (!org)
        return bad(a, seq, "batch signed by %s, which is not in the directory in force (version %llu)",
                   p->signer_org, (unsigned long long)a->dir_version);
    return bad(
        a, seq,
        "batch signature of %s does not verify with its signing key in the directory in force (version %llu)",
        p->signer_org, (unsigned long long)a->dir_version);
}

/* A record entry and what must follow it: its proof when it starts a
 * batch, its plaintext when it is a directory_update. */
static int record(av_t *a, const ent_t *e, const uint8_t *buf, size_t end, size_t *off, int context)
{
    uint64_t seq = e->seq;
    if (!context && seq != a->expect) return bad(a, a->expect, "record is missing (sequence numbers jump)");
    if (e->n < HDR_LEN) return bad(a, seq, "record is truncated");
    /* the first record of an archive from --from > 1 starts the chain */
    if (!context && a->r->records && memcmp(e->p, a->prev, 32) != 0)
        return bad(a, seq, "previous-hash field does not match the record before");
    if (!context && seq == 1 && memcmp(e->p, (uint8_t[32]){0}, 32) != 0)
        return bad(a, seq, "previous-hash field of the first record is not zero");
    uint8_t h[32];
    lmdb_chain_hash(seq, e->p, e->p + HDR_LEN, e->n - HDR_LEN, h);
    if (memcmp(h, e->p + 32, 32) != 0) return bad(a, seq, "hash does not match the record's contents");
    Schakel__V1__RecordBody *b = schakel__v1__record_body__unpack(NULL, e->n - HDR_LEN, e->p + HDR_LEN);
    if (!b) return bad(a, seq, "record body does not decode");
    int rc = b->seq != seq ? bad(a, seq, "record body names another sequence number") : 0;
    int is_dir = b->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE;
    if (rc == 0 && context && !is_dir) rc = bad(a, seq, "a context record is not a directory_update");
    ent_t n;
    if (rc == 0 && !context) {
        if (b->proof_seq == seq) {
            size_t at = *off;
            if (next_entry(buf, end, &at, &n) != 1 || n.kind != SCHAKEL_ARC_PROOF || n.seq != seq)
                rc = bad(a, seq, "the batch proof of this record is missing");
            else *off = at, rc = start_batch(a, seq, b->recorded_at, &n);
        } else if (!a->batch || b->proof_seq != a->batch_seq) {
            rc = bad(a, seq, "record names a batch proof that is not the batch it is stored in");
        }
        const Schakel__V1__BatchProof *p = a->batch;
        if (rc == 0 && (b->proof_index >= p->n_event_hashes || b->event_hash.len != 32 ||
                        memcmp(p->event_hashes[b->proof_index].data, b->event_hash.data, 32) != 0))
            rc = bad(a, seq, "event hash is not one that %s signed in its batch", p->signer_org);
        if (rc == 0 && (!b->source_org || strcmp(b->source_org, p->signer_org) != 0))
            rc = bad(a, seq, "source_org is %s but %s signed the batch", b->source_org ? b->source_org : "",
                     p->signer_org);
    }
    if (rc == 0 && is_dir) {
        if (next_entry(buf, end, off, &n) != 1 || n.kind != SCHAKEL_ARC_DIRECTORY || n.seq != seq)
            rc = bad(a, seq, "the archive lacks the plaintext of this directory_update");
        else rc = take_directory(a, &n, b, b->recorded_at);
    }
    schakel__v1__record_body__free_unpacked(b, NULL);
    if (rc || context) return rc;
    memcpy(a->prev, e->p + 32, 32);
    if (seq >= a->first && seq <= a->last) memcpy(a->hashes[seq - a->first], a->prev, 32);
    a->r->records++;
    a->r->head = seq;
    a->expect = seq + 1;
    return 0;
}

static int checkpoint(av_t *a, const ent_t *e)
{
    Schakel__V1__Checkpoint *cp = schakel__v1__checkpoint__unpack(NULL, e->n, e->p);
    int rc = 0;
    if (!cp || cp->seq != e->seq || cp->hash.len != 32 || cp->signature.len != 64) {
        rc = bad(a, e->seq, "checkpoint does not decode");
    } else if (e->seq < a->first || e->seq > a->r->head) {
        rc = bad(a, e->seq, "checkpoint is outside the records of its segment");
    } else if (memcmp(a->hashes[e->seq - a->first], cp->hash.data, 32) != 0) {
        rc = bad(a, e->seq, "checkpoint hash differs from the chain");
    } else {
        schakel_checkpoint_t c = {.seq = e->seq, .at = cp->at};
        memcpy(c.hash, cp->hash.data, 32);
        uint8_t msg[SCHAKEL_CHECKPOINT_MSG_LEN];
        schakel_checkpoint_message(&c, msg);
        if (schakel_ed25519_verify(a->key, msg, sizeof msg, cp->signature.data) != 0)
            rc = bad(a, e->seq, "checkpoint signature does not verify");
        else a->r->checkpoints++;
    }
    if (cp) schakel__v1__checkpoint__free_unpacked(cp, NULL);
    return rc;
}

/* One segment file, number no. */
static int segment(av_t *a, const char *path, uint64_t no)
{
    size_t len = 0;
    if (access(path, F_OK) != 0)
        return bad(a, a->expect ? a->expect : 1, "segment %llu (%s) is missing", (unsigned long long)no,
                   path);
    uint8_t *buf = (uint8_t *)schakel_file_read(path, MAX_SEGMENT_BYTES, &len);
    uint64_t first = buf && len >= SCHAKEL_ARCHIVE_HDR_LEN ? schakel_get_be64(buf + 28) : a->expect;
    if (!buf || len < SCHAKEL_ARCHIVE_HDR_LEN + SCHAKEL_ARCHIVE_TRAILER_LEN ||
        memcmp(buf, SCHAKEL_ARCHIVE_MAGIC, 16) || schakel_get_be32(buf + 16) != 1) {
        free(buf);
        return bad(a, first ? first : 1, "segment %llu (%s) is not an archive segment of version 1",
                   (unsigned long long)no, path);
    }
    uint64_t last = schakel_get_be64(buf + 36);
    int rc = 0;
    if (schakel_get_be64(buf + 20) != no || last < first || (a->expect && first != a->expect))
        rc = bad(a, a->expect ? a->expect : first,
                 "segment %llu: its number or range does not follow the one before", (unsigned long long)no);
    else if (memcmp(buf + 44, a->prev_digest, 32) != 0)
        rc = bad(a, first, "segment %llu is not linked to the segment before (previous digest differs)",
                 (unsigned long long)no);
    else if (a->have_key && memcmp(buf + 76, a->key, 32) != 0)
        rc = bad(a, first, "segment %llu names another broker key", (unsigned long long)no);
    if (rc == 0 && !a->have_key) memcpy(a->key, buf + 76, 32), a->have_key = 1;
    if (rc == 0 && !a->expect) a->expect = first;
    a->first = first, a->last = last;
    free(a->hashes);
    a->hashes = rc == 0 && last - first < (1u << 26) ? calloc(last - first + 1, 32) : NULL;
    if (rc == 0 && !a->hashes) rc = bad(a, first, "segment %llu: range too large", (unsigned long long)no);
    size_t end = len - SCHAKEL_ARCHIVE_TRAILER_LEN, off = SCHAKEL_ARCHIVE_HDR_LEN;
    ent_t e;
    int got;
    while (rc == 0 && (got = next_entry(buf, end, &off, &e)) == 1) {
        if (e.kind == SCHAKEL_ARC_RECORD) rc = record(a, &e, buf, end, &off, 0);
        else if (e.kind == SCHAKEL_ARC_CONTEXT && no == 1 && !a->r->records)
            rc = record(a, &e, buf, end, &off, 1);
        else if (e.kind == SCHAKEL_ARC_CHECKPOINT) rc = checkpoint(a, &e);
        else if (e.kind == SCHAKEL_ARC_PROOF && e.seq < a->expect && (!a->batch || a->batch_seq < e.seq))
            rc = start_batch(a, e.seq, INT64_MAX, &e); /* the batch the segment starts in */
        else if (e.kind == SCHAKEL_ARC_PROOF)
            rc = bad(a, e.seq, "a batch proof is stored here but no record starts that batch");
        else
            rc = bad(a, e.seq, "segment %llu: an entry of kind %d is out of place", (unsigned long long)no,
                     e.kind);
    }
    if (rc == 0 && got < 0)
        rc = bad(a, a->expect, "segment %llu: an entry is cut off", (unsigned long long)no);
    if (rc == 0 && a->r->head != last)
        rc = bad(a, a->r->head + 1, "segment %llu ends before its last record %llu", (unsigned long long)no,
                 (unsigned long long)last);
    uint8_t digest[32], msg[50];
    if (rc == 0) {
        schakel_sha256(buf, end, digest);
        memcpy(msg, "schakel/v1/archive", 18);
        memcpy(msg + 18, digest, 32);
        if (memcmp(digest, buf + end, 32) != 0)
            rc = bad(a, first, "segment %llu: its digest does not match its bytes: the file was changed",
                     (unsigned long long)no);
        else if (schakel_ed25519_verify(a->key, msg, sizeof msg, buf + end + 32) != 0)
            rc = bad(a, first, "segment %llu is not signed by the broker's key", (unsigned long long)no);
        memcpy(a->prev_digest, digest, 32);
    }
    free(buf);
    return rc;
}

/* The number of a file named exactly segment-NNNNNN.sca (six digits), or
 * 0 for any other name in the directory. */
static uint64_t segment_number(const char *name)
{
    static const char head[] = "segment-", tail[] = ".sca";
    if (strlen(name) != 18 || memcmp(name, head, 8) != 0 || memcmp(name + 14, tail, 4) != 0) return 0;
    uint64_t no = 0;
    for (int i = 8; i < 14; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        no = no * 10 + (uint64_t)(name[i] - '0');
    }
    return no;
}

int schakel_archive_verify(const char *dir, const uint8_t *broker_pub, schakel_verify_report_t *r,
                           uint64_t *segments)
{
    memset(r, 0, sizeof *r);
    *segments = 0;
    av_t a = {.r = r};
    if (broker_pub) memcpy(a.key, broker_pub, 32), a.have_key = 1;
    r->sigs_checked = 1;
    DIR *d = opendir(dir);
    if (!d) return schakel_fail(r->why, SCHAKEL_EIO, "%s: cannot open the archive", dir);
    uint64_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t no = segment_number(de->d_name);
        if (no > n) n = no;
    }
    closedir(d);
    if (!n)
        return schakel_fail(r->why, SCHAKEL_ENOTFOUND, "%s holds no archive segment (segment-NNNNNN.sca)",
                            dir);
    int rc = 0;
    char path[SCHAKEL_PATH_MAX];
    for (uint64_t no = 1; rc == 0 && no <= n; no++) {
        if (schakel_path_fmt(path, sizeof path, NULL, "%s/segment-%06llu.sca", dir, (unsigned long long)no))
            rc = schakel_fail(r->why, SCHAKEL_EIO, "path too long");
        else rc = segment(&a, path, no);
        if (rc == 0) (*segments)++;
    }
    memcpy(r->head_hash, a.prev, 32);
    free(a.hashes);
    if (a.batch) schakel__v1__batch_proof__free_unpacked(a.batch, NULL);
    schakel_directory_destroy(&a.dir);
    schakel_directory_destroy(&a.replaced);
    return rc;
}
