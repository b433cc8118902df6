/* The event codec: decoding envelopes with a size cap, event type names,
 * fields of a body by name, and the batch digest that publishers sign.
 * Validating an envelope before anything is stored is in validate.h. The
 * broker and every client use the same rules. */
#ifndef SCHAKEL_CODEC_H
#define SCHAKEL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "schakel/v1/bus.pb-c.h"
#include "schakel/v1/envelope.pb-c.h"
#include "error.h"

#define SCHAKEL_EVENT_ID_LEN 16
#define SCHAKEL_MAX_EVENT_BYTES (64 * 1024)       /* one serialized envelope */
#define SCHAKEL_MAX_DIRECTORY_BYTES (1024 * 1024) /* a directory_update or rules_update, the exceptions */
/* May an event of this type be up to SCHAKEL_MAX_DIRECTORY_BYTES long? */
#define SCHAKEL_IS_DOCUMENT_EVENT(t)                                \
    ((t) == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE || \
     (t) == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE)
#define SCHAKEL_MAX_BATCH_EVENTS 1024
#define SCHAKEL_MAX_FRAME_BYTES (8 * 1024 * 1024) /* one protocol frame */

typedef Schakel__V1__Envelope schakel_envelope_t;

/* Event type <-> its name in JSON and in the directory ("signal",
 * "consent_given", "veiligthuis_report", ...: the envelope's body field
 * name). name returns NULL for an unknown type; parse returns 0 for an
 * unknown name. */
const char *schakel_event_type_name(int type);
int schakel_event_type_parse(const char *name);
/* All known event types, in enum order; returns their count. */
size_t schakel_event_types(const int **types);

/* Decodes len bytes as an Envelope. NULL if len is over
 * SCHAKEL_MAX_EVENT_BYTES (SCHAKEL_MAX_DIRECTORY_BYTES for a
 * directory_update or a rules_update) or the bytes do not decode; why says which.
 * Free with schakel_envelope_free(). */
schakel_envelope_t *schakel_envelope_decode(const uint8_t *buf, size_t len, char *why);
/* The same with another allocator (e.g. an arena: then do not free it). */
schakel_envelope_t *schakel_envelope_decode_with(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                                                 char *why);
void schakel_envelope_free(schakel_envelope_t *env);

/* Serializes env into a malloc'd buffer (*out, *outlen). 0, SCHAKEL_ENOMEM
 * or SCHAKEL_ETOOBIG. */
SCHAKEL_MUST_USE int schakel_envelope_encode(const schakel_envelope_t *env, uint8_t **out, size_t *outlen);

/* The body message of an envelope (the member of its oneof), or NULL. */
const ProtobufCMessage *schakel_envelope_body(const schakel_envelope_t *env);

/* A field of the body by name, for code that handles many event types
 * alike (routing by referral_id, say): a bytes field (NULL when the body
 * has no such field or it is empty), a string field ("" likewise). */
const ProtobufCBinaryData *schakel_body_bytes(const schakel_envelope_t *env, const char *name);
const char *schakel_body_string(const schakel_envelope_t *env, const char *name);

/* The digest a publisher signs for a batch:
 * SHA-256("schakel/v1/batch" || u32be(n) || hashes[0] || ... || hashes[n-1])
 * where hashes[i] = SHA-256(events[i]). */
void schakel_batch_digest(const uint8_t (*hashes)[SCHAKEL_SHA256_LEN], size_t n,
                          uint8_t out[SCHAKEL_SHA256_LEN]);
/* The same over hashes where they lie (a decoded proof's event_hashes,
 * each SCHAKEL_SHA256_LEN bytes long: the caller checks). */
void schakel_batch_digest_of(const ProtobufCBinaryData *hashes, size_t n, uint8_t out[SCHAKEL_SHA256_LEN]);

#endif
