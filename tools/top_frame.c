/* schakel top's picture (top.h): the Prometheus text parsed into samples
 * (name, the contract's labels, value), and one frame made from them: the
 * broker and the log, events per second by type, lag per service, held,
 * denied and rejected by reason, overdue loops, and the adapters. Plain
 * text lines, so that --once prints exactly what the curses screen
 * shows. Counts and codes only: the metrics carry nothing else. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "top.h"

void top_metrics_free(top_metrics_t *m)
{
    free(m->s);
    free(m->family);
    memset(m, 0, sizeof *m);
}

/* Copies a label value (with \\, \" and \n escapes) into out; returns
 * the position after its closing quote, or NULL. */
static const char *label_value(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    for (; p < end && *p != '"'; p++) {
        char c = *p;
        if (c == '\\' && p + 1 < end) c = *++p == 'n' ? '\n' : *p;
        if (n + 1 < cap) out[n++] = c;
    }
    out[n] = 0;
    return p < end ? p + 1 : NULL;
}

static int parse_line(top_sample_t *s, const char *p, const char *end)
{
    memset(s, 0, sizeof *s);
    size_t n = 0;
    while (p < end && *p != '{' && *p != ' ' && n + 1 < sizeof s->name) s->name[n++] = *p++;
    if (!n || (p < end && *p != '{' && *p != ' ')) return -1;
    if (p < end && *p == '{') {
        p++;
        while (p && p < end && *p != '}') {
            char key[32] = "", val[96];
            size_t k = 0;
            while (p < end && *p != '=' && k + 1 < sizeof key) key[k++] = *p++;
            if (p + 1 >= end || *p != '=' || p[1] != '"') return -1;
            p = label_value(p + 2, end, val, sizeof val);
            if (!p) return -1;
            char *dst = !strcmp(key, "org")       ? s->org
                        : !strcmp(key, "type")    ? s->type
                        : !strcmp(key, "service") ? s->service
                        : !strcmp(key, "code")    ? s->code
                                                  : NULL;
            size_t cap = !strcmp(key, "org")       ? sizeof s->org
                         : !strcmp(key, "type")    ? sizeof s->type
                         : !strcmp(key, "service") ? sizeof s->service
                                                   : sizeof s->code;
            size_t vl = strlen(val);
            if (dst && vl >= cap) return -1; /* not a label of ours: never cut one */
            if (dst) memcpy(dst, val, vl + 1);
            if (p < end && *p == ',') p++;
        }
        if (!p || p >= end) return -1;
        p++;
    }
    while (p < end && *p == ' ') p++;
    char num[64];
    size_t k = 0;
    while (p < end && *p != ' ' && k + 1 < sizeof num) num[k++] = *p++;
    num[k] = 0;
    char *stop;
    s->v = strtod(num, &stop);
    return k && *stop == 0 ? 0 : -1;
}

/* "# TYPE name kind": keeps name. 0 or -1 (memory). */
static int take_family(top_metrics_t *m, const char *p, const char *eol)
{
    p += 7;
    const char *sp = memchr(p, ' ', (size_t)(eol - p));
    size_t n = sp ? (size_t)(sp - p) : 0;
    if (!n || n >= sizeof m->family[0]) return 0; /* not one of ours */
    if (m->n_family == m->cap_family) {
        size_t cap = m->cap_family ? m->cap_family * 2 : 64;
        char(*f)[96] = realloc(m->family, cap * sizeof *f);
        if (!f) return -1;
        m->family = f, m->cap_family = cap;
    }
    memcpy(m->family[m->n_family], p, n);
    m->family[m->n_family++][n] = 0;
    return 0;
}

int top_parse(top_metrics_t *m, const char *text, size_t len)
{
    m->n = 0;
    m->n_family = 0;
    m->skipped = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (eol - p > 7 && !memcmp(p, "# TYPE ", 7) && take_family(m, p, eol) != 0) return -1;
        if (eol > p && *p != '#') {
            if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 256;
                top_sample_t *s = realloc(m->s, cap * sizeof *s);
                if (!s) return -1;
                m->s = s, m->cap = cap;
            }
            if (parse_line(&m->s[m->n], p, eol) == 0) m->n++;
            else m->skipped++;
        }
        p = eol + 1;
    }
    return 0;
}

/* The sum of the samples named name whose labels match (NULL: any);
 * *found says whether there was one. */
static double sum_of(const top_metrics_t *m, const char *name, const char *org, const char *type,
                     const char *service, const char *code, int *found)
{
    double v = 0;
    int any = 0;
    for (size_t i = 0; m && i < m->n; i++) {
        const top_sample_t *s = &m->s[i];
        if (strcmp(s->name, name) || (org && strcmp(s->org, org)) || (type && strcmp(s->type, type)) ||
            (service && strcmp(s->service, service)) || (code && strcmp(s->code, code)))
            continue;
        v += s->v;
        any = 1;
    }
    if (found) *found = any;
    return v;
}

static double one(const top_metrics_t *m, const char *name)
{
    return sum_of(m, name, NULL, NULL, NULL, NULL, NULL);
}

/* Whether the node serves the metric family name at all (its "# TYPE"
 * line, or a sample): without it a figure is unknown, not 0. */
static int served(const top_metrics_t *m, const char *name)
{
    for (size_t i = 0; m && i < m->n_family; i++)
        if (!strcmp(m->family[i], name)) return 1;
    int found;
    (void)sum_of(m, name, NULL, NULL, NULL, NULL, &found);
    return found;
}

static const char *none_or_unknown(const top_metrics_t *m, const char *name)
{
    return served(m, name) ? "  none" : "  unknown";
}

/* Per second between the two readings of the same series; -1 without an
 * earlier reading. */
static double rate(const top_metrics_t *now, const top_metrics_t *before, double v_now, double v_before)
{
    double dt = before ? now->at - before->at : 0;
    return dt > 0 ? (v_now - v_before) / dt : -1;
}

static void rate_text(char *out, size_t cap, double r)
{
    if (r < 0) snprintf(out, cap, "-");
    else snprintf(out, cap, "%.1f/s", r);
}

static void bytes_text(char *out, size_t cap, double b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) b /= 1024, i++;
    snprintf(out, cap, "%.1f %s", b, u[i]);
}

static void age_text(char *out, size_t cap, double s)
{
    if (s < 0) snprintf(out, cap, "-");
    else if (s < 120) snprintf(out, cap, "%.0f s", s);
    else if (s < 7200) snprintf(out, cap, "%.0f min", s / 60);
    else if (s < 172800) snprintf(out, cap, "%.0f h", s / 3600);
    else snprintf(out, cap, "%.0f d", s / 86400);
}

/* Lists each distinct label value (field at offset) of metric name once,
 * with its summed value (and rate), on one line after title. */
static void by_label(FILE *f, const top_metrics_t *now, const top_metrics_t *before, const char *title,
                     const char *name, size_t offset, int rates)
{
    fprintf(f, "%-10s", title);
    int any = 0;
    for (size_t i = 0; i < now->n; i++) {
        const top_sample_t *s = &now->s[i];
        const char *label = (const char *)s + offset;
        if (strcmp(s->name, name)) continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(now->s[j].name, name) && !strcmp((const char *)&now->s[j] + offset, label);
        if (seen) continue;
        double v = 0, b = 0;
        for (size_t j = i; j < now->n; j++)
            if (!strcmp(now->s[j].name, name) && !strcmp((const char *)&now->s[j] + offset, label))
                v += now->s[j].v;
        for (size_t j = 0; before && j < before->n; j++)
            if (!strcmp(before->s[j].name, name) && !strcmp((const char *)&before->s[j] + offset, label))
                b += before->s[j].v;
        char r[32];
        rate_text(r, sizeof r, rate(now, before, v, b));
        if (rates) fprintf(f, "  %s %s (%.0f)", label[0] ? label : "-", r, v);
        else fprintf(f, "  %s %.0f", label[0] ? label : "-", v);
        any = 1;
    }
    fprintf(f, "%s\n", any ? "" : none_or_unknown(now, name));
}

/* The services' refused decisions above 0, as service/code count. */
static void refused(FILE *f, const top_metrics_t *m)
{
    const char *name = "schakel_service_refused_total";
    fprintf(f, "%-10s", "refused");
    int any = 0;
    for (size_t i = 0; i < m->n; i++) {
        const top_sample_t *s = &m->s[i];
        if (strcmp(s->name, name) || s->v <= 0) continue;
        fprintf(f, "  %s/%s %.0f", s->service[0] ? s->service : "-", s->code[0] ? s->code : "-", s->v);
        any = 1;
    }
    fprintf(f, "%s\n", any ? "" : none_or_unknown(m, name));
}

static void adapters(FILE *f, const top_metrics_t *m, int64_t wall_ms)
{
    /* 80 columns for an organisation id of up to 18 characters */
    fprintf(f, "adapters  %-18s %-10s %6s %7s %5s  %s\n", "org", "heard", "outbox", "oldest", "dead",
            "error");
    int any = 0;
    for (size_t i = 0; i < m->n; i++) {
        const top_sample_t *s = &m->s[i];
        if (strcmp(s->name, "schakel_adapter_last_status_timestamp_seconds")) continue;
        char heard[32], oldest[32], code[48] = "-";
        age_text(heard, sizeof heard, (double)wall_ms / 1000 - s->v);
        age_text(oldest, sizeof oldest,
                 sum_of(m, "schakel_adapter_oldest_unacked_seconds", s->org, NULL, NULL, NULL, NULL));
        for (size_t j = 0; j < m->n; j++)
            if (!strcmp(m->s[j].name, "schakel_adapter_info") && !strcmp(m->s[j].org, s->org) &&
                m->s[j].v > 0)
                snprintf(code, sizeof code, "%s", m->s[j].code);
        fprintf(f, "          %-18s %-10s %6.0f %7s %5.0f  %s\n", s->org, heard,
                sum_of(m, "schakel_adapter_outbox_depth", s->org, NULL, NULL, NULL, NULL), oldest,
                sum_of(m, "schakel_adapter_dead_letters", s->org, NULL, NULL, NULL, NULL), code);
        any = 1;
    }
    if (!any) fprintf(f, "          no adapter_status on the log yet\n");
}

int top_frame(const top_metrics_t *now, const top_metrics_t *before, const char *source, int64_t wall_ms,
              char **out)
{
    size_t len = 0;
    FILE *f = open_memstream(out, &len);
    if (!f) return -1;
    char at[32], r[32], used[32], map[32], ck[40];
    schakel_time_format(wall_ms, at);
    fprintf(f, "schakel top  %s  %s\n", source, at);
    int up_found, found;
    double up = sum_of(now, "schakel_broker_up", NULL, NULL, NULL, NULL, &up_found);
    /* what the node does not serve (the broker's own figures without the
     * operator's key, the log when it cannot be read) is "unknown", not 0 */
    char orgs[32] = "unknown", fsync[32] = "unknown";
    double v = sum_of(now, "schakel_connected_orgs", NULL, NULL, NULL, NULL, &found);
    if (found) snprintf(orgs, sizeof orgs, "%.0f", v);
    double fs = sum_of(now, "schakel_fsync_seconds_count", NULL, NULL, NULL, NULL, &found);
    if (found && fs > 0)
        snprintf(fsync, sizeof fsync, "%.2f ms", one(now, "schakel_fsync_seconds_sum") / fs * 1000);
    else if (found) snprintf(fsync, sizeof fsync, "-");
    v = sum_of(now, "schakel_checkpoint_age_seconds", NULL, NULL, NULL, NULL, &found);
    char age[32];
    age_text(age, sizeof age, v);
    snprintf(ck, sizeof ck, found ? "%s ago" : "unknown", age);
    fprintf(f, "broker    %s  orgs connected %s  checkpoint %s  fsync mean %s\n",
            !up_found ? "unknown"
            : up > 0  ? "UP"
                      : "DOWN",
            orgs, ck, fsync);
    double recs = sum_of(now, "schakel_log_records", NULL, NULL, NULL, NULL, &found);
    if (found) {
        rate_text(r, sizeof r, rate(now, before, recs, before ? one(before, "schakel_log_records") : 0));
        bytes_text(used, sizeof used, one(now, "schakel_log_bytes"));
        bytes_text(map, sizeof map, one(now, "schakel_log_map_bytes"));
        fprintf(f, "log       %.0f records  %s  %s of %s map\n", recs, r, used, map);
    } else {
        fprintf(f, "log       unknown\n");
    }
    by_label(f, now, before, "events", "schakel_events_total", offsetof(top_sample_t, type), 1);
    fprintf(f, "%-10s", "lag");
    int any = 0;
    for (size_t i = 0; i < now->n; i++) {
        const top_sample_t *s = &now->s[i];
        if (strcmp(s->name, "schakel_service_lag_records")) continue;
        char old[32];
        age_text(old, sizeof old,
                 sum_of(now, "schakel_service_oldest_unread_seconds", NULL, NULL, s->service, NULL, NULL));
        fprintf(f, "  %s %.0f (oldest %s)", s->service, s->v, old);
        any = 1;
    }
    fprintf(f, "%s\n", any ? "" : none_or_unknown(now, "schakel_service_lag_records"));
    by_label(f, now, before, "held", "schakel_held_total", offsetof(top_sample_t, code), 0);
    by_label(f, now, before, "denied", "schakel_denied_total", offsetof(top_sample_t, code), 0);
    by_label(f, now, before, "rejected", "schakel_rejects_total", offsetof(top_sample_t, code), 0);
    by_label(f, now, before, "overdue", "schakel_loops_overdue", offsetof(top_sample_t, org), 0);
    refused(f, now);
    adapters(f, now, wall_ms);
    if (now->skipped) fprintf(f, "(%zu lines of /metrics were not samples and were skipped)\n", now->skipped);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}
