/* A record's body and its batch proof for `audit verify`, decoded without
 * copying: their bytes fields (the ciphertext, the batch's event hashes)
 * point into the stored record or proof instead of into copies, and the
 * structs come from the caller's arena. Only the form the broker writes is
 * taken here (the fields of RecordBody or BatchProof, each with its wire
 * type, varints that fit their field, one-byte keys); anything else (an
 * unknown field, another wire type, a varint too long, a truncated field)
 * goes to protobuf-c's own unpack, which decides. So the result is what
 * protobuf-c's unpack gives, field for field (unit_test_record_body holds
 * the two side by side). */
#include <string.h>

#include "store_lmdb_impl.h"

/* A varint of at most 10 bytes that fits 64 bits: its length, or 0. */
static size_t varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (i == 9 && p[i] > 1) return 0; /* beyond 64 bits */
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* Field numbers that are varints, and their widths (4: 32 bits). */
static int varint_field(unsigned f)
{
    switch (f) {
    case 1:
    case 2:
    case 10: return 8;
    case 4:
    case 11: return 4;
    default: return 0;
    }
}

/* A length-delimited field's length (below 2^28: four bytes of varint at
 * most) at p; where its bytes start, or NULL when they do not fit. */
static const uint8_t *lenfield(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    size_t n = varint(p, end, v);
    return n && n <= 4 && *v <= (uint64_t)(end - p - n) ? p + n : NULL;
}

/* A string as protobuf-c gives it: a copy, ended by a NUL. */
static char *string(ProtobufCAllocator *a, const uint8_t *p, size_t n)
{
    char *s = a->alloc(a->allocator_data, n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static int fast(ProtobufCAllocator *a, const uint8_t *p, size_t len, Schakel__V1__RecordBody *b)
{
    const uint8_t *end = p + len;
    while (p < end) {
        uint8_t key = *p++;
        unsigned f = key >> 3, wt = key & 7;
        uint64_t v;
        size_t n;
        if (key & 0x80 || f < 1 || f > 11) return 0;
        if (wt == 0) {
            int width = varint_field(f);
            if (!width || !(n = varint(p, end, &v)) || (width == 4 && v > UINT32_MAX)) return 0;
            p += n;
            switch (f) {
            case 1: b->seq = v; break;
            case 2: b->recorded_at = (int64_t)v; break;
            case 4: b->type = (Schakel__V1__EventType)(int32_t)(uint32_t)v; break;
            case 10: b->proof_seq = v; break;
            default: b->proof_index = (uint32_t)v; break;
            }
            continue;
        }
        if (wt != 2 || varint_field(f) || !(p = lenfield(p, end, &v))) return 0;
        if (f == 5) {
            if (!(b->source_org = string(a, p, v))) return 0;
        } else {
            ProtobufCBinaryData *d = f == 3   ? &b->event_id
                                     : f == 6 ? &b->key_id
                                     : f == 7 ? &b->nonce
                                     : f == 8 ? &b->ciphertext
                                              : &b->event_hash;
            d->data = v ? (uint8_t *)p : NULL; /* protobuf-c: NULL when empty */
            d->len = v;
        }
        p += v;
    }
    return 1;
}

Schakel__V1__RecordBody *lmdb_body_unpack(ProtobufCAllocator *a, const uint8_t *data, size_t len)
{
    Schakel__V1__RecordBody *b = a->alloc(a->allocator_data, sizeof *b);
    if (!b) return NULL;
    schakel__v1__record_body__init(b);
    if (fast(a, data, len, b)) return b;
    /* the arena keeps what the fast path took; it goes with the window */
    return schakel__v1__record_body__unpack(a, len, data);
}

/* Keys of BatchProof's fields, all length-delimited: signer_org,
 * signature, event_hashes. */
#define KEY_SIGNER 0x0a
#define KEY_SIGNATURE 0x12
#define KEY_HASH 0x1a

/* Counts the event hashes, checking the form (0 when it is another);
 * then, with fill, fills them into hs (room for cap) and the other
 * fields into b. */
static int fast_proof(ProtobufCAllocator *a, const uint8_t *p, size_t len, Schakel__V1__BatchProof *b,
                      int fill, ProtobufCBinaryData *hs, size_t cap, size_t *n_hashes)
{
    const uint8_t *end = p + len;
    size_t n = 0;
    while (p < end) {
        uint8_t key = *p++;
        uint64_t v;
        if ((key != KEY_SIGNER && key != KEY_SIGNATURE && key != KEY_HASH) || !(p = lenfield(p, end, &v)))
            return 0;
        if (key == KEY_HASH) {
            if (fill && (!hs || n >= cap)) return 0;
            if (fill) hs[n] = (ProtobufCBinaryData){v, v ? (uint8_t *)p : NULL};
            n++;
        } else if (fill && key == KEY_SIGNER) {
            if (!(b->signer_org = string(a, p, v))) return 0;
        } else if (fill) {
            b->signature = (ProtobufCBinaryData){v, v ? (uint8_t *)p : NULL};
        }
        p += v;
    }
    *n_hashes = n;
    return 1;
}

Schakel__V1__BatchProof *lmdb_proof_unpack(ProtobufCAllocator *a, const uint8_t *data, size_t len)
{
    Schakel__V1__BatchProof *b = a->alloc(a->allocator_data, sizeof *b);
    size_t n = 0;
    if (!b) return NULL;
    schakel__v1__batch_proof__init(b);
    if (fast_proof(a, data, len, b, 0, NULL, 0, &n)) {
        ProtobufCBinaryData *hs = n ? a->alloc(a->allocator_data, n * sizeof *hs) : NULL;
        if ((hs || !n) && fast_proof(a, data, len, b, 1, hs, n, &n)) {
            b->n_event_hashes = n;
            b->event_hashes = hs;
            return b;
        }
    }
    return schakel__v1__batch_proof__unpack(a, len, data);
}
