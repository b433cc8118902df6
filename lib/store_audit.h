/* Auditing an LMDB log read-only (lib/store_lmdb_audit.c), for `schakel
 * audit` and the tests: walk and verify the whole chain, list the signed
 * checkpoints, read one chain hash. Each call opens the log in dir on its
 * own, read-only, so it runs beside a live broker; none of it is part of
 * the backend interface of store.h. */
#ifndef SCHAKEL_STORE_AUDIT_H
#define SCHAKEL_STORE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "error.h"

typedef struct schakel_verify_report {
    uint64_t records;     /* records walked */
    uint64_t checkpoints; /* checkpoints verified */
    uint64_t bad_seq;     /* first bad record, 0 if none */
    uint64_t head;        /* last seq */
    uint8_t head_hash[SCHAKEL_SHA256_LEN];
    uint64_t erased;       /* records whose subject was erased (an erasure record) */
    uint64_t keys_missing; /* records whose data key is gone with no erasure record */
    uint64_t keys_corrupt; /* records whose data key does not unwrap */
    /* batch signatures (with master_key: the directory on the log is
     * encrypted) */
    int sigs_checked;           /* 1 when they were checked */
    uint64_t batches;           /* batch proofs walked */
    uint64_t signatures;        /* signatures verified */
    uint64_t sigs_unchecked;    /* the broker's own, with no broker_pub */
    uint64_t sigs_replaced_key; /* by a key a directory change had just replaced */
    uint64_t directories;       /* directory_updates taken from the log */
    uint64_t erasure_events;    /* the broker's erasure events read (SCHAKEL_VERIFY_ERASURES) */
    char why[256];              /* what was wrong at bad_seq */
} schakel_verify_report_t;

/* Walks the chain of the LMDB log in dir: contiguous seqs, prev hashes,
 * recomputed hashes, decodable bodies; every checkpoint's signature by
 * broker_pub (if not NULL) and its hash against the chain; with
 * master_key (if not NULL) each payload decrypts and hashes to its
 * event_hash. Returns 0 when all verify, SCHAKEL_ECORRUPT with bad_seq and
 * why filled, or another error (SCHAKEL_EIO: not a log). */
SCHAKEL_MUST_USE int schakel_lmdb_verify(const char *dir, const uint8_t *broker_pub,
                                         const uint8_t *master_key, schakel_verify_report_t *report);

#define SCHAKEL_VERIFY_PAYLOADS 1   /* each payload against its event hash */
#define SCHAKEL_VERIFY_SIGNATURES 2 /* each batch signature (see below) */
#define SCHAKEL_VERIFY_ERASURES 4   /* with PAYLOADS: each erasure record has its erasure event */
/* schakel_lmdb_verify, choosing what master_key is used for. With
 * SCHAKEL_VERIFY_SIGNATURES also: every batch signature verifies with the
 * signer's key in the directory on the log at that point (a directory is
 * in force from the record after its directory_update; the broker's own
 * batches with broker_pub), every record's event hash is one its batch
 * signed, its source_org is the batch's signer, and every stored batch
 * proof belongs to a record. Reading the directory needs master_key. */
SCHAKEL_MUST_USE int schakel_lmdb_verify_with(const char *dir, const uint8_t *broker_pub,
                                              const uint8_t *master_key, unsigned what,
                                              schakel_verify_report_t *report);

/* How schakel_lmdb_verify_opts runs: threads (0: one per core online, at
 * most 16; the result does not depend on it), and progress, if not NULL,
 * called from the calling thread now and then with the records verified
 * so far and the records on the log. */
typedef struct {
    unsigned threads;
    void (*progress)(void *arg, uint64_t done, uint64_t total);
    void *progress_arg;
} schakel_verify_opts_t;
SCHAKEL_MUST_USE int schakel_lmdb_verify_opts(const char *dir, const uint8_t *broker_pub,
                                              const uint8_t *master_key, unsigned what,
                                              const schakel_verify_opts_t *opts,
                                              schakel_verify_report_t *report);

/* A signed checkpoint as stored: the chain up to seq had hash `hash` at
 * time `at` (unix ms), signed by the broker. */
typedef struct {
    uint64_t seq;
    uint8_t hash[SCHAKEL_SHA256_LEN];
    int64_t at;
    uint8_t signature[SCHAKEL_ED25519_SIG_LEN];
} schakel_checkpoint_t;

/* Calls fn for each checkpoint of the LMDB log in dir with seq >= from_seq,
 * in order (read-only; the broker may run). fn returns non-zero to stop.
 * Returns 0, SCHAKEL_EIO (not a log) or SCHAKEL_ECORRUPT (a checkpoint
 * does not decode). */
SCHAKEL_MUST_USE int schakel_lmdb_checkpoints(const char *dir, uint64_t from_seq,
                                              int (*fn)(void *arg, const schakel_checkpoint_t *cp),
                                              void *arg);

/* The chain hash h[seq] of the LMDB log in dir. 0, SCHAKEL_ENOTFOUND (no
 * such record: the log is shorter) or SCHAKEL_EIO. */
SCHAKEL_MUST_USE int schakel_lmdb_hash_at(const char *dir, uint64_t seq, uint8_t out[SCHAKEL_SHA256_LEN]);

/* Message a checkpoint signature covers: "schakel/v1/checkpoint" ||
 * u64be(seq) || hash || i64be(at), 69 bytes. */
#define SCHAKEL_CHECKPOINT_MSG_LEN 69
void schakel_checkpoint_message(const schakel_checkpoint_t *cp, uint8_t out[SCHAKEL_CHECKPOINT_MSG_LEN]);

#endif
