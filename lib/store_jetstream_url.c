/* The --log address of the jetstream backend, parsed whether or not the
 * backend is built; without libnats, opening it says so. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "store_jetstream.h"

/* host:port, host [A-Za-z0-9.-], port 1..65535 */
static int server_ok(const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);
    if (!colon || colon == s || colon == s + len - 1 || (size_t)(colon - s) > 100) return 0;
    for (const char *c = s; c < colon; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '-'))
            return 0;
    unsigned port = 0;
    for (const char *c = colon + 1; c < s + len; c++) {
        if (*c < '0' || *c > '9' || port > 6553) return 0;
        port = port * 10 + (unsigned)(*c - '0');
    }
    return port >= 1 && port <= 65535;
}

int schakel_js_url_parse(const char *url, schakel_js_url_t *out, char *why)
{
    memset(out, 0, sizeof *out);
    const char *p = url && !strncmp(url, "nats://", 7) ? url + 7 : NULL;
    if (!p) return schakel_fail(why, SCHAKEL_EINVAL, "--log: give nats://host:port[,host:port...][/region]");
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (out->n == SCHAKEL_JS_MAX_SERVERS)
            return schakel_fail(why, SCHAKEL_EINVAL, "--log: at most %d servers", SCHAKEL_JS_MAX_SERVERS);
        if (!server_ok(p, (size_t)(e - p)))
            return schakel_fail(why, SCHAKEL_EINVAL, "--log: server %d is not host:port", out->n + 1);
        snprintf(out->servers[out->n++], sizeof out->servers[0], "nats://%.*s", (int)(e - p), p);
        p = comma ? comma + 1 : end;
    }
    if (out->n == 0) return schakel_fail(why, SCHAKEL_EINVAL, "--log: no server in the address");
    const char *region = slash ? slash + 1 : "region";
    size_t rl = strlen(region);
    if (rl == 0 || rl > SCHAKEL_JS_REGION_MAX)
        return schakel_fail(why, SCHAKEL_EINVAL, "--log: the region after '/' has 1 to %d characters",
                            SCHAKEL_JS_REGION_MAX);
    for (size_t i = 0; i < rl; i++)
        if (!((region[i] >= 'a' && region[i] <= 'z') || (region[i] >= '0' && region[i] <= '9') ||
              region[i] == '-'))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "--log: the region is lower-case letters, digits and '-'");
    memcpy(out->region, region, rl + 1);
    return 0;
}

int schakel_js_index_of(const char *dir, char name[SCHAKEL_JS_REGION_MAX + 9], char *why)
{
    char path[SCHAKEL_PATH_MAX];
    int rc = schakel_path_join(path, sizeof path, dir, "stream", why);
    if (rc) return rc;
    size_t len = 0;
    char *text = schakel_file_read(path, 128, &len);
    if (!text)
        return errno == ENOENT ? SCHAKEL_ENOTFOUND
                               : schakel_fail(why, SCHAKEL_EIO, "%s: %s", path, strerror(errno));
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
    rc = len == 0 || len > SCHAKEL_JS_REGION_MAX + 8 || strncmp(text, "SCHAKEL_", 8) != 0 ? SCHAKEL_ECORRUPT
                                                                                          : 0;
    if (rc) schakel_fail(why, rc, "%s does not name a stream: write SCHAKEL_<REGION> or remove it", path);
    else memcpy(name, text, len + 1);
    free(text);
    return rc;
}

#ifndef SCHAKEL_HAVE_NATS
schakel_store_t *schakel_store_open_jetstream(const schakel_jetstream_options_t *opts, char *why)
{
    (void)opts;
    schakel_fail(why, SCHAKEL_ECONFIG, "--log nats://: this schakel was built without libnats (libnats-dev)");
    return NULL;
}

int schakel_jetstream_available(void)
{
    return 0;
}

int schakel_js_copy_to_stream(const char *log_dir, const char *url, schakel_head_t *head, char *why)
{
    (void)log_dir, (void)url, (void)head;
    return schakel_fail(why, SCHAKEL_ECONFIG,
                        "nats://: this schakel was built without libnats (libnats-dev)");
}

int schakel_js_copy_from_stream(const char *url, const char *log_dir, schakel_head_t *head, char *why)
{
    (void)log_dir, (void)url, (void)head;
    return schakel_fail(why, SCHAKEL_ECONFIG,
                        "nats://: this schakel was built without libnats (libnats-dev)");
}
#endif
