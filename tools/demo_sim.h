/* The demo's scenario inside (demo_rows.c: the schools' stories;
 * demo_steps.c: the steps that follow them on the simulated clock): the
 * scheduled steps, in a heap by due time, and the helpers both use. */
#ifndef SCHAKEL_TOOL_DEMO_SIM_H
#define SCHAKEL_TOOL_DEMO_SIM_H

#include "demo.h"

/* What a scheduled step continues: a receiver's answer to a referral (its
 * steps, one path after the intake), Veilig Thuis's answer to a report,
 * the municipality's decision on specialised care a receiver asked for,
 * or a school's own chain (the meldcode, a thuiszitter, a withdrawal). */
typedef enum {
    ST_CARE,
    ST_VT,
    ST_MELDCODE,
    ST_THUIS,
    ST_WITHDRAW,
    ST_BESCHIKKING,
    ST_LEERPLICHT
} step_kind_t;

typedef struct {
    int64_t due, received, start; /* start: when the chain began */
    int org, step, child, path;
    step_kind_t kind;
    uint64_t story; /* a school's chain: the story that began it */
    char rid[33];   /* the referral, report or consent id */
    char to[24];    /* a referral's kind for a consent's withdrawal; leerplicht: the code it registers */
} step_t;

struct demo_sim {
    demo_region_t *r;
    uint64_t next, deliberate;
    int64_t now;
    step_t *heap;
    size_t n, cap;
    int index[2048]; /* children by pseudonym: open addressing, -1 empty */
};

#define DAY_MS (86400LL * 1000)

void demo_push(demo_sim_t *s, step_t st);
/* A draw for step st from the seed and what the step is about (its id or
 * story), never from the order in which steps came: salt tells draws apart. */
demo_rng_t demo_step_rng(const demo_sim_t *s, const step_t *st, unsigned salt);
/* Runs step st: its rows into the buffers, the next step scheduled. The rows. */
int demo_step_run(demo_sim_t *s, step_t *st);

/* Dates as the systems write them: style 0 dd-mm-yyyy, 1 dd/mm/yyyy, 2 yyyy-mm-dd. */
void demo_fmt_date(int64_t ms, int style, char out[11]);
void demo_fmt_clock(int64_t ms, char out[6]);
void demo_birth_as(const char *iso, int style, char out[11]);
/* The child's age in whole years on the simulated day. */
int demo_age(const demo_child_t *ch, int64_t ms);
/* Whose consent counts for the child on that day, in the systems' words
 * (docs/routing.md, "Whose consent counts"); adult: their word for a
 * student or client of 18 or over. */
const char *demo_given_by(const demo_child_t *ch, int64_t ms, const char *adult);

#endif
