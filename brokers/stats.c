/* The broker's own figures for the node's operator (protocol.md, "PING →
 * PONG"; operations.md, "Watching the bus"): events refused by code, the
 * time and size of group commits as histograms, and how many
 * organisations sent a command in the last minute. Counts only. Only the
 * command loop's thread touches them. */
#include <stdio.h>
#include <string.h>

#include "broker_impl.h"

/* Histogram bounds: a commit's time (µs), a group's events. */
static const uint64_t commit_bounds[BROKER_STAT_BOUNDS] = {250,   500,   1000,   2000,   5000,   10000,
                                                           20000, 50000, 100000, 250000, 500000, 1000000};
static const uint64_t group_bounds[BROKER_STAT_BOUNDS] = {1,   2,   5,   10,   20,   50,
                                                          100, 200, 500, 1000, 2000, 5000};

void broker_stats_reject(schakel_broker_t *b, int code)
{
    if (code > 0 && (size_t)code < sizeof b->stats.rejects / sizeof b->stats.rejects[0])
        b->stats.rejects[code]++;
}

void broker_stats_commit(schakel_broker_t *b, uint64_t us, size_t events)
{
    broker_stats_t *s = &b->stats;
    s->commits++;
    s->commit_us_sum += us;
    s->group_events_sum += events;
    for (size_t i = 0; i < BROKER_STAT_BOUNDS; i++) {
        if (us <= commit_bounds[i]) s->commit_le[i]++;
        if (events <= group_bounds[i]) s->group_le[i]++;
    }
}

/* FNV-1a of the id, probed linearly: a slot is the org's own, or free, or
 * one not seen for a minute (taken over). More organisations active at
 * once than slots are not counted beyond the slots. */
void broker_stats_seen(schakel_broker_t *b, const char *org)
{
    if (!org || !org[0]) return;
    uint32_t h = 2166136261u;
    for (const char *c = org; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
    int64_t now = schakel_wall_ms();
    for (size_t k = 0; k < 16; k++) {
        size_t i = (h + k) % BROKER_ACTIVE_SLOTS;
        if (!strcmp(b->stats.active[i].id, org)) {
            b->stats.active[i].seen_ms = now;
            return;
        }
    }
    for (size_t k = 0; k < 16; k++) {
        size_t i = (h + k) % BROKER_ACTIVE_SLOTS;
        if (!b->stats.active[i].id[0] || now - b->stats.active[i].seen_ms > BROKER_ACTIVE_MS) {
            snprintf(b->stats.active[i].id, sizeof b->stats.active[i].id, "%s", org);
            b->stats.active[i].seen_ms = now;
            return;
        }
    }
}

void broker_stats_fill(const schakel_broker_t *b, Schakel__V1__BrokerStats *out, broker_stats_store_t *store)
{
    const broker_stats_t *s = &b->stats;
    out->acked = b->stat_acked;
    size_t n = 0;
    for (size_t code = 1; code < sizeof s->rejects / sizeof s->rejects[0]; code++) {
        if (!s->rejects[code]) continue;
        Schakel__V1__RejectCount init = SCHAKEL__V1__REJECT_COUNT__INIT;
        store->counts[n] = init;
        store->counts[n].code = (Schakel__V1__RejectCode)code;
        store->counts[n].count = s->rejects[code];
        store->count_ptrs[n] = &store->counts[n];
        n++;
    }
    out->n_rejects = n;
    out->rejects = store->count_ptrs;
    out->commits = s->commits;
    out->commit_us_sum = s->commit_us_sum;
    memcpy(store->commit_bounds, commit_bounds, sizeof commit_bounds);
    memcpy(store->group_bounds, group_bounds, sizeof group_bounds);
    out->n_commit_us_le = out->n_commit_le_count = BROKER_STAT_BOUNDS;
    out->commit_us_le = store->commit_bounds;
    out->commit_le_count = (uint64_t *)s->commit_le;
    out->group_events_sum = s->group_events_sum;
    out->n_group_le = out->n_group_le_count = BROKER_STAT_BOUNDS;
    out->group_le = store->group_bounds;
    out->group_le_count = (uint64_t *)s->group_le;
    int64_t now = schakel_wall_ms();
    uint64_t active = 0;
    for (size_t i = 0; i < BROKER_ACTIVE_SLOTS; i++)
        if (s->active[i].id[0] && now - s->active[i].seen_ms <= BROKER_ACTIVE_MS) active++;
    out->active_orgs = active;
}
