/* Archive segments of an LMDB log (docs/audit.md, "Archive segments"):
 * `schakel audit export` writes them, `schakel audit verify --archive`
 * checks them with no broker, no master key and no network. A segment
 * holds a range of records as stored (payloads still encrypted), their
 * batch proofs and checkpoints, the directories in force in plaintext,
 * and is signed by the broker's key and linked to the segment before by
 * its digest. */
#ifndef SCHAKEL_ARCHIVE_H
#define SCHAKEL_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "error.h"
#include "store_audit.h"

#define SCHAKEL_ARCHIVE_MAGIC "schakel-archive1" /* 16 bytes, no NUL */
#define SCHAKEL_ARCHIVE_HDR_LEN 116
#define SCHAKEL_ARCHIVE_TRAILER_LEN 96 /* digest || signature */

/* The kinds of entry in a segment: u8 kind || u32be len || len bytes. */
enum {
    SCHAKEL_ARC_RECORD = 1,     /* u64be seq || stored record (prev || hash || body) */
    SCHAKEL_ARC_PROOF = 2,      /* u64be proof_seq || stored BatchProof */
    SCHAKEL_ARC_CHECKPOINT = 3, /* u64be seq || stored Checkpoint */
    SCHAKEL_ARC_DIRECTORY = 4,  /* u64be seq || plaintext envelope of that directory_update */
    SCHAKEL_ARC_CONTEXT = 5,    /* u64be seq || stored record of a directory_update before the range */
};

typedef struct {
    uint64_t from, to;        /* records; to 0: up to the head */
    uint64_t segment_records; /* records per segment; 0: 100000 */
} schakel_archive_opts_t;

typedef struct {
    uint64_t segments, records, first, last, proofs, checkpoints, directories;
} schakel_archive_report_t;

/* Writes segment-NNNNNN.sca files into out_dir (made if missing; it must
 * hold no segment yet) from the LMDB log in log_dir, read-only beside a
 * live broker. master_key reads the directories; broker_secret signs.
 * 0, or an error with the reason in why. */
SCHAKEL_MUST_USE int schakel_archive_export(const char *log_dir,
                                            const uint8_t master_key[SCHAKEL_AEAD_KEY_LEN],
                                            const uint8_t broker_secret[SCHAKEL_ED25519_SEC_LEN],
                                            const uint8_t broker_public[SCHAKEL_ED25519_PUB_LEN],
                                            const char *out_dir, const schakel_archive_opts_t *opts,
                                            schakel_archive_report_t *rep, char *why);

/* Checks every segment in dir: the segments' links and signatures (by
 * broker_pub, or if NULL the key the first segment names), and in them the
 * chain, the batch signatures against the directories, every checkpoint.
 * 0; SCHAKEL_ECORRUPT with r->bad_seq and r->why; SCHAKEL_EIO or
 * SCHAKEL_ENOTFOUND (no segment) with the reason in r->why. r->records,
 * head, head_hash, checkpoints, batches, signatures, directories are
 * filled; *segments counts the segments checked. */
SCHAKEL_MUST_USE int schakel_archive_verify(const char *dir, const uint8_t *broker_pub,
                                            schakel_verify_report_t *r, uint64_t *segments);

#endif
