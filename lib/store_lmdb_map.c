/* The broker's resident memory and the log's map. LMDB reads every page
 * through a read-only shared mapping of data.mdb; each page the broker
 * reads (the B-tree pages of `ids` and `keys` its lookups and puts
 * walk, the last page of `events`) stays mapped into the process, and the
 * kernel maps up to 15 cached neighbours with it on every fault. After a
 * million events that is most of the file, counted in the broker's RSS.
 * lmdb_map_release drops those mappings after a group commit once they
 * pass 48 MiB (each release costs page faults afterwards; what else the
 * process maps, counted right after the last release, does not count:
 * in a node the services' own state files are mapped too): the pages
 * stay in the page cache (nothing is written or lost: the map is
 * read-only and MAP_SHARED, so the next read maps the same bytes again),
 * only the process's page-table entries go. Readers in other threads
 * (the checkers' lookups, a node's services) fault the page back in,
 * which is all they notice. LMDB does not say where its map is (mdb_env_info's me_mapaddr
 * is set only for MDB_FIXEDMAP): it is the mapping of data.mdb's inode
 * at offset 0 in /proc/self/maps, looked up again when the map grew. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_lmdb_impl.h"

/* The broker's mapped file pages it lets grow before a release. At a
 * million events about 100,000 children one group's lookups and puts map
 * more than 16 MiB, so a lower threshold released after nearly every
 * commit and the faults after it cost the loop a third more CPU (bench
 * ingest, a million events: broker CPU 28.9 s at 16 MiB, 20.5 s at 48,
 * 19.2 s at 64; peak RSS 89.0, 90.8 and 97.2 MB: bench/README.md). */
#define MAP_RELEASE_ABOVE ((size_t)48 << 20)

/* Finds the map's address: 0, or -1 when it is not found. */
static int map_find(lmdb_store_t *st)
{
    int fd = -1;
    struct stat sb;
    st->map_addr = NULL;
    st->map_len = 0;
    if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) != 0) return -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        /* "lo-hi perms offset dev inode path": each field read with strtoull */
        char *p = line, *end;
        unsigned long long lo = strtoull(p, &end, 16);
        if (end == p || *end != '-') continue;
        unsigned long long hi = strtoull(p = end + 1, &end, 16);
        if (end == p || *end != ' ' || strlen(end + 1) < 5) continue;
        const char *perms = end + 1; /* four letters, e.g. "r--s" */
        unsigned long long off = strtoull(p = end + 6, &end, 16);
        if (end == p || *end != ' ') continue;
        char *dev_end = strchr(end + 1, ' ');
        if (!dev_end) continue;
        unsigned long long ino = strtoull(p = dev_end + 1, &end, 10);
        if (end == p) continue;
        if (ino == (unsigned long long)sb.st_ino && off == 0 && perms[3] == 's' && hi > lo) {
            st->map_addr = (void *)(uintptr_t)lo;
            st->map_len = (size_t)(hi - lo);
            break;
        }
    }
    fclose(f);
    st->map_for = st->map_size;
    return st->map_addr ? 0 : -1;
}

/* Pages of files mapped into this process, resident (/proc/self/statm's
 * third field, in pages): the log's map, and the few pages of the
 * program and its libraries. 0 when it cannot be read. */
static size_t mapped_file_pages(void)
{
    char buf[128];
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* "size resident shared ...": the third number */
    char *p = buf, *end;
    for (int field = 0; field < 3; field++, p = end) {
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p) return 0;
        if (field == 2) return (size_t)v;
    }
    return 0;
}

size_t lmdb_map_used(lmdb_store_t *st, uint8_t **addr)
{
    *addr = NULL;
    if ((st->map_for != st->map_size || !st->map_addr) && map_find(st) != 0) return 0;
    MDB_envinfo info;
    MDB_stat stat;
    (void)mdb_env_info(st->env, &info); /* an open environment: they cannot fail */
    (void)mdb_env_stat(st->env, &stat);
    size_t used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return 0;
    used = (used + (size_t)page - 1) / (size_t)page * (size_t)page;
    if (used > st->map_len) used = st->map_len;
    *addr = st->map_addr;
    return used;
}

size_t lmdb_map_used_whole(lmdb_store_t *st, uint8_t **addr)
{
    size_t used = lmdb_map_used(st, addr);
    /* A page cache read in through such a map (a cold file) is read in
     * 2 MiB folios, which are then mapped whole; pages cached in 4 KiB
     * folios (as the broker's writes leave them) stay mapped 4 KiB at a
     * time. Advice: refused, the map stays as it was. */
    if (used) (void)madvise(*addr, (used + LMDB_HUGE_PAGE - 1) & ~(LMDB_HUGE_PAGE - 1), MADV_HUGEPAGE);
    return used;
}

void lmdb_map_release(lmdb_store_t *st)
{
    if (st->read_only) return;
    /* dropping the mappings costs page faults later: only when they add up */
    long pg = sysconf(_SC_PAGESIZE);
    /* Above the floor: in a node the services' state maps (tens of MiB
     * after a busy hour) are file pages of this process too, and counting
     * them released the log's map after most commits, so that the
     * services' and checkers' reads of the log faulted its pages in again
     * (bench/README.md, branch s26-perf: broker and checker faults fell
     * by about half to three quarters without it). */
    size_t mapped = mapped_file_pages();
    if (pg > 0 && (mapped <= st->map_floor || (mapped - st->map_floor) * (size_t)pg < MAP_RELEASE_ABOVE))
        return;
    uint8_t *addr;
    size_t used = lmdb_map_used(st, &addr);
    /* advice only: a failure leaves the pages mapped, nothing else */
    if (used) (void)madvise(addr, used, MADV_DONTNEED);
    st->map_floor = mapped_file_pages(); /* the program, its libraries, other maps */
}

void *lmdb_huge_map(size_t n, void **map)
{
    void *m = mmap(NULL, n + LMDB_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return *map = NULL;
    *map = m;
    char *a = (char *)(((uintptr_t)m + LMDB_HUGE_PAGE - 1) & ~(uintptr_t)(LMDB_HUGE_PAGE - 1));
    (void)madvise(a, n & ~(LMDB_HUGE_PAGE - 1), MADV_HUGEPAGE); /* a hint: refused is fine */
    return a;
}
