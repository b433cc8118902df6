/* The event codec: decoding envelopes with a size cap, validating them
 * before anything is stored, event type names, and the batch digest that
 * publishers sign. The broker and every client use the same rules. */
#ifndef SCHAKEL_CODEC_H
#define SCHAKEL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "schakel/v1/bus.pb-c.h"
#include "schakel/v1/envelope.pb-c.h"

#define SCHAKEL_EVENT_ID_LEN 16
#define SCHAKEL_MAX_EVENT_BYTES (64 * 1024)   /* one serialized envelope */
#define SCHAKEL_MAX_DIRECTORY_BYTES (1024 * 1024) /* a directory_update, the one exception */
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
 * directory_update) or the bytes do not decode; why says which.
 * Free with schakel_envelope_free(). */
schakel_envelope_t *schakel_envelope_decode(const uint8_t *buf, size_t len, char *why);
/* The same with another allocator (e.g. an arena: then do not free it). */
schakel_envelope_t *schakel_envelope_decode_with(const uint8_t *buf, size_t len,
                                                 ProtobufCAllocator *alloc, char *why);
void schakel_envelope_free(schakel_envelope_t *env);

/* Serializes env into a malloc'd buffer (*out, *outlen). 0, SCHAKEL_ENOMEM
 * or SCHAKEL_ETOOBIG. */
int schakel_envelope_encode(const schakel_envelope_t *env, uint8_t **out, size_t *outlen);

/* Checks everything the broker checks before storing, apart from who may
 * publish what: event id of 16 bytes; a known type whose body is present
 * and matches; source_org a valid id; occurred_at set; every string valid
 * UTF-8 and every enum value known (recursively, body included); the
 * subject a 64-char lower-case hex pseudonym, and empty exactly for an
 * anonymous consultation; the body's required fields (docs/events.md);
 * dates as YYYY-MM-DD; no unknown fields (kept by protobuf-c) at any
 * depth. Strings are seen up to their first NUL only: on bytes from
 * outside, use schakel_envelope_validate_bytes. Returns 0 or SCHAKEL_EINVAL with the first problem
 * in why, naming the field, e.g. "signal.concerns: at least one needed". */
int schakel_envelope_validate(const schakel_envelope_t *env, char *why);

/* Checks the serialized bytes of a message of type d over their full
 * length, as protobuf-c's unpacked form cannot (its strings end at the
 * first NUL): every field is one d knows (else SCHAKEL_EINVAL, "unknown
 * field 99 in schakel.v1.Referral: remove it"); no singular field, and no
 * second member of a oneof, appears twice; every string is valid UTF-8
 * with no control character over its whole wire length, a NUL included
 * (document_json may hold \n, \r and \t); nested messages likewise, 8
 * deep at most. Bytes fields are not looked into. Broken structure
 * (truncated, a wrong wire type) is SCHAKEL_EDECODE. One linear pass;
 * reasons name field numbers and names, never content. Field order,
 * packed or unpacked repeated numbers and explicitly written defaults are
 * all accepted. */
int schakel_codec_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                        char *why);

/* What the broker runs on each published event: schakel_codec_check of
 * the bytes env was decoded from (buf, len), then
 * schakel_envelope_validate. SCHAKEL_EDECODE or SCHAKEL_EINVAL. */
int schakel_envelope_validate_bytes(const schakel_envelope_t *env, const uint8_t *buf, size_t len,
                                   char *why);

/* The body message of an envelope (the member of its oneof), or NULL. */
const ProtobufCMessage *schakel_envelope_body(const schakel_envelope_t *env);

/* A field of the body by name, for code that handles many event types
 * alike (routing by referral_id, say): a bytes field (NULL when the body
 * has no such field or it is empty), a string field ("" likewise). */
const ProtobufCBinaryData *schakel_body_bytes(const schakel_envelope_t *env, const char *name);
const char *schakel_body_string(const schakel_envelope_t *env, const char *name);

/* What validate requires of each type (lib/validate.c): the body fields
 * that must be set, space-separated (NULL for an unknown type), and
 * whether a subject is required (1), optional (0) or forbidden (-1). */
const char *schakel_envelope_required(int type);
int schakel_envelope_subject_rule(int type);

/* 1 if s is a calendar date written YYYY-MM-DD (1900 or later), else 0. */
int schakel_date_valid(const char *s);
/* 1 if s is a BRIN + vestiging code such as "12AB00", else 0. */
int schakel_brinvest_valid(const char *s);

/* The digest a publisher signs for a batch:
 * SHA-256("schakel/v1/batch" || u32be(n) || hashes[0] || ... || hashes[n-1])
 * where hashes[i] = SHA-256(events[i]). */
void schakel_batch_digest(const uint8_t (*hashes)[SCHAKEL_SHA256_LEN], size_t n,
                          uint8_t out[SCHAKEL_SHA256_LEN]);

#endif
