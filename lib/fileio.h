/* Whole files: read one into memory, or replace one so that a crash
 * leaves the old content or the new, never half of either. */
#ifndef SCHAKEL_FILEIO_H
#define SCHAKEL_FILEIO_H

#include <stddef.h>

/* The file at path, NUL-terminated, in a malloc'd buffer; *len its size.
 * Reads at most max bytes. NULL with errno set when it cannot be read. */
char *schakel_file_read(const char *path, size_t max, size_t *len);

/* Writes data to path through path.tmp, fsync and rename. Returns 0 or
 * SCHAKEL_EIO (errno says why; the temp file is removed). */
int schakel_file_write_atomic(const char *path, const void *data, size_t len);

#endif
