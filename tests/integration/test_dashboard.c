/* The dashboard of `schakel node --http` in headless Chromium, driven over
 * the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
 * ended by a NUL byte on descriptors 3 and 4), while a school publishes:
 * the page loads with no console message or script error, its figures
 * change as events flow without a reload, and its screenshot is written to
 * dashboard.png in the test's working directory (the build tree), or to
 * $SCHAKEL_SCREENSHOT: never into the sources, which a test run must
 * leave as they were. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "harness.h"
#include "scenario.h"

typedef struct {
    pid_t pid;
    int to, from; /* our ends: commands to Chromium, answers and events from it */
    char *buf;
    size_t len, cap;
    int next_id;
    char session[128];
    char problems[4096]; /* console messages, script errors, error log entries */
} cdp_t;

static int port;
static atomic_int publishing;
static pthread_t pub;
static int pub_started;
static cdp_t C;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cdp_start(cdp_t *c, const char *dir)
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    char profile[600], log[600];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium", dir);
    snprintf(log, sizeof log, "%s/chromium.log", dir);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int e = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        /* descriptors 3 (what Chromium reads) and 4 (what it writes) */
        int r = dup(in[0]), w = dup(out[1]);
        if (e < 0 || r < 0 || w < 0 || dup2(e, 2) < 0 || dup2(r, 3) < 0 || dup2(w, 4) < 0) _exit(126);
        execlp("chromium", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--remote-debugging-pipe", "--no-first-run", "--hide-scrollbars", profile, "about:blank",
               (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->to = in[1];
    c->from = out[0];
    c->next_id = 1;
}

/* The next message (caller decrefs), or NULL after limit_ms. */
static json_t *cdp_read(cdp_t *c, int limit_ms)
{
    int64_t until = mono_ms() + limit_ms;
    for (;;) {
        char *nul = c->len ? memchr(c->buf, 0, c->len) : NULL;
        if (nul) {
            size_t n = (size_t)(nul - c->buf);
            json_t *m = json_loadb(c->buf, n, 0, NULL);
            memmove(c->buf, nul + 1, c->len - n - 1);
            c->len -= n + 1;
            return m ? m : json_object();
        }
        int64_t left = until - mono_ms();
        struct pollfd p = {c->from, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) return NULL;
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = realloc(c->buf, c->cap);
            assert_non_null(c->buf);
        }
        ssize_t n = read(c->from, c->buf + c->len, c->cap - c->len);
        if (n <= 0) return NULL;
        c->len += (size_t)n;
    }
}

/* Notes an event that tells of a problem on the page. */
static void cdp_event(cdp_t *c, const json_t *m)
{
    const char *method = json_string_value(json_object_get(m, "method"));
    if (!method) return;
    const json_t *p = json_object_get(m, "params");
    char *text = NULL;
    if (!strcmp(method, "Runtime.consoleAPICalled") || !strcmp(method, "Runtime.exceptionThrown")) {
        text = json_dumps(p, JSON_COMPACT);
    } else if (!strcmp(method, "Log.entryAdded")) {
        const char *level = json_string_value(json_object_get(json_object_get(p, "entry"), "level"));
        if (level && (!strcmp(level, "error") || !strcmp(level, "warning")))
            text = json_dumps(p, JSON_COMPACT);
    }
    if (text) {
        size_t used = strlen(c->problems);
        snprintf(c->problems + used, sizeof c->problems - used, "%s: %.600s\n", method, text);
        free(text);
    }
}

/* Sends method with params (stolen; NULL: none), on the page's session
 * when on_page; waits for its answer and returns its result (caller
 * decrefs). Events that come meanwhile are looked at. */
static json_t *cdp_call(cdp_t *c, const char *method, json_t *params, int on_page)
{
    int id = c->next_id++;
    json_t *m = json_pack("{s:i,s:s}", "id", id, "method", method);
    if (params) json_object_set_new(m, "params", params);
    if (on_page) json_object_set_new(m, "sessionId", json_string(c->session));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    size_t n = strlen(text) + 1; /* with its NUL */
    assert_int_equal(write(c->to, text, n), (ssize_t)n);
    free(text);
    for (;;) {
        json_t *r = cdp_read(c, 30000);
        if (!r) fail_msg("Chromium did not answer %s", method);
        if (json_integer_value(json_object_get(r, "id")) == id) {
            if (json_object_get(r, "error")) fail_msg("%s: %s", method, json_dumps(r, JSON_COMPACT));
            json_t *res = json_incref(json_object_get(r, "result"));
            json_decref(r);
            return res;
        }
        cdp_event(c, r);
        json_decref(r);
    }
}

/* Looks at events for ms. */
static void cdp_wait(cdp_t *c, int ms)
{
    int64_t until = mono_ms() + ms;
    while (mono_ms() < until) {
        json_t *m = cdp_read(c, (int)(until - mono_ms()));
        if (!m) break;
        cdp_event(c, m);
        json_decref(m);
    }
}

/* What the page shows, as a JSON object (caller decrefs). */
static json_t *page_figures(cdp_t *c)
{
    json_t *r = cdp_call(c, "Runtime.evaluate",
                         json_pack("{s:s,s:b}", "expression",
                                   "JSON.stringify({updates: +document.getElementById('updates').textContent,"
                                   " records: document.getElementById('records').textContent,"
                                   " first: document.getElementById('records-first').textContent,"
                                   " edges: document.querySelectorAll('#flow .edge').length,"
                                   " plot: !!document.querySelector('#types-plot canvas'),"
                                   " health: document.getElementById('health').textContent})",
                                   "returnByValue", 1),
                         1);
    const char *v = json_string_value(json_object_get(json_object_get(r, "result"), "value"));
    json_t *f = v ? json_loads(v, 0, NULL) : NULL;
    json_decref(r);
    if (!f) fail_msg("the page's figures cannot be read");
    return f;
}

static void *publisher(void *arg)
{
    (void)arg;
    for (unsigned salt = 1000; atomic_load(&publishing); salt += 3) {
        harness_publish_signals(H, "school-12ab00", 3, salt);
        usleep(150000);
    }
    return NULL;
}

static void stop_publishing(void)
{
    atomic_store(&publishing, 0);
    if (pub_started) (void)pthread_join(pub, NULL);
    pub_started = 0;
}

static int setup(void **state)
{
    (void)state;
    H = harness_new_node();
    port = harness_free_port();
    assert_true(port > 0);
    snprintf(H->extra_args[H->n_extra++], 64, "--http");
    snprintf(H->extra_args[H->n_extra++], 64, "127.0.0.1:%d", port);
    if (harness_start(H) != 0) return -1;
    change_directory(0);
    tick(at("2026-11-23T09:00:00Z"));
    for (int i = 0; i < 6; i++) { /* referrals with consent: deliveries, open loops */
        char subject[65], label[32], cid[33];
        uint8_t id[16];
        snprintf(label, sizeof label, "dashboard-child-%d", i);
        child(label, subject);
        consent("school-12ab00", subject, "parents", "under_12", "wijkteam", cid, id);
        referral("school-12ab00", subject, "\"district\":\"noord\",", "wijkteam", id);
    }
    wait_services(harness_head(H));
    return 0;
}

static void the_dashboard_loads_cleanly_and_moves_as_events_flow(void **state)
{
    (void)state;
    atomic_store(&publishing, 1);
    assert_int_equal(pthread_create(&pub, NULL, publisher, NULL), 0);
    pub_started = 1;
    cdp_t *c = &C;
    cdp_start(c, H->dir);
    json_t *t = cdp_call(c, "Target.createTarget", json_pack("{s:s}", "url", "about:blank"), 0);
    const char *target = json_string_value(json_object_get(t, "targetId"));
    if (!target) fail_msg("Chromium made no page (is chromium installed? scripts/packages.txt lists it)");
    json_t *a =
        cdp_call(c, "Target.attachToTarget", json_pack("{s:s,s:b}", "targetId", target, "flatten", 1), 0);
    snprintf(c->session, sizeof c->session, "%s", json_string_value(json_object_get(a, "sessionId")));
    json_decref(a);
    json_decref(t);
    json_decref(cdp_call(c, "Runtime.enable", NULL, 1));
    json_decref(cdp_call(c, "Log.enable", NULL, 1));
    json_decref(cdp_call(c, "Page.enable", NULL, 1));
    json_decref(cdp_call(
        c, "Emulation.setDeviceMetricsOverride",
        json_pack("{s:i,s:i,s:i,s:b}", "width", 1400, "height", 1500, "deviceScaleFactor", 1, "mobile", 0),
        1));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    json_decref(cdp_call(c, "Page.navigate", json_pack("{s:s}", "url", url), 1));
    cdp_wait(c, 3000);
    json_t *f1 = page_figures(c);
    cdp_wait(c, 6000);
    json_t *f2 = page_figures(c);
    stop_publishing();
    char *s1 = json_dumps(f1, JSON_COMPACT), *s2 = json_dumps(f2, JSON_COMPACT);
    fprintf(stderr, "page at 3 s: %s\npage at 9 s: %s\n", s1, s2);
    /* live: more snapshots came, the head moved, with no reload (the
     * first head the page saw stayed) */
    assert_true(json_integer_value(json_object_get(f1, "updates")) >= 1);
    assert_true(json_integer_value(json_object_get(f2, "updates")) >
                json_integer_value(json_object_get(f1, "updates")) + 2);
    assert_string_equal(json_string_value(json_object_get(f1, "first")),
                        json_string_value(json_object_get(f2, "first")));
    assert_string_not_equal(json_string_value(json_object_get(f1, "records")),
                            json_string_value(json_object_get(f2, "records")));
    assert_true(json_integer_value(json_object_get(f2, "edges")) > 0);
    assert_true(json_is_true(json_object_get(f2, "plot")));
    assert_string_equal(json_string_value(json_object_get(f2, "health")), "healthy");
    free(s1), free(s2);
    json_decref(f1), json_decref(f2);

    json_t *shot = cdp_call(c, "Page.captureScreenshot", json_pack("{s:s}", "format", "png"), 1);
    const char *b64 = json_string_value(json_object_get(shot, "data"));
    assert_non_null(b64);
    size_t n = strlen(b64);
    unsigned char *png = malloc(n);
    int len = EVP_DecodeBlock(png, (const unsigned char *)b64, (int)n);
    assert_true(len > 1000);
    while (n && b64[n - 1] == '=') len--, n--; /* EVP_DecodeBlock counts the padding */
    const char *shot_path = getenv("SCHAKEL_SCREENSHOT");
    assert_int_equal(
        schakel_file_write_atomic(shot_path && *shot_path ? shot_path : "dashboard.png", png, (size_t)len),
        0);
    free(png);
    json_decref(shot);
    if (c->problems[0]) fail_msg("the page logged:\n%s", c->problems);
}

/* Ends the publisher and Chromium, also after a failure. */
static int teardown(void **state)
{
    stop_publishing();
    if (C.pid > 0) {
        json_t *m = json_pack("{s:i,s:s}", "id", C.next_id++, "method", "Browser.close");
        char *text = json_dumps(m, JSON_COMPACT);
        if (write(C.to, text, strlen(text) + 1) < 0) { /* it may have gone: it is killed below */
        }
        free(text);
        json_decref(m);
        for (int i = 0; i < 50 && waitpid(C.pid, NULL, WNOHANG) == 0; i++) usleep(100000);
        kill(C.pid, SIGKILL);
        waitpid(C.pid, NULL, 0);
        close(C.to);
        close(C.from);
        free(C.buf);
        C.pid = 0;
    }
    return node_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_dashboard_loads_cleanly_and_moves_as_events_flow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
