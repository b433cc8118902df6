/* The latest adapter_status per organisation (adapter_health.h), kept in
 * an array sorted by organisation id under a lock, and its Prometheus
 * text. The last-heard time is the broker's recorded_at, not the
 * adapter's own clock, so that a wrong clock at a school cannot hide a
 * silent adapter. */
#include "adapter_health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

typedef struct {
    char org[SCHAKEL_ID_MAX];
    uint64_t seq;
    int64_t recorded_at;
    uint64_t outbox_depth, oldest_unacked_seconds, dead_letters, inbox_set_aside;
    int code;
} entry_t;

struct adapter_health {
    pthread_mutex_t lock;
    entry_t *e;
    size_t n, cap;
};

adapter_health_t *adapter_health_new(void)
{
    adapter_health_t *h = calloc(1, sizeof *h);
    if (h) pthread_mutex_init(&h->lock, NULL);
    return h;
}

void adapter_health_free(adapter_health_t **self_p)
{
    adapter_health_t *h = *self_p;
    if (!h) return;
    pthread_mutex_destroy(&h->lock);
    free(h->e);
    free(h);
    *self_p = NULL;
}

const char *adapter_health_code_name(int code)
{
    switch (code) {
    case SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_NONE: return "none";
    case SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_BROKER_UNREACHABLE: return "broker_unreachable";
    case SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_KEY_REFUSED: return "key_refused";
    case SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_EVENTS_REJECTED: return "events_rejected";
    case SCHAKEL__V1__ADAPTER_ERROR__ADAPTER_ERROR_OUTBOX: return "outbox";
    default: return "unknown";
    }
}

/* The entry of org, made (in id order) when missing; NULL without memory. */
static entry_t *entry_for(adapter_health_t *h, const char *org)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(h->e[mid].org, org);
        if (!c) return &h->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        entry_t *e = realloc(h->e, cap * sizeof *e);
        if (!e) return NULL;
        h->e = e, h->cap = cap;
    }
    memmove(&h->e[lo + 1], &h->e[lo], (h->n - lo) * sizeof *h->e);
    h->n++;
    memset(&h->e[lo], 0, sizeof h->e[lo]);
    snprintf(h->e[lo].org, sizeof h->e[lo].org, "%s", org);
    return &h->e[lo];
}

int adapter_health_note_envelope(adapter_health_t *self, const schakel_envelope_t *env, uint64_t seq,
                                 int64_t recorded_at)
{
    if (!env || env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS || !env->adapter_status ||
        strlen(env->source_org) >= SCHAKEL_ID_MAX || !schakel_id_valid(env->source_org))
        return 0;
    const Schakel__V1__AdapterStatus *s = env->adapter_status;
    pthread_mutex_lock(&self->lock);
    entry_t *e = entry_for(self, env->source_org);
    int rc = e ? 1 : SCHAKEL_ENOMEM;
    if (e && e->seq && seq < e->seq) rc = 0; /* an older one read late */
    if (rc == 1) {
        e->seq = seq;
        e->recorded_at = recorded_at;
        e->outbox_depth = s->outbox_depth;
        e->oldest_unacked_seconds = s->oldest_unacked_seconds;
        e->dead_letters = s->dead_letters;
        e->inbox_set_aside = s->inbox_set_aside;
        e->code = (int)s->last_error;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int adapter_health_note(adapter_health_t *self, const schakel_logrec_t *rec)
{
    return adapter_health_note_envelope(self, rec->env, rec->seq, rec->recorded_at);
}

size_t adapter_health_count(const adapter_health_t *self)
{
    adapter_health_t *h = (adapter_health_t *)self; /* the lock only */
    pthread_mutex_lock(&h->lock);
    size_t n = h->n;
    pthread_mutex_unlock(&h->lock);
    return n;
}

typedef struct {
    const char *name, *help;
    int which;
} metric_t;

enum { M_LAST, M_DEPTH, M_OLDEST, M_DEAD, M_ASIDE, M_INFO };

static const metric_t metrics[] = {
    {"schakel_adapter_last_status_timestamp_seconds",
     "Unix time (the broker's clock) of the last adapter_status of the organisation's adapter", M_LAST},
    {"schakel_adapter_outbox_depth", "Events in the adapter's outbox waiting for the broker's ACK", M_DEPTH},
    {"schakel_adapter_oldest_unacked_seconds", "Age of the oldest event waiting in the adapter's outbox",
     M_OLDEST},
    {"schakel_adapter_dead_letters", "Events the broker refused for good and the adapter holds", M_DEAD},
    {"schakel_adapter_inbox_set_aside", "Inbox records the organisation's system refused, set aside",
     M_ASIDE},
    {"schakel_adapter_info", "1, labelled with the adapter's last error code (none when none)", M_INFO},
};

int adapter_health_prometheus(const adapter_health_t *self, char **out, size_t *len)
{
    adapter_health_t *h = (adapter_health_t *)self; /* the lock only */
    *out = NULL;
    *len = 0;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return SCHAKEL_ENOMEM;
    pthread_mutex_lock(&h->lock);
    for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", metrics[m].name, metrics[m].help, metrics[m].name);
        for (size_t i = 0; i < h->n; i++) {
            const entry_t *e = &h->e[i];
            /* org ids are a-z 0-9 . _ / - (lib/keys.c): nothing to escape */
            switch (metrics[m].which) {
            case M_LAST:
                fprintf(f, "%s{org=\"%s\"} %lld.%03lld\n", metrics[m].name, e->org,
                        (long long)(e->recorded_at / 1000), (long long)(e->recorded_at % 1000));
                break;
            case M_DEPTH:
                fprintf(f, "%s{org=\"%s\"} %llu\n", metrics[m].name, e->org,
                        (unsigned long long)e->outbox_depth);
                break;
            case M_OLDEST:
                fprintf(f, "%s{org=\"%s\"} %llu\n", metrics[m].name, e->org,
                        (unsigned long long)e->oldest_unacked_seconds);
                break;
            case M_DEAD:
                fprintf(f, "%s{org=\"%s\"} %llu\n", metrics[m].name, e->org,
                        (unsigned long long)e->dead_letters);
                break;
            case M_ASIDE:
                fprintf(f, "%s{org=\"%s\"} %llu\n", metrics[m].name, e->org,
                        (unsigned long long)e->inbox_set_aside);
                break;
            default:
                fprintf(f, "%s{org=\"%s\",code=\"%s\"} 1\n", metrics[m].name, e->org,
                        adapter_health_code_name(e->code));
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return SCHAKEL_ENOMEM;
    }
    *out = buf;
    *len = n;
    return 0;
}
