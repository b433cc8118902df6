/* Whole files: read one into memory, or replace one so that a crash
 * leaves the old content or the new, never half of either; and the signals
 * every long-running command handles the same way. */
#ifndef SCHAKEL_FILEIO_H
#define SCHAKEL_FILEIO_H

#include <stdarg.h>
#include <stddef.h>

#include "error.h"

/* The longest path schakel builds, its NUL included (Linux's PATH_MAX):
 * the size of every path buffer. */
#define SCHAKEL_PATH_MAX 4096

/* Builds a path in out (cap bytes) and never cuts one short: a cut path
 * names another file, and a command would read or write that one
 * instead. Too long is SCHAKEL_ETOOBIG, out left empty, and why says
 * "path too long: <the path> (N characters; at most cap - 1)". _join puts
 * dir, a '/' (unless dir ends in one) and name together; an empty dir is
 * name alone, an empty name dir alone, both empty SCHAKEL_EINVAL. */
SCHAKEL_MUST_USE int schakel_path_join(char *out, size_t cap, const char *dir, const char *name, char *why);
SCHAKEL_MUST_USE int schakel_path_fmt(char *out, size_t cap, char *why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
SCHAKEL_MUST_USE int schakel_path_vfmt(char *out, size_t cap, char *why, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The file at path, NUL-terminated, in a malloc'd buffer; *len its size.
 * Reads at most max bytes. NULL with errno set when it cannot be read. */
char *schakel_file_read(const char *path, size_t max, size_t *len);

/* Writes data to path through path.tmp (mode 0600), fsync, rename and an
 * fsync of the directory. Returns 0 or SCHAKEL_EIO (errno says why; the
 * temp file is removed, or, when only the directory's fsync failed, the
 * new file is in place but may not survive a power cut). _mode gives the
 * file another mode. */
SCHAKEL_MUST_USE int schakel_file_write_atomic(const char *path, const void *data, size_t len);
SCHAKEL_MUST_USE int schakel_file_write_atomic_mode(const char *path, const void *data, size_t len,
                                                    unsigned mode);

/* A secret of len bytes kept as hex in its own file (mode 0600): the
 * broker's master key, a region's pseudonym key. Reads it; when the file
 * does not exist and create is set, makes a random one and writes it first
 * (*created = 1). Returns 0, SCHAKEL_ENOTFOUND (absent, not created),
 * SCHAKEL_ECONFIG (not len bytes of hex), SCHAKEL_EIO or SCHAKEL_ECRYPTO,
 * with the reason in why. */
SCHAKEL_MUST_USE int schakel_secret_file(const char *path, unsigned char *key, size_t len, int create,
                                         int *created, char *why);

/* Holds dir/name (made, mode 0600) locked with flock() for the life of
 * the process, the holder's pid written in it: one process at a time on a
 * data directory. Returns the open descriptor in *fd (close it to let
 * go), or SCHAKEL_EEXIST when another process holds the lock (why names
 * its pid and says what to do), SCHAKEL_EIO or SCHAKEL_ETOOBIG. */
SCHAKEL_MUST_USE int schakel_dir_lock(const char *dir, const char *name, int *fd, char *why);

/* For a command's main: SIGTERM and SIGINT call on_stop (which should only
 * set a flag), SIGPIPE is ignored (a peer that went away is an error code,
 * not a death). */
void schakel_signals_on_stop(void (*on_stop)(int));

#endif
