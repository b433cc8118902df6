/* Records of the inbox that the organisation's system refuses for good
 * are set aside, so that one record (odd text, a code the system does not
 * know) does not hold up every later one, a safety report among them.
 * What is kept is a note, not the record: state/inbox-set-aside/<position,
 * 20 digits>.json holds the record's seq, position, event id and type,
 * when and why (no content: the record stays on the bus, in the
 * organisation's stream). An operator re-delivers it by moving the note
 * to state/inbox-redeliver/: the inbox fetches that position from the
 * stream again and hands it over; refused again, the note goes back. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_impl.h"
#include "consumer.h"
#include "fileio.h"

#define ASIDE_DIR "inbox-set-aside"
#define REDELIVER_DIR "inbox-redeliver"

/* A note's position from its name (20 digits and .json); 0 if it is not one. */
static uint64_t note_position(const char *name)
{
    if (strlen(name) != 25 || strcmp(name + 20, ".json") != 0) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        if (v > (UINT64_MAX - (uint64_t)(name[i] - '0')) / 10) return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return v;
}

static int note_path(const adapter_t *a, const char *dir, uint64_t position, char *out, char *why)
{
    return schakel_path_fmt(out, SCHAKEL_PATH_MAX, why, "%s/%s/%020llu.json", a->state, dir,
                            (unsigned long long)position);
}

int adapter_inbox_set_aside(adapter_t *a, const Schakel__V1__Delivered *d, const char *idhex,
                            const char *type, unsigned tries, const char *reason, char *why)
{
    uint64_t position = d->position ? d->position : d->seq;
    char dir[SCHAKEL_PATH_MAX], path[SCHAKEL_PATH_MAX], at[32], scrubbed[SCHAKEL_ERRLEN];
    snprintf(scrubbed, sizeof scrubbed, "%s", reason);
    schakel_reason_scrub(scrubbed);
    schakel_time_format(schakel_wall_ms(), at);
    if (schakel_path_join(dir, sizeof dir, a->state, ASIDE_DIR, why) ||
        note_path(a, ASIDE_DIR, position, path, why))
        return SCHAKEL_EIO;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) /* made at the start: removed since? */
        return schakel_fail(why, SCHAKEL_EIO, "cannot create %s: %s", dir, strerror(errno));
    json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:I, s:s}", "seq", (json_int_t)d->seq, "position",
                          (json_int_t)position, "event_id", idhex, "type", type, "set_aside_at", at, "tries",
                          (json_int_t)tries, "reason", scrubbed);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = text ? schakel_file_write_atomic(path, text, strlen(text)) : SCHAKEL_ENOMEM;
    free(text);
    if (rc) return schakel_fail(why, SCHAKEL_EIO, "cannot write the set-aside note under %s", dir);
    schakel_log(SCHAKEL_LOG_WARN, "adapter",
                "event=inbox_set_aside seq=%llu position=%llu type=%s tries=%u reason=\"%s\" "
                "fix=\"see why the inbox refuses it, then move %s/%020llu.json to %s/\"",
                (unsigned long long)d->seq, (unsigned long long)position, type, tries, scrubbed, ASIDE_DIR,
                (unsigned long long)position, REDELIVER_DIR);
    char err[SCHAKEL_ERRLEN + 64];
    snprintf(err, sizeof err, "inbox: record seq %llu set aside: %s", (unsigned long long)d->seq, scrubbed);
    schakel_outbox_error(a->outbox, err, schakel_wall_ms());
    return 0;
}

size_t adapter_inbox_set_aside_count(const adapter_t *a)
{
    char dir[SCHAKEL_PATH_MAX];
    if (schakel_path_join(dir, sizeof dir, a->state, ASIDE_DIR, NULL)) return 0;
    DIR *dp = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; dp && (e = readdir(dp));) n += note_position(e->d_name) != 0;
    if (dp) closedir(dp);
    return n;
}

/* The record at position of the organisation's stream, fetched again
 * with a consumer of its own, handed over; 0 when done, else why. */
static int redeliver_one(adapter_t *a, uint64_t position, int *refused, char *why)
{
    char stream[80];
    snprintf(stream, sizeof stream, "org/%s", a->conn.as_org);
    schakel_consumer_options_t o = {0};
    o.endpoint = a->conn.endpoint;
    o.server_public = a->conn.server_public;
    o.keys = &a->conn.keys;
    o.stream = stream;
    o.from_seq = position;
    o.batch = 1;
    *refused = 0;
    schakel_consumer_t *c = schakel_consumer_new(a->ctx, &o, why);
    if (!c) return SCHAKEL_EIO;
    const Schakel__V1__Delivered *d = NULL;
    int rc = schakel_consumer_next(c, &d, 2000, why);
    /* no answer is the bus away (or a position past the head): tried
     * again at the next turn; another position is not in the stream */
    if (rc == 0 && (d->position ? d->position : d->seq) != position) {
        *refused = 1; /* not (or no longer) in the stream: back aside, said so */
        rc = schakel_fail(why, SCHAKEL_ENOTFOUND, "position %llu is not in the stream org/%s",
                          (unsigned long long)position, a->conn.as_org);
    }
    char idhex[33], type[40];
    if (rc == 0) rc = adapter_inbox_deliver(a, d, idhex, type, refused, why);
    schakel_consumer_destroy(&c);
    return rc;
}

/* Positions handed over whose note could not be removed (this process's
 * life): never handed over again. */
static _Thread_local uint64_t done[64];
static _Thread_local size_t n_done;

static int done_before(uint64_t position)
{
    for (size_t i = 0; i < n_done && i < 64; i++)
        if (done[i] == position) return 1;
    return 0;
}

static void done_add(uint64_t position)
{
    done[n_done++ % 64] = position;
}

void adapter_inbox_redeliver(adapter_t *a)
{
    char dir[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_join(dir, sizeof dir, a->state, REDELIVER_DIR, NULL)) return;
    DIR *dp = opendir(dir);
    if (!dp) return;
    uint64_t positions[64];
    size_t n = 0;
    for (struct dirent *e; n < 64 && (e = readdir(dp));)
        if (note_position(e->d_name)) positions[n++] = note_position(e->d_name);
    closedir(dp);
    for (size_t i = 0; i < n && !atomic_load(&a->stop); i++) {
        char from[SCHAKEL_PATH_MAX], back[SCHAKEL_PATH_MAX];
        int refused = 0;
        if (note_path(a, REDELIVER_DIR, positions[i], from, why) ||
            note_path(a, ASIDE_DIR, positions[i], back, why))
            continue;
        if (done_before(positions[i])) continue; /* handed over; its note could not be removed */
        int rc = redeliver_one(a, positions[i], &refused, why);
        if (rc == 0) {
            (void)unlink(back); /* an older note of the same record */
            if (unlink(from) != 0) {
                done_add(positions[i]);
                schakel_log(SCHAKEL_LOG_ERROR, "adapter",
                            "event=inbox_redeliver_note_stuck position=%llu fix=\"remove the note from "
                            "state/inbox-redeliver/ by hand: the record was handed over\"",
                            (unsigned long long)positions[i]);
            }
            schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=inbox_redelivered position=%llu",
                        (unsigned long long)positions[i]);
        } else if (refused) { /* refused again: the note goes back, the reason in the log */
            schakel_reason_scrub(why);
            schakel_log(SCHAKEL_LOG_WARN, "adapter",
                        "event=inbox_redeliver_refused position=%llu reason=\"%s\" action=set_aside_again",
                        (unsigned long long)positions[i], why);
            if (rename(from, back) != 0) /* the note stays where it is: tried again */
                schakel_log(SCHAKEL_LOG_ERROR, "adapter",
                            "event=inbox_redeliver_note_kept position=%llu reason=\"cannot move the note "
                            "back to state/inbox-set-aside/\"",
                            (unsigned long long)positions[i]);
        } else { /* the system or the bus is away: tried again at the next turn */
            schakel_reason_scrub(why);
            schakel_log(SCHAKEL_LOG_WARN, "adapter",
                        "event=inbox_redeliver_retry position=%llu reason=\"%s\"",
                        (unsigned long long)positions[i], why);
            break; /* the rest at the next turn: the inbox goes on meanwhile */
        }
    }
}
