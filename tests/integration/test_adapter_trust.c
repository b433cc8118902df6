/* The adapter as an attacker on its machine meets it (issue 10, items 3
 * and 5), with real `schakel adapter` processes on a real node:
 *  - its HTTP input answers only a program that has the token: no token or
 *    a wrong one 401, not application/json 415, a web page's cross-origin
 *    request or a rebound Host 403; 1,100 idle connections do not lock a
 *    valid client out; a token file others can read stops it at start;
 *    binding beyond loopback is logged as a warning;
 *  - strict CSV: a quote never closed refuses the file naming the line; a
 *    Latin-1 cell or a NUL rejects its row naming line and column;
 *  - fuzz-style: broken and mutated exports (CSV and JSON lines, through
 *    the spool, over HTTP and on standard input) full of valid BSNs, after which no byte of
 *    any BSN is in the adapter's log, its reasons, its HTTP answers, its
 *    state or anywhere under the node; only in the exports themselves
 *    (spool/done, and the bad rows copied to spool/rejected). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "clock.h"
#include "fileio.h"
#include "harness.h"
#include "mapping.h"
#include "scenario.h"

#define FIXTURE SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json"
#define TOKEN "test-token-0123456789abcdef0123456789abcdef"
#define HEADER "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"

/* ---- helpers ---- */

/* An adapter of school-12ab00 with a spool and, when host is given, the
 * HTTP input on host:<a free port> with the token file TOKEN (mode). */
static void token_adapter(adapter_t *a, const char *name, const char *host, mode_t mode)
{
    char http[200] = "";
    int port = 0;
    if (host) {
        port = harness_free_port();
        assert_true(port > 0);
        snprintf(http, sizeof http, "\"http\": \"%s:%d\", \"http_token\": \"token\"", host, port);
    }
    adapter_init(a, name, "school-12ab00", FIXTURE, host ? http : NULL);
    a->port = port;
    if (host) write_bytes(a->token, TOKEN "\n", strlen(TOKEN) + 1, mode);
}

static void wait_spool_taken(adapter_t *a)
{
    for (int i = 0; i < 1200 && !adapter_spool_empty(a); i++) usleep(100000);
    assert_true(adapter_spool_empty(a));
}

#define AUTH "Authorization: Bearer " TOKEN
#define JSON_CT "Content-Type: application/json"

static const char ROW[] = "{\"registratienummer\":\"%s\",\"bsn\":\"%s\",\"geboortedatum\":\"14-02-2016\","
                          "\"wijk\":\"Noord\",\"soort\":\"zorgsignaal\",\"datum\":\"20-11-2026\","
                          "\"categorie\":\"gedrag\",\"urgentie\":\"hoog\"}";

/* ---- the HTTP input ---- */

static void http_input_answers_only_the_token_holder(void **state)
{
    (void)state;
    adapter_t a;
    token_adapter(&a, "http", "127.0.0.1", 0600);
    adapter_start_ready(&a);
    char row[600], host[100], origin[100];
    snprintf(row, sizeof row, ROW, "W1", "999990019");
    snprintf(host, sizeof host, "Host: localhost:%d", a.port);
    snprintf(origin, sizeof origin, "Origin: http://127.0.0.1:%d", a.port);
    size_t n = strlen(row);

    const char *none[] = {JSON_CT, NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", none, row, n, NULL, 5000), 401);
    const char *wrong[] = {JSON_CT, "Authorization: Bearer " TOKEN "x", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", wrong, row, n, NULL, 5000), 401);
    const char *shorter[] = {JSON_CT, "Authorization: Bearer test-token", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", shorter, row, n, NULL, 5000), 401);
    const char *basic[] = {JSON_CT, "Authorization: Basic " TOKEN, NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", basic, row, n, NULL, 5000), 401);
    const char *status_none[] = {"X-Nothing: 1", NULL};
    assert_int_equal(adapter_http(&a, "GET", "/status", status_none, NULL, 0, NULL, 5000), 401);
    /* what a web page can send without asking first: text/plain */
    const char *plain[] = {AUTH, "Content-Type: text/plain", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", plain, row, n, NULL, 5000), 415);
    const char *form[] = {AUTH, "Content-Type: application/x-www-form-urlencoded", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", form, row, n, NULL, 5000), 415);
    const char *no_type[] = {AUTH, "Content-Type:", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", no_type, row, n, NULL, 5000), 415);
    /* a web page of another origin, even with the token */
    const char *evil[] = {AUTH, JSON_CT, "Origin: http://evil.example", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", evil, row, n, NULL, 5000), 403);
    const char *null_origin[] = {AUTH, JSON_CT, "Origin: null", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", null_origin, row, n, NULL, 5000), 403);
    const char *cross[] = {AUTH, JSON_CT, "Sec-Fetch-Site: cross-site", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", cross, row, n, NULL, 5000), 403);
    /* DNS rebinding: a name the attacker controls that now points here */
    const char *rebound[] = {AUTH, JSON_CT, "Host: evil.example", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", rebound, row, n, NULL, 5000), 403);
    char other_port[100];
    snprintf(other_port, sizeof other_port, "Host: 127.0.0.1:%d", a.port + 1);
    const char *wrong_port[] = {AUTH, JSON_CT, other_port, NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", wrong_port, row, n, NULL, 5000), 403);
    /* refused requests kept nothing */
    assert_int_equal(count_in_file(a.log, "event=http_refused"), 13);

    /* the token holder: accepted, also as localhost and from its own origin */
    buf_t answer = {0};
    const char *good[] = {AUTH, "Content-Type: application/json; charset=utf-8", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", good, row, n, &answer, 5000), 200);
    assert_non_null(strstr(answer.data, "\"status\":\"queued\""));
    free(answer.data);
    snprintf(row, sizeof row, ROW, "W2", "999990032");
    const char *good2[] = {AUTH, JSON_CT, host, origin, "Sec-Fetch-Site: same-origin", NULL};
    assert_int_equal(adapter_http(&a, "POST", "/events", good2, row, strlen(row), NULL, 5000), 200);
    const char *st[] = {AUTH, NULL};
    assert_int_equal(adapter_http(&a, "GET", "/status", st, NULL, 0, NULL, 5000), 200);

    /* 1,100 connections that send nothing (more than select() could
     * watch) do not lock a valid client out */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 1400 && rl.rlim_max >= 1400) {
        rl.rlim_cur = 1400;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    enum { IDLE = 1100 };
    int *fds = malloc(IDLE * sizeof *fds);
    size_t open_n = 0;
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)a.port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (size_t i = 0; i < IDLE; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
            close(fd);
            break;
        }
        if (i % 2)
            (void)!write(fd, "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n", 41); /* slow: half a request */
        fds[open_n++] = fd;
    }
    assert_int_equal(open_n, IDLE);
    usleep(300000); /* let the adapter accept them all */
    snprintf(row, sizeof row, ROW, "W3", "999990044");
    double t0 = schakel_mono_secs();
    answer = (buf_t){0};
    long code = adapter_http(&a, "POST", "/events", good, row, strlen(row), &answer, 5000);
    double ms = (schakel_mono_secs() - t0) * 1000;
    print_message("a valid POST with %zu idle connections open: status %ld in %.0f ms\n", open_n, code, ms);
    assert_int_equal(code, 200); /* within the 5 s the client waits: the idle ones block nothing */
    assert_non_null(answer.data && strstr(answer.data, "\"status\":\"queued\""));
    free(answer.data);
    for (size_t i = 0; i < open_n; i++) close(fds[i]);
    free(fds);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
}

static void token_file_others_can_read_stops_the_adapter(void **state)
{
    (void)state;
    adapter_t a;
    token_adapter(&a, "mode", "127.0.0.1", 0644);
    char cmd[2000], err[800];
    snprintf(err, sizeof err, "%s/start.err", a.dir);
    snprintf(cmd, sizeof cmd, "timeout 20 %s/schakel adapter --config %s 2> %s", SCHAKEL_BIN_DIR, a.config,
             err);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_int_equal(count_in_file(err, "mode 0644"), 1);
    assert_int_equal(count_in_file(err, "chmod 600"), 1);
    assert_int_equal(count_in_file(err, TOKEN), 0);
    assert_int_equal(count_in_file(err, "Sanitizer") + count_in_file(err, "runtime error"), 0);

    /* a token too short, the same */
    write_bytes(a.token, "short\n", 6, 0600);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    assert_int_equal(count_in_file(err, "32 to 4096"), 1);

    /* no token file: the adapter makes one, 0600, of 64 hex characters */
    unlink(a.token);
    adapter_start_ready(&a);
    struct stat sb;
    assert_int_equal(stat(a.token, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t len = 0;
    char *tok = schakel_file_read(a.token, 4096, &len);
    assert_int_equal(len, 65);
    assert_int_equal(count_in_file(a.log, "event=http_token_created"), 1);
    assert_int_equal(count_in_file(a.log, (tok[64] = 0, tok)), 0); /* never logged */
    free(tok);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);

    /* beyond loopback: it runs, and says so */
    adapter_t w;
    token_adapter(&w, "wide", "0.0.0.0", 0600);
    adapter_start_ready(&w);
    assert_int_equal(count_in_file(w.log, "event=http_not_loopback"), 1);
    char row[600];
    snprintf(row, sizeof row, ROW, "X1", "999990019");
    const char *good[] = {AUTH, JSON_CT, NULL};
    assert_int_equal(adapter_http(&w, "POST", "/events", good, row, strlen(row), NULL, 5000), 200);
    const char *rebound[] = {AUTH, JSON_CT, "Host: evil.example", NULL};
    assert_int_equal(adapter_http(&w, "POST", "/events", rebound, row, strlen(row), NULL, 5000), 403);
    assert_int_equal(adapter_stop(&w, SIGTERM), 0);
    assert_int_equal(count_in_file(a.log, "event=http_not_loopback"), 0);
}

/* ---- strict CSV ---- */

static char *read_reasons(adapter_t *a, const char *name)
{
    char path[900];
    size_t len;
    snprintf(path, sizeof path, "%s/rejected/%s.reasons.jsonl", a->spool, name);
    char *t = schakel_file_read(path, 1 << 20, &len);
    if (!t) fail_msg("no %s", path);
    return t;
}

static void strict_csv_names_lines_and_columns(void **state)
{
    (void)state;
    adapter_t a;
    token_adapter(&a, "strict", NULL, 0);
    adapter_start_ready(&a);
    /* a quote never closed on line 3: the file is refused whole, and the
     * rows after it are not read into one cell of another child */
    static const char open[] = HEADER "Q1;999990019;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"
                                      "Q2;999990032;14-02-2016;Noord;zorgsignaal;20-11-2026;\"gedrag;laag;;\n"
                                      "Q3;999990044;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n";
    adapter_drop(&a, "open-quote.csv", open, sizeof open - 1);
    static const char cells[] = HEADER
        "C1;999990019;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"
        "C2;999990032;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;Jos\xe9\n"  /* Latin-1 */
        "C3;999990044\0Jansen;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n" /* a NUL */
        "C4;999990056;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;;\n";       /* a column too many */
    adapter_drop(&a, "cells.csv", cells, sizeof cells - 1);
    wait_spool_taken(&a);
    char *r = read_reasons(&a, "open-quote.csv");
    if (!strstr(r, "\"row\":0") || !strstr(r, "line 3:") || !strstr(r, "never closed")) fail_msg("%s", r);
    free(r);
    char path[900];
    snprintf(path, sizeof path, "%s/rejected/open-quote.csv", a.spool);
    assert_int_equal(access(path, F_OK), 0); /* the whole file, as it was */
    r = read_reasons(&a, "cells.csv");
    if (!strstr(r, "\"row\":3") || !strstr(r, "line 3, column 10: the cell is not UTF-8")) fail_msg("%s", r);
    if (!strstr(r, "\"row\":4") || !strstr(r, "line 4, column 2: a NUL byte")) fail_msg("%s", r);
    if (!strstr(r, "\"row\":5") || !strstr(r, "line 5: 11 columns, and the header has 10")) fail_msg("%s", r);
    assert_null(strstr(r, "\"reason\":\"\""));
    assert_null(strstr(r, "Jansen"));
    free(r);
    /* the three bad rows, with the header, ready to be fixed */
    snprintf(path, sizeof path, "%s/rejected/cells.csv", a.spool);
    assert_int_equal(count_in_file(path, "registratienummer;"), 1);
    assert_int_equal(count_in_file(path, "C1;"), 0);
    assert_int_equal(count_in_file(path, "C2;") + count_in_file(path, "C3;") + count_in_file(path, "C4;"), 3);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
}

/* ---- fuzz-style: no BSN anywhere ---- */

enum { N_BSN = 12, MUTANTS = 120 };

static uint64_t rng = 0x5eed5c4a4e1ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A copy of src (len) with 1 to 4 random edits: a byte deleted, a byte
 * inserted (quotes, delimiters, line ends, NUL, Latin-1, JSON syntax), a
 * piece repeated. Returns the new length. */
static size_t mutate(const char *src, size_t len, char *out, size_t cap)
{
    static const char ins[] = "\";\n\r\0\xe9\xff{}[],:\\ \t0";
    size_t n = len < cap ? len : cap;
    memcpy(out, src, n);
    int edits = 1 + (int)rnd(4);
    for (int e = 0; e < edits && n > 2; e++) {
        size_t at = rnd((unsigned)n);
        /* half the edits in or next to a BSN, where a parser's error would
         * quote it */
        const char *digits = rnd(2) ? memmem(out, n, "99999", 5) : NULL;
        for (unsigned skip = rnd(N_BSN); digits && skip; skip--) {
            const char *next = memmem(digits + 1, n - (size_t)(digits + 1 - out), "99999", 5);
            if (!next) break;
            digits = next;
        }
        if (digits) at = (size_t)(digits - out) + rnd(11);
        if (at >= n) at = n - 1;
        switch (rnd(3)) {
        case 0: memmove(out + at, out + at + 1, n - at - 1), n--; break;
        case 1:
            if (n + 1 < cap) memmove(out + at + 1, out + at, n - at), out[at] = ins[rnd(sizeof ins - 1)], n++;
            break;
        default: {
            size_t k = 1 + rnd(12), from = rnd((unsigned)n);
            if (from + k > n) k = n - from;
            if (n + k < cap)
                memmove(out + at + k, out + at, n - at),
                    memmove(out + at, out + from + (from >= at ? k : 0), k), n += k;
        }
        }
    }
    return n;
}

/* Is any of the BSNs in the file, or in any file under dir (the exports:
 * spool/done, spool/rejected's copies of bad rows, exports/, excepted)? */
static int bsn_in(const char *path, char (*b)[10], char *which)
{
    size_t len = 0;
    char *t = schakel_file_read(path, (size_t)256 << 20, &len);
    int found = 0;
    for (size_t i = 0; t && i < N_BSN && !found; i++)
        if (memmem(t, len, b[i], 9)) found = 1, snprintf(which, 10, "%s", b[i]);
    free(t);
    return found;
}

static int bsn_under(const char *dir, char (*b)[10], char *where, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (!found && d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "done") ||
            !strcmp(e->d_name, "exports"))
            continue;
        char path[1200], which[10];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        size_t l = strlen(path);
        int export_copy = strstr(path, "/spool/") && !(l > 14 && !strcmp(path + l - 14, ".reasons.jsonl"));
        if (S_ISDIR(st.st_mode)) {
            found = bsn_under(path, b, where, cap);
        } else if (S_ISREG(st.st_mode) && !export_copy && bsn_in(path, b, which)) {
            found = 1;
            snprintf(where, cap, "%s (%s)", path, which);
        }
    }
    if (d) closedir(d);
    return found;
}

/* template with its first @ replaced by x, the second by y */
static void fill(const char *template, const char *x, const char *y, char *out, size_t cap)
{
    size_t o = 0;
    int k = 0;
    for (const char *t = template; *t && o + 10 < cap; t++) {
        if (*t != '@') {
            out[o++] = *t;
            continue;
        }
        const char *v = k++ ? y : x;
        memcpy(out + o, v, strlen(v));
        o += strlen(v);
    }
    out[o] = 0;
}

static void broken_exports_leak_no_bsn(void **state)
{
    (void)state;
    char b[N_BSN][10];
    synthetic_bsns(N_BSN, b);
    adapter_t a;
    token_adapter(&a, "fuzz", "127.0.0.1", 0600);
    adapter_start_ready(&a);

    /* the exports: a good one of each form, then broken by hand and by chance */
    char csv[8192], jsonl[16384], list[16384], line[700];
    size_t cl = (size_t)snprintf(csv, sizeof csv, HEADER), jl = 0, ll = 1;
    list[0] = '[';
    for (size_t i = 0; i < N_BSN; i++) {
        cl += (size_t)snprintf(csv + cl, sizeof csv - cl,
                               "F%zu;%s;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n", i, b[i]);
        char id[16];
        snprintf(id, sizeof id, "J%zu", i);
        snprintf(line, sizeof line, ROW, id, b[i]);
        jl += (size_t)snprintf(jsonl + jl, sizeof jsonl - jl, "%s\n", line);
        ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%s", i ? "," : "", line);
    }
    ll += (size_t)snprintf(list + ll, sizeof list - ll, "]");
    const char *by_hand[][2] = {
        {"quote-open.csv", HEADER "H1;\"@;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"
                                  "H2;@;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"},
        {"shifted.csv", HEADER "H3;;@;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"
                               "H4;x;14-02-2016;@;zorgsignaal;20-11-2026;gedrag;laag;\n"},
        /* a valid BSN where it belongs (first @), another in a code or a date */
        {"in-when.csv", HEADER "H5;@;14-02-2016;Noord;@;20-11-2026;gedrag;laag;;\n"},
        {"in-date.csv", HEADER "H6;@;14-02-2016;Noord;zorgsignaal;@;gedrag;laag;;\n"},
        {"in-map.csv", HEADER "H7;@;14-02-2016;Noord;zorgsignaal;20-11-2026;@;laag;;\n"},
        {"in-map-2.csv", HEADER "H8;@;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;@;;\n"},
        {"in-wijk.jsonl", "{\"registratienummer\":\"K9\",\"bsn\":\"@\",\"geboortedatum\":\"14-02-2016\","
                          "\"wijk\":\"@\",\"soort\":\"zorgsignaal\",\"datum\":\"20-11-2026\","
                          "\"categorie\":\"gedrag\",\"urgentie\":\"hoog\"}\n"},
        {"after-quote.csv", HEADER "H9;\"@\"x;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"
                                   "H10;@\xe9;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"},
        {"escape.jsonl", "{\"registratienummer\":\"K1\",\"bsn\":\"@\\q\"}\n{\"bsn\":\"@\"}\n"},
        {"unterminated.jsonl", "{\"registratienummer\":\"K1\",\"bsn\":\"@\n{\"bsn\":\"@\"}\n"},
        {"big.jsonl", "{\"registratienummer\":\"K1\",\"bsn\":@999999999999999999999}\n{\"x\":\"@\"}\n"},
        {"token.jsonl", "{\"registratienummer\":\"K1\",\"bsn\":x@}\n{\"x\":\"@\"}\n"},
        {"codes.jsonl", "{\"registratienummer\":\"K2\",\"bsn\":\"1\",\"geboortedatum\":\"@\"}\n"
                        "{\"registratienummer\":\"K3\",\"soort\":\"@\"}\n"},
        {"list.json", "[{\"registratienummer\":\"K4\",\"wijk\":\"@\"}, {\"bsn\": \"@\\u12\"}]"},
    };
    const char *http_bodies[sizeof by_hand / sizeof by_hand[0]];
    char hand[sizeof by_hand / sizeof by_hand[0]][1024];
    for (size_t i = 0; i < sizeof by_hand / sizeof by_hand[0]; i++) {
        fill(by_hand[i][1], b[(2 * i) % N_BSN], b[(2 * i + 1) % N_BSN], hand[i], sizeof hand[i]);
        adapter_drop(&a, by_hand[i][0], hand[i], strlen(hand[i]));
        http_bodies[i] = hand[i];
    }
    /* NUL in a cell: by hand, as bytes */
    static const char nul[] =
        HEADER "H11;999990019\0;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n";
    adapter_drop(&a, "nul.csv", nul, sizeof nul - 1);

    buf_t replies = {0};
    const char *good[] = {AUTH, JSON_CT, NULL};
    size_t refused = 0;
    for (size_t i = 0; i < sizeof by_hand / sizeof by_hand[0]; i++)
        refused += adapter_http(&a, "POST", "/events", good, http_bodies[i], strlen(http_bodies[i]), &replies,
                                10000) == 400;
    assert_true(refused >= 7); /* those that do not parse */

    char *m = malloc(32768);
    size_t in_cap = (size_t)MUTANTS * 8192, in_len = 0;
    char *in = malloc(in_cap); /* the JSON-lines mutants, for standard input */
    for (size_t i = 0; i < MUTANTS; i++) {
        char name[64];
        size_t n;
        switch (i % 3) {
        case 0:
            n = mutate(csv, cl, m, 32768);
            snprintf(name, sizeof name, "mutant-%03zu.csv", i);
            break;
        case 1:
            n = mutate(jsonl, jl, m, 32768);
            snprintf(name, sizeof name, "mutant-%03zu.jsonl", i);
            break;
        default: n = mutate(list, ll, m, 32768); snprintf(name, sizeof name, "mutant-%03zu.json", i);
        }
        adapter_drop(&a, name, m, n);
        if (i % 3 == 1 && in_len + n + 1 < in_cap)
            memcpy(in + in_len, m, n), in_len += n, in[in_len++] = '\n';
        if (i % 3) {
            long code = adapter_http(&a, "POST", "/events", good, m, n, &replies, 10000);
            if (code != 200 && code != 400) fail_msg("mutant %zu: HTTP status %ld", i, code);
        }
    }
    free(m);
    wait_spool_taken(&a);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);

    /* the same JSON lines on standard input, one answer per line */
    char exports[800], input[900], acks[900], cmd[4000];
    snprintf(exports, sizeof exports, "%s/exports", H->dir);
    mkdir(exports, 0700);
    snprintf(input, sizeof input, "%s/stdin.jsonl", exports);
    snprintf(acks, sizeof acks, "%s/stdin-acks.jsonl", a.dir);
    write_bytes(input, in, in_len, 0600);
    free(in);
    snprintf(cmd, sizeof cmd, "timeout 120 %s/schakel adapter --config %s --stdin --once < %s > %s 2>> %s",
             SCHAKEL_BIN_DIR, a.config, input, acks, a.log);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(count_in_file(acks, "\"status\":\"rejected\"") > 10);
    assert_int_equal(count_in_file(a.log, "Sanitizer") + count_in_file(a.log, "runtime error"), 0);

    /* everything the adapter wrote, and everything under the node */
    char where[1400], which[10];
    char replies_path[800];
    snprintf(replies_path, sizeof replies_path, "%s/http-replies.txt", H->dir);
    write_bytes(replies_path, replies.data ? replies.data : "", replies.len, 0600);
    assert_true(replies.len > 1000);
    free(replies.data);
    if (bsn_in(replies_path, b, which)) fail_msg("an HTTP answer holds the BSN %s", which);
    if (bsn_in(a.log, b, which)) fail_msg("the adapter's log holds the BSN %s", which);
    if (bsn_in(acks, b, which)) fail_msg("an answer on standard output holds the BSN %s", which);
    if (bsn_under(H->dir, b, where, sizeof where)) fail_msg("the BSN is in %s", where);
    /* ...and the search can fail: the exports themselves hold them, and
     * the reasons are there to be searched */
    char done[800], rejected[800];
    snprintf(done, sizeof done, "%s/done/mutant-000.csv", a.spool);
    assert_true(bsn_in(done, b, which));
    snprintf(rejected, sizeof rejected, "%s/rejected/quote-open.csv.reasons.jsonl", a.spool);
    assert_true(count_in_file(rejected, "never closed") == 1);
    size_t reasons = 0;
    DIR *d = opendir(a.spool);
    snprintf(rejected, sizeof rejected, "%s/rejected", a.spool);
    closedir(d);
    d = opendir(rejected);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", rejected, e->d_name);
        if (strstr(e->d_name, ".reasons.jsonl")) {
            reasons += count_in_file(p, "\"reason\"");
            if (count_in_file(p, "\"reason\":\"\"")) fail_msg("an empty reason in %s", p);
        }
    }
    if (d) closedir(d);
    print_message("%zu reasons written, none with a BSN\n", reasons);
    assert_true(reasons > 40);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_input_answers_only_the_token_holder),
        cmocka_unit_test(token_file_others_can_read_stops_the_adapter),
        cmocka_unit_test(strict_csv_names_lines_and_columns),
        cmocka_unit_test(broken_exports_leak_no_bsn),
    };
    int rc = cmocka_run_group_tests(tests, adapters_node_setup, adapters_node_teardown);
    curl_global_cleanup();
    return rc;
}
