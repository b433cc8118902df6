/* The monitoring figures written out (indicators.h): every cell in key
 * order, counts from 1 to 4 as "<5", medians only over five cases or
 * more, and the figures the events do not carry named with the reason.
 * As JSON (one object) or CSV (one header line, one line per cell). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "indicators_impl.h"
#include "json.h"

static const struct {
    const char *figure, *why;
} not_available[] = {
    {"referrals_to_specialised_care",
     "no event says that specialised youth care was started; intakes with outcome specialised_care are "
     "not broken down here"},
    {"beschikkingen", "a beschikking carries no school or district of its own"},
    {"working_days_to_start_of_help", "no event records the start of help; only first contact is timed"},
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of o, sorted (free the array, not the strings). */
static const char **sorted_keys(json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **keys = malloc((*n ? *n : 1) * sizeof *keys);
    if (!keys) return NULL;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

/* A count as shown: the number, or "<5" for 1 to 4. */
static json_t *shown(json_int_t n)
{
    return n > 0 && n < IND_SMALL ? json_string("<5") : json_integer(n);
}

static int cmp_int(const void *a, const void *b)
{
    json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;
    return (x > y) - (x < y);
}

static json_t *median(const json_t *list)
{
    size_t n = json_array_size(list);
    if (n < IND_SMALL) return json_null();
    json_int_t *v = malloc(n * sizeof *v);
    if (!v) return json_null();
    for (size_t i = 0; i < n; i++) v[i] = json_integer_value(json_array_get(list, i));
    qsort(v, n, sizeof *v, cmp_int);
    json_int_t a = v[(n - 1) / 2], b = v[n / 2];
    free(v);
    return (a + b) % 2 ? json_real((double)(a + b) / 2) : json_integer((a + b) / 2);
}

/* One cell as an object; key is "month\tschool\tdistrict[\tfigure\tbreakdown]". */
static json_t *cell(const char *key, const char *figure)
{
    char parts[5][IND_KEY_MAX];
    memset(parts, 0, sizeof parts);
    const char *p = key;
    for (int i = 0; i < 5 && p; i++) {
        const char *tab = strchr(p, '\t');
        size_t n = tab ? (size_t)(tab - p) : strlen(p);
        if (n >= IND_KEY_MAX) n = IND_KEY_MAX - 1;
        memcpy(parts[i], p, n);
        p = tab ? tab + 1 : NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "month", parts[0], "school", parts[1], "district", parts[2],
                     "figure", figure ? figure : parts[3], "breakdown", figure ? "" : parts[4]);
}

static json_t *cells_of(const ind_t *t)
{
    json_t *cells = json_array();
    size_t n;
    const char **keys = sorted_keys(t->cells, &n);
    for (size_t i = 0; keys && i < n; i++) {
        json_t *c = cell(keys[i], NULL);
        json_object_set_new(c, "value", shown(json_integer_value(json_object_get(t->cells, keys[i]))));
        json_array_append_new(cells, c);
    }
    free(keys);
    keys = sorted_keys(t->waits, &n);
    for (size_t i = 0; keys && i < n; i++) {
        const json_t *list = json_object_get(t->waits, keys[i]);
        json_t *c = cell(keys[i], "median_working_days_to_first_contact");
        json_object_set_new(c, "value", median(list));
        json_object_set_new(c, "cases", shown((json_int_t)json_array_size(list)));
        json_array_append_new(cells, c);
    }
    free(keys);
    return cells;
}

/* A CSV field: codes need no quoting, but a value that would break the
 * line is quoted anyway. */
static void csv_field(FILE *f, const json_t *v, int last)
{
    char buf[64] = "";
    const char *s = buf;
    if (json_is_string(v)) s = json_string_value(v);
    else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, sizeof buf, "%.1f", json_real_value(v));
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for (; *s; s++) fprintf(f, *s == '"' ? "\"\"" : "%c", *s);
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

static int render_csv(const json_t *cells, char **out, size_t *len)
{
    FILE *f = open_memstream(out, len);
    if (!f) return SCHAKEL_ENOMEM;
    static const char *const cols[] = {"month",     "school", "district", "figure",
                                       "breakdown", "value",  "cases"};
    for (size_t c = 0; c < 7; c++) fprintf(f, "%s%c", cols[c], c == 6 ? '\n' : ',');
    size_t i;
    const json_t *row;
    json_array_foreach(cells, i, row)
        for (size_t c = 0; c < 7; c++) csv_field(f, json_object_get(row, cols[c]), c == 6);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(*out);
        *out = NULL;
        return SCHAKEL_ENOMEM;
    }
    return 0;
}

int ind_render(const ind_t *t, int csv, char **out, size_t *len, char *why)
{
    json_t *cells = cells_of(t);
    int rc = 0;
    if (csv) {
        rc = render_csv(cells, out, len);
        json_decref(cells);
    } else {
        char at[32] = "";
        if (t->now) schakel_time_format(t->now, at);
        json_t *na = json_array();
        for (size_t i = 0; i < sizeof not_available / sizeof not_available[0]; i++)
            json_array_append_new(
                na, json_pack("{s:s, s:s}", "figure", not_available[i].figure, "why", not_available[i].why));
        json_t *doc =
            json_pack("{s:I, s:s, s:s, s:o, s:o}", "log_seq", (json_int_t)t->last_seq, "log_time", at,
                      "suppressed", "counts from 1 to 4 are shown as \"<5\"; no median under 5 cases",
                      "cells", cells, "not_available", na);
        *out = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
        *len = *out ? strlen(*out) : 0;
        json_decref(doc);
        rc = *out ? 0 : SCHAKEL_ENOMEM;
    }
    return rc ? schakel_fail(why, rc, "indicators: out of memory") : 0;
}
