/* The monitoring figures a municipality asks for (docs/operations.md,
 * "Indicators"), per school (BRINVEST), district and month, computed from
 * a node's log: signals, intakes by the kind of the organisation that
 * held them, consultations, referrals by receiver kind, referrals
 * answered within the deadline, the median of working days to first
 * contact, TLVs by type, thuiszitters by reason and duration band.
 * Aggregates only: counts from 1 to 4 are shown as "<5", no median under
 * five cases, and no pseudonym, case reference or event id is ever
 * written. */
#ifndef SCHAKEL_INDICATORS_H
#define SCHAKEL_INDICATORS_H

#include <stddef.h>

/* Reads the log of node_dir (node_dir/log, with node_dir/master.key and
 * node_dir/directory.json, read-only: a running node may go on) and
 * renders the figures as format "json" or "csv" into *out (NUL-terminated,
 * the caller frees it) of *len bytes. 0, or an error code with the reason
 * in why (SCHAKEL_ERRLEN bytes): SCHAKEL_EINVAL for another format,
 * SCHAKEL_ENOTFOUND or SCHAKEL_ESTORE when there is no log to read. */
int schakel_indicators_render(const char *node_dir, const char *format, char **out, size_t *len, char *why);

#endif
