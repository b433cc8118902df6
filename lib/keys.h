/* One key file per organisation (and per broker or service): its id, its
 * CURVE key pair (for ZeroMQ transport security) and its Ed25519 key pair
 * (for signing event batches and checkpoints).
 *
 * Secret file `<dir>/<id>.key` (mode 0600), JSON:
 *   {"id": "...", "curve_public": "<Z85, 40 chars>", "curve_secret": "<Z85>",
 *    "sign_public": "<hex, 64>", "sign_secret": "<hex, 64>"}
 * Public file `<dir>/<id>.pub`, the same without the two secrets. The public
 * file is what an organisation hands to the directory's keeper. */
#ifndef SCHAKEL_KEYS_H
#define SCHAKEL_KEYS_H

#include "crypto.h"
#include "error.h"

#define SCHAKEL_ID_MAX 64 /* organisation ids: [a-z0-9._/-], 1..63 chars */
#define SCHAKEL_Z85_KEY_LEN 40

typedef struct {
    char id[SCHAKEL_ID_MAX];
    char curve_public[SCHAKEL_Z85_KEY_LEN + 1];
    char curve_secret[SCHAKEL_Z85_KEY_LEN + 1]; /* empty in a public-only key */
    uint8_t sign_public[SCHAKEL_ED25519_PUB_LEN];
    uint8_t sign_secret[SCHAKEL_ED25519_SEC_LEN];
    int has_secret;
} schakel_keys_t;

/* Returns 1 if id is a valid organisation id (see above), else 0. */
int schakel_id_valid(const char *id);

/* Fills keys with a new pair of each kind for id. Returns 0, SCHAKEL_EINVAL
 * (bad id) or SCHAKEL_ECRYPTO. */
SCHAKEL_MUST_USE int schakel_keys_generate(schakel_keys_t *keys, const char *id);

/* Writes <dir>/<id>.key (0600, only if keys->has_secret) and <dir>/<id>.pub,
 * each atomically (temp file, fsync, rename). Refuses to overwrite an
 * existing .key (SCHAKEL_EEXIST). Returns 0, SCHAKEL_EEXIST or SCHAKEL_EIO. */
SCHAKEL_MUST_USE int schakel_keys_save(const schakel_keys_t *keys, const char *dir);

/* Reads a .key or .pub file. With a .pub file has_secret is 0. Returns 0,
 * SCHAKEL_EIO, or SCHAKEL_ECONFIG with the reason in why (may be NULL). */
SCHAKEL_MUST_USE int schakel_keys_load(schakel_keys_t *keys, const char *path, char *why);

/* Wipes the secrets from memory. */
void schakel_keys_wipe(schakel_keys_t *keys);

#endif
