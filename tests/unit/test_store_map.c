/* The LMDB log's map and the broker's resident memory, on a real LMDB in a
 * temp directory: once more than 48 MiB of it are mapped, an append's
 * commit leaves none of the log's pages mapped in the process (they stay
 * in the page cache), and every record still reads back, also records
 * read before the release and read again; what else the process maps (in
 * a node, the services' state files) does not make it release the log's
 * map at every commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypto.h"
#include "error.h"
#include "store_lmdb.h"
#include "store_fixture.h"

/* kB of the log's data.mdb in dir resident in this process (/proc/self/smaps). */
static unsigned long long map_rss_kb(const char *dir)
{
    char want[128], line[512];
    snprintf(want, sizeof want, "%s/data.mdb", dir);
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    int in = 0;
    unsigned long long kb = 0, v, lo, hi;
    while (fgets(line, sizeof line, f)) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t n = strlen(line), w = strlen(want);
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2) /* a mapping's first line */
            in = n >= w && strcmp(line + n - w, want) == 0;
        else if (in && sscanf(line, "Rss: %llu kB", &v) == 1) kb += v;
    }
    fclose(f);
    return kb;
}

typedef struct {
    size_t n;
    int bad;
} seen_t;

static int count_cb(void *arg, const schakel_record_t *r)
{
    seen_t *s = arg;
    s->n++;
    if (!r->event || r->event_len != 300 || r->event[0] != r->event_id[0]) s->bad = 1;
    return 0;
}

static size_t read_all(schakel_store_t *s)
{
    seen_t seen = {0};
    uint64_t from = 1, next = 0;
    for (;;) {
        size_t before = seen.n;
        assert_int_equal(schakel_store_read(s, "all", from, 4096, 64 << 20, count_cb, &seen, &next), 0);
        if (seen.n == before) break;
        from = next;
    }
    assert_int_equal(seen.bad, 0);
    return seen.n;
}

static void append_leaves_no_page_of_the_log_mapped(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    char subject[65];
    for (unsigned g = 0; g < 240; g++) {
        snprintf(subject, sizeof subject, "%064x", g * 7919u);
        assert_int_equal(store_fx_append_n(s, g * 1000, 500, 300, subject, NULL), 0);
    }
    /* 120000 records, about 70 MB of log; reading them maps all of it */
    assert_int_equal(read_all(s), 120000);
    assert_true(map_rss_kb(fx->dir) > 48 * 1024);
    /* past 48 MiB mapped, an append's commit drops the mappings */
    assert_int_equal(store_fx_append_n(s, 900000, 10, 300, "aa", NULL), 0);
    assert_true(map_rss_kb(fx->dir) <= 64);
    assert_int_equal(read_all(s), 120010); /* the same bytes, mapped again */
    schakel_store_close(&s);
}

/* 64 MiB of another file mapped and resident, as a node's services map
 * their state: the first commit releases the log's map (the process is
 * past 48 MiB), the next ones only once the log's own pages are. */
static void other_mapped_files_do_not_release_the_log_at_every_commit(void **state)
{
    fx_t *fx = *state;
    schakel_store_t *s = store_fx_open(fx, 0, 0, 0);
    char subject[65], path[600];
    for (unsigned g = 0; g < 20; g++) {
        snprintf(subject, sizeof subject, "%064x", g * 7919u);
        assert_int_equal(store_fx_append_n(s, g * 1000, 500, 300, subject, NULL), 0);
    }
    snprintf(path, sizeof path, "%s/other.map", fx->dir);
    size_t len = (size_t)64 << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    unsigned char *other = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(other != MAP_FAILED);
    memset(other, 1, len); /* resident file pages of this process */
    assert_int_equal(store_fx_append_n(s, 800000, 10, 300, "aa", NULL), 0);
    assert_true(map_rss_kb(fx->dir) <= 64); /* past 48 MiB in all: released */
    assert_int_equal(read_all(s), 10010);
    unsigned long long mapped = map_rss_kb(fx->dir);
    assert_true(mapped > 1024);
    for (unsigned g = 0; g < 3; g++)
        assert_int_equal(store_fx_append_n(s, 900000 + g * 100, 10, 300, "ab", NULL), 0);
    assert_true(map_rss_kb(fx->dir) >= mapped); /* the log's pages stay mapped */
    assert_int_equal(munmap(other, len), 0);
    assert_int_equal(close(fd), 0);
    schakel_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(append_leaves_no_page_of_the_log_mapped, store_fx_setup,
                                        store_fx_teardown),
        cmocka_unit_test_setup_teardown(other_mapped_files_do_not_release_the_log_at_every_commit,
                                        store_fx_setup, store_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
