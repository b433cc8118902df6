/* Bump allocation in a list of chunks; see arena.h for why. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} chunk_t;

struct schakel_arena {
    chunk_t *head; /* the chunk being filled; older ones follow */
    size_t chunk_bytes;
    ProtobufCAllocator pb;
};

static void *pb_alloc(void *data, size_t size)
{
    return schakel_arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
    (void)data, (void)p;
}

schakel_arena_t *schakel_arena_new(size_t chunk_bytes)
{
    schakel_arena_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->chunk_bytes = chunk_bytes ? chunk_bytes : (size_t)1 << 20;
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
    return a;
}

void *schakel_arena_alloc(schakel_arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!n) n = 16;
    chunk_t *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > a->chunk_bytes ? n : a->chunk_bytes;
        c = malloc(sizeof *c + size);
        if (!c) return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void schakel_arena_reset(schakel_arena_t *a)
{
    chunk_t *keep = NULL;
    for (chunk_t *c = a->head, *next; c; c = next) {
        next = c->next;
        if (!keep && c->size == a->chunk_bytes) {
            keep = c;
        } else {
            free(c);
        }
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
}

void schakel_arena_destroy(schakel_arena_t **self_p)
{
    schakel_arena_t *a = *self_p;
    if (!a) return;
    for (chunk_t *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
    *self_p = NULL;
}

ProtobufCAllocator *schakel_arena_allocator(schakel_arena_t *a)
{
    return &a->pb;
}
