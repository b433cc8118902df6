/* A power cut, modelled for crash tests. LD_PRELOADed into the broker, it
 * keeps next to $SCHAKEL_POWERCUT_DIR/data.mdb the file a power cut would
 * leave behind, data.mdb.durable: the file as it stood when its last
 * fdatasync or fsync returned, plus every write made since through a
 * descriptor opened O_DSYNC (LMDB writes its meta page so when it syncs
 * meta pages at all). What is only in the page cache is not in it. A test
 * SIGKILLs the broker, puts data.mdb.durable in place of data.mdb and
 * starts it again: whatever was ACKed must still be there. Not a library
 * of the project; built only for the tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int is_log(int fd, char *path, size_t cap)
{
    const char *dir = getenv("SCHAKEL_POWERCUT_DIR");
    char link[64], want[PATH_MAX];
    if (!dir) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    snprintf(want, sizeof want, "%s/data.mdb", dir);
    return strcmp(path, want) == 0;
}

/* The image after a flush: a copy of the whole file, put in place by a
 * rename, so that a SIGKILL in the middle leaves the image before it. */
static void image_all(const char *path)
{
    char tmp[PATH_MAX + 16], img[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.durable.tmp", path);
    snprintf(img, sizeof img, "%s.durable", path);
    int in = open(path, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char buf[1 << 16];
    ssize_t n = 0;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) n = -1;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    if (in >= 0 && out >= 0 && n == 0) rename(tmp, img);
}

/* A write through an O_DSYNC descriptor is on disk when it returns. */
static void image_write(const char *path, const void *buf, size_t len, off_t off)
{
    char img[PATH_MAX + 16];
    snprintf(img, sizeof img, "%s.durable", path);
    int fd = open(img, O_WRONLY);
    if (fd < 0) return;
    ssize_t (*real)(int, const void *, size_t, off_t) =
        (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (real(fd, buf, len, off) != (ssize_t)len) abort();
    close(fd);
}

static int flushed(int fd, const char *name)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    int rc = real(fd);
    char path[PATH_MAX];
    if (rc == 0 && is_log(fd, path, sizeof path)) image_all(path);
    return rc;
}

int fdatasync(int fd)
{
    return flushed(fd, "fdatasync");
}

int fsync(int fd)
{
    return flushed(fd, "fsync");
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    ssize_t (*real)(int, const void *, size_t, off_t) =
        (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    ssize_t rc = real(fd, buf, len, off);
    char path[PATH_MAX];
    int fl = fcntl(fd, F_GETFL);
    if (rc > 0 && fl >= 0 && (fl & (O_DSYNC | O_SYNC)) && is_log(fd, path, sizeof path))
        image_write(path, buf, (size_t)rc, off);
    return rc;
}
