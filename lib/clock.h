/* The clocks schakel reads, in one place. Wall time is for what people
 * read and for what is stamped when it happens (a log line, an event's
 * occurred_at by a tool, an outbox entry's put-time); monotonic time is for
 * timeouts and durations, which a clock change must not stretch. Neither is
 * for a service's decisions: those take the log's time (rec->now), so that
 * audit replay derives the same bytes. Header-only: each is one call. */
#ifndef SCHAKEL_CLOCK_H
#define SCHAKEL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since 1970-01-01T00:00:00Z. */
static inline int64_t schakel_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds on a clock that only moves forward (since an arbitrary
 * point: compare two readings, never print one). */
static inline int64_t schakel_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same clock in nanoseconds, for latencies of a microsecond or less. */
static inline int64_t schakel_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The same clock in seconds, to time a run to the microsecond. */
static inline double schakel_mono_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
