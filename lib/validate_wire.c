/* Validation, the first layer: one pass over a message's serialized
 * bytes before anything reads the unpacked form (schakel_codec_check).
 * The broker runs it on every published event and on every PUBLISH frame
 * (brokers/check.c); the decoded envelope is then walked field by field
 * (validate_fields.c). */
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "error.h"
#include "validate.h"
#include "validate_impl.h"

/* ---- the wire walk ----
 *
 * protobuf-c hands strings over as NUL-terminated char*, so everything
 * after an embedded NUL is invisible to the walker above while the bytes
 * are stored and delivered as published. This pass reads the serialized
 * form itself, once, front to back: each field must be known to the
 * descriptor, arrive with its own wire type (or packed, for repeated
 * numbers), appear once unless repeated (a second copy of a field or of a
 * oneof member is hidden from every parser yet kept in the stored bytes),
 * and each string is checked over its full length. Reasons name field
 * numbers and names, never the content. */

/* A varint at *p (at most 10 bytes); -1 when it runs past end. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p == end) return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The wire type a field of this type has when not packed. */
static unsigned wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 5;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 1;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return 2;
    default: return 0; /* the varint types, bool and enum */
    }
}

/* Checks the packed values of a repeated number field: whole values only. */
static int packed_ok(unsigned wt, const uint8_t *p, const uint8_t *end)
{
    if (wt == 5) return (end - p) % 4 == 0;
    if (wt == 1) return (end - p) % 8 == 0;
    uint64_t v;
    while (p < end)
        if (read_varint(&p, end, &v) != 0) return 0;
    return 1;
}

#define SEEN_WORDS 4 /* singular fields tracked per message: 256 */
#define ONEOFS_MAX 4 /* oneofs tracked per message */

static int wire_message(walk_t *w, const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end)
{
    uint64_t seen[SEEN_WORDS] = {0};
    const ProtobufCFieldDescriptor *oneofs[ONEOFS_MAX]; /* a member seen, per oneof */
    size_t n_oneofs = 0;
    while (p < end) {
        uint64_t key, len = 0;
        if (read_varint(&p, end, &key) != 0)
            return schakel_fail(w->why, SCHAKEL_EDECODE, "%s: a field key runs past the end", d->name);
        uint64_t num = key >> 3;
        unsigned wt = (unsigned)(key & 7);
        const ProtobufCFieldDescriptor *f =
            num && num <= 536870911u ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
        if (num == 0 || num > 536870911u) /* no field can have this number */
            return schakel_fail(w->why, SCHAKEL_EDECODE, "%s: field number %llu is not valid", d->name,
                                (unsigned long long)num);
        if (!f)
            return schakel_fail(w->why, SCHAKEL_EINVAL, "unknown field %llu in %s: remove it",
                                (unsigned long long)num, d->name);
        const uint8_t *v = p;
        switch (wt) {
        case 0:
            if (read_varint(&p, end, &len) != 0) goto truncated;
            break;
        case 1:
        case 5:
            if ((size_t)(end - p) < (wt == 1 ? 8u : 4u)) goto truncated;
            p += wt == 1 ? 8 : 4;
            break;
        case 2:
            if (read_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p)) goto truncated;
            v = p;
            p += len;
            break;
        default:
            return schakel_fail(w->why, SCHAKEL_EDECODE,
                                "field %u (%s) in %s: wire type %u is not used by schakel", f->id, f->name,
                                d->name, wt);
        }
        unsigned want = wire_type_of(f->type);
        int packed = f->label == PROTOBUF_C_LABEL_REPEATED && want != 2 && wt == 2;
        if (wt != want && !packed)
            return schakel_fail(w->why, SCHAKEL_EDECODE, "field %u (%s) in %s: wire type %u where %u belongs",
                                f->id, f->name, d->name, wt, want);
        if (packed && !packed_ok(want, v, p))
            return schakel_fail(w->why, SCHAKEL_EDECODE, "field %u (%s) in %s: packed values do not fit",
                                f->id, f->name, d->name);
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            size_t i = (size_t)(f - d->fields);
            if (i < 64 * SEEN_WORDS) {
                if (seen[i / 64] >> (i % 64) & 1)
                    return validate_fail_at(w, f->name, "field %u in %s is given twice: give it once", f->id,
                                            d->name);
                seen[i / 64] |= 1ull << (i % 64);
            }
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                /* members of one oneof share the offset of its case */
                size_t k = 0;
                while (k < n_oneofs && oneofs[k]->quantifier_offset != f->quantifier_offset) k++;
                if (k < n_oneofs)
                    return validate_fail_at(w, f->name, "%s and %s of %s are one choice: give one",
                                            oneofs[k]->name, f->name, d->name);
                if (n_oneofs < ONEOFS_MAX) oneofs[n_oneofs++] = f;
            }
        }
        /* the by-name kind is looked up only for a string that needs it */
        if (f->type == PROTOBUF_C_TYPE_STRING && validate_utf8(v, (size_t)len, 0) != 0 &&
            (!(validate_field_kind(f) & K_DOCUMENT) || validate_utf8(v, (size_t)len, 1) != 0))
            return validate_fail_at(w, f->name,
                                    "not valid UTF-8 over its %llu bytes, or holds a control "
                                    "character (a NUL too): codes and references only",
                                    (unsigned long long)len);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (w->depth == DEPTH_MAX) return validate_fail_at(w, f->name, "nested too deep");
            w->stack[w->depth++] = f->name;
            int rc = wire_message(w, f->descriptor, v, v + len);
            w->depth--;
            if (rc) return rc;
        }
        continue;
    truncated:
        return schakel_fail(w->why, SCHAKEL_EDECODE, "field %u (%s) in %s runs past the end", f->id, f->name,
                            d->name);
    }
    return 0;
}

int schakel_codec_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, char *why)
{
    walk_t w = {.why = why};
    return wire_message(&w, d, buf, buf + len);
}
