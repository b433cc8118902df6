/* The node's HTTP endpoint (docs/operations.md, "Watching the bus"), on a
 * real node with traffic: /metrics passes promtool; no page, metric, JSON
 * answer or event stream names a child, a case, a contact or an event of
 * the scenario; malformed and oversized requests get a 4xx and the server
 * goes on; /healthz says 503 while the broker is gone and 200 when it is
 * back (a `schakel monitor` beside the node). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "fileio.h"
#include "harness.h"
#include "scenario.h"

static int node_port, mon_port;
static pid_t monitor_pid;

typedef struct {
    char *buf;
    size_t len;
} body_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    char *nb = realloc(b->buf, b->len + size * n + 1);
    if (!nb) return 0;
    memcpy(nb + b->len, p, size * n);
    b->buf = nb;
    b->len += size * n;
    b->buf[b->len] = 0;
    return size * n;
}

/* GET path on port with the header auth ("Authorization: ..."; NULL:
 * none); its status (0: no answer) and its WWW-Authenticate header, if
 * any, into challenge (cap bytes). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    char *challenge = arg;
    size_t len = size * n;
    if (len > 17 && !strncasecmp(p, "WWW-Authenticate:", 17) && !challenge[0])
        snprintf(challenge, 128, "%.*s", (int)(len - 17), p + 17);
    return len;
}

static long get_auth(int port, const char *path, const char *auth, char challenge[128])
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    body_t b = {calloc(1, 1), 0};
    challenge[0] = 0;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = auth ? curl_slist_append(NULL, auth) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, challenge);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(b.buf);
    return status;
}

/* Sends raw bytes, reads the answer's status code (0: none). */
static int raw(int port, const char *req, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may answer and close before all is sent */
        off += (size_t)n;
    }
    char buf[64] = "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    int status = 0;
    if (n > 12 && !strncmp(buf, "HTTP/1.", 7)) status = atoi(buf + 9);
    return status;
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    H = harness_new_node();
    node_port = harness_free_port();
    mon_port = harness_free_port();
    assert_true(node_port > 0 && mon_port > 0 && node_port != mon_port);
    snprintf(H->extra_args[H->n_extra++], 64, "--http");
    snprintf(H->extra_args[H->n_extra++], 64, "127.0.0.1:%d", node_port);
    if (harness_start(H) != 0) return -1;
    change_directory(0);
    tick(at("2026-11-23T09:00:00Z"));
    return 0;
}

static int teardown(void **state)
{
    if (monitor_pid > 0) {
        kill(monitor_pid, SIGTERM);
        waitpid(monitor_pid, NULL, 0);
    }
    curl_global_cleanup();
    return node_teardown(state);
}

/* Waits until path on port answers with status want (up to limit_ms). */
static int wait_status(int port, const char *path, long want, int limit_ms, char **body)
{
    for (int waited = 0; waited <= limit_ms; waited += 200) {
        char *b = NULL;
        long s = http_get(port, path, &b, 3000);
        if (s == want) {
            if (body) *body = b;
            else free(b);
            return 1;
        }
        free(b);
        usleep(200000);
    }
    return 0;
}

/* A school's signal with its own case and contact references, a referral
 * with a case reference, and a consent: what the privacy scan looks for. */
static void traffic(int n)
{
    for (int i = 0; i < n; i++) {
        char subject[65], label[64], caseref[40], desk[40], json[1200], rid[33];
        uint8_t id[16];
        snprintf(label, sizeof label, "ops-http-child-%d-%d", i, (int)getpid());
        child(label, subject);
        snprintf(caseref, sizeof caseref, "dossier-%d-%08x", i, (unsigned)random());
        snprintf(desk, sizeof desk, "desk/%08x", (unsigned)random());
        snprintf(
            json, sizeof json,
            "{\"type\":\"signal\",\"subject\":\"%s\",\"case_ref\":\"%s\",\"purpose\":\"support\","
            "\"legal_basis\":\"consent\",\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":"
            "[\"behaviour\"],\"urgency\":\"soon\",\"observed_on\":\"2026-11-20\",\"raised_by\":\"teacher\","
            "\"contact\":{\"org_id\":\"school-12ab00\",\"role\":\"intern_begeleider\",\"ref\":\"%s\"}}}",
            subject, caseref, desk);
        publish("school-12ab00", json, id);
        char extra[120];
        snprintf(extra, sizeof extra, "\"district\":\"noord\",\"case_ref\":\"%s-r\",", caseref);
        referral_with_id("school-12ab00", subject, extra, "wijkteam", rid, id);
        char cid[33];
        if (i % 2) consent("school-12ab00", subject, "parents", "under_12", "wijkteam", cid, id);
    }
    wait_services(harness_head(H));
}

static void metrics_of_a_node_with_traffic_pass_promtool(void **state)
{
    (void)state;
    traffic(6);
    char *m = NULL;
    for (int i = 0; i < 50; i++) { /* the collector's next round */
        free(m);
        m = NULL;
        assert_int_equal(http_get(node_port, "/metrics", &m, 3000), 200);
        if (strstr(m, "schakel_events_total{org=\"school-12ab00\",type=\"referral\"} 6")) break;
        usleep(200000);
    }
    static const char *const names[] = {
        "schakel_broker_up 1",
        "schakel_log_records ",
        "schakel_log_bytes ",
        "schakel_log_map_bytes ",
        "schakel_checkpoint_age_seconds ",
        "schakel_events_total{org=\"school-12ab00\",type=\"referral\"} 6",
        "schakel_delivered_total{from=\"school-12ab00\",to=\"",
        "schakel_service_lag_records{service=\"consent\"}",
        "schakel_service_oldest_unread_seconds{service=",
        "schakel_service_refused_total{service=\"routing\",code=\"not_allowed\"} 0",
        "schakel_service_alarms_total{service=\"consent\"} 0",
        "schakel_stream_lag_records{org=\"wijkteam-noord\"}",
        "schakel_held_total{code=",
        "# TYPE schakel_escalations_total counter",
        "schakel_loops_open{org=",
        "# TYPE schakel_fsync_seconds histogram",
        "schakel_fsync_seconds_bucket{le=\"+Inf\"} ",
        "# TYPE schakel_group_events histogram",
        "schakel_connected_orgs ",
        "# TYPE schakel_rejects_total counter"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(m, names[i])) fail_msg("/metrics lacks %s:\n%s", names[i], m);
    /* referrals with consent were delivered to wijkteam-noord, which reads nothing here */
    const char *lag = strstr(m, "schakel_stream_lag_records{org=\"wijkteam-noord\"} ");
    assert_non_null(lag);
    assert_true(strtoull(strchr(lag, '}') + 2, NULL, 10) > 0);
    /* the broker's own figures (the node's monitor PINGs as its operator):
     * the referrals went through group commits, by at least one org */
    const char *commits = strstr(m, "\nschakel_fsync_seconds_count ");
    assert_non_null(commits);
    assert_true(strtoull(commits + 29, NULL, 10) > 0);
    const char *orgs = strstr(m, "\nschakel_connected_orgs ");
    assert_non_null(orgs);
    assert_true(strtoull(orgs + 24, NULL, 10) > 0);
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.txt", H->dir);
    assert_int_equal(schakel_file_write_atomic(path, m, strlen(m)), 0);
    free(m);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s/promtool.out 2>&1", path, H->dir);
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
        fail_msg("promtool is not installed (Debian package prometheus, in scripts/packages.txt)");
    snprintf(path, sizeof path, "%s/promtool.out", H->dir);
    size_t n;
    char *out = schakel_file_read(path, 1 << 20, &n);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) fail_msg("promtool check metrics: %s", out ? out : "?");
    free(out);
}

static void scan(const char *what, const char *text, char (*needles)[65], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (needles[i][0] && strstr(text, needles[i])) fail_msg("%s shows %s", what, needles[i]);
}

static void no_page_metric_or_stream_names_a_child_a_case_or_an_event(void **state)
{
    (void)state;
    traffic(4);
    /* every event id and subject on the log, and the references the
     * scenario wrote */
    size_t cap = 4096, n = 0;
    char(*needles)[65] = calloc(cap, 65);
    assert_non_null(needles);
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
        if (n + 4 > cap) {
            harness_read_end(&rd);
            break;
        }
        if (rd.e->event_id.len == 16) hex(rd.e->event_id.data, 16, needles[n++]);
        if (rd.e->subject && rd.e->subject[0]) snprintf(needles[n++], 65, "%s", rd.e->subject);
        if (rd.e->case_ref && rd.e->case_ref[0]) snprintf(needles[n++], 65, "%s", rd.e->case_ref);
        if (rd.e->body_case == SCHAKEL__V1__ENVELOPE__BODY_SIGNAL && rd.e->signal->contact &&
            rd.e->signal->contact->ref[0])
            snprintf(needles[n++], 65, "%s", rd.e->signal->contact->ref);
    }
    assert_true(n > 40);
    static const char *const pages[] = {
        "/",           "/metrics",        "/healthz",     "/api/snapshot", "/assets/dashboard.js",
        "/indicators", "/indicators.csv", "/no-such-page"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char *body = NULL;
        long status = http_get(node_port, pages[i], &body, 10000);
        assert_true(status > 0);
        /* the indicators are served (the log is readable), not refused */
        if (!strncmp(pages[i], "/indicators", 11)) assert_int_equal(status, 200);
        scan(pages[i], body, needles, n);
        free(body);
    }
    char *stream = NULL; /* the event stream while events flow */
    traffic(2);
    http_get(node_port, "/events", &stream, 2500);
    assert_non_null(strstr(stream, "event: snapshot"));
    scan("/events", stream, needles, n);
    free(stream);
    free(needles);
}

static void a_malformed_or_oversized_request_gets_4xx_and_the_server_goes_on(void **state)
{
    (void)state;
    static const char garbage[] = "\x16\x03\x01 not http at all\r\n\r\n";
    int s = raw(node_port, garbage, sizeof garbage - 1);
    assert_true(s >= 400 && s < 500);
    size_t big = 200 * 1024;
    char *req = malloc(big + 100);
    int len = snprintf(req, 100, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ");
    memset(req + len, 'a', big);
    memcpy(req + len + big, "\r\n\r\n", 4);
    s = raw(node_port, req, (size_t)len + big + 4);
    assert_true(s >= 400 && s < 500);
    free(req);
    static const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(raw(node_port, post, sizeof post - 1), 413);
    static const char put[] = "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(raw(node_port, put, sizeof put - 1), 405);
    static const char huge_url[] = "GET /%%%%%%%%%%%%%%%% HTTP/1.1\r\nHost: x\r\n\r\n";
    s = raw(node_port, huge_url, sizeof huge_url - 1);
    assert_true(s >= 400 && s < 500);
    assert_int_equal(http_get(node_port, "/healthz", NULL, 3000), 200);
    assert_int_equal(http_get(node_port, "/metrics", NULL, 3000), 200);
}

/* DNS rebinding: a web page whose name now points at 127.0.0.1 reaches the
 * endpoint with its own name in Host, and gets nothing; this machine's
 * clients (its address, localhost) get the page. */
static void a_page_of_another_name_is_refused(void **state)
{
    (void)state;
    char req[200];
    struct {
        const char *name, *port; /* port NULL: the endpoint's */
        int status;
    } cases[] = {{"evil.example", NULL, 403}, {"127.0.0.1", NULL, 200}, {"localhost", NULL, 200},
                 {"LocalHost", NULL, 200},    {"127.0.0.1", ":1", 403}, {"127.0.0.1", ":x", 403},
                 {"localhost", "", 403},      {"10.0.0.1", NULL, 403}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char port[16];
        snprintf(port, sizeof port, ":%d", node_port);
        int n = snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: %s%s\r\n\r\n", cases[i].name,
                         cases[i].port ? cases[i].port : port);
        assert_int_equal(raw(node_port, req, (size_t)n), cases[i].status);
    }
    static const char old[] = "GET /metrics HTTP/1.0\r\n\r\n"; /* no Host at all */
    assert_int_equal(raw(node_port, old, sizeof old - 1), 403);
}

/* The broker's own figures (refusals, commit times, active orgs) are for
 * the node's operator: a monitor that PINGs as an organisation gets none.
 * Its totals are the whole log's, also of what came before it started. */
static void a_monitor_as_an_organisation_gets_no_broker_figures(void **state)
{
    (void)state;
    char log[600], listen[64];
    int port = harness_free_port();
    snprintf(log, sizeof log, "%s/monitor-org.log", H->dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *args[] = {"monitor", "--node", H->data, "--as", "svc-audit", "--http", listen, NULL};
    pid_t pid = harness_spawn(log, args);
    assert_true(pid > 0);
    char *body = NULL;
    if (!wait_status(port, "/healthz", 200, 15000, NULL)) fail_msg("the monitor never said 200");
    assert_int_equal(http_get(port, "/metrics", &body, 3000), 200);
    assert_non_null(strstr(body, "schakel_broker_up 1"));
    assert_null(strstr(body, "schakel_fsync_seconds"));
    assert_null(strstr(body, "schakel_connected_orgs"));
    /* started after the traffic above, its totals are the log's: the
     * twelve referrals the school published before it started */
    const char *refs = "schakel_events_total{org=\"school-12ab00\",type=\"referral\"} ";
    if (!strstr(body, refs) || strtoull(strstr(body, refs) + strlen(refs), NULL, 10) < 12)
        fail_msg("a monitor started later counts only what came after it:\n%s", body);
    free(body);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void healthz_is_503_while_the_broker_is_gone_and_200_when_it_is_back(void **state)
{
    (void)state;
    char log[600], listen[64];
    snprintf(log, sizeof log, "%s/monitor.log", H->dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", mon_port);
    const char *args[] = {"monitor", "--node", H->data, "--http", listen, NULL};
    monitor_pid = harness_spawn(log, args);
    assert_true(monitor_pid > 0);
    if (!wait_status(mon_port, "/healthz", 200, 15000, NULL)) fail_msg("the monitor never said 200");
    assert_int_equal(harness_stop(H, SIGKILL) != -1, 1);
    char *body = NULL;
    if (!wait_status(mon_port, "/healthz", 503, 10000, &body))
        fail_msg("/healthz stayed 200 without a broker");
    assert_non_null(strstr(body, "\"ok\":false"));
    assert_non_null(strstr(body, "broker: the broker did not answer PING"));
    free(body);
    sleep(2); /* a few seconds without the broker */
    assert_int_equal(http_get(mon_port, "/healthz", NULL, 3000), 503);
    assert_int_equal(harness_start(H), 0);
    if (!wait_status(mon_port, "/healthz", 200, 20000, &body)) fail_msg("/healthz did not come back to 200");
    assert_non_null(strstr(body, "\"ok\":true"));
    free(body);
}

/* Sets org's publish list in the node's directory (the next version) and
 * waits until the node loaded it; returns the list it had. */
static json_t *set_publish(const char *org, json_t *publish)
{
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err), *was = NULL, *o;
    assert_non_null(d);
    size_t i;
    json_array_foreach(json_object_get(d, "organisations"), i, o)
        if (!strcmp(json_string_value(json_object_get(o, "id")), org)) {
            was = json_incref(json_object_get(o, "publish"));
            json_object_set_new(o, "publish", publish);
        }
    assert_non_null(was);
    json_int_t v = json_integer_value(json_object_get(d, "version")) + 1;
    json_object_set_new(d, "version", json_integer(v));
    char tmp[600], loaded[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", H->directory);
    assert_int_equal(json_dump_file(d, tmp, JSON_INDENT(2)), 0);
    assert_int_equal(rename(tmp, H->directory), 0);
    json_decref(d);
    snprintf(loaded, sizeof loaded, "event=directory_loaded version=%lld", (long long)v);
    for (int k = 0; k < 200 && !count_in_log(loaded); k++) usleep(50000);
    assert_true(count_in_log(loaded) > 0);
    return was;
}

/* The value of the sample that starts with prefix in text; -1: none. */
static double sample(const char *text, const char *prefix)
{
    const char *at = strstr(text, prefix);
    return at ? strtod(at + strlen(prefix), NULL) : -1;
}

/* A decision the broker refuses for good (here: the directory no longer
 * lets svc-routing publish) is not on the log: /metrics counts it for the
 * routing service by reject code, with its alarms, and the dashboard's
 * snapshot lists it; read from the service's state, so the count is
 * there whoever started the monitor and whenever. */
static void a_refused_decision_is_counted_by_service_and_code(void **state)
{
    (void)state;
    static const char refused[] = "schakel_service_refused_total{service=\"routing\",code=\"not_allowed\"} ";
    static const char alarms[] = "schakel_service_alarms_total{service=\"routing\"} ";
    char *m = NULL;
    /* the node was started again by the test before: its endpoint comes up */
    if (!wait_status(node_port, "/metrics", 200, 15000, &m)) fail_msg("the node's /metrics does not answer");
    double before = sample(m, refused);
    if (before < 0) fail_msg("/metrics lacks %s:\n%s", refused, m);
    free(m);
    json_t *was = set_publish("svc-routing", json_array());
    traffic(1);
    m = NULL;
    for (int i = 0; i < 75; i++) { /* the collector's next round */
        free(m);
        m = NULL;
        assert_int_equal(http_get(node_port, "/metrics", &m, 3000), 200);
        if (sample(m, refused) > before) break;
        usleep(200000);
    }
    double after = sample(m, refused);
    if (after <= before) fail_msg("the refused decision is not counted:\n%s", m);
    assert_true(sample(m, alarms) >= after);
    free(m);
    char *snap = NULL;
    assert_int_equal(http_get(node_port, "/api/snapshot", &snap, 3000), 200);
    json_error_t err;
    json_t *o = json_loads(snap, 0, &err);
    assert_non_null(o);
    json_t *n = json_object_get(
        json_object_get(json_object_get(json_object_get(o, "services"), "routing"), "refused"),
        "not_allowed");
    assert_true(json_is_integer(n));
    assert_int_equal((long long)json_integer_value(n), (long long)after);
    json_decref(o);
    free(snap);
    json_decref(set_publish("svc-routing", was));
}

/* Bound to an address that is not loopback the dashboard and /metrics are
 * for whoever shows the token: without one (or with a wrong one) 401,
 * with it 200 (as a bearer token, or a browser's password), /healthz open
 * to all; schakel top sends it. Without --http-token the monitor and the
 * node refuse such an address, saying what to give, before they make
 * anything. */
static void off_loopback_the_endpoint_wants_a_token(void **state)
{
    (void)state;
    char listen[64], token_path[700], log[700], dir[600], *out = NULL, *err = NULL;
    int port = harness_free_port();
    snprintf(listen, sizeof listen, "0.0.0.0:%d", port);
    snprintf(dir, sizeof dir, "%s/token-test", H->dir);
    assert_int_equal(mkdir(dir, 0700), 0);

    /* the refusal: the monitor, and a node (which makes nothing in its directory) */
    const char *bare[] = {"monitor", "--node", H->data, "--http", listen, NULL};
    assert_int_equal(harness_run_captured(dir, bare, &out, &err), 2);
    if (!strstr(err, "is not a loopback address") || !strstr(err, "--http-token FILE"))
        fail_msg("the refusal does not say what to give: %s", err);
    free(out), free(err);
    char fresh[700];
    snprintf(fresh, sizeof fresh, "%s/fresh-node", dir);
    const char *node[] = {"node", "--data", fresh, "--http", listen, NULL};
    assert_int_equal(harness_run_captured(dir, node, &out, &err), 2);
    assert_non_null(strstr(err, "schakel node: --http 0.0.0.0:"));
    assert_int_equal(access(fresh, F_OK), -1);
    free(out), free(err);

    /* a token too short is refused too */
    snprintf(token_path, sizeof token_path, "%s/short.token", dir);
    assert_int_equal(schakel_file_write_atomic(token_path, "abc\n", 4), 0);
    const char *shortt[] = {"monitor", "--node", H->data, "--http", listen, "--http-token", token_path, NULL};
    assert_int_equal(harness_run_captured(dir, shortt, &out, &err), 2);
    assert_non_null(strstr(err, "must hold one token of 32"));
    free(out), free(err);
    /* and one that other users may read */
    assert_int_equal(schakel_file_write_atomic(token_path, "0123456789abcdef0123456789abcdef\n", 33), 0);
    assert_int_equal(chmod(token_path, 0644), 0);
    assert_int_equal(harness_run_captured(dir, shortt, &out, &err), 2);
    assert_non_null(strstr(err, "lets other users read the token"));
    free(out), free(err);

    char token[65], auth[300], challenge[128];
    for (int i = 0; i < 32; i++) snprintf(token + 2 * i, 3, "%02x", (unsigned)(random() & 0xff));
    snprintf(token_path, sizeof token_path, "%s/http.token", dir);
    snprintf(auth, sizeof auth, "%s\n", token);
    assert_int_equal(schakel_file_write_atomic(token_path, auth, strlen(auth)), 0);
    snprintf(log, sizeof log, "%s/monitor-token.log", dir);
    const char *args[] = {"monitor", "--node", H->data, "--http", listen, "--http-token", token_path, NULL};
    pid_t pid = harness_spawn(log, args);
    assert_true(pid > 0);
    if (!wait_status(port, "/healthz", 200, 15000, NULL)) fail_msg("/healthz is not open without the token");

    static const char *const pages[] = {"/metrics", "/", "/api/snapshot", "/indicators.csv",
                                        "/assets/dashboard.js"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        assert_int_equal(get_auth(port, pages[i], NULL, challenge), 401);
        assert_non_null(strstr(challenge, "realm=\"schakel\""));
    }
    assert_int_equal(
        get_auth(port, "/metrics", "Authorization: Bearer 0123456789abcdef0123456789abcdef", challenge), 401);
    snprintf(auth, sizeof auth, "Authorization: Bearer %.63s", token); /* one character short */
    assert_int_equal(get_auth(port, "/metrics", auth, challenge), 401);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    assert_int_equal(get_auth(port, "/metrics", auth, challenge), 200);
    assert_int_equal(get_auth(port, "/", auth, challenge), 200);
    /* a browser: any user name, the token as the password */
    char user_pass[100], b64[200];
    snprintf(user_pass, sizeof user_pass, "operator:%s", token);
    FILE *enc = NULL;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "printf '%%s' '%s' | base64 -w0", user_pass);
    enc = popen(cmd, "r");
    assert_non_null(enc);
    assert_non_null(fgets(b64, sizeof b64, enc));
    pclose(enc);
    snprintf(auth, sizeof auth, "Authorization: Basic %s", b64);
    assert_int_equal(get_auth(port, "/api/snapshot", auth, challenge), 200);
    assert_int_equal(get_auth(port, "/healthz", NULL, challenge), 200);

    /* schakel top: refused without the token, served with it */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *top_bare[] = {"top", "--http", addr, "--once", NULL};
    assert_int_equal(harness_run_captured(dir, top_bare, &out, &err), 1);
    assert_non_null(strstr(err, "HTTP 401: give --http-token FILE"));
    free(out), free(err);
    const char *top_token[] = {"top", "--http", addr, "--http-token", token_path, "--once", NULL};
    int rc = harness_run_captured(dir, top_token, &out, &err);
    if (rc != 0) fail_msg("schakel top with the token: exit %d: %s", rc, err);
    assert_non_null(strstr(out, "broker    UP"));
    free(out), free(err);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_of_a_node_with_traffic_pass_promtool),
        cmocka_unit_test(no_page_metric_or_stream_names_a_child_a_case_or_an_event),
        cmocka_unit_test(a_malformed_or_oversized_request_gets_4xx_and_the_server_goes_on),
        cmocka_unit_test(a_page_of_another_name_is_refused),
        cmocka_unit_test(a_monitor_as_an_organisation_gets_no_broker_figures),
        cmocka_unit_test(off_loopback_the_endpoint_wants_a_token),
        cmocka_unit_test(healthz_is_503_while_the_broker_is_gone_and_200_when_it_is_back),
        cmocka_unit_test(a_refused_decision_is_counted_by_service_and_code),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
