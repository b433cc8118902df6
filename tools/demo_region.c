/* The demo region: N schools with BRINVEST codes and districts, the school
 * social work organisation and the wijkteam serving each, the GGD, the
 * samenwerkingsverband, Veilig Thuis, the municipality and its leerplicht
 * office, in the proportions of docs/demo.md; its keys, directory, node
 * configuration, profiles and adapter configurations. All from the seed. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calendar.h"
#include "crypto.h"
#include "demo.h"
#include "error.h"
#include "keys.h"
#include "mapping.h"
#include "region.h"

uint64_t demo_mix(uint64_t x) /* splitmix64's finaliser */
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

demo_rng_t demo_rng(uint64_t seed, uint64_t stream, uint64_t n)
{
    demo_rng_t r = {demo_mix(seed ^ demo_mix(stream * 0x100000001b3ULL ^ demo_mix(n)))};
    return r;
}

uint64_t demo_next(demo_rng_t *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return demo_mix(r->s);
}

unsigned demo_below(demo_rng_t *r, unsigned n)
{
    return n ? (unsigned)(demo_next(r) % n) : 0;
}

const char *demo_district_name(int d, char out[16])
{
    snprintf(out, 16, "Wijk %02u", (unsigned)(d + 1) % 1000u);
    return out;
}

const char *demo_district_code(int d, char out[16])
{
    snprintf(out, 16, "w%02u", (unsigned)(d + 1) % 1000u);
    return out;
}

const char *demo_smw_id(int i, char out[32])
{
    snprintf(out, 32, "smw-org%02u", (unsigned)(i + 1) % 1000u);
    return out;
}

static void add_org(demo_region_t *r, const char *id, demo_kind_t kind, demo_input_t in)
{
    demo_org_t *o = &r->orgs[r->norgs++];
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", id);
    o->kind = kind;
    o->input = in;
    o->stdin_fd = -1;
    if (in == DEMO_IN_HTTP) o->http_port = r->port + 10 + r->norgs;
    o->district = -1;
}

/* Rotterdam's proportions (docs/demo.md): 62 schools, school social work
 * from 11 organisations, wijkteam workers from 26 wijkteams. */
int demo_region_shape(demo_region_t *r, uint64_t seed, int nschools, int port)
{
    r->seed = seed;
    r->nschools = nschools;
    r->nvo = (nschools + 5) / 6; /* one secondary school for six primary ones (docs/demo.md) */
    r->port = port;
    r->nsmw = (nschools * 11 + 61) / 62;
    r->ndistricts = (nschools * 26 + 61) / 62;
    int all = nschools + r->nvo;
    r->schools = calloc((size_t)all, sizeof *r->schools);
    r->orgs = calloc((size_t)(all + r->nsmw + r->ndistricts + 8), sizeof *r->orgs);
    if (!r->schools || !r->orgs) return -1;
    demo_rng_t g = demo_rng(seed, 1, 0);
    char id[64], b[32];
    for (int i = 0; i < all; i++) {
        demo_school_t *s = &r->schools[i];
        s->secondary = i >= nschools;
        for (int again = 1; again;) { /* BRIN: 2 digits, 2 letters; vestiging 00 */
            snprintf(s->brinvest, sizeof s->brinvest, "%02u%c%c00", demo_below(&g, 100),
                     'A' + demo_below(&g, 26), 'A' + demo_below(&g, 26));
            again = 0;
            for (int j = 0; j < i; j++) again |= !strcmp(r->schools[j].brinvest, s->brinvest);
        }
        s->district = i < r->ndistricts ? i : (int)demo_below(&g, (unsigned)r->ndistricts);
        s->smw = i % r->nsmw;
        char low[7];
        for (int k = 0; k < 7; k++)
            low[k] = (char)(s->brinvest[k] >= 'A' && s->brinvest[k] <= 'Z' ? s->brinvest[k] - 'A' + 'a'
                                                                           : s->brinvest[k]);
        snprintf(id, sizeof id, "school-%s", low);
        s->org = r->norgs;
        add_org(r, id, DEMO_SCHOOL, DEMO_IN_SPOOL);
    }
    for (int i = 0; i < r->nsmw; i++) add_org(r, demo_smw_id(i, b), DEMO_SMW, DEMO_IN_SPOOL);
    for (int d = 0; d < r->ndistricts; d++) {
        snprintf(id, sizeof id, "wijkteam-%s", demo_district_code(d, b));
        add_org(r, id, DEMO_WIJKTEAM, DEMO_IN_HTTP);
        r->orgs[r->norgs - 1].district = d;
    }
    r->ggd = r->norgs;
    add_org(r, "ggd-jgz", DEMO_GGD, DEMO_IN_STDIN);
    add_org(r, "ppo-region", DEMO_PPO, DEMO_IN_SPOOL);
    add_org(r, "veiligthuis-region", DEMO_VT, DEMO_IN_SPOOL);
    add_org(r, "gemeente-region", DEMO_GEMEENTE, DEMO_IN_SPOOL);
    add_org(r, "leerplicht-stad", DEMO_LEERPLICHT, DEMO_IN_SPOOL);
    /* the children: every elfproef-valid BSN of the test range, shuffled
     * by the seed, spread over the schools; born so that they are of
     * primary school age (born 2014 to 2018) or, at a secondary school,
     * of 12 to 19 in 2026 (born 2007 to 2013) */
    r->nchildren = 0;
    for (unsigned v = 999990000u; v <= 999999999u && r->nchildren < DEMO_CHILDREN_MAX; v++) {
        char *bsn = r->children[r->nchildren].bsn; /* nine digits: the adapter's own check */
        for (unsigned x = v, k = 9; k-- > 0; x /= 10) bsn[k] = (char)('0' + x % 10);
        bsn[9] = 0;
        if (schakel_bsn_valid(bsn)) r->nchildren++;
    }
    demo_rng_t c = demo_rng(seed, 2, 0);
    for (int i = r->nchildren - 1; i > 0; i--) {
        int j = (int)demo_below(&c, (unsigned)i + 1);
        demo_child_t t = r->children[i];
        r->children[i] = r->children[j];
        r->children[j] = t;
    }
    for (int i = 0; i < r->nchildren; i++) {
        demo_child_t *ch = &r->children[i];
        ch->school = i % all;
        int vo = r->schools[ch->school].secondary;
        struct tm tm = {.tm_year = vo ? 107 + (int)demo_below(&c, 7) : 114 + (int)demo_below(&c, 5),
                        .tm_mon = (int)demo_below(&c, 12),
                        .tm_mday = 1 + (int)demo_below(&c, 28)};
        if (strftime(ch->birth, sizeof ch->birth, "%Y-%m-%d", &tm) == 0) ch->birth[0] = 0;
    }
    return 0;
}

void demo_region_free(demo_region_t *r)
{
    for (int i = 0; r->orgs && i < r->norgs; i++) {
        for (int f = 0; f < DEMO_FILES; f++) free(r->orgs[i].buf[f]);
    }
    free(r->schools);
    free(r->orgs);
    r->schools = NULL;
    r->orgs = NULL;
}

static const char *kind_name(demo_kind_t k)
{
    static const char *n[] = {"school", "smw",         "wijkteam", "ggd",
                              "ppo",    "veiligthuis", "gemeente", "leerplicht"};
    return n[k];
}

void demo_region_print(const demo_region_t *r, FILE *out)
{
    char d[16];
    fprintf(out, "region seed=%llu schools=%d secondary_schools=%d smw_orgs=%d wijkteams=%d children=%d\n",
            (unsigned long long)r->seed, r->nschools, r->nvo, r->nsmw, r->ndistricts, r->nchildren);
    for (int i = 0; i < r->nschools + r->nvo; i++)
        fprintf(out, "school %s org=%s %s district=%s smw=smw-org%02d wijkteam=wijkteam-%s\n",
                r->schools[i].brinvest, r->orgs[r->schools[i].org].id, r->schools[i].secondary ? "vo" : "po",
                demo_district_code(r->schools[i].district, d), r->schools[i].smw + 1, d);
}

/* One organisation's directory entry, its key made (or kept) in keys. */
static json_t *org_entry(const char *keys, const char *id, const char *kind, const char *publish,
                         const char *rights, const char *escalation, char *why)
{
    char path[SCHAKEL_PATH_MAX], sign[2 * SCHAKEL_ED25519_PUB_LEN + 1];
    schakel_keys_t k;
    if (schakel_path_fmt(path, sizeof path, why, "%s/%s.key", keys, id)) return NULL;
    if (schakel_keys_load(&k, path, why) != 0) {
        why[0] = 0;
        if (schakel_keys_generate(&k, id) != 0 || schakel_keys_save(&k, keys) != 0) {
            snprintf(why, SCHAKEL_ERRLEN, "cannot make the key of %s", id);
            return NULL;
        }
    }
    schakel_hex_encode(k.sign_public, sizeof k.sign_public, sign);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "kind", kind, "name",
                          "synthetic (schakel demo)", "curve_public", k.curve_public, "sign_public", sign,
                          "publish", tool_words(publish), "rights", tool_words(rights));
    if (escalation) json_object_set_new(o, "escalation", json_string(escalation));
    schakel_keys_wipe(&k);
    return o;
}

static const char *publish_of(demo_kind_t k)
{
    switch (k) {
    case DEMO_SCHOOL: return SCHOOL;
    case DEMO_GGD: return CARE " absence mazl_advice";
    case DEMO_SMW:
    case DEMO_WIJKTEAM: return CARE;
    case DEMO_PPO: return PPO_PUBLISH;
    case DEMO_VT: return VEILIGTHUIS_PUBLISH;
    case DEMO_GEMEENTE: return GEMEENTE_PUBLISH;
    case DEMO_LEERPLICHT: return LEERPLICHT_PUBLISH;
    }
    return "";
}

static json_t *directory(demo_region_t *r, const char *keys, char *why)
{
    static const char *svc[][3] = {{"admin-region", "directory_update", "directory"},
                                   {"svc-routing", "routing_decision", "read_all"},
                                   {"svc-consent", "consent_decision", "read_all decide"},
                                   {"svc-feedback", "loop_reminder feedback_status", "read_all"},
                                   {"svc-audit", "audit_access", "read_all"},
                                   {"demo-clock", "clock_tick", "clock"}};
    json_t *list = json_array(), *schools = json_array(), *districts = json_array(), *dl = json_array();
    for (int i = 0; i < r->norgs; i++) {
        demo_kind_t k = r->orgs[i].kind;
        int esc = k != DEMO_SCHOOL && k != DEMO_GEMEENTE && k != DEMO_LEERPLICHT;
        json_t *o = org_entry(keys, r->orgs[i].id, kind_name(k), publish_of(k), "",
                              esc ? "gemeente-region" : NULL, why);
        if (!o) goto fail;
        json_array_append_new(list, o);
    }
    for (size_t i = 0; i < sizeof svc / sizeof svc[0]; i++) {
        json_t *o = org_entry(keys, svc[i][0], i == 0 ? "admin" : "service", svc[i][1], svc[i][2], NULL, why);
        if (!o) goto fail;
        json_array_append_new(list, o);
    }
    char b[32], c[16], w[64];
    for (int i = 0; i < r->nschools + r->nvo; i++) {
        demo_school_t *s = &r->schools[i];
        snprintf(w, sizeof w, "wijkteam-%s", demo_district_code(s->district, c));
        json_array_append_new(schools,
                              json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}}", "brinvest",
                                        s->brinvest, "org", r->orgs[s->org].id, "district", c, "team", "smw",
                                        demo_smw_id(s->smw, b), "ggd", "ggd-jgz", "ppo", "ppo-region",
                                        "wijkteam", w, "gemeente", "gemeente-region"));
    }
    for (int d = 0; d < r->ndistricts; d++) {
        snprintf(w, sizeof w, "wijkteam-%s", demo_district_code(d, c));
        json_array_append_new(districts, json_pack("{s:s, s:s}", "code", c, "wijkteam", w));
        json_array_append_new(dl, json_string(c));
    }
    json_t *doc =
        json_pack("{s:i, s:o, s:o, s:o, s:[{s:s, s:s, s:o}], s:{s:s}}", "version", 1, "organisations", list,
                  "schools", schools, "districts", districts, "municipalities", "code", "stad", "leerplicht",
                  "leerplicht-stad", "districts", dl, "region", "veiligthuis", "veiligthuis-region");
    json_object_set_new(doc, "holidays", json_loads(schakel_decree_days_default(), 0, NULL));
    return doc;
fail:
    json_decref(list);
    json_decref(schools);
    json_decref(districts);
    json_decref(dl);
    return NULL;
}

/* The sample profiles name the sample region's districts and teams; the
 * demo adds its own to every map that translates a district name. */
static void profile_districts(demo_region_t *r, json_t *v)
{
    const char *key;
    json_t *x;
    size_t i;
    if (json_is_array(v))
        json_array_foreach(v, i, x) profile_districts(r, x);
    if (!json_is_object(v)) return;
    json_t *map = json_object_get(v, "map");
    const char *noord = json_string_value(json_object_get(map, "Noord"));
    if (!noord) noord = json_string_value(json_object_get(map, "noord"));
    const char *named = json_string_value(json_object_get(map, "Wijkteam Noord"));
    if (named && !strcmp(named, "wijkteam-noord")) { /* a redirect to a wijkteam, by its name */
        char name[16], code[16], to[64], id[64];
        for (int d = 0; d < r->ndistricts; d++) {
            snprintf(to, sizeof to, "Wijkteam %s", demo_district_name(d, name) + 5);
            snprintf(id, sizeof id, "wijkteam-%s", demo_district_code(d, code));
            json_object_set_new(map, to, json_string(id));
        }
    }
    /* the sample's school social work names one organisation as the one
     * that bridges; the demo's systems name their own in a column */
    json_t *by = json_object_get(v, "bridging_care.by_org");
    if (by && json_object_get(by, "const"))
        json_object_set_new(v, "bridging_care.by_org", json_pack("{s:s}", "column", "overbrugd_door"));
    if (noord && (!strcmp(noord, "noord") || !strcmp(noord, "wijkteam-noord"))) {
        char name[16], code[16], team[64];
        for (int d = 0; d < r->ndistricts; d++) {
            snprintf(team, sizeof team, "wijkteam-%s", demo_district_code(d, code));
            json_object_set_new(map, demo_district_name(d, name), json_string(noord[0] == 'n' ? code : team));
        }
    }
    json_object_foreach(v, key, x) profile_districts(r, x);
}

/* The municipality's youth care registration has no sample profile: the
 * demo's own, for its decisions on specialised care (docs/demo.md). */
static const char gemeente_profile[] =
    "{\"version\": 1, \"kind\": \"gemeente\", \"source_system\": \"demo-jeugdhulpregistratie\","
    " \"csv\": {\"delimiter\": \";\"}, \"record_id\": [\"beschikkingnummer\", \"regel\"],"
    " \"defaults\": {\"subject\": {\"bsn\": \"bsn\"}, \"case_ref\": {\"column\": \"beschikkingnummer\"},"
    " \"age_band\": {\"age_from\": \"geboortedatum\", \"date\": \"dd-mm-yyyy\"},"
    " \"occurred_at\": {\"column\": \"datum\", \"date\": \"dd-mm-yyyy\"},"
    " \"purpose\": {\"const\": \"support\"}, \"legal_basis\": {\"const\": \"consent\"}},"
    " \"rows\": [{\"when\": {\"soort\": \"beschikking\"}, \"type\": \"beschikking\", \"fields\": {"
    " \"categories\": {\"const\": [\"care_status\"]},"
    " \"correlation_id\": {\"column\": \"verwijzing_id\", \"optional\": true},"
    " \"beschikking.beschikking_id\": {\"id\": [\"beschikkingnummer\"]},"
    " \"beschikking.decision\": {\"column\": \"besluit\", \"map\": {\"toegekend\": \"granted\","
    " \"afgewezen\": \"rejected\", \"in behandeling\": \"pending\"}},"
    " \"beschikking.care_form_code\": {\"column\": \"zorgvorm\", \"optional\": true},"
    " \"beschikking.decided_on\": {\"column\": \"datum\", \"date\": \"dd-mm-yyyy\"},"
    " \"beschikking.valid_from\": {\"column\": \"geldig_van\", \"date\": \"dd-mm-yyyy\", \"optional\": true},"
    " \"beschikking.valid_until\": {\"column\": \"geldig_tot\", \"date\": \"dd-mm-yyyy\", \"optional\": true}"
    "}}]}";

/* The leerplicht office's administration has no sample profile either:
 * what it registers of the schools' reports and thuiszitters. */
static const char leerplicht_profile[] =
    "{\"version\": 1, \"kind\": \"leerplicht\", \"source_system\": \"demo-leerplichtadministratie\","
    " \"csv\": {\"delimiter\": \";\"}, \"record_id\": [\"registratienummer\", \"regel\"],"
    " \"defaults\": {\"subject\": {\"bsn\": \"bsn\"}, \"case_ref\": {\"column\": \"registratienummer\"},"
    " \"age_band\": {\"age_from\": \"geboortedatum\", \"date\": \"dd-mm-yyyy\"},"
    " \"occurred_at\": {\"column\": \"datum\", \"date\": \"dd-mm-yyyy\"},"
    " \"purpose\": {\"const\": \"absence\"}, \"legal_basis\": {\"const\": \"leerplicht\"},"
    " \"categories\": {\"const\": [\"attendance\"]}},"
    " \"rows\": [{\"when\": {\"soort\": \"verzuimmelding\"}, \"type\": \"absence\", \"fields\": {"
    " \"absence.kind\": {\"column\": \"verzuimsoort\"}, \"absence.hours\": {\"column\": \"uren\", "
    "\"optional\": true},"
    " \"absence.period_from\": {\"column\": \"periode_van\", \"date\": \"dd-mm-yyyy\"},"
    " \"absence.period_to\": {\"column\": \"periode_tot\", \"date\": \"dd-mm-yyyy\"},"
    " \"absence.municipality\": {\"const\": \"stad\"}}},"
    " {\"when\": {\"soort\": \"thuiszitter\"}, \"type\": \"thuiszitter_status\", \"fields\": {"
    " \"thuiszitter_status.state\": {\"const\": \"ongoing\"},"
    " \"thuiszitter_status.reason\": {\"column\": \"reden\", \"optional\": true},"
    " \"thuiszitter_status.since\": {\"column\": \"thuis_sinds\", \"date\": \"dd-mm-yyyy\"},"
    " \"thuiszitter_status.municipality\": {\"const\": \"stad\"}}}]}";

static int write_profiles(demo_region_t *r, const char *from, char *why)
{
    static const char *kinds[] = {"school", "smw", "wijkteam", "ggd", "ppo", "veiligthuis"};
    char src[SCHAKEL_PATH_MAX], dst[SCHAKEL_PATH_MAX];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (schakel_path_fmt(src, sizeof src, why, "%s/%s/profile.json", from, kinds[i]) ||
            schakel_path_fmt(dst, sizeof dst, why, "%s/profiles/%s.json", r->dir, kinds[i]))
            return -1;
        json_error_t err;
        json_t *p = json_load_file(src, JSON_REJECT_DUPLICATES, &err);
        if (!p) {
            snprintf(why, SCHAKEL_ERRLEN,
                     "%.100s: %.60s (give --profiles DIR: adapters/profiles of the source)", src, err.text);
            return -1;
        }
        profile_districts(r, p);
        int rc = tool_write_json(dst, p);
        json_decref(p);
        if (rc) return snprintf(why, SCHAKEL_ERRLEN, "cannot write %.200s", dst), -1;
    }
    json_error_t err;
    json_t *g = json_loads(gemeente_profile, JSON_REJECT_DUPLICATES, &err);
    int rc = !g || schakel_path_fmt(dst, sizeof dst, why, "%s/profiles/gemeente.json", r->dir) ||
             tool_write_json(dst, g);
    json_decref(g);
    if (rc) return snprintf(why, SCHAKEL_ERRLEN, "cannot write the municipality's profile"), -1;
    g = json_loads(leerplicht_profile, JSON_REJECT_DUPLICATES, &err);
    rc = !g || schakel_path_fmt(dst, sizeof dst, why, "%s/profiles/leerplicht.json", r->dir) ||
         tool_write_json(dst, g);
    json_decref(g);
    if (rc) return snprintf(why, SCHAKEL_ERRLEN, "cannot write the leerplicht office's profile"), -1;
    return 0;
}

static int write_adapter(demo_region_t *r, demo_org_t *o, char *why)
{
    char path[SCHAKEL_PATH_MAX], prof[80];
    static const char *pk[] = {"school", "smw",         "wijkteam", "ggd",
                               "ppo",    "veiligthuis", "gemeente", "leerplicht"};
    if (schakel_path_fmt(path, sizeof path, why, "%s/orgs/%s/inbox", r->dir, o->id) ||
        tool_mkdir_p(path) != 0)
        return -1;
    snprintf(prof, sizeof prof, "../../profiles/%s.json", pk[o->kind]);
    json_t *c =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "org", o->id, "node", "../../node", "region_key",
                  "../../node/keys/region.key", "profile", prof, "state", "state", "inbox", "dir", "inbox");
    if (o->input == DEMO_IN_SPOOL) json_object_set_new(c, "spool", json_string("spool"));
    if (o->input == DEMO_IN_HTTP) {
        char h[32];
        snprintf(h, sizeof h, "127.0.0.1:%d", o->http_port);
        json_object_set_new(c, "http", json_string(h));
    }
    int rc = schakel_path_fmt(path, sizeof path, why, "%s/orgs/%s/adapter.json", r->dir, o->id);
    if (rc == 0) rc = tool_write_json(path, c);
    json_decref(c);
    return rc ? -1 : 0;
}

int demo_region_write(demo_region_t *r, const char *profiles)
{
    char keys[SCHAKEL_PATH_MAX], path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    int rc = -1;
    if (schakel_path_fmt(r->node, sizeof r->node, why, "%s/node", r->dir) ||
        schakel_path_fmt(keys, sizeof keys, why, "%s/keys", r->node) ||
        schakel_path_fmt(path, sizeof path, why, "%s/profiles", r->dir))
        goto out;
    if (tool_mkdir_p(keys) != 0 || tool_mkdir_p(path) != 0) {
        snprintf(why, sizeof why, "cannot create %.200s: %s", keys, strerror(errno));
        goto out;
    }
    if (schakel_path_fmt(path, sizeof path, why, "%s/node.json", r->node)) goto out;
    if (access(path, F_OK) != 0) { /* first run: the region is made once */
        if (write_profiles(r, profiles, why) != 0) goto out;
        for (int i = 0; i < r->norgs; i++)
            if (write_adapter(r, &r->orgs[i], why) != 0) goto out;
        schakel_keys_t k;
        if (schakel_keys_generate(&k, "broker") != 0 || schakel_keys_save(&k, keys) != 0) {
            snprintf(why, sizeof why, "cannot make the broker's key");
            goto out;
        }
        schakel_keys_wipe(&k);
        json_t *d = directory(r, keys, why);
        if (!d || schakel_path_fmt(path, sizeof path, why, "%s/directory.json", r->node) ||
            tool_write_json(path, d) != 0) {
            json_decref(d);
            goto out;
        }
        json_decref(d);
        char ep[3][48];
        snprintf(ep[0], sizeof ep[0], "tcp://127.0.0.1:%d", r->port);
        snprintf(ep[1], sizeof ep[1], "tcp://127.0.0.1:%d", r->port + 1);
        snprintf(ep[2], sizeof ep[2], "127.0.0.1:%d", r->port + 2);
        json_t *n = json_pack("{s:s, s:s, s:s, s:s, s:s}", "endpoint", ep[0], "pub", ep[1], "http", ep[2],
                              "keys", "keys", "directory", "directory.json");
        rc = schakel_path_fmt(path, sizeof path, why, "%s/node.json", r->node);
        if (rc == 0) rc = tool_write_json(path, n);
        json_decref(n);
        if (rc) goto out;
        rc = -1;
    }
    if (schakel_path_fmt(path, sizeof path, why, "%s/region.key", keys) ||
        schakel_secret_file(path, r->region_key, sizeof r->region_key, 1, NULL, why) != 0)
        goto out;
    for (int i = 0; i < r->nchildren; i++)
        if (schakel_bsn_pseudonym(r->region_key, r->children[i].bsn, r->children[i].pseudonym) != 0) goto out;
    rc = 0;
out:
    if (rc) fprintf(stderr, "schakel demo: cannot set up %.200s: %s\n", r->dir, why[0] ? why : "see above");
    return rc;
}
