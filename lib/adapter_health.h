/* The adapters' health as the region's operator sees it: the latest
 * adapter_status (docs/events.md) of each organisation, kept from the
 * records of the log, and rendered as the adapter metrics of
 * docs/operations.md ("Watching the bus") in Prometheus text. Counts and
 * codes only, labelled by organisation id: nothing about any child.
 * Safe for one writer (the log reader) and any number of readers (the
 * HTTP server) at once. */
#ifndef SCHAKEL_ADAPTER_HEALTH_H
#define SCHAKEL_ADAPTER_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"
#include "service.h"

typedef struct adapter_health adapter_health_t;

/* NULL when out of memory. */
adapter_health_t *adapter_health_new(void);
void adapter_health_free(adapter_health_t **self_p);

/* Notes one record of the log: an adapter_status replaces what its
 * organisation said before (a record of a lower seq than the one kept
 * changes nothing); anything else is passed over. Returns 1 when the
 * record was an adapter_status that was kept, 0 when passed over,
 * SCHAKEL_ENOMEM when it could not be kept (the earlier one stays). */
SCHAKEL_MUST_USE int adapter_health_note(adapter_health_t *self, const schakel_logrec_t *rec);

/* The same for an envelope read some other way, with the broker's
 * recorded_at (unix ms) and the record's seq. */
SCHAKEL_MUST_USE int adapter_health_note_envelope(adapter_health_t *self, const schakel_envelope_t *env,
                                                  uint64_t seq, int64_t recorded_at);

/* How many organisations have a status. */
size_t adapter_health_count(const adapter_health_t *self);

/* The adapter metrics in Prometheus text format (0.0.4), organisations in
 * id order, each metric with its HELP and TYPE: *out (NUL-terminated,
 * the caller frees it) and its length. 0 or SCHAKEL_ENOMEM. */
SCHAKEL_MUST_USE int adapter_health_prometheus(const adapter_health_t *self, char **out, size_t *len);

/* The metric label of an AdapterError code: "none", "broker_unreachable",
 * ... ("unknown" for a code this version does not know). */
const char *adapter_health_code_name(int code);

#endif
