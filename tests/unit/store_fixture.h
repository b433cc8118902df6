/* A fixture for tests of the LMDB log on a real LMDB: a temp directory, a
 * master key and a signing key pair (setup/teardown per test), the store
 * opened on it, and batches of synthetic events. Include after cmocka.h. */
#ifndef SCHAKEL_TEST_STORE_FIXTURE_H
#define SCHAKEL_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "error.h"
#include "store_lmdb.h"

typedef struct {
    char dir[64];
    uint8_t master[32];
    uint8_t sign_sec[32], sign_pub[32];
} fx_t;

static inline int store_fx_rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

static inline int store_fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/schakel-store-XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    if (schakel_random(fx->master, 32) != 0) return -1;
    schakel_ed25519_keygen(fx->sign_pub, fx->sign_sec);
    *state = fx;
    return 0;
}

static inline int store_fx_teardown(void **state)
{
    fx_t *fx = *state;
    nftw(fx->dir, store_fx_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* The log in fx->dir; 0 for checkpoint_every, initial or max: the store's
 * default. Fails the test when it does not open. */
static inline schakel_store_t *store_fx_open(fx_t *fx, uint64_t checkpoint_every, size_t initial, size_t max)
{
    schakel_lmdb_options_t o = {0};
    o.dir = fx->dir;
    memcpy(o.master_key, fx->master, 32);
    o.sign_secret = fx->sign_sec;
    o.checkpoint_every = checkpoint_every;
    o.map_initial = initial;
    o.map_max = max;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_store_t *s = schakel_store_open_lmdb(&o, why);
    if (!s) fail_msg("open: %s", why);
    return s;
}

/* Appends n synthetic events of payload bytes about subject from school-a
 * in one batch; ids from base, each event's bytes the low byte of its id.
 * Returns the store's answer; *first_seq (if not NULL): the first seq. */
static inline int store_fx_append_as(schakel_store_t *s, int deferred, unsigned base, size_t n,
                                     size_t payload, const char *subject, uint64_t *first_seq)
{
    schakel_append_item_t *items = calloc(n, sizeof *items);
    uint8_t(*ids)[16] = calloc(n, 16);
    uint8_t(*hashes)[32] = calloc(n, 32);
    uint8_t *data = malloc(n * payload);
    for (size_t i = 0; i < n; i++) {
        unsigned v = base + (unsigned)i;
        memcpy(ids[i], &v, sizeof v);
        memset(data + i * payload, (int)(v & 0xff), payload);
        items[i].event = data + i * payload;
        items[i].event_len = payload;
        items[i].event_id = ids[i];
        items[i].type = 100;
        items[i].subject = subject;
        schakel_sha256(items[i].event, payload, items[i].event_hash);
        memcpy(hashes[i], items[i].event_hash, 32);
        items[i].proof_index = (uint32_t)i;
    }
    uint8_t sig[64] = {1};
    schakel_append_batch_t b = {"school-a", sig, (const uint8_t(*)[32])hashes, n, items, n};
    char why[SCHAKEL_ERRLEN] = "";
    int rc = deferred ? schakel_store_append_deferred(s, &b, 1, 1795000000000LL, why)
                      : schakel_store_append(s, &b, 1, 1795000000000LL, why);
    if (rc == 0 && first_seq) *first_seq = items[0].seq;
    free(items);
    free(ids);
    free(hashes);
    free(data);
    return rc;
}

static inline int store_fx_append_n(schakel_store_t *s, unsigned base, size_t n, size_t payload,
                                    const char *subject, uint64_t *first_seq)
{
    return store_fx_append_as(s, 0, base, n, payload, subject, first_seq);
}

#endif
