/* Helpers for tests that run real `schakel adapter` processes against the
 * node of the running test program (H, scenario.h): an adapter's directory
 * and config under H->dir/adapters, starting and stopping it, dropping
 * exports into its spool, its HTTP input, and searching files for bytes.
 * Failures fail the running cmocka test. */
#ifndef SCHAKEL_TEST_ADAPTERS_HARNESS_H
#define SCHAKEL_TEST_ADAPTERS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct {
    char org[64];
    char dir[600], config[700], log[700], spool[700], inbox[700], token[700];
    int port; /* of the HTTP input, when the test gave it one */
    pid_t pid;
} adapter_t;

/* cmocka group setup and teardown: the node H (harness_new_node), started;
 * destroyed after the group. */
int adapters_node_setup(void **state);
int adapters_node_teardown(void **state);

/* Writes len bytes to path (created or truncated) with mode. */
void write_bytes(const char *path, const void *data, size_t len, mode_t mode);
/* How often needle occurs in the file (0 when it cannot be read). */
size_t count_in_file(const char *path, const char *needle);

/* An adapter of org in H->dir/adapters/<name> (name NULL: org) with the
 * profile, state "state" and spool "spool"; extra, when not NULL, is more
 * members of its config (e.g. "\"inbox\": {\"dir\": \"inbox\"}"). Writes the
 * config; does not start it. */
void adapter_init(adapter_t *a, const char *name, const char *org, const char *profile, const char *extra);
/* Starts `schakel adapter --config` in the background, its output in a->log. */
void adapter_start(adapter_t *a);
/* The same, then waits (10 s at most) until it logged event=started. */
void adapter_start_ready(adapter_t *a);
/* Sends sig and reaps it; returns its wait status (0: exited 0; -1: not
 * running). A sanitizer report in its log fails the test. */
int adapter_stop(adapter_t *a, int sig);

/* Drops a file into the spool the way an export should: written aside,
 * then renamed in; dated back so the adapter takes it at once. */
void adapter_drop(adapter_t *a, const char *name, const void *content, size_t len);
void adapter_drop_text(adapter_t *a, const char *name, const char *text);
/* No regular file left in the spool (taken, or never there). */
int adapter_spool_empty(adapter_t *a);
/* `schakel adapter status` as JSON (json_decref it), or NULL. */
json_t *adapter_status(adapter_t *a);

/* A growing buffer for an HTTP answer's body (free data). */
typedef struct {
    char *data;
    size_t len;
} buf_t;

/* One request to the adapter's HTTP input on 127.0.0.1:a->port; the
 * status, or -1 when no answer came. Headers: NULL-terminated "Name: value"
 * lines; the answer's body is appended to *answer when given. */
long adapter_http(adapter_t *a, const char *method, const char *path, const char *const *headers,
                  const char *body, size_t body_len, buf_t *answer, long timeout_ms);

/* Is needle in any file under dir? Entries whose path or name is in skip
 * (NULL-terminated, or NULL) are passed over. The first file that has it
 * goes to where. */
int has_bytes(const char *dir, const char *needle, const char *const *skip, char *where, size_t cap);
/* The same for the len bytes at needle (binary: a key, a hash). */
int has_bytes_n(const char *dir, const void *needle, size_t len, const char *const *skip, char *where,
                size_t cap);

/* Waits (60 s at most) until a file under dir holds needle; fails the
 * test naming both when none does. */
void wait_bytes(const char *dir, const char *needle);

/* GET path on 127.0.0.1:port: its status (0: no answer) and, when body is
 * not NULL, its body (NUL-ended; the caller frees). A stream is read for
 * at most limit_ms. */
long http_get(int port, const char *path, char **body, long limit_ms);

/* n synthetic BSNs from the test range that pass the elfproef (the range
 * holds some 900: after that children come back, as they do in exports). */
void synthetic_bsns(size_t n, char (*out)[10]);

#endif
