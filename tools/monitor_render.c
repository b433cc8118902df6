/* The monitor's answers, rendered once a round from what the collector
 * found (monitor_collect.c) and shared by every client: Prometheus text
 * for /metrics, JSON for /healthz and for the dashboard. Only counts by
 * organisation id, event type, service and reason code appear here. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"
#include "service.h"

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap : 4096) * 2 + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

/* A label value as the text format wants it: \, " and newline escaped. */
static const char *esc(const char *v, char out[160])
{
    size_t j = 0;
    for (size_t i = 0; v[i] && j + 3 < 160; i++) {
        if (v[i] == '\\' || v[i] == '"') out[j++] = '\\';
        if (v[i] == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
            continue;
        }
        out[j++] = v[i];
    }
    out[j] = 0;
    return out;
}

static void head(text_t *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(text_t *t, const char *name, const char *help, const uint64_t *bound,
                      const uint64_t *le, size_t n, double scale, uint64_t count, double sum)
{
    head(t, name, "histogram", help);
    for (size_t i = 0; i < n; i++)
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bound[i] * scale, (unsigned long long)le[i]);
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)count, name,
        sum, name, (unsigned long long)count);
}

/* The broker's own figures, from PONG (only for the operator's key). */
static void broker_stats(text_t *t, const mon_state_t *s)
{
    char code[SCHAKEL_REJECT_LABEL];
    histogram(t, "schakel_fsync_seconds",
              "Time of each group commit (append and its flush to disk) since the broker started.",
              s->commit_bound, s->commit_le, s->n_commit, 1e-6, s->commits, (double)s->commit_us_sum / 1e6);
    histogram(t, "schakel_group_events", "Events per group commit since the broker started.", s->group_bound,
              s->group_le, s->n_group, 1.0, s->commits, (double)s->group_sum);
    head(t, "schakel_connected_orgs", "gauge",
         "Organisations that sent the broker a command in the last 60 s.");
    put(t, "schakel_connected_orgs %llu\n", (unsigned long long)s->active_orgs);
    head(t, "schakel_rejects_total", "counter",
         "Events the broker refused since it started, by reject code.");
    for (size_t i = 0; i < s->n_rejects; i++)
        put(t, "schakel_rejects_total{code=\"%s\"} %llu\n",
            schakel_reject_label((int)s->reject_code[i], code), (unsigned long long)s->reject_n[i]);
}

static void counts(text_t *t, const char *name, const char *help, const mon_counts_t *c, const char *la,
                   const char *lb)
{
    char a[160], b[160];
    head(t, name, "counter", help);
    for (size_t i = 0; i < c->n; i++) {
        if (lb)
            put(t, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", name, la, esc(c->v[i].a, a), lb, esc(c->v[i].b, b),
                (unsigned long long)c->v[i].n);
        else put(t, "%s{%s=\"%s\"} %llu\n", name, la, esc(c->v[i].a, a), (unsigned long long)c->v[i].n);
    }
}

static double age_s(int64_t now_ms, int64_t then_ms)
{
    return then_ms && now_ms > then_ms ? (double)(now_ms - then_ms) / 1000.0 : 0.0;
}

char *mon_render_metrics(const mon_state_t *s)
{
    text_t t = {0};
    char a[160];
    head(&t, "schakel_broker_up", "gauge", "1 when the broker answered the last PING, else 0.");
    put(&t, "schakel_broker_up %d\n", s->broker_up);
    if (s->have_log) {
        head(&t, "schakel_log_records", "gauge", "Records on the log (its head seq).");
        put(&t, "schakel_log_records %llu\n", (unsigned long long)s->head);
        head(&t, "schakel_log_bytes", "gauge", "Bytes of the log's LMDB file in use.");
        put(&t, "schakel_log_bytes %llu\n", (unsigned long long)s->log_bytes);
        head(&t, "schakel_log_map_bytes", "gauge", "The log's LMDB map size in bytes.");
        put(&t, "schakel_log_map_bytes %llu\n", (unsigned long long)s->map_bytes);
    }
    if (s->checkpoint_at_ms) {
        head(&t, "schakel_checkpoint_age_seconds", "gauge", "Seconds since the last signed checkpoint.");
        put(&t, "schakel_checkpoint_age_seconds %.3f\n", age_s(s->at_ms, s->checkpoint_at_ms));
    }
    if (s->caught_up) /* before, a total would jump as the log before the start is read */
    {
        counts(&t, "schakel_events_total", "Events on the log, by source org and type.", &s->events, "org",
               "type");
        counts(&t, "schakel_delivered_total",
               "Entries of organisations' streams (what each received), by the publishing org and the "
               "recipient.",
               &s->edges, "from", "to");
    }
    head(&t, "schakel_service_lag_records", "gauge", "Log head minus the service's committed cursor.");
    for (size_t i = 0; i < s->n_services; i++)
        if (s->svc[i].present)
            put(&t, "schakel_service_lag_records{service=\"%s\"} %llu\n", s->svc[i].name,
                (unsigned long long)(s->head > s->svc[i].cursor ? s->head - s->svc[i].cursor : 0));
    head(&t, "schakel_service_oldest_unread_seconds", "gauge",
         "Age of the oldest record the service has not handled (0 when none).");
    for (size_t i = 0; i < s->n_services; i++)
        if (s->svc[i].present)
            put(&t, "schakel_service_oldest_unread_seconds{service=\"%s\"} %.3f\n", s->svc[i].name,
                age_s(s->at_ms, s->svc[i].oldest_unread_ms));
    counts(&t, "schakel_service_refused_total",
           "Decisions the service derived that the broker refused for good (not on the log), by reject code, "
           "since the service's state was made.",
           &s->refused, "service", "code");
    head(&t, "schakel_service_alarms_total", "counter",
         "Alarms the service raised (refused decisions included) since its state was made.");
    for (size_t i = 0; i < s->n_services; i++)
        if (s->svc[i].present)
            put(&t, "schakel_service_alarms_total{service=\"%s\"} %llu\n", s->svc[i].name,
                (unsigned long long)s->svc[i].alarms);
    head(&t, "schakel_stream_lag_records", "gauge",
         "Entries of the organisation's stream after its consumer's cursor (counted up to 100000).");
    for (size_t i = 0; i < s->n_orgs; i++)
        put(&t, "schakel_stream_lag_records{org=\"%s\"} %llu\n", esc(s->org[i].id, a),
            (unsigned long long)s->org[i].lag);
    if (s->have_decisions && s->caught_up) {
        counts(&t, "schakel_held_total", "Consent decisions on the log that held an event, by rule.",
               &s->held, "code", NULL);
        counts(&t, "schakel_denied_total", "Consent decisions on the log that denied an event, by rule.",
               &s->denied, "code", NULL);
        counts(&t, "schakel_escalations_total", "Feedback escalations on the log, by the late org.",
               &s->escalations, "org", NULL);
    }
    if (s->have_loops) {
        head(&t, "schakel_loops_open", "gauge", "Open feedback loops by receiving org.");
        for (size_t i = 0; i < s->n_orgs; i++)
            if (s->org[i].open)
                put(&t, "schakel_loops_open{org=\"%s\"} %llu\n", esc(s->org[i].id, a),
                    (unsigned long long)s->org[i].open);
        head(&t, "schakel_loops_overdue", "gauge", "Overdue feedback loops by receiving org.");
        for (size_t i = 0; i < s->n_orgs; i++)
            if (s->org[i].open)
                put(&t, "schakel_loops_overdue{org=\"%s\"} %llu\n", esc(s->org[i].id, a),
                    (unsigned long long)s->org[i].overdue);
    }
    if (s->have_stats) broker_stats(&t, s);
    char *adapters = NULL;
    size_t adapters_len = 0;
    if (s->have_decisions && s->adapters && adapter_health_count(s->adapters) &&
        adapter_health_prometheus(s->adapters, &adapters, &adapters_len) == 0)
        put(&t, "%s", adapters);
    free(adapters);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

static json_t *counts_json(const mon_counts_t *c, int two)
{
    json_t *o = two ? json_array() : json_object();
    for (size_t i = 0; i < c->n; i++) {
        if (two)
            json_array_append_new(
                o, json_pack("{s:s,s:s,s:I}", "a", c->v[i].a, "b", c->v[i].b, "n", (json_int_t)c->v[i].n));
        else json_object_set_new(o, c->v[i].a, json_integer((json_int_t)c->v[i].n));
    }
    return o;
}

/* Why the bus is not healthy, one line each; an empty list when it is. */
static json_t *reasons(const mon_state_t *s, uint64_t bound)
{
    json_t *r = json_array();
    if (!s->broker_up) json_array_append_new(r, json_sprintf("broker: %s", s->broker_reason));
    for (size_t i = 0; i < s->n_services; i++) {
        uint64_t lag = s->head > s->svc[i].cursor ? s->head - s->svc[i].cursor : 0;
        if (s->svc[i].present && lag > bound)
            json_array_append_new(
                r, json_sprintf("service %s: %llu records behind the log's head (bound %llu)", s->svc[i].name,
                                (unsigned long long)lag, (unsigned long long)bound));
    }
    return r;
}

/* The services' lag and alarms; with_refused: also their refused
 * decisions by code (the dashboard's; /healthz leaves them out). */
static json_t *services_json(const mon_state_t *s, int with_refused)
{
    json_t *o = json_object();
    for (size_t i = 0; i < s->n_services; i++) {
        if (!s->svc[i].present) continue;
        uint64_t lag = s->head > s->svc[i].cursor ? s->head - s->svc[i].cursor : 0;
        json_t *svc =
            json_pack("{s:I,s:f,s:I}", "lag", (json_int_t)lag, "oldest_unread_seconds",
                      age_s(s->at_ms, s->svc[i].oldest_unread_ms), "alarms", (json_int_t)s->svc[i].alarms);
        if (svc && with_refused) {
            json_t *refused = json_object();
            for (size_t k = 0; k < s->refused.n; k++)
                if (s->refused.v[k].n && !strcmp(s->refused.v[k].a, s->svc[i].name))
                    json_object_set_new(refused, s->refused.v[k].b,
                                        json_integer((json_int_t)s->refused.v[k].n));
            json_object_set_new(svc, "refused", refused);
        }
        json_object_set_new(o, s->svc[i].name, svc);
    }
    return o;
}

char *mon_render_health(const mon_state_t *s, uint64_t bound, int *healthy)
{
    json_t *r = reasons(s, bound);
    *healthy = json_array_size(r) == 0;
    json_t *o = json_pack("{s:b,s:o,s:{s:b,s:I},s:o,s:I}", "ok", *healthy, "reasons", r, "broker", "answers",
                          s->broker_up, "head", (json_int_t)s->head, "services", services_json(s, 0),
                          "lag_bound", (json_int_t)bound);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

char *mon_render_snapshot(const mon_state_t *s, uint64_t bound)
{
    json_t *orgs = json_array();
    for (size_t i = 0; i < s->n_orgs; i++) {
        json_t *o = json_pack("{s:s,s:s,s:I,s:b}", "id", s->org[i].id, "kind", s->org[i].kind, "stream_lag",
                              (json_int_t)s->org[i].lag, "stream_lag_capped", s->org[i].lag_capped);
        if (s->have_loops) {
            json_object_set_new(o, "loops_open", json_integer((json_int_t)s->org[i].open));
            json_object_set_new(o, "loops_overdue", json_integer((json_int_t)s->org[i].overdue));
        }
        json_array_append_new(orgs, o);
    }
    json_t *types = json_object(), *published = json_object();
    for (size_t i = 0; i < s->events.n; i++) {
        json_t *n = json_object_get(types, s->events.v[i].b);
        json_object_set_new(types, s->events.v[i].b,
                            json_integer(json_integer_value(n) + (json_int_t)s->events.v[i].n));
        n = json_object_get(published, s->events.v[i].a);
        json_object_set_new(published, s->events.v[i].a,
                            json_integer(json_integer_value(n) + (json_int_t)s->events.v[i].n));
    }
    json_t *broker = json_pack("{s:b,s:I,s:I,s:I,s:I}", "up", s->broker_up, "records", (json_int_t)s->head,
                               "alarms", (json_int_t)s->alarms, "log_bytes", (json_int_t)s->log_bytes,
                               "map_bytes", (json_int_t)s->map_bytes);
    if (s->checkpoint_at_ms)
        json_object_set_new(broker, "checkpoint_age_seconds",
                            json_real(age_s(s->at_ms, s->checkpoint_at_ms)));
    if (s->have_stats && broker) { /* the operator's PONG: commits, active orgs, refusals by code */
        char code[SCHAKEL_REJECT_LABEL];
        json_t *rejected = json_object();
        for (size_t i = 0; i < s->n_rejects; i++)
            json_object_set_new(rejected, schakel_reject_label((int)s->reject_code[i], code),
                                json_integer((json_int_t)s->reject_n[i]));
        json_object_set_new(broker, "rejected", rejected);
        json_object_set_new(broker, "active_orgs", json_integer((json_int_t)s->active_orgs));
        json_object_set_new(broker, "commits", json_integer((json_int_t)s->commits));
        json_object_set_new(
            broker, "commit_mean_ms",
            json_real(s->commits ? (double)s->commit_us_sum / 1000.0 / (double)s->commits : 0));
        json_object_set_new(broker, "group_mean_events",
                            json_real(s->commits ? (double)s->group_sum / (double)s->commits : 0));
    }
    json_t *r = reasons(s, bound);
    json_t *o = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:{s:b,s:o}}", "at_ms", (json_int_t)s->at_ms,
                          "since_ms", (json_int_t)s->started_ms, "broker", broker, "orgs", orgs, "edges",
                          counts_json(&s->edges, 1), "published", published, "types", types, "services",
                          services_json(s, 1), "health", "ok", json_array_size(r) == 0, "reasons", r);
    if (o) json_object_set_new(o, "caught_up", json_boolean(s->caught_up));
    if (o && s->have_decisions && s->caught_up) {
        json_object_set_new(o, "held", counts_json(&s->held, 0));
        json_object_set_new(o, "denied", counts_json(&s->denied, 0));
        json_object_set_new(o, "escalations", counts_json(&s->escalations, 0));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}
