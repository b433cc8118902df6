/* schakel top: the node's /metrics (Prometheus text) read into samples,
 * and one frame of the operator's picture made from two readings (rates
 * need the one before). Shared by top.c (HTTP, curses, --once) and
 * top_frame.c (parsing and the frame). */
#ifndef SCHAKEL_TOP_H
#define SCHAKEL_TOP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[96];
    char org[64], type[48], service[32], code[48]; /* the labels of the metric contract; "" when absent */
    double v;
} top_sample_t;

typedef struct {
    top_sample_t *s;
    size_t n, cap;
    char (*family)[96]; /* the names of its "# TYPE" lines: a family served with no sample */
    size_t n_family, cap_family;
    double at;      /* when it was read, seconds (monotonic) */
    size_t skipped; /* lines that were not a sample */
} top_metrics_t;

/* Parses Prometheus text (len bytes) into m (emptied first). Comments and
 * lines that are not a sample are skipped and counted; the names of the
 * "# TYPE" lines are kept (a family the node serves without a sample is
 * "none", one it does not serve at all is "unknown"). 0 or -1 (memory). */
int top_parse(top_metrics_t *m, const char *text, size_t len);
void top_metrics_free(top_metrics_t *m);

/* One frame as plain text lines into *out (NUL-terminated, caller frees):
 * now is the reading, before the one a second earlier (NULL: no rates
 * yet); source names where it came from, wall_ms the wall clock. */
int top_frame(const top_metrics_t *now, const top_metrics_t *before, const char *source, int64_t wall_ms,
              char **out);

#endif
