/* A record's body and its batch proof as `audit verify` decodes them
 * (lmdb_body_unpack, lmdb_proof_unpack: bytes fields left in the stored
 * record, lib/store_lmdb_body.c) are what protobuf-c unpacks, field for
 * field: bodies and proofs as the broker writes them, with fields absent
 * or empty; and in any other form (an unknown field, another wire type, a
 * field twice, a varint too wide for its field, cut short anywhere), which
 * must give what protobuf-c gives, also when that is "does not decode". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "store_lmdb_impl.h"

static uint64_t rng = 0x5eed;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void same_bytes(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    assert_int_equal(a->len, b->len);
    assert_int_equal(a->data == NULL, b->data == NULL);
    if (a->len) assert_memory_equal(a->data, b->data, a->len);
}

/* buf decoded both ways gives the same; 1 when it decoded. */
static int same_as_protobuf_c(const uint8_t *buf, size_t len)
{
    schakel_arena_t *ar = schakel_arena_new(0);
    assert_non_null(ar);
    Schakel__V1__RecordBody *want = schakel__v1__record_body__unpack(NULL, len, buf);
    Schakel__V1__RecordBody *got = lmdb_body_unpack(schakel_arena_allocator(ar), buf, len);
    assert_int_equal(want == NULL, got == NULL);
    if (want) {
        assert_true(want->seq == got->seq);
        assert_true(want->recorded_at == got->recorded_at);
        assert_int_equal(want->type, got->type);
        assert_string_equal(want->source_org, got->source_org);
        assert_true(want->proof_seq == got->proof_seq);
        assert_int_equal(want->proof_index, got->proof_index);
        same_bytes(&want->event_id, &got->event_id);
        same_bytes(&want->key_id, &got->key_id);
        same_bytes(&want->nonce, &got->nonce);
        same_bytes(&want->ciphertext, &got->ciphertext);
        same_bytes(&want->event_hash, &got->event_hash);
        assert_int_equal(want->base.n_unknown_fields, got->base.n_unknown_fields);
        schakel__v1__record_body__free_unpacked(want, NULL);
    }
    schakel_arena_destroy(&ar);
    return want != NULL;
}

static uint8_t bytes_pool[4096];

/* A body as the broker writes it, some fields left out or empty. */
static size_t random_body(uint8_t *out, int sparse)
{
    static const char *orgs[] = {"school-a", "", "smw-b", "broker"};
    Schakel__V1__RecordBody b = SCHAKEL__V1__RECORD_BODY__INIT;
    int keep = sparse ? (int)next() : -1;
    if (keep & 1) b.seq = next() >> (next() % 64);
    if (keep & 2) b.recorded_at = (int64_t)(next() >> (next() % 64)) * (next() & 1 ? -1 : 1);
    if (keep & 4) b.type = (Schakel__V1__EventType)(next() % 40);
    if (keep & 8) b.source_org = (char *)orgs[next() % 4];
    if (keep & 16) b.proof_seq = next() >> (next() % 64);
    if (keep & 32) b.proof_index = (uint32_t)next();
    ProtobufCBinaryData *fields[] = {&b.event_id, &b.key_id, &b.nonce, &b.ciphertext, &b.event_hash};
    for (int i = 0; i < 5; i++) {
        if (!(keep & (64 << i))) continue;
        size_t n = i == 3 ? next() % 2000 : next() % 40;
        fields[i]->len = n;
        fields[i]->data = bytes_pool + next() % (sizeof bytes_pool - n);
    }
    return schakel__v1__record_body__pack(&b, out);
}

static void broker_bodies_decode_as_protobuf_c_does_in_place(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bytes_pool; i++) bytes_pool[i] = (uint8_t)next();
    uint8_t buf[8192];
    for (int round = 0; round < 20000; round++) {
        size_t len = random_body(buf, round % 2);
        assert_true(same_as_protobuf_c(buf, len));
        /* and in place: a ciphertext that is there points into the record */
        schakel_arena_t *ar = schakel_arena_new(0);
        Schakel__V1__RecordBody *b = lmdb_body_unpack(schakel_arena_allocator(ar), buf, len);
        if (b->ciphertext.len)
            assert_true(b->ciphertext.data > buf && b->ciphertext.data + b->ciphertext.len <= buf + len);
        schakel_arena_destroy(&ar);
    }
}

static void other_forms_decode_as_protobuf_c_decides(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t bytes[24];
        size_t len;
    } cases[] = {
        {"unknown field 12", {0x08, 0x05, 0x60, 0x01}, 4},
        {"unknown field 200 (two-byte key)", {0xc0, 0x0c, 0x01, 0x08, 0x05}, 5},
        {"field 0", {0x00, 0x01}, 2},
        {"event_id as a varint", {0x18, 0x05}, 2},
        {"seq as bytes", {0x0a, 0x01, 0x05}, 3},
        {"seq as fixed64", {0x09, 1, 2, 3, 4, 5, 6, 7, 8}, 9},
        {"source_org twice: the last counts", {0x2a, 0x01, 'a', 0x2a, 0x02, 'b', 'c'}, 7},
        {"ciphertext twice, then empty", {0x42, 0x02, 1, 2, 0x42, 0x00}, 6},
        {"proof_index beyond 32 bits", {0x58, 0x80, 0x80, 0x80, 0x80, 0x10}, 6},
        {"type negative (ten bytes)", {0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11},
        {"seq of eleven bytes", {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 12},
        {"seq beyond 64 bits", {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, 11},
        {"seq with a padded varint", {0x08, 0x85, 0x80, 0x00}, 4},
        {"length of five bytes", {0x1a, 0x81, 0x80, 0x80, 0x80, 0x00, 0x07}, 7},
        {"length beyond the end", {0x1a, 0x05, 1, 2}, 4},
        {"key with no value", {0x08}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("%s\n", cases[i].what);
        (void)same_as_protobuf_c(cases[i].bytes, cases[i].len);
    }
}

static void a_body_cut_short_anywhere_decodes_as_protobuf_c_decides(void **state)
{
    (void)state;
    uint8_t buf[8192];
    for (int round = 0; round < 30; round++) {
        size_t len = random_body(buf, 0);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1); /* nothing past the cut to read */
            assert_non_null(copy);
            memcpy(copy, buf, cut);
            (void)same_as_protobuf_c(copy, cut);
            free(copy);
        }
    }
}

/* buf decoded both ways as a batch proof gives the same; 1 when it decoded. */
static int proof_same_as_protobuf_c(const uint8_t *buf, size_t len)
{
    schakel_arena_t *ar = schakel_arena_new(0);
    assert_non_null(ar);
    Schakel__V1__BatchProof *want = schakel__v1__batch_proof__unpack(NULL, len, buf);
    Schakel__V1__BatchProof *got = lmdb_proof_unpack(schakel_arena_allocator(ar), buf, len);
    assert_int_equal(want == NULL, got == NULL);
    if (want) {
        assert_string_equal(want->signer_org, got->signer_org);
        same_bytes(&want->signature, &got->signature);
        assert_int_equal(want->n_event_hashes, got->n_event_hashes);
        for (size_t i = 0; i < want->n_event_hashes; i++)
            same_bytes(&want->event_hashes[i], &got->event_hashes[i]);
        assert_int_equal(want->base.n_unknown_fields, got->base.n_unknown_fields);
        schakel__v1__batch_proof__free_unpacked(want, NULL);
    }
    schakel_arena_destroy(&ar);
    return want != NULL;
}

/* A proof as the broker writes it (some parts left out or empty). */
static size_t random_proof(uint8_t *out, int sparse)
{
    static const char *orgs[] = {"school-a", "", "smw-b", "broker"};
    ProtobufCBinaryData hs[200];
    Schakel__V1__BatchProof b = SCHAKEL__V1__BATCH_PROOF__INIT;
    int keep = sparse ? (int)next() : -1;
    if (keep & 1) b.signer_org = (char *)orgs[next() % 4];
    if (keep & 2) b.signature = (ProtobufCBinaryData){next() % 70, bytes_pool + next() % 1000};
    if (keep & 4) {
        b.n_event_hashes = next() % 200;
        for (size_t i = 0; i < b.n_event_hashes; i++)
            hs[i] = (ProtobufCBinaryData){i % 7 == 6 && sparse ? next() % 3 : 32, bytes_pool + next() % 1000};
        b.event_hashes = hs;
    }
    return schakel__v1__batch_proof__pack(&b, out);
}

static void batch_proofs_decode_as_protobuf_c_does_in_place(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bytes_pool; i++) bytes_pool[i] = (uint8_t)next();
    uint8_t buf[16384];
    for (int round = 0; round < 5000; round++) {
        size_t len = random_proof(buf, round % 2);
        assert_true(proof_same_as_protobuf_c(buf, len));
        schakel_arena_t *ar = schakel_arena_new(0);
        Schakel__V1__BatchProof *b = lmdb_proof_unpack(schakel_arena_allocator(ar), buf, len);
        for (size_t i = 0; i < b->n_event_hashes; i++) /* in place */
            if (b->event_hashes[i].len)
                assert_true(b->event_hashes[i].data > buf && b->event_hashes[i].data < buf + len);
        schakel_arena_destroy(&ar);
    }
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        {"unknown field 4", {0x1a, 0x01, 0x07, 0x20, 0x01}, 5},
        {"signature as a varint", {0x10, 0x05}, 2},
        {"signer twice: the last counts", {0x0a, 0x01, 'a', 0x0a, 0x01, 'b'}, 6},
        {"an empty hash among others", {0x1a, 0x01, 0x07, 0x1a, 0x00, 0x1a, 0x01, 0x08}, 8},
        {"hash beyond the end", {0x1a, 0x05, 1, 2}, 4},
        {"nothing", {0}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("%s\n", cases[i].what);
        (void)proof_same_as_protobuf_c(cases[i].bytes, cases[i].len);
    }
    for (int round = 0; round < 10; round++) {
        size_t len = random_proof(buf, 0);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            assert_non_null(copy);
            memcpy(copy, buf, cut);
            (void)proof_same_as_protobuf_c(copy, cut);
            free(copy);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broker_bodies_decode_as_protobuf_c_does_in_place),
        cmocka_unit_test(other_forms_decode_as_protobuf_c_decides),
        cmocka_unit_test(a_body_cut_short_anywhere_decodes_as_protobuf_c_decides),
        cmocka_unit_test(batch_proofs_decode_as_protobuf_c_does_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
