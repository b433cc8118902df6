/* The event codec: size-capped decoding, event type names taken from the
 * envelope's body field names, validation shared by broker and clients,
 * and the batch digest that publishers sign. */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "keys.h"

const char *schakel_event_type_name(int type)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&schakel__v1__envelope__descriptor, (unsigned)type);
    return f && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ? f->name : NULL;
}

int schakel_event_type_parse(const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&schakel__v1__envelope__descriptor, name);
    return f && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ? (int)f->id : 0;
}

size_t schakel_event_types(const int **types)
{
    static int list[256];
    static size_t n;
    if (!n) {
        const ProtobufCEnumDescriptor *e = &schakel__v1__event_type__descriptor;
        for (unsigned i = 0; i < e->n_values; i++)
            if (e->values[i].value > 0) list[n++] = e->values[i].value;
    }
    *types = list;
    return n;
}

schakel_envelope_t *schakel_envelope_decode_with(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                                                 char *why)
{
    if (len > SCHAKEL_MAX_DIRECTORY_BYTES) {
        schakel_fail(why, SCHAKEL_ETOOBIG, "event is %zu bytes; the limit is %d", len,
                     SCHAKEL_MAX_EVENT_BYTES);
        return NULL;
    }
    schakel_envelope_t *e = schakel__v1__envelope__unpack(alloc, len, buf);
    if (!e) {
        schakel_fail(why, SCHAKEL_EDECODE, "event (%zu bytes) does not decode as schakel.v1.Envelope", len);
        return NULL;
    }
    /* the exception by the body that is there, not by the type it claims */
    int document = e->body_case == SCHAKEL__V1__ENVELOPE__BODY_DIRECTORY_UPDATE ||
                   e->body_case == SCHAKEL__V1__ENVELOPE__BODY_RULES_UPDATE;
    if (len > SCHAKEL_MAX_EVENT_BYTES && !(document && SCHAKEL_IS_DOCUMENT_EVENT(e->type))) {
        schakel_fail(why, SCHAKEL_ETOOBIG, "event is %zu bytes; the limit is %d", len,
                     SCHAKEL_MAX_EVENT_BYTES);
        protobuf_c_message_free_unpacked(&e->base, alloc);
        return NULL;
    }
    return e;
}

schakel_envelope_t *schakel_envelope_decode(const uint8_t *buf, size_t len, char *why)
{
    return schakel_envelope_decode_with(buf, len, NULL, why);
}

void schakel_envelope_free(schakel_envelope_t *env)
{
    if (env) schakel__v1__envelope__free_unpacked(env, NULL);
}

int schakel_envelope_encode(const schakel_envelope_t *env, uint8_t **out, size_t *outlen)
{
    size_t len = schakel__v1__envelope__get_packed_size(env);
    if (len > (SCHAKEL_IS_DOCUMENT_EVENT(env->type) ? SCHAKEL_MAX_DIRECTORY_BYTES : SCHAKEL_MAX_EVENT_BYTES))
        return SCHAKEL_ETOOBIG;
    *out = malloc(len ? len : 1);
    if (!*out) return SCHAKEL_ENOMEM;
    *outlen = schakel__v1__envelope__pack(env, *out);
    return 0;
}

const ProtobufCMessage *schakel_envelope_body(const schakel_envelope_t *env)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&schakel__v1__envelope__descriptor, (unsigned)env->body_case);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return NULL;
    return *(ProtobufCMessage *const *)((const char *)env + f->offset);
}

/* The field `name` of the body when it has type `type` and one value. */
static const void *body_field(const schakel_envelope_t *env, const char *name, int type)
{
    const ProtobufCMessage *b = schakel_envelope_body(env);
    if (!b) return NULL;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(b->descriptor, name);
    if (!f || (int)f->type != type || f->label == PROTOBUF_C_LABEL_REPEATED) return NULL;
    return (const char *)b + f->offset;
}

const ProtobufCBinaryData *schakel_body_bytes(const schakel_envelope_t *env, const char *name)
{
    const ProtobufCBinaryData *v = body_field(env, name, PROTOBUF_C_TYPE_BYTES);
    return v && v->len ? v : NULL;
}

const char *schakel_body_string(const schakel_envelope_t *env, const char *name)
{
    char *const *v = body_field(env, name, PROTOBUF_C_TYPE_STRING);
    return v && *v ? *v : "";
}

static void batch_digest_start(schakel_sha256_t *h, size_t n)
{
    uint8_t cnt[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    schakel_sha256_init(h);
    schakel_sha256_update(h, "schakel/v1/batch", 16);
    schakel_sha256_update(h, cnt, 4);
}

void schakel_batch_digest(const uint8_t (*hashes)[SCHAKEL_SHA256_LEN], size_t n,
                          uint8_t out[SCHAKEL_SHA256_LEN])
{
    schakel_sha256_t h;
    batch_digest_start(&h, n);
    for (size_t i = 0; i < n; i++) schakel_sha256_update(&h, hashes[i], SCHAKEL_SHA256_LEN);
    schakel_sha256_final(&h, out);
}

void schakel_batch_digest_of(const ProtobufCBinaryData *hashes, size_t n, uint8_t out[SCHAKEL_SHA256_LEN])
{
    schakel_sha256_t h;
    batch_digest_start(&h, n);
    for (size_t i = 0; i < n; i++) schakel_sha256_update(&h, hashes[i].data, SCHAKEL_SHA256_LEN);
    schakel_sha256_final(&h, out);
}
