/* Ed25519 verification (lib/crypto.c): libsodium's fast acceptance, with
 * OpenSSL's verdict on everything libsodium refuses. A good signature
 * verifies, any altered byte of the signature, message or key does not,
 * and a signature that OpenSSL accepts but libsodium refuses (the
 * small-order key and R, S = 0: [0]B - [k]A is the identity, which is R)
 * is still accepted, as the broker has always accepted it: the audit must
 * not call a log that the broker took in good faith corrupt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "crypto.h"
#include "error.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_good_signature_verifies_and_an_altered_one_does_not),
        cmocka_unit_test(what_openssl_accepts_stays_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
