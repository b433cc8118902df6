/* Operational logging: one line per event, key=value, to stderr. Never
 * personal data: log ids, counts, codes and sequence numbers, not subjects,
 * case references or payloads. */
#ifndef SCHAKEL_LOGGING_H
#define SCHAKEL_LOGGING_H

enum { SCHAKEL_LOG_DEBUG, SCHAKEL_LOG_INFO, SCHAKEL_LOG_WARN, SCHAKEL_LOG_ERROR };

/* Lines below this level are dropped. Default INFO; SCHAKEL_LOG=debug in
 * the environment lowers it. Thread-safe: each line is one write(2). */
void schakel_log_set_level(int level);

/* Lines of level dropped (below the level in force) since the start. */
unsigned long schakel_log_dropped(int level);

/* Writes "ts=... level=... component=<component> <fmt...>\n". fmt should
 * produce key=value pairs, e.g. "event=ack seq=%llu". */
void schakel_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
