/* What the crash tests share: publishers that keep sending to a broker
 * being killed and restarted, recording every event the broker ACKed with
 * the seq its ACK named; and the check, once they stop, that the log holds
 * each of those events exactly once at that seq. The tests differ only in
 * what they do to the broker between restarts and in how they report a
 * missing event (acked_check). */
#ifndef SCHAKEL_TEST_ACKED_H
#define SCHAKEL_TEST_ACKED_H

#include <stdbool.h>
#include <stddef.h>

#include "../integration/harness.h"

typedef struct acked_run acked_run_t;

/* Starts one publisher thread per organisation in orgs[0..n-1], each
 * sending batches to h until acked_stop. NULL when out of memory. */
acked_run_t *acked_start(harness_t *h, const char *const *orgs, int n);

/* Tells the publishers to stop without waiting for them: for a teardown
 * after a failed assertion (run may be NULL). */
void acked_halt(acked_run_t *run);

/* Stops the publishers and waits for them. */
void acked_stop(acked_run_t *run);

/* Events ACKed so far; any thread, also while the publishers run. */
size_t acked_count(acked_run_t *run);

/* Batches whose publish failed (timed out while the broker was down). */
unsigned long acked_timeouts(const acked_run_t *run);

/* Reads the whole log back through h's broker ("<label>: N records in the
 * log"), fails the test on an event logged twice or an ACKed event logged
 * at another seq. A missing ACKed event fails at once when
 * fail_on_missing; otherwise the missing are counted and returned, for
 * the caller to judge. */
size_t acked_check(acked_run_t *run, harness_t *h, const char *label, bool fail_on_missing);

/* Frees what acked_start made; publishers must be stopped. */
void acked_free(acked_run_t **run);

#endif
