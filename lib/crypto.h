/* Cryptography for schakel, on OpenSSL: SHA-256 for the hash chain and
 * batch digests, HMAC-SHA-256 for subject pseudonyms, Ed25519 for event and
 * checkpoint signatures, AES-256-GCM for payloads at rest. All functions are
 * thread-safe and keep no state between calls. */
#ifndef SCHAKEL_CRYPTO_H
#define SCHAKEL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

#define SCHAKEL_SHA256_LEN 32
#define SCHAKEL_ED25519_PUB_LEN 32
#define SCHAKEL_ED25519_SEC_LEN 32 /* the seed; the public key derives from it */
#define SCHAKEL_ED25519_SIG_LEN 64
#define SCHAKEL_AEAD_KEY_LEN 32
#define SCHAKEL_AEAD_NONCE_LEN 12
#define SCHAKEL_AEAD_TAG_LEN 16

/* SHA-256 of len bytes at data into out. */
void schakel_sha256(const void *data, size_t len, uint8_t out[SCHAKEL_SHA256_LEN]);

/* Incremental SHA-256. A schakel_sha256_t is a plain struct the caller owns
 * (no allocation); init, update any number of times, final once. */
typedef struct {
    uint8_t opaque[128];
} schakel_sha256_t;
void schakel_sha256_init(schakel_sha256_t *h);
void schakel_sha256_update(schakel_sha256_t *h, const void *data, size_t len);
void schakel_sha256_final(schakel_sha256_t *h, uint8_t out[SCHAKEL_SHA256_LEN]);

/* HMAC-SHA-256(key, data) into out. Returns 0 or SCHAKEL_ECRYPTO. */
SCHAKEL_MUST_USE int schakel_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                                         uint8_t out[SCHAKEL_SHA256_LEN]);

/* The same under one key for many messages: _key prepares the key (up to
 * 64 bytes) once, _with then spares each message the key's two blocks.
 * A prepared key is only read, by any number of threads. 0 or
 * SCHAKEL_ECRYPTO (SCHAKEL_EINVAL: a longer key). */
typedef struct {
    _Alignas(16) uint8_t opaque[320];
} schakel_hmac_key_t;
SCHAKEL_MUST_USE int schakel_hmac_sha256_key(schakel_hmac_key_t *k, const void *key, size_t keylen);
SCHAKEL_MUST_USE int schakel_hmac_sha256_with(const schakel_hmac_key_t *k, const void *data, size_t len,
                                              uint8_t out[SCHAKEL_SHA256_LEN]);

/* Fills buf with len cryptographically random bytes. Returns 0 or
 * SCHAKEL_ECRYPTO (the system's random source failed). */
SCHAKEL_MUST_USE int schakel_random(void *buf, size_t len);

/* New Ed25519 key pair. Returns 0 or SCHAKEL_ECRYPTO. */
int schakel_ed25519_keygen(uint8_t pub[SCHAKEL_ED25519_PUB_LEN], uint8_t sec[SCHAKEL_ED25519_SEC_LEN]);
/* Derives the public key of a secret key (seed). */
int schakel_ed25519_public(const uint8_t sec[SCHAKEL_ED25519_SEC_LEN], uint8_t pub[SCHAKEL_ED25519_PUB_LEN]);
/* Signs msg. Returns 0 or SCHAKEL_ECRYPTO. */
SCHAKEL_MUST_USE int schakel_ed25519_sign(const uint8_t sec[SCHAKEL_ED25519_SEC_LEN], const void *msg,
                                          size_t len, uint8_t sig[SCHAKEL_ED25519_SIG_LEN]);
/* Returns 0 if sig is a valid signature of msg by pub, SCHAKEL_EAUTH if not. */
int schakel_ed25519_verify(const uint8_t pub[SCHAKEL_ED25519_PUB_LEN], const void *msg, size_t len,
                           const uint8_t sig[SCHAKEL_ED25519_SIG_LEN]);

/* AES-256-GCM. seal writes len + SCHAKEL_AEAD_TAG_LEN bytes to out (the tag
 * last); open reads such a ciphertext of clen bytes and writes clen -
 * SCHAKEL_AEAD_TAG_LEN bytes to out. aad may be NULL when aadlen is 0.
 * Return 0, SCHAKEL_EINVAL (clen shorter than a tag), SCHAKEL_EAUTH (the
 * ciphertext, tag or aad was altered, or the key is wrong) or
 * SCHAKEL_ECRYPTO. */
SCHAKEL_MUST_USE int schakel_aead_seal(const uint8_t key[SCHAKEL_AEAD_KEY_LEN],
                                       const uint8_t nonce[SCHAKEL_AEAD_NONCE_LEN], const void *aad,
                                       size_t aadlen, const void *in, size_t len, uint8_t *out);
SCHAKEL_MUST_USE int schakel_aead_open(const uint8_t key[SCHAKEL_AEAD_KEY_LEN],
                                       const uint8_t nonce[SCHAKEL_AEAD_NONCE_LEN], const void *aad,
                                       size_t aadlen, const uint8_t *in, size_t clen, uint8_t *out);

/* Lower-case hex. encode writes 2*len chars and a NUL to out (2*len+1
 * bytes). decode reads exactly 2*outlen hex chars from a NUL-terminated
 * string and returns 0, or SCHAKEL_EINVAL if the length or a char is wrong. */
void schakel_hex_encode(const void *in, size_t len, char *out);
int schakel_hex_decode(const char *hex, uint8_t *out, size_t outlen);

/* Compares two buffers in time independent of their content. 0 if equal. */
int schakel_memeq_ct(const void *a, const void *b, size_t len);

/* An HTTP Authorization header "Bearer TOKEN" (spaces and tabs around
 * TOKEN dropped): the SHA-256 of TOKEN into hash, 0; -1 for any other
 * header or none. Endpoints keep only their token's digest and compare
 * digests with schakel_memeq_ct (the adapter, the monitor). */
int schakel_bearer_sha256(const char *auth, uint8_t hash[SCHAKEL_SHA256_LEN]);

#endif
