/* Looking is recorded: every auditor's command (explain, audit subject,
 * verify, replay, export, erase) puts one audit_access event on the log
 * through audit_access_record, so that who looked, with which command, at
 * what and why is itself on the chain (docs/audit.md, "Every look is
 * recorded"). Also the two ways the commands that ask the broker read it. */
#ifndef SCHAKEL_TOOL_AUDIT_ACCESS_H
#define SCHAKEL_TOOL_AUDIT_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "error.h"
#include "schakel/v1/bus.pb-c.h"
#include "wire.h"

/* The longest --purpose: a string on the bus (docs/events.md, "codes and
 * references, not text"). */
#define AUDIT_PURPOSE_MAX 128

typedef struct {
    const char *command;   /* request_code: "explain", "audit_subject", "audit_verify", ... */
    const char *subject;   /* the child's pseudonym, or NULL / "" when none */
    const char *query_ref; /* what was asked (an event or referral id in hex), or NULL */
    const char *purpose;   /* --purpose as given, or NULL */
    uint64_t from_seq;     /* the records read, from_seq..to_seq; 0 when not a range */
    uint64_t to_seq;
} audit_access_t;

/* Checks --purpose for `schakel cmd`: when required it must be given; when
 * given, 1 to AUDIT_PURPOSE_MAX bytes of printable UTF-8 (no control
 * characters). Says what to fix on stderr. Returns 0, or 2 (the exit
 * status for a wrong argument). */
int audit_purpose_check(const char *cmd, const char *purpose, int required);

/* Publishes one audit_access event about a as c's organisation (its key
 * must be allowed to publish audit_access: svc-audit in the sample region)
 * and waits for the ACK. Returns 0, or a SCHAKEL_E* code with why saying
 * what went wrong (the broker's reason when it refused). */
SCHAKEL_MUST_USE int audit_access_record(void *ctx, schakel_conn_t *c, const audit_access_t *a, char *why);

/* For the commands that read a data directory directly (verify, replay):
 * records a through the broker of the node in data_dir, as c says (conn
 * flags), else as svc-audit through data_dir/node.json when the flags name
 * no broker. When the broker does not answer or refuses, says on stderr
 * "schakel <cmd>: this audit was NOT recorded on the log: <why>". Never
 * changes the command's own result. Returns 0 when recorded, else -1. */
int audit_access_record_offline(const char *cmd, schakel_conn_t *c, const char *data_dir,
                                const audit_access_t *a);

/* Whether the broker of c answers PING (3 s): 0, with the log's last seq
 * in *head (when not NULL), or a SCHAKEL_E* code with why. Without it,
 * reading a stream would time out and "nothing found" would stand for
 * "nobody answered". */
int audit_broker_answers(void *ctx, schakel_conn_t *c, uint64_t *head, char *why);

/* Reads stream as c from position from, calling fn for each record, until
 * max records or it has caught up. Returns 0 or a SCHAKEL_E* code. */
int audit_read_stream(void *ctx, schakel_conn_t *c, const char *stream, uint64_t from, size_t max,
                      void (*fn)(void *, const Schakel__V1__Delivered *), void *arg, char *why);

#endif
