/* Bump allocation in a list of chunks; see arena.h for why. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} chunk_t;

struct schakel_arena {
    chunk_t *head; /* the chunk being filled; older ones follow */
    size_t chunk_bytes;
    int huge; /* chunks of at least HUGE_PAGE aligned and advised for huge pages */
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

/* A chunk of size bytes. Each fresh 4 KiB page costs a page fault, and
 * in some VMs a fault costs tens of microseconds: a huge arena gets its
 * chunks 2 MiB-aligned with MADV_HUGEPAGE (a hint; the kernel may still
 * give small pages), one fault per 2 MiB. */
static chunk_t *chunk_new(const schakel_arena_t *a, size_t size)
{
    size_t bytes = sizeof(chunk_t) + size;
    if (!a->huge || bytes < HUGE_PAGE) return malloc(bytes);
    void *c = NULL;
    if (posix_memalign(&c, HUGE_PAGE, bytes) != 0) return NULL;
    (void)madvise(c, bytes & ~(HUGE_PAGE - 1), MADV_HUGEPAGE); /* a hint: refused is fine */
    return c;
}

schakel_arena_t *schakel_arena_new_huge(size_t chunk_bytes)
{
    schakel_arena_t *a = schakel_arena_new(chunk_bytes);
    if (a) a->huge = 1;
    return a;
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
        c = chunk_new(a, size);
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
