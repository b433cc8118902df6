/* A bump allocator for short-lived decoding: the broker unpacks every
 * PUBLISH of a commit group, and each event in it, into one arena and
 * drops it all at once after the ACKs are sent. protobuf-c's many small
 * mallocs and frees per event cost more than the decoding itself. Not
 * thread-safe: one arena per thread. */
#ifndef SCHAKEL_ARENA_H
#define SCHAKEL_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct schakel_arena schakel_arena_t;

/* An arena that allocates in chunks of chunk_bytes (0: 1 MiB); a larger
 * request gets a chunk of its own. NULL when out of memory. */
schakel_arena_t *schakel_arena_new(size_t chunk_bytes);
/* The same, for chunks of megabytes: they are asked for huge pages. */
schakel_arena_t *schakel_arena_new_huge(size_t chunk_bytes);
void schakel_arena_destroy(schakel_arena_t **self_p);

/* n bytes aligned to 16, valid until the next reset. NULL when out of
 * memory. */
void *schakel_arena_alloc(schakel_arena_t *self, size_t n);

/* Forgets every allocation; keeps one chunk for the next round. */
void schakel_arena_reset(schakel_arena_t *self);

/* A protobuf-c allocator backed by the arena (free does nothing). Valid as
 * long as the arena. */
ProtobufCAllocator *schakel_arena_allocator(schakel_arena_t *self);

#endif
