/* schakel top: the operator's live picture of a node in a terminal (an
 * SSH session): reads the node's /metrics over HTTP (libcurl) each second
 * and draws the frame of top_frame.c with ncurses; --once prints one
 * frame as plain text (two readings a second apart, for the rates) and
 * exits. */
#include <curl/curl.h>
#include <jansson.h>
#include <ncurses.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "fileio.h"
#include "monitor.h"
#include "tool.h"
#include "top.h"

#define METRICS_MAX ((size_t)16 << 20)

static const char usage[] =
    "usage: schakel top (--node DIR | --http ADDR:PORT) [--http-token FILE] [--once]\n"
    "\n"
    "The node's live picture in a terminal, refreshed each second: broker up,\n"
    "log records per second, events per second by type, lag per service,\n"
    "held, denied and rejected by reason, overdue loops, and each adapter (last\n"
    "heard, outbox, dead letters). Read from the node's /metrics: --http, else\n"
    "the \"http\" of DIR/node.json, else 127.0.0.1:7480. q quits.\n"
    "--once prints one frame as plain text (after two readings a second apart)\n"
    "and exits. --http-token FILE: the node's token (its --http-token), sent as\n"
    "Authorization: Bearer.\n"
    "\n"
    "Exit status: 0; 1 when /metrics does not answer; 2 when an argument is\n"
    "wrong.\n";

typedef struct {
    char *data;
    size_t len;
    int too_big;
} body_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t add = size * n;
    if (b->len + add > METRICS_MAX) {
        b->too_big = 1;
        return 0;
    }
    char *d = realloc(b->data, b->len + add + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, add);
    b->data = d;
    b->len += add;
    d[b->len] = 0;
    return add;
}

/* GET url into m; 0, or -1 with the reason in why. */
static int read_metrics(CURL *c, const char *url, top_metrics_t *m, char *why)
{
    body_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int out = -1;
    if (b.too_big) schakel_fail(why, SCHAKEL_EIO, "%s answered more than 16 MiB", url);
    else if (rc != CURLE_OK)
        schakel_fail(why, SCHAKEL_EIO, "%s does not answer: %s", url, curl_easy_strerror(rc));
    else if (status == 401)
        schakel_fail(why, SCHAKEL_EIO, "%s answered HTTP 401: give --http-token FILE (the node's token)",
                     url);
    else if (status != 200) schakel_fail(why, SCHAKEL_EIO, "%s answered HTTP %ld", url, status);
    else
        out = top_parse(m, b.data ? b.data : "", b.len) == 0
                  ? 0
                  : schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
    m->at = schakel_mono_secs();
    free(b.data);
    return out;
}

/* The address: --http, else node.json's "http", else the default. */
static int address(const char *node, const char *http, char *out, size_t cap)
{
    if (http) return snprintf(out, cap, "%s", http) < (int)cap ? 0 : 2;
    snprintf(out, cap, "127.0.0.1:7480");
    if (!node) return 0;
    char path[SCHAKEL_PATH_MAX];
    if (tool_path("top", path, sizeof path, node, "node.json")) return 2;
    json_t *j = json_load_file(path, 0, NULL);
    const char *h = json_string_value(json_object_get(j, "http"));
    if (h && strcmp(h, "off") != 0) snprintf(out, cap, "%s", h);
    json_decref(j);
    return 0;
}

static int run_once(CURL *c, const char *url, const char *addr)
{
    top_metrics_t a = {0}, b = {0};
    char why[SCHAKEL_ERRLEN] = "", *frame = NULL;
    int rc = read_metrics(c, url, &a, why);
    if (rc == 0) {
        usleep(1000000);
        rc = read_metrics(c, url, &b, why);
    }
    if (rc == 0 && top_frame(&b, &a, addr, schakel_wall_ms(), &frame) == 0) fputs(frame, stdout);
    else fprintf(stderr, "schakel top: %s\n", why[0] ? why : "out of memory");
    free(frame);
    top_metrics_free(&a);
    top_metrics_free(&b);
    return rc ? 1 : 0;
}

/* Ctrl-C or SIGTERM: leave the loop and give the terminal back as it was. */
static volatile sig_atomic_t stop_screen;

static void on_stop(int sig)
{
    (void)sig;
    stop_screen = 1;
}

static int run_screen(CURL *c, const char *url, const char *addr)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;            /* no SA_RESTART: getch returns at once */
    (void)sigaction(SIGINT, &sa, NULL); /* cannot fail for these signals */
    (void)sigaction(SIGTERM, &sa, NULL);
    initscr();
    cbreak();
    noecho();
    curs_set(0);
    timeout(1000); /* getch waits a second: the refresh */
    top_metrics_t m[2] = {{0}, {0}};
    int cur = 0, have_before = 0;
    while (!stop_screen) {
        char why[SCHAKEL_ERRLEN] = "", *frame = NULL;
        int rc = read_metrics(c, url, &m[cur], why);
        erase();
        if (rc == 0 &&
            top_frame(&m[cur], have_before ? &m[!cur] : NULL, addr, schakel_wall_ms(), &frame) == 0) {
            mvaddstr(0, 0, frame);
            have_before = 1;
            cur = !cur;
        } else {
            mvprintw(0, 0, "schakel top  %s\n%s\n(trying again each second; q quits)", addr, why);
            have_before = 0;
        }
        free(frame);
        refresh();
        int ch = getch();
        if (ch == 'q' || ch == 'Q') break;
    }
    endwin();
    top_metrics_free(&m[0]);
    top_metrics_free(&m[1]);
    return 0;
}

int cmd_top(int argc, char **argv)
{
    const char *node = NULL, *http = NULL, *token_path = NULL;
    int once = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--node", "DIR", &node),
        SCHAKEL_FLAG_S("--http", "ADDR:PORT", &http),
        SCHAKEL_FLAG_S("--http-token", "FILE", &token_path),
        SCHAKEL_FLAG_B("--once", NULL, &once),
        SCHAKEL_FLAGS_END,
    };
    int rc = tool_flags("top", flags, argc, argv, 1, usage, NULL, usage);
    if (rc >= 0) return rc;
    if (!node && !http) {
        fprintf(stderr, "schakel top: give --node DIR or --http ADDR:PORT\n");
        return 2;
    }
    char addr[256], url[300];
    if (address(node, http, addr, sizeof addr) || strpbrk(addr, "/ ?#") ||
        schakel_textf(url, sizeof url, "http://%s/metrics", addr)) {
        fprintf(stderr, "schakel top: --http wants ADDR:PORT, e.g. 127.0.0.1:7480\n");
        return 2;
    }
    char why[SCHAKEL_ERRLEN], *token = NULL;
    if (token_path && !(token = mon_token_read(token_path, why))) {
        fprintf(stderr, "schakel top: %s\n", why);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "schakel top: libcurl does not start\n");
        free(token);
        return 1;
    }
    CURL *c = curl_easy_init();
    if (c && token) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
    }
    rc = !c ? 1 : once ? run_once(c, url, addr) : run_screen(c, url, addr);
    if (c) curl_easy_cleanup(c);
    curl_global_cleanup();
    if (token) sodium_memzero(token, strlen(token));
    free(token);
    return rc;
}
