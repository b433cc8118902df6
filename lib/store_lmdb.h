/* The LMDB backend of store.h: the embedded log every node runs
 * (lib/store_lmdb*.c). Opening it, and the two things only an LMDB log
 * has: a memory map that grows, and reader slots a dead process can
 * leave behind. Auditing an LMDB log read-only is in store_audit.h. */
#ifndef SCHAKEL_STORE_LMDB_H
#define SCHAKEL_STORE_LMDB_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "store.h"
#include "error.h"

/* Options of the LMDB store. */
typedef struct {
    const char *dir;                          /* created if missing */
    uint8_t master_key[SCHAKEL_AEAD_KEY_LEN]; /* wraps the data keys */
    const uint8_t *sign_secret;               /* broker Ed25519 seed for checkpoints; NULL: none */
    uint64_t checkpoint_every;                /* events; 0: 1000 */
    int64_t checkpoint_ms;                    /* 0: 1000 */
    size_t map_initial;                       /* bytes; 0: 64 MiB */
    size_t map_max;                           /* bytes; 0: 1 TiB. Past it appends fail SCHAKEL_EFULL */
    int read_only;                            /* for auditors: no writes at all */
} schakel_lmdb_options_t;

/* Opens (creating if needed) an LMDB log under opts->dir. NULL on failure
 * with the reason in why. A log written before table `ids` (its event-id
 * index is `by_id`, keyed by publisher and id or by the bare 16-byte id)
 * gets `ids` built from the events table and `by_id` dropped when opened
 * for writing; opened read-only, lookups use `by_id` as it is. */
schakel_store_t *schakel_store_open_lmdb(const schakel_lmdb_options_t *opts, char *why);

/* The LMDB store's map: its size now, and how often an append hit the end
 * of the map and had to grow it and try again (0 when growing ahead of
 * time works; the operator's alert when it does not). */
void schakel_lmdb_map_info(schakel_store_t *s, size_t *map_size, uint64_t *full_retries);

/* Frees the LMDB reader slots of processes that died inside a read (a
 * killed `audit verify`): while such a slot is held, LMDB cannot reuse the
 * pages freed after it and the map keeps growing. *cleared: how many were
 * freed. 0 or SCHAKEL_ESTORE. */
SCHAKEL_MUST_USE int schakel_lmdb_reader_check(schakel_store_t *s, int *cleared);

#endif
