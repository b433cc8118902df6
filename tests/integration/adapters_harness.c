/* Helpers for adapter tests: real `schakel adapter` processes on the test's
 * node (see adapters_harness.h). */
#include "adapters_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "mapping.h"
#include "scenario.h"

int adapters_node_setup(void **state)
{
    (void)state;
    H = harness_new_node();
    return harness_start(H);
}

int adapters_node_teardown(void **state)
{
    (void)state;
    harness_destroy(&H);
    return 0;
}

void write_bytes(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    fchmod(fd, mode);
    close(fd);
}

size_t count_in_file(const char *path, const char *needle)
{
    size_t len = 0, n = 0;
    char *t = schakel_file_read(path, (size_t)64 << 20, &len);
    for (char *p = t; p && (p = memmem(p, len - (size_t)(p - t), needle, strlen(needle))); p++) n++;
    free(t);
    return n;
}

void adapter_init(adapter_t *a, const char *name, const char *org, const char *profile, const char *extra)
{
    memset(a, 0, sizeof *a);
    snprintf(a->org, sizeof a->org, "%s", org);
    char base[600];
    snprintf(base, sizeof base, "%s/adapters", H->dir);
    mkdir(base, 0700);
    assert_true(snprintf(a->dir, sizeof a->dir, "%s/%s", base, name ? name : org) < (int)sizeof a->dir);
    mkdir(a->dir, 0700);
    snprintf(a->config, sizeof a->config, "%s/adapter.json", a->dir);
    snprintf(a->log, sizeof a->log, "%s/adapter.log", a->dir);
    snprintf(a->spool, sizeof a->spool, "%s/spool", a->dir);
    snprintf(a->inbox, sizeof a->inbox, "%s/inbox", a->dir);
    snprintf(a->token, sizeof a->token, "%s/token", a->dir);
    char json[4096];
    snprintf(
        json, sizeof json,
        "{\"org\": \"%s\", \"node\": \"%s\", \"region_key\": \"%s/keys/region.key\", \"profile\": \"%s\","
        " \"state\": \"state\", \"spool\": \"spool\"%s%s}",
        org, H->data, H->data, profile, extra ? ", " : "", extra ? extra : "");
    write_bytes(a->config, json, strlen(json), 0600);
}

void adapter_start(adapter_t *a)
{
    const char *args[] = {"adapter", "--config", a->config, NULL};
    a->pid = harness_spawn(a->log, args);
    assert_true(a->pid > 0);
}

void adapter_start_ready(adapter_t *a)
{
    adapter_start(a);
    for (int i = 0; i < 100 && !count_in_file(a->log, "event=started"); i++) usleep(100000);
    assert_true(count_in_file(a->log, "event=started") > 0);
}

int adapter_stop(adapter_t *a, int sig)
{
    int st = 0;
    if (a->pid <= 0) return -1;
    kill(a->pid, sig);
    waitpid(a->pid, &st, 0);
    a->pid = 0;
    if (count_in_file(a->log, "Sanitizer") || count_in_file(a->log, "runtime error"))
        fail_msg("%s: sanitizer report in %s", a->org, a->log);
    return st;
}

void adapter_drop(adapter_t *a, const char *name, const void *content, size_t len)
{
    char tmp[800], path[800];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", a->spool, name);
    snprintf(path, sizeof path, "%s/%s", a->spool, name);
    mkdir(a->spool, 0700);
    write_bytes(tmp, content, len, 0600);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= 5;
    t[1] = t[0];
    utimensat(AT_FDCWD, tmp, t, 0);
    assert_int_equal(rename(tmp, path), 0);
}

void adapter_drop_text(adapter_t *a, const char *name, const char *text)
{
    adapter_drop(a, name, text, strlen(text));
}

int adapter_spool_empty(adapter_t *a)
{
    DIR *d = opendir(a->spool);
    struct dirent *e;
    int empty = 1;
    while (d && (e = readdir(d)))
        if (e->d_type == DT_REG) empty = 0;
    if (d) closedir(d);
    return empty;
}

json_t *adapter_status(adapter_t *a)
{
    char out[800];
    snprintf(out, sizeof out, "%s/status.json", a->dir);
    const char *args[] = {"adapter", "status", "--config", a->config, NULL};
    if (harness_run_tool(out, args) != 0) return NULL;
    json_error_t err;
    return json_load_file(out, 0, &err);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    char *nb = realloc(b->data, b->len + size * n + 1);
    if (!nb) return 0;
    memcpy(nb + b->len, p, size * n);
    b->data = nb;
    b->len += size * n;
    b->data[b->len] = 0;
    return size * n;
}

long adapter_http(adapter_t *a, const char *method, const char *path, const char *const *headers,
                  const char *body, size_t body_len, buf_t *answer, long timeout_ms)
{
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", a->port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    /* curl adds its own Content-Type to a POST unless told otherwise */
    if (body && !(headers && headers[0])) h = curl_slist_append(h, "Content-Type:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (h) curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    buf_t sink = {0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, answer ? answer : &sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    long code = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(sink.data);
    return code;
}

void wait_bytes(const char *dir, const char *needle)
{
    char where[1200];
    for (int i = 0; i < 600; i++) {
        if (has_bytes(dir, needle, NULL, where, sizeof where)) return;
        usleep(100000);
    }
    fail_msg("nothing in %s holds %s after 60 s", dir, needle);
}

long http_get(int port, const char *path, char **body, long limit_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    buf_t b = {calloc(1, 1), 0};
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, limit_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (body) *body = b.data;
    else free(b.data);
    return status;
}

int has_bytes_n(const char *dir, const void *needle, size_t len, const char *const *skip, char *where,
                size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (!found && d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int skipped = 0;
        for (size_t i = 0; skip && skip[i]; i++)
            skipped |= !strcmp(path, skip[i]) || !strcmp(e->d_name, skip[i]);
        struct stat st;
        if (skipped || lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            found = has_bytes_n(path, needle, len, skip, where, cap);
        } else if (S_ISREG(st.st_mode)) {
            FILE *f = fopen(path, "rb");
            char *buf = f ? malloc((size_t)st.st_size + 1) : NULL;
            size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
            if (buf && memmem(buf, n, needle, len)) {
                found = 1;
                snprintf(where, cap, "%s", path);
            }
            free(buf);
            if (f) fclose(f);
        }
    }
    if (d) closedir(d);
    return found;
}

int has_bytes(const char *dir, const char *needle, const char *const *skip, char *where, size_t cap)
{
    return has_bytes_n(dir, needle, strlen(needle), skip, where, cap);
}

void synthetic_bsns(size_t n, char (*out)[10])
{
    size_t k = 0;
    for (unsigned x = 999990000; k < n; x = x < 999999999 ? x + 1 : 999990000) {
        char s[16];
        snprintf(s, sizeof s, "%u", x);
        if (schakel_bsn_valid(s)) memcpy(out[k++], s, 10); /* x has nine digits */
    }
}
