/* The JSON form of events: how people and tools write and read them (JSON
 * lines). Generic over protobuf-c descriptors, so every event type has a
 * JSON form without per-type code:
 *   - field names as in the .proto files;
 *   - enums as lower-case names without their prefix ("urgent",
 *     "school", "consent"), for EventType the body field name ("signal");
 *   - bytes as lower-case hex; int64 fields named "at" or ending in "_at"
 *     (occurred_at, recorded_at) as RFC 3339 UTC text with milliseconds
 *     ("2026-11-20T09:30:00.000Z"); other 64-bit integers (clock_tick's
 *     at_ms among them) as JSON numbers;
 *   - a oneof member as an object under its own field name;
 *   - default values (0, "", false, empty lists) are omitted on output and
 *     may be omitted on input.
 * Unknown fields and wrong types on input are errors that name the field. */
#ifndef SCHAKEL_JSON_H
#define SCHAKEL_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "codec.h"

/* Message -> new JSON object (caller json_decref()s). NULL on ENOMEM. */
json_t *schakel_json_from_message(const ProtobufCMessage *msg);

/* JSON object -> new message of the given descriptor, allocated with
 * protobuf-c's default allocator (free with protobuf_c_message_free_unpacked).
 * NULL on error, with the reason in why ("signal.urgency: unknown value
 * \"hi\"; one of routine, soon, urgent"). */
ProtobufCMessage *schakel_json_to_message(const ProtobufCMessageDescriptor *desc, const json_t *obj,
                                          char *why);

/* Conveniences for envelopes. When the JSON has no event_id, to_envelope
 * leaves it empty (the caller decides: random or derived). */
json_t *schakel_json_from_envelope(const schakel_envelope_t *env);
schakel_envelope_t *schakel_json_to_envelope(const json_t *obj, char *why);

/* Parses one line of text as a JSON object, then as an envelope. */
schakel_envelope_t *schakel_json_parse_envelope(const char *text, size_t len, char *why);

/* Milliseconds since the epoch <-> RFC 3339 ("2026-11-20T09:30:00.000Z",
 * also accepted: without fraction, with an offset "+01:00"). format writes
 * at most 32 bytes; parse returns 0 or SCHAKEL_EINVAL. */
void schakel_time_format(int64_t ms, char out[32]);
int schakel_time_parse(const char *text, int64_t *ms);

#endif
