/* The inbox, the last step of the data path: what the bus delivers to the
 * organisation (its stream org/<id>, FETCHed by lib/consumer.c) is handed
 * to its system as a JSON file in a directory, to a command on standard
 * input, or POSTed to a local URL; the consumer's cursor moves only after
 * the hand-over succeeded. Runs in its own thread. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapter_impl.h"
#include "consumer.h"
#include "fileio.h"

static size_t curl_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* Hands one record over; 0 when done. Otherwise *refused says whose the
 * failure is: INBOX_AWAY (the system is away or cannot take anything:
 * tried again without end), INBOX_REFUSED (the command failed on this
 * record: set aside after INBOX_TRIES) or INBOX_REFUSED_FOR_GOOD (the
 * command exited 65, or the URL answered 4xx: set aside at once). */
static int hand_over(adapter_t *a, const Schakel__V1__Delivered *d, const char *text, const char *idhex,
                     const char *type, int *refused, char *why)
{
    *refused = INBOX_AWAY;
    switch (a->inbox) {
    case INBOX_DIR: {
        char path[SCHAKEL_PATH_MAX];
        int rc = schakel_path_fmt(path, sizeof path, why, "%s/%020llu-%s.json", a->inbox_target,
                                  (unsigned long long)d->seq, idhex);
        if (rc) return rc; /* cannot be: the configuration left INBOX_ROOM */
        if (schakel_file_write_atomic(path, text, strlen(text)) != 0)
            return schakel_fail(why, SCHAKEL_EIO, "cannot write to the inbox %s: %s", a->inbox_target,
                                strerror(errno));
        return 0; /* schakel_file_write_atomic synced the inbox directory too */
    }
    case INBOX_COMMAND: {
        int pipefd[2];
        if (pipe(pipefd) != 0) return schakel_fail(why, SCHAKEL_EIO, "pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid == 0) {
            char seq[32];
            snprintf(seq, sizeof seq, "%llu", (unsigned long long)d->seq);
            /* a command without its event's names or input must not run:
             * 127, as for a command that is not there */
            if (setenv("SCHAKEL_EVENT_ID", idhex, 1) != 0 || setenv("SCHAKEL_EVENT_TYPE", type, 1) != 0 ||
                setenv("SCHAKEL_SEQ", seq, 1) != 0 || dup2(pipefd[0], 0) < 0)
                _exit(127);
            (void)close(pipefd[0]); /* copied to 0, or the write end: not this process's */
            (void)close(pipefd[1]);
            execl("/bin/sh", "sh", "-c", a->inbox_target, (char *)NULL);
            _exit(127);
        }
        (void)close(pipefd[0]); /* the child's end */
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t w = write(pipefd[1], text + off, len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        (void)close(pipefd[1]); /* a pipe: nothing buffered to lose; the exit status says it all */
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0)
            return schakel_fail(why, SCHAKEL_EIO, "cannot run the inbox command");
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
        int status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        /* 75 (EX_TEMPFAIL): the system is busy; 126, 127: the command
         * cannot run at all. Neither is this record's doing. */
        if (status != 75 && status != 126 && status != 127)
            *refused = status == 65 ? INBOX_REFUSED_FOR_GOOD : INBOX_REFUSED;
        return schakel_fail(why, SCHAKEL_EIO, "the inbox command failed (status %d%s)", status,
                            status < 0 ? ": killed by a signal" : "");
    }
    case INBOX_URL: {
        CURL *cu = curl_easy_init();
        if (!cu) return schakel_fail(why, SCHAKEL_ENOMEM, "curl");
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        char hdr[64];
        snprintf(hdr, sizeof hdr, "Schakel-Event-Id: %s", idhex);
        h = curl_slist_append(h, hdr);
        curl_easy_setopt(cu, CURLOPT_URL, a->inbox_target);
        curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(cu, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, curl_discard);
        CURLcode r = curl_easy_perform(cu);
        long code = 0;
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(h);
        curl_easy_cleanup(cu);
        if (r != CURLE_OK) return schakel_fail(why, SCHAKEL_EIO, "inbox URL: %s", curl_easy_strerror(r));
        /* 401, 403, 404: credentials or the endpoint, not the record */
        if (code >= 400 && code <= 499 && code != 401 && code != 403 && code != 404 && code != 408 &&
            code != 429)
            *refused = INBOX_REFUSED_FOR_GOOD;
        if (code < 200 || code > 299) return schakel_fail(why, SCHAKEL_EIO, "inbox URL answered %ld", code);
        return 0;
    }
    default: return 0;
    }
}

/* What the organisation's system gets for one record of its stream. */
static char *inbox_json(const Schakel__V1__Delivered *d, char idhex[33], char type[40])
{
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *o = json_pack("{s:I, s:s}", "seq", (json_int_t)d->seq, "recorded_at", at);
    schakel_envelope_t *e = d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
    snprintf(idhex, 33, "erased-%llu", (unsigned long long)d->seq);
    snprintf(type, 40, "erased");
    if (e) {
        json_object_set_new(o, "event", schakel_json_from_envelope(e));
        schakel_hex_encode(e->event_id.data, 16, idhex);
        snprintf(type, 40, "%s", schakel_event_type_name(e->type));
        schakel_envelope_free(e);
    } else {
        json_object_set_new(o, "erased", json_true());
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

int adapter_inbox_deliver(adapter_t *a, const Schakel__V1__Delivered *d, char idhex[33], char type[40],
                          int *refused, char *why)
{
    *refused = INBOX_AWAY;
    char *text = inbox_json(d, idhex, type);
    int rc = !text ? schakel_fail(why, SCHAKEL_ENOMEM, "out of memory")
             /* an erasure: the child's deliveries go before the notice is handed over */
             : !strcmp(type, "erasure") ? adapter_inbox_forget(a, d, why)
                                        : 0;
    if (rc == 0) rc = hand_over(a, d, text, idhex, type, refused, why);
    free(text);
    return rc;
}

/* The cursor past d: a position in org/<us> (a delivery decided late, a
 * hold released, has a later position than its event's seq). */
static void move_on(adapter_t *a, const Schakel__V1__Delivered *d)
{
    if (schakel_outbox_set(a->outbox, "inbox_cursor", d->position ? d->position : d->seq))
        schakel_log(SCHAKEL_LOG_WARN, "adapter",
                    "event=inbox_cursor_not_saved seq=%llu action=handed_over_again_after_restart",
                    (unsigned long long)d->seq);
}

/* Hands d over, tried again while the system is away; a record refused
 * INBOX_TRIES times (or for good) is set aside, except an erasure. */
static void deliver_in_order(adapter_t *a, const Schakel__V1__Delivered *d)
{
    char idhex[33], type[40], why[SCHAKEL_ERRLEN] = "";
    unsigned tries = 0;
    for (int backoff = 1000; !atomic_load(&a->stop); backoff = backoff * 2 > 30000 ? 30000 : backoff * 2) {
        int refused;
        if (adapter_inbox_deliver(a, d, idhex, type, &refused, why) == 0) {
            move_on(a, d);
            schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=delivered seq=%llu type=%s",
                        (unsigned long long)d->seq, type);
            return;
        }
        tries++;
        schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=handover_retry seq=%llu reason=\"%s\"",
                    (unsigned long long)d->seq, why);
        if (strcmp(type, "erasure") != 0 &&
            (refused == INBOX_REFUSED_FOR_GOOD || (refused == INBOX_REFUSED && tries >= INBOX_TRIES))) {
            char err[SCHAKEL_ERRLEN] = "";
            if (adapter_inbox_set_aside(a, d, idhex, type, tries, why, err) == 0) {
                move_on(a, d);
                return;
            }
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=inbox_not_set_aside seq=%llu reason=\"%s\"",
                        (unsigned long long)d->seq, err);
        }
        schakel_outbox_error(a->outbox, why, schakel_wall_ms());
        for (int t = 0; t < backoff && !atomic_load(&a->stop); t += 50) usleep(50000);
    }
}

void *adapter_inbox_main(void *arg)
{
    adapter_t *a = arg;
    char stream[80], why[SCHAKEL_ERRLEN] = "";
    snprintf(stream, sizeof stream, "org/%s", a->conn.as_org);
    schakel_consumer_options_t o = {0};
    o.endpoint = a->conn.endpoint;
    o.pub_endpoint = a->conn.pub_endpoint;
    o.server_public = a->conn.server_public;
    o.keys = &a->conn.keys;
    o.stream = stream;
    o.from_seq = schakel_outbox_get(a->outbox, "inbox_cursor") + 1;
    /* a delivery wakes it (the broker's notification); without one it asks
     * once a second, not four times (a region runs a hundred adapters
     * beside its node) */
    o.idle_fetch_ms = 1000;
    schakel_consumer_t *c = schakel_consumer_new(a->ctx, &o, why);
    if (!c) {
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=inbox_failed reason=\"%s\"", why);
        return NULL;
    }
    int64_t looked = 0;
    while (!atomic_load(&a->stop)) {
        if (schakel_wall_ms() - looked >= INBOX_REDELIVER_MS) { /* notes an operator moved */
            adapter_inbox_redeliver(a);
            looked = schakel_wall_ms();
        }
        const Schakel__V1__Delivered *d;
        int rc = schakel_consumer_next(c, &d, 1000, why);
        if (rc == SCHAKEL_ETIMEOUT) continue;
        if (rc) {
            schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=inbox_retry reason=\"%s\"", why);
            schakel_outbox_error(a->outbox, why, schakel_wall_ms());
            sleep(1);
            continue;
        }
        deliver_in_order(a, d);
    }
    schakel_consumer_destroy(&c);
    return NULL;
}
