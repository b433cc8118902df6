/* The inbox on an `erasure` (the broker puts one into every
 * organisation's stream): before the erasure itself is handed over, a
 * directory inbox overwrites with zeros and removes every delivery it
 * still holds about the erased child, so that what the bus put on this
 * machine is gone with the child's key. A command or URL inbox holds
 * nothing: the receiving system gets the erasure and acts on it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_impl.h"
#include "fileio.h"

#define SEQ_DIGITS 20
#define INBOX_FILE_MAX (64u << 20) /* a delivery is far smaller: the broker's record limit */

/* The seq a delivery's file name starts with (`<20 digits>-`), or 0 for a
 * file that is not one (the organisation's own, or a directory): ours are
 * never longer than INBOX_ROOM, for which the configuration left room. */
static uint64_t file_seq(const char *name)
{
    if (strlen(name) >= INBOX_ROOM - 1) return 0;
    uint64_t seq = 0;
    for (int i = 0; i < SEQ_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        seq = seq * 10 + (uint64_t)(name[i] - '0');
    }
    return name[SEQ_DIGITS] == '-' ? seq : 0;
}

/* An erasure notice (of an earlier erasure of the same child) names the
 * child too, but holds no content: it stays for the system to act on. */
static int is_erasure_notice(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(json_object_get(o, "event"), "type"));
    int yes = type && strcmp(type, "erasure") == 0;
    json_decref(o);
    return yes;
}

/* Overwrites the file's bytes with zeros, flushed, then removes it: a
 * plain unlink leaves the blocks as they were until reused. */
static int scrub(const char *path, char *why)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) (void)close(fd); /* read-only: nothing written to lose */
        return schakel_fail(why, SCHAKEL_EIO,
                            "cannot overwrite an erased child's delivery in the inbox %s: %s", path,
                            strerror(errno));
    }
    static const char zeros[4096];
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t w = write(fd, zeros, left < (off_t)sizeof zeros ? (size_t)left : sizeof zeros);
        if (w <= 0) break;
        left -= w;
    }
    int ok = left == 0 && fsync(fd) == 0;
    if (close(fd) != 0) ok = 0;
    if (!ok || unlink(path) != 0)
        return schakel_fail(why, SCHAKEL_EIO, "cannot overwrite and remove an erased child's delivery %s: %s",
                            path, strerror(errno));
    return 0;
}

/* Scrubs the deliveries up to erased_upto that name subject; their count
 * in *n. */
static int forget_in_dir(adapter_t *a, const char *subject, uint64_t upto, size_t *n, char *why)
{
    DIR *dir = opendir(a->inbox_target);
    if (!dir)
        return schakel_fail(why, SCHAKEL_EIO, "cannot read the inbox %s: %s", a->inbox_target,
                            strerror(errno));
    int rc = 0;
    size_t sl = strlen(subject);
    for (struct dirent *de; rc == 0 && (de = readdir(dir));) {
        uint64_t seq = file_seq(de->d_name);
        if (!seq || seq > upto) continue;
        char path[SCHAKEL_PATH_MAX];
        rc = schakel_path_join(path, sizeof path, a->inbox_target, de->d_name, why);
        if (rc) break;
        size_t len = 0;
        char *text = schakel_file_read(path, INBOX_FILE_MAX, &len);
        if (!text) continue; /* gone already: the system took it */
        int names = sl && memmem(text, len, subject, sl) != NULL;
        if (names && !is_erasure_notice(text, len)) {
            rc = scrub(path, why);
            if (rc == 0) (*n)++;
        }
        free(text);
    }
    (void)closedir(dir); /* read only */
    if (rc == 0 && *n) {
        int dfd = open(a->inbox_target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0)
            rc = schakel_fail(why, SCHAKEL_EIO, "cannot sync the inbox %s: %s", a->inbox_target,
                              strerror(errno));
        if (dfd >= 0) (void)close(dfd); /* synced, or the failure is said */
    }
    return rc;
}

int adapter_inbox_forget(adapter_t *a, const Schakel__V1__Delivered *d, char *why)
{
    if (a->inbox != INBOX_DIR || !d->event.len) return 0;
    schakel_envelope_t *e = schakel_envelope_decode(d->event.data, d->event.len, NULL);
    if (!e) return 0;
    int rc = 0;
    size_t n = 0;
    if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE && e->erasure && e->erasure->erased_subject)
        rc = forget_in_dir(a, e->erasure->erased_subject, e->erasure->erased_upto, &n, why);
    schakel_envelope_free(e);
    if (rc == 0 && n)
        schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=inbox_erased seq=%llu files=%zu",
                    (unsigned long long)d->seq, n);
    return rc;
}
