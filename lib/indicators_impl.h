/* What indicators.c (reading the log, tallying) hands indicators_out.c
 * (writing the figures). Private to the two. */
#ifndef SCHAKEL_INDICATORS_IMPL_H
#define SCHAKEL_INDICATORS_IMPL_H

#include <jansson.h>
#include <stdint.h>

#include "calendar.h"
#include "directory.h"

#define IND_KEY_MAX 256
#define IND_SMALL 5 /* counts below this (and above 0) are shown as "<5" */

typedef struct {
    json_t *cells;     /* "month\tschool\tdistrict\tfigure\tbreakdown" -> count */
    json_t *referrals; /* referral id (hex) -> its cell and progress; in memory only */
    json_t *children;  /* pseudonym -> latest thuiszitter status; in memory only */
    json_t *waits;     /* "month\tschool\tdistrict" -> [working days to first contact] */
    schakel_directory_t *dir;
    schakel_decree_days_t decree;
    int64_t now; /* the log's time: the latest recorded_at or clock tick */
    uint64_t last_seq, undecoded;
} ind_t;

void ind_add(ind_t *t, const char *month, const char *school, const char *district, const char *figure,
             const char *breakdown, json_int_t n);

/* indicators_out.c: the cells and medians as JSON or CSV. */
int ind_render(const ind_t *t, int csv, char **out, size_t *len, char *why);

#endif
