/* Validation of an event before anything is stored (lib/validate.c): the
 * broker runs it on every published event (brokers/check.c), clients and
 * adapters run it before they sign, so that both sides apply one set of
 * rules. Three layers: one pass over the serialized bytes
 * (schakel_codec_check), a check of every field of the decoded envelope
 * (schakel_envelope_validate), and a table of what each event type
 * requires. Every reason names the field and what to fix, never a value. */
#ifndef SCHAKEL_VALIDATE_H
#define SCHAKEL_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

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
int schakel_codec_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, char *why);

/* What the broker runs on each published event: schakel_codec_check of
 * the bytes env was decoded from (buf, len), then
 * schakel_envelope_validate. SCHAKEL_EDECODE or SCHAKEL_EINVAL. */
int schakel_envelope_validate_bytes(const schakel_envelope_t *env, const uint8_t *buf, size_t len, char *why);

/* What validate requires of each type (lib/validate.c): the body fields
 * that must be set, space-separated (NULL for an unknown type), and
 * whether a subject is required (1), optional (0) or forbidden (-1). */
const char *schakel_envelope_required(int type);
int schakel_envelope_subject_rule(int type);

/* 1 if s is a calendar date written YYYY-MM-DD (1900 or later), else 0. */
int schakel_date_valid(const char *s);
/* 1 if s is a reference a person types (a ticket or request number, an
 * account): 1 to SCHAKEL_REF_TEXT_MAX of ASCII letters, digits and
 * " ._:/#@-", so that no sentence about a child fits in comfortably; else
 * 0. The shape of `stated_purpose`, and of an erasure's `purpose` and
 * `requested_by`. */
#define SCHAKEL_REF_TEXT_MAX 80
#define SCHAKEL_REF_TEXT_SHAPE "1 to 80 of letters, digits and \" ._:/#@-\""
int schakel_ref_text_valid(const char *s);
/* 1 if s is a BRIN + vestiging code such as "12AB00", else 0. */
int schakel_brinvest_valid(const char *s);

#endif
