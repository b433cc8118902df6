/* The writer lease of a jetstream log (docs/scale-out.md): one key in a
 * JetStream key-value bucket whose entries lapse after the lease's TTL.
 * The broker holding it appends; the others stand by and take it once it
 * lapses. The lease only chooses the writer: a deposed one that still
 * believes it holds it is refused by the stream (expected last sequence),
 * so the chain never forks. Private to store_jetstream.c. */
#ifndef SCHAKEL_STORE_JETSTREAM_LEASE_H
#define SCHAKEL_STORE_JETSTREAM_LEASE_H

#include <nats/nats.h>
#include <stdint.h>

#include "error.h"

typedef struct js_lease js_lease_t;

/* The lease of stream: bucket <stream>_WRITER (created when missing, with
 * replicas replicas and ttl_ms as the age at which an entry lapses), key
 * "writer", this writer's name writer (letters and digits). NULL with the
 * reason in why. */
js_lease_t *js_lease_open(jsCtx *js, const char *stream, const char *writer, int64_t ttl_ms, int replicas,
                          char *why);

/* 0 when this writer holds the lease: believed while it was renewed less
 * than a third of its TTL ago, else renewed, taken when free, or resumed
 * when the bucket names this writer (a restart). SCHAKEL_ESTORE when
 * another writer holds it ("this broker stands by: ...") or the bucket
 * does not answer, with the reason in why. */
SCHAKEL_MUST_USE int js_lease_hold(js_lease_t *l, char *why);

/* An append was refused: the next js_lease_hold asks the bucket. */
void js_lease_doubt(js_lease_t *l);

void js_lease_free(js_lease_t *l);

#endif
