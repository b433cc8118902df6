/* The replay's copy of the events an engine may read back from far
 * behind the batches a service holds: every record but the high-volume
 * ones nobody reads back from afar (the services' routing and consent
 * decisions, the broker's clock ticks), as the reader met them, bytes
 * only. Such a read (a hold released or expired days of log time later,
 * the other signal of a match) cost a read transaction of the log, a
 * decryption and the record's unpacking each; from here it costs only
 * the engine's decode.
 *
 * Filled by the reader thread alone, before it hands out the batch that
 * has the record; read by the services only for seqs of batches they have
 * been handed (the feed's lock orders the two). Nothing moves once
 * written. Bounded: past REPLAY_CACHE_BYTES records are no longer kept,
 * and reads of them go to the log as before. */
#include <stdlib.h>
#include <string.h>

#include "service_replay_impl.h"

#define PAGE_BITS 16
#define PAGE (1u << PAGE_BITS)  /* seqs per page of the index */
#define PAGES (1u << 16)        /* pages: seqs up to 2^32 */
#define CHUNK ((size_t)4 << 20) /* bytes per chunk of entries */
#define REPLAY_CACHE_BYTES ((size_t)256 << 20)

typedef struct {
    int64_t recorded_at;
    uint32_t event_len; /* with has_event */
    int32_t type;
    uint8_t has_event;
    uint8_t event_id[16];
    /* then source_org NUL, then the event's bytes */
} entry_t;

typedef struct chunk {
    struct chunk *next;
    size_t used;
    _Alignas(16) uint8_t data[];
} chunk_t;

struct replay_cache {
    const entry_t **pages[PAGES];
    chunk_t *chunks;
    size_t bytes; /* entries and index pages together */
    int full;
};

replay_cache_t *replay_cache_new(void)
{
    return calloc(1, sizeof(replay_cache_t));
}

void replay_cache_free(replay_cache_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < PAGES; i++) free((void *)c->pages[i]);
    for (chunk_t *k = c->chunks, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(c);
}

static int kept(int type)
{
    switch (type) {
    case SCHAKEL_EVENT(ROUTING_DECISION):
    case SCHAKEL_EVENT(CONSENT_DECISION):
    case SCHAKEL_EVENT(CLOCK_TICK): return 0;
    default: return 1;
    }
}

static void *take(replay_cache_t *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > CHUNK) return NULL;
    if (!c->chunks || CHUNK - c->chunks->used < n) {
        chunk_t *k = malloc(sizeof *k + CHUNK);
        if (!k) return NULL;
        k->next = c->chunks;
        k->used = 0;
        c->chunks = k;
        c->bytes += sizeof *k + CHUNK;
    }
    void *p = c->chunks->data + c->chunks->used;
    c->chunks->used += n;
    return p;
}

void replay_cache_put(replay_cache_t *c, const schakel_record_t *rec)
{
    if (!c || c->full || !kept(rec->type) || rec->seq == 0 || rec->seq >> PAGE_BITS >= PAGES) return;
    if (c->bytes >= REPLAY_CACHE_BYTES) { /* a miss only costs a read of the log */
        c->full = 1;
        return;
    }
    const entry_t **page = c->pages[rec->seq >> PAGE_BITS];
    if (!page) {
        page = calloc(PAGE, sizeof *page);
        if (!page) return;
        c->pages[rec->seq >> PAGE_BITS] = page;
        c->bytes += PAGE * sizeof *page;
    }
    const char *org = rec->source_org ? rec->source_org : "";
    size_t ol = strlen(org) + 1, el = rec->event ? rec->event_len : 0;
    if (el > UINT32_MAX) return;
    entry_t *e = take(c, sizeof *e + ol + el);
    if (!e) return;
    e->recorded_at = rec->recorded_at;
    e->event_len = (uint32_t)el;
    e->type = rec->type;
    e->has_event = rec->event != NULL;
    memcpy(e->event_id, rec->event_id, 16);
    memcpy((uint8_t *)(e + 1), org, ol);
    if (el) memcpy((uint8_t *)(e + 1) + ol, rec->event, el);
    page[rec->seq & (PAGE - 1)] = e;
}

int replay_cache_get(const replay_cache_t *c, uint64_t seq, schakel_record_t *rec)
{
    if (!c || seq >> PAGE_BITS >= PAGES) return 0;
    const entry_t **page = c->pages[seq >> PAGE_BITS];
    const entry_t *e = page ? page[seq & (PAGE - 1)] : NULL;
    if (!e) return 0;
    memset(rec, 0, sizeof *rec);
    rec->seq = rec->position = seq;
    rec->recorded_at = e->recorded_at;
    rec->event_id = e->event_id;
    rec->type = e->type;
    rec->source_org = (const char *)(e + 1);
    if (e->has_event) {
        rec->event = (const uint8_t *)(e + 1) + strlen(rec->source_org) + 1;
        rec->event_len = e->event_len;
    }
    return 1;
}
