/* Reading rows, JSON lines: one flat JSON object per line (or a JSON
 * list of them) cut into rows for the mapping (schakel_rows_jsonl), as the
 * adapter's spool, standard input and POST /events receive them. A broken
 * line is reported by line, column and kind of problem
 * (schakel_json_error_reason), never by its text: what is near it is as
 * likely as not a BSN or a name. The CSV reader is mapping_csv.c. */
#include "mapping.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void schakel_json_error_reason(const void *json_error, size_t line, size_t column_offset, char *out,
                               size_t cap)
{
    const json_error_t *e = json_error;
    const char *kind;
    switch (json_error_code(e)) {
    case json_error_invalid_utf8: kind = "not UTF-8 (export as UTF-8)"; break;
    case json_error_premature_end_of_input:
        kind = "the text ends too early (a string, object or list is not closed)";
        break;
    case json_error_end_of_input_expected:
        kind = "more text after the end of the value (one object per line)";
        break;
    case json_error_null_character: kind = "a NUL character, which JSON text may not hold"; break;
    case json_error_null_byte_in_key: kind = "a NUL character in a key"; break;
    case json_error_duplicate_key: kind = "a key that appears twice in one object"; break;
    case json_error_numeric_overflow: kind = "a number too large"; break;
    case json_error_stack_overflow: kind = "nested too deeply"; break;
    case json_error_out_of_memory: kind = "out of memory"; break;
    default: kind = "unexpected character (not valid JSON)"; break;
    }
    size_t l = line ? line : (e->line > 0 ? (size_t)e->line : 1);
    if (e->column > 0)
        snprintf(out, cap, "line %zu, column %zu: %s", l, (size_t)e->column + column_offset, kind);
    else snprintf(out, cap, "line %zu: %s", l, kind);
}

/* One JSON object as a row: strings as they are, null as an empty cell,
 * numbers and booleans (and anything else) as their JSON text. */
static int json_row(json_t *o, size_t number, schakel_row_fn fn, void *arg)
{
    size_t n = json_object_size(o), i = 0;
    const char **names = calloc(n + 1, sizeof *names), **values = calloc(n + 1, sizeof *values);
    char **owned = calloc(n + 1, sizeof *owned);
    if (!names || !values || !owned) {
        free(names), free(values), free(owned);
        return SCHAKEL_ENOMEM;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        names[i] = k;
        if (json_is_string(v)) {
            values[i] = json_string_value(v);
        } else if (json_is_null(v)) {
            values[i] = "";
        } else {
            owned[i] = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            values[i] = owned[i] ? owned[i] : "";
        }
        i++;
    }
    schakel_row_t r = {names, values, n, NULL};
    int stop = fn(arg, &r, number);
    for (size_t j = 0; j < n; j++) free(owned[j]);
    free(owned);
    free(names);
    free(values);
    return stop;
}

int schakel_rows_jsonl(const char *text, size_t len, schakel_row_fn fn, void *arg, char *why)
{
    return schakel_rows_jsonl_at(text, len, 1, 1, fn, arg, why);
}

int schakel_rows_jsonl_at(const char *text, size_t len, size_t first_line, int allow_list, schakel_row_fn fn,
                          void *arg, char *why)
{
    size_t first = 0;
    while (first < len &&
           (text[first] == ' ' || text[first] == '\r' || text[first] == '\t' || text[first] == '\n'))
        first++;
    if (first < len && text[first] == '[' && allow_list) { /* a JSON list of rows */
        json_error_t err;
        json_t *list = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!list) {
            char reason[SCHAKEL_ERRLEN];
            schakel_json_error_reason(&err, 0, 0, reason, sizeof reason);
            return schakel_fail(why, SCHAKEL_EINVAL, "%s", reason);
        }
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o) {
            if (!json_is_object(o)) {
                json_decref(list);
                return schakel_fail(why, SCHAKEL_EINVAL,
                                    "row %zu of the list: not a JSON object (one flat "
                                    "object per row)",
                                    i + 1);
            }
        }
        int stop = 0;
        json_array_foreach(list, i, o) {
            if ((stop = json_row(o, i + 1, fn, arg))) break;
        }
        json_decref(list);
        return stop;
    }
    size_t line = first_line - 1;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t a = at;
        while (a < end && (text[a] == ' ' || text[a] == '\r' || text[a] == '\t')) a++;
        if (a < end) {
            json_error_t err;
            json_t *o = json_loadb(text + a, end - a, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
            if (!o) {
                char reason[SCHAKEL_ERRLEN];
                schakel_json_error_reason(&err, line, a - at, reason, sizeof reason);
                return schakel_fail(why, SCHAKEL_EINVAL, "%s", reason);
            }
            if (!json_is_object(o)) {
                json_decref(o);
                return schakel_fail(why, SCHAKEL_EINVAL,
                                    "line %zu: not a JSON object (one flat object per line)", line);
            }
            int stop = json_row(o, line, fn, arg);
            json_decref(o);
            if (stop) return stop;
        }
        at = end + 1;
    }
    return 0;
}
