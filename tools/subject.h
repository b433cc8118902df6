/* One child's history from the log (schakel audit subject): the records
 * about one pseudonym, gathered in log order into the JSON that
 * docs/audit.md ("One child's history") describes, and the printable
 * report in Dutch made from that JSON. */
#ifndef SCHAKEL_TOOL_SUBJECT_H
#define SCHAKEL_TOOL_SUBJECT_H

#include <jansson.h>
#include <stdint.h>

#include "directory.h"
#include "schakel/v1/bus.pb-c.h"
#include "wire.h"

typedef struct subject_history subject_history_t;

/* A history of the child with pseudonym subject (64 hex), or NULL. */
subject_history_t *subject_history_new(const char subject[65]);
void subject_history_destroy(subject_history_t **self_p);

/* Takes one record of stream all, in log order: kept when it is about the
 * child (an event, a routing or consent decision, an audit_access).
 * Records that do not decode (erased) are counted, not kept. */
void subject_history_add(subject_history_t *h, const Schakel__V1__Delivered *d);

/* The last seq given to add (0: none). */
uint64_t subject_history_last_seq(const subject_history_t *h);

/* 1 when any event about the child (other than an audit_access) was seen. */
int subject_history_found(const subject_history_t *h);

/* 1 when the log has an erasure of the child (the broker's `erasure`
 * event naming its pseudonym). */
int subject_history_erased(const subject_history_t *h);

/* The history as JSON (docs/audit.md); a new reference, NULL on ENOMEM. */
json_t *subject_history_json(subject_history_t *h);

/* Writes the report for the family, in Dutch, as one self-contained HTML
 * file (no scripts, no links out) made from history (subject_history_json)
 * to path; dir (may be NULL) gives the organisations' names. Returns 0 or
 * SCHAKEL_EIO / SCHAKEL_ENOMEM with why. */
int subject_html_write(const json_t *history, const schakel_directory_t *dir, const char *path, char *why);

#endif
