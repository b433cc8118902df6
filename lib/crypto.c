/* Cryptography on OpenSSL 3: hashes for the chain and batch digests, HMAC
 * for pseudonyms and key ids, Ed25519 signatures, AES-256-GCM at rest.
 * Stateless and thread-safe; errors are codes, never aborts. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "crypto.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "error.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(schakel_sha256_t),
               "schakel_sha256_t must hold an OpenSSL SHA256_CTX");

/* OpenSSL 3 looks an algorithm up by name on every use of EVP_sha256() or
 * a one-shot call; the broker hashes and seals every record, so the lookups
 * are done once. */
static pthread_once_t algos_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *aes_gcm;
static EVP_MD *sha256_md;

static void algos_fetch(void)
{
    aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

/* libsodium, for what it does faster than OpenSSL 3.0: Ed25519
 * verification, AES-256-GCM sealing and opening, HMAC-SHA-256 (see there). */
static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ready, sodium_gcm; /* sodium_gcm: AES-NI and PCLMUL, which its AES-GCM needs */

static void sodium_start(void)
{
    sodium_ready = sodium_init() >= 0;
    sodium_gcm = sodium_ready && crypto_aead_aes256gcm_is_available();
}

void schakel_sha256(const void *data, size_t len, uint8_t out[SCHAKEL_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

/* The low-level SHA256_CTX needs no allocation, which the chain's hot path
 * (one hash per record) and the caller-owned state both want. */
void schakel_sha256_init(schakel_sha256_t *h)
{
    SHA256_Init((SHA256_CTX *)h->opaque);
}

void schakel_sha256_update(schakel_sha256_t *h, const void *data, size_t len)
{
    SHA256_Update((SHA256_CTX *)h->opaque, data, len);
}

void schakel_sha256_final(schakel_sha256_t *h, uint8_t out[SCHAKEL_SHA256_LEN])
{
    SHA256_Final(out, (SHA256_CTX *)h->opaque);
}

/* libsodium's HMAC-SHA-256 (RFC 2104, as OpenSSL's) needs no algorithm
 * lookup: OpenSSL 3.0's one-shot HMAC() fetches the MAC on every call,
 * and the broker takes a key id per record (lib/store_lmdb_keys.c), a
 * sixth of its loop's time under load. OpenSSL is the fallback when
 * libsodium did not start. */
int schakel_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[SCHAKEL_SHA256_LEN])
{
    pthread_once(&sodium_once, sodium_start);
    if (sodium_ready) {
        crypto_auth_hmacsha256_state st;
        int rc = crypto_auth_hmacsha256_init(&st, key, keylen) |
                 crypto_auth_hmacsha256_update(&st, data, len) | crypto_auth_hmacsha256_final(&st, out);
        sodium_memzero(&st, sizeof st);
        return rc == 0 ? 0 : SCHAKEL_ECRYPTO;
    }
    unsigned int n = 0;
    pthread_once(&algos_once, algos_fetch);
    if (!sha256_md || !HMAC(sha256_md, key, (int)keylen, data, len, out, &n) || n != SCHAKEL_SHA256_LEN)
        return SCHAKEL_ECRYPTO;
    return 0;
}

/* A prepared key: libsodium's state after the key's two blocks, and the
 * key itself for OpenSSL when libsodium did not start. */
typedef struct {
    crypto_auth_hmacsha256_state st;
    int sodium;
    size_t keylen;
    uint8_t key[64];
} hmac_key_t;
_Static_assert(sizeof(hmac_key_t) <= sizeof(schakel_hmac_key_t), "schakel_hmac_key_t must hold hmac_key_t");

int schakel_hmac_sha256_key(schakel_hmac_key_t *k, const void *key, size_t keylen)
{
    hmac_key_t *h = (hmac_key_t *)k->opaque;
    memset(k, 0, sizeof *k);
    if (keylen > sizeof h->key) return SCHAKEL_EINVAL;
    memcpy(h->key, key, keylen);
    h->keylen = keylen;
    pthread_once(&sodium_once, sodium_start);
    h->sodium = sodium_ready && crypto_auth_hmacsha256_init(&h->st, key, keylen) == 0;
    return 0;
}

int schakel_hmac_sha256_with(const schakel_hmac_key_t *k, const void *data, size_t len,
                             uint8_t out[SCHAKEL_SHA256_LEN])
{
    const hmac_key_t *h = (const hmac_key_t *)k->opaque;
    if (!h->sodium) return schakel_hmac_sha256(h->key, h->keylen, data, len, out);
    crypto_auth_hmacsha256_state st = h->st;
    int rc = crypto_auth_hmacsha256_update(&st, data, len) | crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
    return rc == 0 ? 0 : SCHAKEL_ECRYPTO;
}

int schakel_random(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : SCHAKEL_ECRYPTO;
}

int schakel_ed25519_public(const uint8_t sec[SCHAKEL_ED25519_SEC_LEN], uint8_t pub[SCHAKEL_ED25519_PUB_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sec, SCHAKEL_ED25519_SEC_LEN);
    size_t n = SCHAKEL_ED25519_PUB_LEN;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == SCHAKEL_ED25519_PUB_LEN;
    EVP_PKEY_free(k);
    return ok ? 0 : SCHAKEL_ECRYPTO;
}

int schakel_ed25519_keygen(uint8_t pub[SCHAKEL_ED25519_PUB_LEN], uint8_t sec[SCHAKEL_ED25519_SEC_LEN])
{
    if (schakel_random(sec, SCHAKEL_ED25519_SEC_LEN) != 0) return SCHAKEL_ECRYPTO;
    return schakel_ed25519_public(sec, pub);
}

int schakel_ed25519_sign(const uint8_t sec[SCHAKEL_ED25519_SEC_LEN], const void *msg, size_t len,
                         uint8_t sig[SCHAKEL_ED25519_SIG_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sec, SCHAKEL_ED25519_SEC_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = SCHAKEL_ED25519_SIG_LEN;
    int ok = k && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == SCHAKEL_ED25519_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return ok ? 0 : SCHAKEL_ECRYPTO;
}

/* libsodium checks a signature in about half the time OpenSSL 3.0 takes
 * (`audit verify` checks one per batch and per checkpoint). Both check the
 * same equation, encode([S]B - [k]A) == R, with S < L; libsodium refuses
 * more besides (small-order or non-canonical R and A), so what it accepts
 * OpenSSL accepts too. Its acceptance is final; a refusal is handed to
 * OpenSSL, whose verdict stays the one the bus gives, the broker's and the
 * audit's alike. */
int schakel_ed25519_verify(const uint8_t pub[SCHAKEL_ED25519_PUB_LEN], const void *msg, size_t len,
                           const uint8_t sig[SCHAKEL_ED25519_SIG_LEN])
{
    pthread_once(&sodium_once, sodium_start);
    if (sodium_ready && crypto_sign_ed25519_verify_detached(sig, msg, len, pub) == 0) return 0;
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SCHAKEL_ED25519_PUB_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = SCHAKEL_ECRYPTO;
    if (k && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1)
        rc = EVP_DigestVerify(ctx, sig, SCHAKEL_ED25519_SIG_LEN, msg, len) == 1 ? 0 : SCHAKEL_EAUTH;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return rc;
}

/* One cipher context per thread, set up for AES-256-GCM once (its default
 * nonce length is our 12 bytes) and re-keyed per call: building a context
 * costs more than sealing a 300-byte record. */
static pthread_key_t aead_key;

static void aead_ctx_free(void *c)
{
    EVP_CIPHER_CTX_free(c);
}

static void aead_key_make(void)
{
    pthread_key_create(&aead_key, aead_ctx_free);
}

static EVP_CIPHER_CTX *aead_ctx(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&algos_once, algos_fetch);
    pthread_once(&once, aead_key_make);
    EVP_CIPHER_CTX *c = pthread_getspecific(aead_key);
    if (c || !aes_gcm) return c;
    c = EVP_CIPHER_CTX_new();
    if (c && EVP_CipherInit_ex(c, aes_gcm, NULL, NULL, NULL, 1) != 1) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    if (c) pthread_setspecific(aead_key, c);
    return c;
}

static int aead(int enc, const uint8_t *key, const uint8_t *nonce, const void *aad, size_t aadlen,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = aead_ctx();
    int n = 0;
    if (!c) return SCHAKEL_ECRYPTO;
    if (EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1) return SCHAKEL_ECRYPTO;
    if (aadlen && EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) != 1) return SCHAKEL_ECRYPTO;
    if (len && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1) return SCHAKEL_ECRYPTO;
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SCHAKEL_AEAD_TAG_LEN, tag) != 1)
        return SCHAKEL_ECRYPTO;
    if (EVP_CipherFinal_ex(c, out + n, &n) != 1) return enc ? SCHAKEL_ECRYPTO : SCHAKEL_EAUTH;
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SCHAKEL_AEAD_TAG_LEN, tag) != 1)
        return SCHAKEL_ECRYPTO;
    return 0;
}

int schakel_aead_seal(const uint8_t key[SCHAKEL_AEAD_KEY_LEN], const uint8_t nonce[SCHAKEL_AEAD_NONCE_LEN],
                      const void *aad, size_t aadlen, const void *in, size_t len, uint8_t *out)
{
    /* libsodium seals as it opens (below), without OpenSSL's context set
     * up per key: the broker seals every record under its child's key,
     * 10% of its loop's time under load. The same cipher, so the same
     * bytes (test_crypto: the GCM specification's test case 16). */
    pthread_once(&sodium_once, sodium_start);
    if (sodium_gcm)
        return crypto_aead_aes256gcm_encrypt_detached(out, out + len, NULL, in, len, aad, aadlen, NULL, nonce,
                                                      key) == 0
                   ? 0
                   : SCHAKEL_ECRYPTO;
    return aead(1, key, nonce, aad, aadlen, in, len, out, out + len);
}

int schakel_aead_open(const uint8_t key[SCHAKEL_AEAD_KEY_LEN], const uint8_t nonce[SCHAKEL_AEAD_NONCE_LEN],
                      const void *aad, size_t aadlen, const uint8_t *in, size_t clen, uint8_t *out)
{
    if (clen < SCHAKEL_AEAD_TAG_LEN) return SCHAKEL_EINVAL;
    /* libsodium's AES-256-GCM (the same cipher: what OpenSSL seals it
     * opens, and the reverse) opens a record in about 60% of OpenSSL's
     * time, which sets up its context through the EVP parameters for every
     * new key, and every record of the log has its child's own key. The
     * tag decides alone, as with OpenSSL: refused is SCHAKEL_EAUTH. */
    pthread_once(&sodium_once, sodium_start);
    if (sodium_gcm)
        return crypto_aead_aes256gcm_decrypt_detached(out, NULL, in, clen - SCHAKEL_AEAD_TAG_LEN,
                                                      in + clen - SCHAKEL_AEAD_TAG_LEN, aad, aadlen, nonce,
                                                      key) == 0
                   ? 0
                   : SCHAKEL_EAUTH;
    uint8_t tag[SCHAKEL_AEAD_TAG_LEN];
    memcpy(tag, in + clen - SCHAKEL_AEAD_TAG_LEN, sizeof tag);
    return aead(0, key, nonce, aad, aadlen, in, clen - SCHAKEL_AEAD_TAG_LEN, out, tag);
}

void schakel_hex_encode(const void *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = in;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = 0;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int schakel_hex_decode(const char *hex, uint8_t *out, size_t outlen)
{
    if (strlen(hex) != 2 * outlen) return SCHAKEL_EINVAL;
    for (size_t i = 0; i < outlen; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return SCHAKEL_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int schakel_memeq_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len);
}

int schakel_bearer_sha256(const char *auth, uint8_t hash[SCHAKEL_SHA256_LEN])
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return -1;
    const char *t = auth + 7;
    while (*t == ' ' || *t == '\t') t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
    schakel_sha256(t, n, hash);
    return 0;
}
