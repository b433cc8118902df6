/* Reading rows, CSV: an export's text cut into rows for the mapping
 * (schakel_rows_csv), or one record found in it (schakel_csv_record_end,
 * for the adapter's standard input). libcsv in strict mode; the first
 * line names the columns. Each cell is checked over its full length
 * (UTF-8, no NUL) before a row is handed on; the JSON-lines reader is
 * mapping_jsonl.c. */
#include "mapping.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mapping_impl.h"

/* ---- reading rows ---- */

/* Reasons about the text itself say where (line, column) and what kind of
 * problem, never the text: what is near a broken quote or a broken JSON
 * line is as likely as not a BSN or a name. */

/* The offset of the first byte of s that is not well-formed UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included),
 * or len when all of it is. */
static size_t utf8_bad_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len) return i;
            unsigned char d = s[i + k];
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf)) return i;
        }
        i += n + 1;
    }
    return len;
}

/* CSV is parsed by libcsv in strict mode. libcsv reports cells and row
 * ends but no positions, so the text is fed one line at a time (a line
 * ends in LF, CRLF or a lone CR, inside a quoted cell too): the reader
 * then knows the line each record starts on and each cell starts on.
 * With CSV_REPALL_NL every line end outside a quoted cell reaches
 * csv_row, so a line that ends without one is inside a quoted cell. */
#define CSV_OPTS (CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL)
#define CSV_SLICE 4096

typedef struct {
    struct csv_parser p;
    unsigned char delim;
    size_t line;      /* the line being fed */
    size_t rec_line;  /* the line the record starts on */
    size_t cell_line; /* the line the next cell starts on */
    int pending;      /* a record is begun and not ended */
    int row_end;      /* libcsv ended a row (or a blank line) in this line */
    int nomem;
    char *buf; /* the record's cells, each NUL-terminated */
    size_t used, cap;
    size_t *off; /* where each cell starts in buf */
    size_t n, ncap;
    char bad[160]; /* what is wrong with this record (empty: nothing) */
} csv_reader_t;

/* libcsv's cell callback: checks the cell over its full length (libcsv
 * gives its bytes with their length, a NUL included) and keeps it. */
static void csv_cell(void *s, size_t len, void *arg)
{
    csv_reader_t *r = arg;
    if (r->nomem) return;
    if (!r->bad[0] && len && memchr(s, 0, len))
        snprintf(r->bad, sizeof r->bad,
                 "line %zu, column %zu: a NUL byte in the cell (the export is "
                 "damaged or not text)",
                 r->cell_line, r->n + 1);
    else if (!r->bad[0] && utf8_bad_at(s, len) != len)
        snprintf(r->bad, sizeof r->bad,
                 "line %zu, column %zu: the cell is not UTF-8 (an export in "
                 "Latin-1 or Windows-1252? export as UTF-8)",
                 r->cell_line, r->n + 1);
    r->cell_line = r->line;
    if (r->n == r->ncap) {
        size_t nc = r->ncap ? r->ncap * 2 : 32;
        size_t *no = realloc(r->off, nc * sizeof *no);
        if (!no) goto nomem;
        r->off = no, r->ncap = nc;
    }
    if (r->cap - r->used < len + 1) {
        size_t nc = r->cap ? r->cap : 256;
        while (nc - r->used < len + 1) nc *= 2;
        char *nb = realloc(r->buf, nc);
        if (!nb) goto nomem;
        r->buf = nb, r->cap = nc;
    }
    if (len) memcpy(r->buf + r->used, s, len);
    r->buf[r->used + len] = 0;
    r->off[r->n++] = r->used;
    r->used += len + 1;
    return;
nomem:
    r->nomem = 1;
}

/* libcsv's row callback: a row's end, or (no cells) a blank line or the
 * LF of a CRLF. */
static void csv_row(int c, void *arg)
{
    csv_reader_t *r = arg;
    (void)c;
    r->row_end = 1;
}

/* Feeds part of one line to libcsv. On a strict-mode error, names it in
 * r->bad, skips the rest of the cell and goes on from the delimiter or
 * the line end after it. In slices, the buffer's growth set to its size
 * before each: a long cell grows it by doubling, not by libcsv's fixed
 * step, so reading stays linear. */
static int csv_feed(csv_reader_t *r, const char *s, size_t len)
{
    size_t at = 0;
    while (at < len) {
        size_t k = len - at < CSV_SLICE ? len - at : CSV_SLICE, size = csv_get_buffer_size(&r->p);
        csv_set_blk_size(&r->p, size > CSV_SLICE ? size : CSV_SLICE);
        size_t done = csv_parse(&r->p, s + at, k, csv_cell, csv_row, r);
        if (r->nomem) return SCHAKEL_ENOMEM;
        if (done == k) {
            at += k;
            continue;
        }
        if (csv_error(&r->p) != CSV_EPARSE) return SCHAKEL_ENOMEM;
        /* a quote where strict CSV has none: text after a closing quote
         * (libcsv: a quoted field ends in the quote), or a quote inside an
         * unquoted cell (the state libcsv keeps says which) */
        if (!r->bad[0]) {
            if (r->p.quoted)
                snprintf(r->bad, sizeof r->bad,
                         "line %zu, column %zu: text after the closing quote of a "
                         "quoted cell (double a quote inside a quoted cell)",
                         r->line, r->n + 1);
            else
                snprintf(r->bad, sizeof r->bad,
                         "line %zu, column %zu: a quote inside a cell that does not "
                         "start with one (quote the whole cell and double the quote)",
                         r->line, r->n + 1);
        }
        at += done;
        while (at < len && (unsigned char)s[at] != r->delim && s[at] != '\n' && s[at] != '\r') at++;
        /* a fresh row state: from the delimiter, libcsv gives an empty
         * cell in place of the broken one; from the line end, the row's end */
        csv_set_opts(&r->p, CSV_STRICT | CSV_REPALL_NL);
        csv_fini(&r->p, NULL, NULL, NULL);
        csv_set_opts(&r->p, CSV_OPTS);
    }
    return 0;
}

static int csv_reader_init(csv_reader_t *r, const schakel_profile_t *p, size_t line)
{
    memset(r, 0, sizeof *r);
    if (csv_init(&r->p, CSV_OPTS)) return SCHAKEL_ENOMEM;
    r->delim = p ? p->delim : ',';
    csv_set_delim(&r->p, r->delim);
    csv_set_quote(&r->p, p ? p->quote : '"');
    r->line = line;
    return 0;
}

static void csv_reader_free(csv_reader_t *r)
{
    csv_free(&r->p);
    free(r->buf);
    free(r->off);
}

/* Reads the record at *pos: returns 1 with its cells in r (r->bad says
 * what is wrong with it, if anything; no cells and no bad: a blank line),
 * 0 at the end of the text, SCHAKEL_EINVAL for a quote that is never
 * closed (the line it opened on in r->cell_line), or SCHAKEL_ENOMEM. */
static int csv_next(csv_reader_t *r, const char *text, size_t len, size_t *pos)
{
    r->n = r->used = 0;
    r->bad[0] = 0;
    while (*pos < len) {
        const char *s = text + *pos, *e = s;
        while (e < text + len && *e != '\n' && *e != '\r') e++;
        int ends = e < text + len;
        if (ends) e += *e == '\r' && e + 1 < text + len && e[1] == '\n' ? 2 : 1;
        if (!r->pending) r->rec_line = r->cell_line = r->line;
        r->row_end = 0;
        int rc = csv_feed(r, s, (size_t)(e - s));
        if (rc) return rc;
        *pos = (size_t)(e - text);
        if (!ends) break;
        r->line++;
        r->pending = !r->row_end;
        if (!r->pending) return 1;
    }
    /* the text's end: libcsv ends a last line without a line end, or
     * finds the quote never closed */
    if (csv_fini(&r->p, csv_cell, csv_row, r)) return SCHAKEL_EINVAL;
    if (r->nomem) return SCHAKEL_ENOMEM;
    r->pending = 0;
    return r->n || r->bad[0] ? 1 : 0;
}

static size_t csv_start(const char *text, size_t len)
{
    return len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0; /* a byte order mark */
}

size_t schakel_csv_record_end(const schakel_profile_t *p, const char *text, size_t len, size_t start,
                              size_t *first_line)
{
    csv_reader_t r;
    size_t pos = csv_start(text, len);
    if (start > pos) pos = start;
    if (csv_reader_init(&r, p, *first_line)) return len;
    int rc = csv_next(&r, text, len, &pos);
    *first_line = r.line;
    csv_reader_free(&r);
    return rc == 1 ? pos : len;
}

int schakel_rows_csv(const schakel_profile_t *p, const char *text, size_t len, schakel_row_fn fn, void *arg,
                     char *why)
{
    csv_reader_t r;
    size_t pos = csv_start(text, len);
    char *hbuf = NULL;
    const char **header = NULL, **values = NULL;
    size_t n_header = 0;
    int rc = 0, stop = 0;
    if (csv_reader_init(&r, p, 1)) return schakel_fail(why, SCHAKEL_ENOMEM, "csv: out of memory");
    while (!stop) {
        rc = csv_next(&r, text, len, &pos);
        if (rc == 0) break;
        if (rc == SCHAKEL_EINVAL) {
            rc = schakel_fail(why, SCHAKEL_EINVAL,
                              "csv: line %zu: a quote opens a cell that is never closed: "
                              "the whole file is refused (close or double the quote)",
                              r.cell_line);
            break;
        }
        if (rc < 0) {
            schakel_fail(why, rc, "csv: out of memory");
            break;
        }
        rc = 0;
        if (!r.n && !r.bad[0]) continue; /* a blank line */
        if (!header) {                   /* the first line names the columns */
            if (r.bad[0]) {
                rc = schakel_fail(why, SCHAKEL_EINVAL, "csv: the header: %s", r.bad);
                break;
            }
            hbuf = malloc(r.used);
            header = calloc(r.n, sizeof *header);
            values = calloc(r.n + 1, sizeof *values);
            if (!hbuf || !header || !values) {
                rc = schakel_fail(why, SCHAKEL_ENOMEM, "csv: out of memory");
                break;
            }
            memcpy(hbuf, r.buf, r.used);
            for (size_t i = 0; i < r.n; i++) header[i] = hbuf + r.off[i];
            n_header = r.n;
            continue;
        }
        if (!r.bad[0] && r.n != n_header)
            snprintf(r.bad, sizeof r.bad,
                     "line %zu: %zu columns, and the header has %zu (a delimiter too many "
                     "or too few?)",
                     r.rec_line, r.n, n_header);
        for (size_t i = 0; i < n_header; i++) values[i] = i < r.n ? r.buf + r.off[i] : "";
        schakel_row_t row = {header, values, n_header, r.bad[0] ? r.bad : NULL};
        stop = fn(arg, &row, r.rec_line);
    }
    if (!rc && !stop && !header)
        rc = schakel_fail(why, SCHAKEL_EINVAL, "csv: no header line naming the columns");
    csv_reader_free(&r);
    free(hbuf);
    free(header);
    free(values);
    return rc ? rc : stop;
}
