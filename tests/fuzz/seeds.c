/* Writes the seed corpora of the fuzz targets (docs/testing.md) from the
 * project's own examples: every ```json event of docs/events.md (as JSON,
 * encoded, and inside PUBLISH frames), the sample region's directory
 * (tools/region.c), the services' default policies, the shipped adapter
 * profiles and their example exports. Usage: fuzz_seeds CORPUS_DIR (it
 * writes CORPUS_DIR/<target>/seed-*; scripts/fuzz.sh seeds runs it). */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "consent.h"
#include "error.h"
#include "feedback.h"
#include "fileio.h"
#include "json.h"
#include "routing.h"
#include "tool.h"

static const char *root;

static void put(const char *target, const char *name, const void *a, size_t alen, const void *b, size_t blen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) abort();
    snprintf(path, sizeof path, "%s/%s/seed-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) || fclose(f)) abort();
}

static char *slurp(const char *path, size_t *len)
{
    char *t = schakel_file_read(path, 64 << 20, len);
    if (!t) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    return t;
}

/* A command as fuzz_wire reads it: [u16le len][frame] ..., last raw. */
static size_t frame(uint8_t *out, const void *f, size_t n, int last)
{
    size_t o = 0;
    if (!last) {
        out[o++] = (uint8_t)n;
        out[o++] = (uint8_t)(n >> 8);
    }
    memcpy(out + o, f, n);
    return o + n;
}

static void put_command(const char *name, const char *cmd, const ProtobufCMessage *msg)
{
    size_t blen = protobuf_c_message_get_packed_size(msg);
    uint8_t *out = malloc(blen + 64), *body = malloc(blen + 1);
    protobuf_c_message_pack(msg, body);
    uint8_t id[8] = {0, 0, 0, 0, 0, 0, 0, 7};
    size_t o = frame(out, cmd, strlen(cmd), 0);
    o += frame(out + o, id, 8, 0);
    o += frame(out + o, body, blen, 1);
    put("wire", name, out, o, NULL, 0);
    free(out);
    free(body);
}

static void events(void)
{
    size_t dlen;
    char *doc = slurp(SCHAKEL_SOURCE_DIR "/docs/events.md", &dlen);
    int k = 0;
    for (char *p = strstr(doc, "```json\n"); p; p = strstr(p, "```json\n")) {
        char *start = p + 8, *end = strstr(start, "\n```");
        if (!end) break;
        char name[32], why[SCHAKEL_ERRLEN];
        snprintf(name, sizeof name, "events-md-%02d", ++k);
        put("json_event", name, start, (size_t)(end - start), NULL, 0);
        schakel_envelope_t *e = schakel_json_parse_envelope(start, (size_t)(end - start), why);
        if (!e) {
            fprintf(stderr, "%s: %s\n", name, why);
            exit(1);
        }
        uint8_t id[16] = {0x5c, 0x4a, 0x1e, (uint8_t)k};
        if (!e->event_id.len) {
            e->event_id.data = id;
            e->event_id.len = 16;
        }
        uint8_t *buf;
        size_t len;
        if (schakel_envelope_encode(e, &buf, &len) != 0) abort();
        put("envelope", name, buf, len, NULL, 0);
        Schakel__V1__Publish pub = SCHAKEL__V1__PUBLISH__INIT;
        ProtobufCBinaryData ev = {len, buf};
        uint8_t sig[64] = {0};
        pub.n_events = 1;
        pub.events = &ev;
        pub.signature.data = sig;
        pub.signature.len = sizeof sig;
        put_command(name, "PUBLISH", &pub.base);
        free(buf);
        if (e->event_id.data == id) e->event_id.data = NULL, e->event_id.len = 0;
        schakel_envelope_free(e);
        p = end + 4;
    }
    free(doc);
    Schakel__V1__Fetch f = SCHAKEL__V1__FETCH__INIT;
    f.stream = "org/school-12ab00";
    f.consumer = "adapter";
    f.max_count = 10;
    put_command("fetch", "FETCH", &f.base);
    Schakel__V1__Commit c = SCHAKEL__V1__COMMIT__INIT;
    c.stream = "all";
    c.consumer = "routing";
    c.seq = 42;
    put_command("commit", "COMMIT", &c.base);
    Schakel__V1__Ping pg = SCHAKEL__V1__PING__INIT;
    pg.nonce = 99;
    put_command("ping", "PING", &pg.base);
    put("wire", "two-frames", "\x04\x00PING\x00\x00\x00\x00\x00\x00\x00\x01", 14, NULL, 0);
}

static void directory(void)
{
    char dir[] = "/tmp/schakel-seeds-XXXXXX", path[256];
    if (!mkdtemp(dir)) abort();
    if (tool_region_init(dir, "tcp://127.0.0.1:7400", "tcp://127.0.0.1:7401") != 0) exit(1);
    snprintf(path, sizeof path, "%s/directory.json", dir);
    size_t len;
    char *t = slurp(path, &len);
    put("directory", "region", t, len, NULL, 0);
    free(t);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) abort();
}

static void rules(void)
{
    const char *r = schakel_routing_default_rules(), *c = schakel_consent_default_policy(),
               *f = schakel_feedback_default_policy();
    put("rules", "routing", "\x00", 1, r, strlen(r));
    put("rules", "consent", "\x01", 1, c, strlen(c));
    put("rules", "feedback", "\x02", 1, f, strlen(f));
}

/* profiles in the order mapping_fuzz.h loads them */
static void adapters(void)
{
    glob_t g;
    if (glob(SCHAKEL_SOURCE_DIR "/adapters/profiles/*/profile.json", 0, NULL, &g) != 0) abort();
    for (size_t i = 0; i < g.gl_pathc; i++) {
        size_t len;
        char *t = slurp(g.gl_pathv[i], &len), dir[4096], name[64], pat[4200];
        snprintf(dir, sizeof dir, "%s", g.gl_pathv[i]);
        *strrchr(dir, '/') = 0;
        const char *kind = strrchr(dir, '/') + 1;
        put("profile", kind, t, len, NULL, 0);
        free(t);
        uint8_t sel = (uint8_t)i;
        glob_t ex;
        snprintf(pat, sizeof pat, "%s/examples/*", dir);
        if (glob(pat, 0, NULL, &ex) != 0) continue;
        for (size_t j = 0; j < ex.gl_pathc; j++) {
            t = slurp(ex.gl_pathv[j], &len);
            snprintf(name, sizeof name, "%s-%zu", kind, j + 1);
            int jsonl = strstr(ex.gl_pathv[j], ".jsonl") != NULL;
            put(jsonl ? "http_body" : "rows_csv", name, &sel, 1, t, len);
            if (jsonl) { /* the same rows as a JSON list */
                char *list = malloc(len + 8);
                size_t o = 0;
                list[o++] = '[';
                for (size_t q = 0; q < len; q++) {
                    if (t[q] == '\n') {
                        if (q + 1 < len) list[o++] = ',';
                    } else {
                        list[o++] = t[q];
                    }
                }
                list[o++] = ']';
                snprintf(name, sizeof name, "%s-%zu-list", kind, j + 1);
                put("http_body", name, &sel, 1, list, o);
                free(list);
            }
            free(t);
        }
        globfree(&ex);
    }
    globfree(&g);
    size_t len;
    char *t = slurp(SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json", &len);
    put("profile", "fixture-school", t, len, NULL, 0);
    free(t);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) return 1;
    events();
    directory();
    rules();
    adapters();
    return 0;
}
