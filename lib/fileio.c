/* Reading and atomically replacing whole files; see fileio.h. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "error.h"

/* The message names the path: whole when it fits in why, else its start
 * and its end (where the file name is). */
static int path_too_long(const char *path, size_t len, size_t cap, char *why)
{
    enum { HEAD = 100, TAIL = 60 };
    if (!path || len <= HEAD + TAIL)
        return schakel_fail(why, SCHAKEL_ETOOBIG,
                            "path too long: %s (%zu characters; at most %zu): use a shorter directory",
                            path ? path : "?", len, cap - 1);
    return schakel_fail(why, SCHAKEL_ETOOBIG,
                        "path too long: %.*s...%s (%zu characters; at most %zu): use a shorter directory",
                        HEAD, path, path + len - TAIL, len, cap - 1);
}

int schakel_path_vfmt(char *out, size_t cap, char *why, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = cap ? vsnprintf(out, cap, fmt, ap) : -1;
    if (n >= 0 && (size_t)n < cap) {
        va_end(again);
        return 0;
    }
    if (cap) out[0] = 0; /* never a cut path that someone might use */
    if (n < 0) {
        va_end(again);
        return schakel_fail(why, SCHAKEL_EINVAL, "a path that cannot be formatted");
    }
    char *full = malloc((size_t)n + 1);
    if (full) vsnprintf(full, (size_t)n + 1, fmt, again);
    va_end(again);
    int rc = path_too_long(full, (size_t)n, cap, why);
    free(full);
    return rc;
}

int schakel_path_fmt(char *out, size_t cap, char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = schakel_path_vfmt(out, cap, why, fmt, ap);
    va_end(ap);
    return rc;
}

int schakel_path_join(char *out, size_t cap, const char *dir, const char *name, char *why)
{
    if (!dir[0] && !name[0]) {
        if (cap) out[0] = 0;
        return schakel_fail(why, SCHAKEL_EINVAL, "an empty path: give a directory or a file");
    }
    if (!dir[0]) return schakel_path_fmt(out, cap, why, "%s", name);
    if (!name[0]) return schakel_path_fmt(out, cap, why, "%s", dir);
    const char *slash = dir[strlen(dir) - 1] == '/' ? "" : "/";
    return schakel_path_fmt(out, cap, why, "%s%s%s", dir, slash, name);
}

char *schakel_file_read(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 65536 > cap) {
            char *nb = realloc(buf, cap = cap * 2 + 65536 + 1);
            if (!nb) {
                free(buf);
                (void)fclose(f); /* read only: nothing to lose */
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, (cap - n - 1) < max - n ? cap - n - 1 : max - n, f);
        n += got;
    } while (got > 0 && n < max);
    int err = ferror(f);
    (void)fclose(f); /* read only: ferror said what matters */
    if (err) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int schakel_file_write_atomic(const char *path, const void *data, size_t len)
{
    return schakel_file_write_atomic_mode(path, data, len, 0600);
}

int schakel_file_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[SCHAKEL_PATH_MAX];
    if (schakel_path_fmt(tmp, sizeof tmp, NULL, "%s.tmp", path) != 0) { /* callers say strerror(errno) */
        errno = ENAMETOOLONG;
        return SCHAKEL_EIO;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    if (fd < 0) return SCHAKEL_EIO;
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    int ok = off == len && fchmod(fd, (mode_t)mode) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) { /* after fsync, a late write error all the same */
        ok = 0;
        saved = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        saved = ok ? errno : saved;
        (void)unlink(tmp); /* the error to report is the one above */
        errno = saved;
        return SCHAKEL_EIO;
    }
    /* the rename itself must survive a power cut too */
    char dir[SCHAKEL_PATH_MAX];
    memcpy(dir, path, strlen(path) + 1); /* shorter than tmp, which fit */
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        /* EINVAL, ENOTSUP: a file system that does not sync directories */
        int synced = fsync(dfd) == 0 || errno == EINVAL || errno == ENOTSUP;
        saved = errno;
        (void)close(dfd); /* read only */
        if (!synced) {    /* the new content is there, but may not survive a power cut */
            errno = saved;
            return SCHAKEL_EIO;
        }
    }
    return 0;
}

int schakel_secret_file(const char *path, unsigned char *key, size_t len, int create, int *created, char *why)
{
    char hex[2 * 64 + 2];
    if (created) *created = 0;
    if (len > 64) return schakel_fail(why, SCHAKEL_EINVAL, "a secret of at most 64 bytes");
    size_t n;
    char *text = schakel_file_read(path, sizeof hex, &n);
    if (text) {
        while (n && (text[n - 1] == '\n' || text[n - 1] == ' ')) text[--n] = 0;
        int ok = schakel_hex_decode(text, key, len) == 0;
        memset(text, 0, n);
        free(text);
        return ok ? 0 : schakel_fail(why, SCHAKEL_ECONFIG, "%s: %zu hex characters expected", path, 2 * len);
    }
    if (errno != ENOENT) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", path, strerror(errno));
    if (!create) return schakel_fail(why, SCHAKEL_ENOTFOUND, "%s: no such file", path);
    if (schakel_random(key, len) != 0) return schakel_fail(why, SCHAKEL_ECRYPTO, "no random bytes");
    schakel_hex_encode(key, len, hex);
    hex[2 * len] = '\n';
    int rc = schakel_file_write_atomic(path, hex, 2 * len + 1);
    memset(hex, 0, sizeof hex);
    if (rc) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", path, strerror(errno));
    if (created) *created = 1;
    return 0;
}

void schakel_signals_on_stop(void (*on_stop)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    (void)sigaction(SIGTERM, &sa, NULL); /* fails only for a bad signal number */
    (void)sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int schakel_dir_lock(const char *dir, const char *name, int *fd, char *why)
{
    char path[SCHAKEL_PATH_MAX];
    int rc = schakel_path_join(path, sizeof path, dir, name, why);
    if (rc != 0) return rc;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) return schakel_fail(why, SCHAKEL_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = e == EWOULDBLOCK ? pread(f, pid, sizeof pid - 1, 0) : -1;
        (void)close(f); /* only read from */
        if (e != EWOULDBLOCK) return schakel_fail(why, SCHAKEL_EIO, "cannot lock %s: %s", path, strerror(e));
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        return schakel_fail(why, SCHAKEL_EEXIST,
                            "%s is in use by another broker or node (pid %s, lock %s): stop that "
                            "one first, or give another data directory",
                            dir, pid[0] ? pid : "unknown", path);
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, line, (size_t)len, 0) != len) {
        int e = errno;
        (void)close(f); /* the lock goes with it */
        return schakel_fail(why, SCHAKEL_EIO, "cannot write %s: %s", path, strerror(e));
    }
    *fd = f;
    return SCHAKEL_OK;
}
