/* The sample region a fresh `schakel node` starts with: one organisation of
 * each kind around two schools, the bus's own services and the directory's
 * administration identity, each with its own keys. Names and ids are
 * synthetic. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calendar.h"
#include "error.h"
#include "fileio.h"
#include "region.h"
#include "tool.h"

typedef struct {
    const char *id, *kind, *name, *publish, *rights, *escalation;
} sample_org_t;

static const sample_org_t orgs[] = {
    {"school-12ab00", "school", "Basisschool De Linde (synthetic)", SCHOOL, "", NULL},
    {"school-34cd01", "school", "Kindcentrum Het Anker (synthetic)", SCHOOL, "", NULL},
    {"smw-farent", "smw", "School social work (synthetic)", CARE, "", "gemeente-region"},
    {"ggd-jgz", "ggd", "GGD youth health (synthetic)", CARE " absence mazl_advice", "", "gemeente-region"},
    {"wijkteam-noord", "wijkteam", "Wijkteam Noord (synthetic)", CARE, "", "gemeente-region"},
    {"wijkteam-zuid", "wijkteam", "Wijkteam Zuid (synthetic)", CARE, "", "gemeente-region"},
    {"ppo-region", "ppo", "Samenwerkingsverband (synthetic)", PPO_PUBLISH, "", "gemeente-region"},
    {"veiligthuis-region", "veiligthuis", "Veilig Thuis (synthetic)", VEILIGTHUIS_PUBLISH, "",
     "gemeente-region"},
    /* the municipality's youth care (jeugdconsulent): not leerplicht, which
     * is a kind of its own, so that a consent for "the gemeente" stays with
     * youth care */
    {"gemeente-region", "gemeente", "Municipality: jeugdconsulent (synthetic)", GEMEENTE_PUBLISH, "", NULL},
    /* each municipality's leerplicht office: absence goes to the pupil's home municipality */
    {"leerplicht-stad", "leerplicht", "Leerplicht, municipality Stad (synthetic)", LEERPLICHT_PUBLISH, "",
     NULL},
    {"leerplicht-dorp", "leerplicht", "Leerplicht, municipality Dorp (synthetic)", LEERPLICHT_PUBLISH, "",
     NULL},
    /* the region's directory keeper: no data rights, publishes nothing else */
    {"admin-region", "admin", "Directory administration (synthetic)", "directory_update", "directory", NULL},
    {"svc-routing", "service", "schakel routing", "routing_decision", "read_all", NULL},
    {"svc-consent", "service", "schakel consent", "consent_decision", "read_all decide", NULL},
    {"svc-feedback", "service", "schakel feedback loop", "loop_reminder feedback_status", "read_all", NULL},
    {"svc-audit", "service", "schakel audit", "audit_access", "read_all", NULL},
};

/* The routing sections: two schools in two districts (each school's team
 * with the municipality's youth care as its gemeente), a third district,
 * two municipalities (Stad: noord and centrum; Dorp: zuid) with their
 * leerplicht offices, and the region's Veilig Thuis (every district is in
 * a municipality, so the region needs no leerplicht office of its own);
 * and the decree days that deadlines are counted with. */
static json_t *sample_routing(json_t *d)
{
    json_object_set_new(d, "schools",
                        json_pack("[{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}},"
                                  " {s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}}]",
                                  "brinvest", "12AB00", "org", "school-12ab00", "district", "noord", "team",
                                  "smw", "smw-farent", "ggd", "ggd-jgz", "ppo", "ppo-region", "wijkteam",
                                  "wijkteam-noord", "gemeente", "gemeente-region", "brinvest", "34CD01",
                                  "org", "school-34cd01", "district", "zuid", "team", "smw", "smw-farent",
                                  "ggd", "ggd-jgz", "ppo", "ppo-region", "wijkteam", "wijkteam-zuid",
                                  "gemeente", "gemeente-region"));
    json_object_set_new(d, "districts",
                        json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "code", "noord", "wijkteam",
                                  "wijkteam-noord", "code", "zuid", "wijkteam", "wijkteam-zuid", "code",
                                  "centrum", "wijkteam", "wijkteam-noord"));
    json_object_set_new(d, "municipalities",
                        json_pack("[{s:s, s:s, s:[s, s]}, {s:s, s:s, s:[s]}]", "code", "stad", "leerplicht",
                                  "leerplicht-stad", "districts", "noord", "centrum", "code", "dorp",
                                  "leerplicht", "leerplicht-dorp", "districts", "zuid"));
    json_object_set_new(d, "region", json_pack("{s:s}", "veiligthuis", "veiligthuis-region"));
    /* the days a royal decree equates with holidays (docs/feedback.md) */
    json_object_set_new(d, "holidays", json_loads(schakel_decree_days_default(), 0, NULL));
    return d;
}

json_t *tool_words(const char *list)
{
    json_t *a = json_array();
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(a, json_string(w));
    return a;
}

int tool_write_json(const char *path, json_t *doc)
{
    char tmp[SCHAKEL_PATH_MAX];
    if (schakel_path_fmt(tmp, sizeof tmp, NULL, "%s.tmp", path)) return SCHAKEL_ETOOBIG;
    if (json_dump_file(doc, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) return SCHAKEL_EIO;
    return rename(tmp, path) == 0 ? 0 : SCHAKEL_EIO;
}

/* Makes dir and its parents (a fresh checkout has no var/ yet). */
int tool_mkdir_p(const char *dir)
{
    char p[SCHAKEL_PATH_MAX];
    if (schakel_path_fmt(p, sizeof p, NULL, "%s", dir)) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int tool_region_init(const char *dir, const char *endpoint, const char *pub_endpoint)
{
    char path[SCHAKEL_PATH_MAX], keys[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_path_join(path, sizeof path, dir, "node.json", why);
    if (rc) goto fail;
    if (access(path, F_OK) == 0) return 0;
    if ((rc = schakel_path_join(keys, sizeof keys, dir, "keys", why))) goto fail;
    if (tool_mkdir_p(dir) != 0 || (mkdir(keys, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "schakel node: cannot create %s: %s\n", keys, strerror(errno));
        return -1;
    }
    schakel_keys_t k;
    rc = schakel_keys_generate(&k, "broker");
    if (rc == 0) rc = schakel_keys_save(&k, keys);
    schakel_keys_wipe(&k);
    if (rc && rc != SCHAKEL_EEXIST) goto fail;
    json_t *list = json_array();
    for (size_t i = 0; i < sizeof orgs / sizeof orgs[0]; i++) {
        if ((rc = schakel_path_fmt(path, sizeof path, why, "%s/%s.key", keys, orgs[i].id))) goto fail;
        if (schakel_keys_load(&k, path, why) != 0) {
            why[0] = 0; /* not there yet: made now */
            rc = schakel_keys_generate(&k, orgs[i].id);
            if (rc == 0) rc = schakel_keys_save(&k, keys);
            if (rc) goto fail;
        }
        char sign[2 * SCHAKEL_ED25519_PUB_LEN + 1];
        schakel_hex_encode(k.sign_public, sizeof k.sign_public, sign);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", orgs[i].id, "kind", orgs[i].kind,
                              "name", orgs[i].name, "curve_public", k.curve_public, "sign_public", sign,
                              "publish", tool_words(orgs[i].publish), "rights", tool_words(orgs[i].rights));
        if (orgs[i].escalation) json_object_set_new(o, "escalation", json_string(orgs[i].escalation));
        json_array_append_new(list, o);
        schakel_keys_wipe(&k);
    }
    json_t *d = sample_routing(json_pack("{s:i, s:o}", "version", 1, "organisations", list));
    rc = schakel_path_join(path, sizeof path, dir, "directory.json", why);
    if (rc == 0) rc = tool_write_json(path, d);
    json_decref(d);
    if (rc) goto fail;
    /* the region's pseudonym key, for the adapters (never the broker's) */
    if ((rc = schakel_path_join(path, sizeof path, keys, "region.key", why))) goto fail;
    uint8_t rk[32];
    rc = schakel_secret_file(path, rk, sizeof rk, 1, NULL, why);
    memset(rk, 0, sizeof rk);
    if (rc) goto fail;
    json_t *n = json_pack("{s:s, s:s, s:s, s:s}", "endpoint", endpoint, "pub", pub_endpoint, "keys", "keys",
                          "directory", "directory.json");
    rc = schakel_path_join(path, sizeof path, dir, "node.json", why);
    if (rc == 0) rc = tool_write_json(path, n);
    json_decref(n);
    if (rc) goto fail;
    fprintf(stderr,
            "schakel node: first run: made keys for %zu organisations and a sample "
            "directory in %s\n",
            sizeof orgs / sizeof orgs[0], dir);
    return 0;
fail:
    fprintf(stderr, "schakel node: cannot set up %.200s: %s\n", dir, why[0] ? why : schakel_strerror(rc));
    return -1;
}

/* One of node.json's endpoints against its flag: see tool_node_endpoints. */
static int node_endpoint(const char *path, json_t *n, const char *key, const char *flag, const char **ep,
                         int given, char *buf, int *changed)
{
    const char *was = json_string_value(json_object_get(n, key));
    if (given) {
        if (was && strcmp(was, *ep) == 0) return 0;
        fprintf(stderr, "schakel node: %s said %s \"%.255s\"; now \"%.255s\" as given with %s\n", path, key,
                was ? was : "(nothing)", *ep, flag);
        json_object_set_new(n, key, json_string(*ep));
        *changed = 1;
        return 0;
    }
    if (!was) return 0; /* the default stands */
    if (strlen(was) > 255) {
        fprintf(stderr, "schakel node: %s: \"%s\" is longer than 255 characters: give a shorter one\n", path,
                key);
        return -1;
    }
    snprintf(buf, 256, "%s", was);
    *ep = buf;
    return 0;
}

int tool_node_endpoints(const char *dir, const char **endpoint, int endpoint_given, char *endpoint_buf,
                        const char **pub, int pub_given, char *pub_buf, const char **http, int http_given,
                        char *http_buf)
{
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_join(path, sizeof path, dir, "node.json", why) != 0) {
        fprintf(stderr, "schakel node: %s\n", why);
        return -1;
    }
    json_error_t err;
    json_t *n = json_load_file(path, 0, &err);
    if (!json_is_object(n)) {
        fprintf(stderr, "schakel node: %s: %s (line %d): fix it, or remove it to have it written again\n",
                path, n ? "not a JSON object" : err.text, err.line);
        json_decref(n);
        return -1;
    }
    int changed = 0, rc = node_endpoint(path, n, "endpoint", "--endpoint", endpoint, endpoint_given,
                                        endpoint_buf, &changed);
    if (rc == 0) rc = node_endpoint(path, n, "pub", "--pub", pub, pub_given, pub_buf, &changed);
    if (rc == 0) rc = node_endpoint(path, n, "http", "--http", http, http_given, http_buf, &changed);
    if (rc == 0 && changed && tool_write_json(path, n) != 0) {
        fprintf(stderr, "schakel node: cannot write %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    json_decref(n);
    return rc;
}
