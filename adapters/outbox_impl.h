/* The outbox's parts shared by outbox.c (the tables) and outbox_key.c (its
 * keys: outbox.key, the MAC key, and their rotation). Private to those
 * two files. */
#ifndef SCHAKEL_OUTBOX_IMPL_H
#define SCHAKEL_OUTBOX_IMPL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>

#include "crypto.h"
#include "fileio.h"
#include "outbox.h"

#define OUTBOX_SEAL_OVERHEAD (SCHAKEL_AEAD_NONCE_LEN + SCHAKEL_AEAD_TAG_LEN)

struct schakel_outbox {
    MDB_env *env;
    MDB_dbi pending, ids, dead, meta, dead_at;
    int has_dead_at; /* a read-only open of an older outbox has no dead_at */
    char dir[SCHAKEL_PATH_MAX];
    /* Swapped by a rotation inside a write transaction; read by seal and
     * unseal on any thread: under key_mu. Not loaded when read_only. */
    pthread_mutex_t key_mu;
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];     /* outbox.key: seals every event */
    uint8_t mac_key[SCHAKEL_AEAD_KEY_LEN]; /* the ids' HMACs; kept in meta, sealed */
    uint64_t key_gen;                      /* meta "key_gen" this key belongs to */
    int mac_ok;                            /* mac_key opened: the key is this outbox's */
};

uint64_t outbox_meta_u64(MDB_txn *txn, schakel_outbox_t *o, const char *name);
int outbox_meta_put(MDB_txn *txn, schakel_outbox_t *o, const char *name, uint64_t value);

/* Seals len bytes as entry n (aad u64be(n)) into out (len +
 * OUTBOX_SEAL_OVERHEAD bytes) under key; unseal: a malloc'd copy, NULL
 * when it does not open. */
int outbox_seal_with(const uint8_t *key, uint64_t n, const uint8_t *in, size_t len, uint8_t *out);
uint8_t *outbox_unseal_with(const uint8_t *key, uint64_t n, const uint8_t *in, size_t clen, size_t *len);

/* At open, in its write transaction, after a format 1 outbox was sealed:
 * the key that opens this outbox (outbox.key, or outbox.key.next left by
 * a rotation cut short), the MAC key (made, and the ids' old HMACs
 * dropped, for an outbox of format 2). 0 or an LMDB / SCHAKEL_E* code. */
int outbox_keys_open(schakel_outbox_t *o, MDB_txn *txn, uint64_t format, char *why);

/* In a transaction: reloads the key when another process rotated it. */
void outbox_keys_fresh(schakel_outbox_t *o, MDB_txn *txn);

/* After an ACK emptied the outbox: a new outbox.key, every live entry
 * (pending, dead letters) and the MAC key sealed again under it, and the
 * old key overwritten, so that what the freed pages of data.mdb still hold
 * of acknowledged events opens with no key anyone has. Logs a failure
 * (the old key then stays: nothing is lost). */
void outbox_keys_rotate(schakel_outbox_t *o);

#endif
