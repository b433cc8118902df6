/* AES-256-GCM: sealed and opened with libsodium where the CPU has AES-NI,
 * else with OpenSSL (lib/crypto.c): the GCM specification's test case 16 both
 * ways, and any altered byte of ciphertext, tag, aad, nonce or key refused
 * with SCHAKEL_EAUTH, as OpenSSL refused it.
 *
 * Ed25519 verification: libsodium's fast acceptance, with
 * OpenSSL's verdict on everything libsodium refuses. A good signature
 * verifies, any altered byte of the signature, message or key does not,
 * and a signature that OpenSSL accepts but libsodium refuses (the
 * small-order key and R, S = 0: [0]B - [k]A is the identity, which is R)
 * is still accepted, as the broker has always accepted it: the audit must
 * not call a log that the broker took in good faith corrupt.
 *
 * HMAC-SHA-256 (libsodium, OpenSSL when libsodium did not start): RFC
 * 4231's test cases 1, 2 and 6 (a key longer than the block), the key
 * ids and pseudonyms on every log depend on them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "crypto.h"
#include "error.h"

static void hex(const char *h, uint8_t *out, size_t n)
{
    assert_int_equal(schakel_hex_decode(h, out, n), 0);
}

static void gcm_test_case_16_seals_and_opens(void **state)
{
    (void)state;
    uint8_t key[32], iv[12], aad[20], plain[60], want[76], got[76], back[60];
    hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key, 32);
    hex("cafebabefacedbaddecaf888", iv, 12);
    hex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, 20);
    hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        plain, 60);
    hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b",
        want, 76);
    assert_int_equal(schakel_aead_seal(key, iv, aad, sizeof aad, plain, sizeof plain, got), 0);
    assert_memory_equal(got, want, sizeof want);
    assert_int_equal(schakel_aead_open(key, iv, aad, sizeof aad, want, sizeof want, back), 0);
    assert_memory_equal(back, plain, sizeof plain);
    for (size_t i = 0; i < sizeof want; i++) { /* ciphertext and tag */
        want[i] ^= 0x10;
        assert_int_equal(schakel_aead_open(key, iv, aad, sizeof aad, want, sizeof want, back), SCHAKEL_EAUTH);
        want[i] ^= 0x10;
    }
    aad[3] ^= 1;
    assert_int_equal(schakel_aead_open(key, iv, aad, sizeof aad, want, sizeof want, back), SCHAKEL_EAUTH);
    aad[3] ^= 1;
    iv[11] ^= 1;
    assert_int_equal(schakel_aead_open(key, iv, aad, sizeof aad, want, sizeof want, back), SCHAKEL_EAUTH);
    iv[11] ^= 1;
    key[31] ^= 1;
    assert_int_equal(schakel_aead_open(key, iv, aad, sizeof aad, want, sizeof want, back), SCHAKEL_EAUTH);
    key[31] ^= 1;
    assert_int_equal(schakel_aead_open(key, iv, aad, sizeof aad, want, 15, back), SCHAKEL_EINVAL);
    /* nothing but a tag: an empty payload */
    uint8_t tag[16], none[1];
    assert_int_equal(schakel_aead_seal(key, iv, NULL, 0, "", 0, tag), 0);
    assert_int_equal(schakel_aead_open(key, iv, NULL, 0, tag, sizeof tag, none), 0);
    tag[0] ^= 1;
    assert_int_equal(schakel_aead_open(key, iv, NULL, 0, tag, sizeof tag, none), SCHAKEL_EAUTH);
}

static void a_good_signature_verifies_and_an_altered_one_does_not(void **state)
{
    (void)state;
    uint8_t pub[SCHAKEL_ED25519_PUB_LEN], sec[SCHAKEL_ED25519_SEC_LEN], sig[SCHAKEL_ED25519_SIG_LEN];
    uint8_t msg[32] = "synthetic batch digest";
    assert_int_equal(schakel_ed25519_keygen(pub, sec), 0);
    assert_int_equal(schakel_ed25519_sign(sec, msg, sizeof msg, sig), 0);
    assert_int_equal(schakel_ed25519_verify(pub, msg, sizeof msg, sig), 0);
    for (size_t i = 0; i < sizeof sig; i++) {
        sig[i] ^= 1;
        assert_int_not_equal(schakel_ed25519_verify(pub, msg, sizeof msg, sig), 0);
        sig[i] ^= 1;
    }
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] ^= 0x80;
        assert_int_not_equal(schakel_ed25519_verify(pub, msg, sizeof msg, sig), 0);
        msg[i] ^= 0x80;
    }
    pub[5] ^= 4;
    assert_int_not_equal(schakel_ed25519_verify(pub, msg, sizeof msg, sig), 0);
}

static void what_openssl_accepts_stays_accepted(void **state)
{
    (void)state;
    uint8_t pub[SCHAKEL_ED25519_PUB_LEN] = {1}, sig[SCHAKEL_ED25519_SIG_LEN] = {1};
    const char msg[] = "anything";
    assert_int_equal(schakel_ed25519_verify(pub, msg, sizeof msg, sig), 0);
    sig[32] = 1; /* S = 1: [1]B is not the identity */
    assert_int_not_equal(schakel_ed25519_verify(pub, msg, sizeof msg, sig), 0);
}

static void hmac_sha256_gives_rfc_4231_test_cases(void **state)
{
    (void)state;
    uint8_t key[131], want[32], mac[32];
    memset(key, 0x0b, 20);
    hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", want, 32);
    assert_int_equal(schakel_hmac_sha256(key, 20, "Hi There", 8, mac), 0);
    assert_memory_equal(mac, want, 32);
    hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want, 32);
    assert_int_equal(schakel_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
    assert_memory_equal(mac, want, 32);
    memset(key, 0xaa, sizeof key);
    const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
    hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", want, 32);
    assert_int_equal(schakel_hmac_sha256(key, sizeof key, m, strlen(m), mac), 0);
    assert_memory_equal(mac, want, 32);
    /* a prepared key gives the same, message after message */
    schakel_hmac_key_t k;
    assert_int_equal(schakel_hmac_sha256_key(&k, "Jefe", 4), 0);
    hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want, 32);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(schakel_hmac_sha256_with(&k, "what do ya want for nothing?", 28, mac), 0);
        assert_memory_equal(mac, want, 32);
    }
    assert_int_equal(schakel_hmac_sha256_key(&k, key, sizeof key), SCHAKEL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gcm_test_case_16_seals_and_opens),
        cmocka_unit_test(a_good_signature_verifies_and_an_altered_one_does_not),
        cmocka_unit_test(what_openssl_accepts_stays_accepted),
        cmocka_unit_test(hmac_sha256_gives_rfc_4231_test_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
