/* The demo's inputs and inboxes: each organisation's rows reach its
 * adapter the way a real system's would (docs/adapters.md, "The three
 * inputs"): schools and school social work drop CSV exports in the spool
 * (written under .tmp and renamed), the wijkteams' case system posts JSON
 * to the adapter's HTTP endpoint with its token, the GGD's JGZ system
 * writes JSON lines to the adapter's standard input. The inboxes are read
 * and emptied as a receiving system would. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"

static const char zorg_header[] =
    "registratienummer;leerlingnummer;bsn;geboortedatum;groep;brin_vestiging;wijk;soort;datum;tijd;categorie;"
    "urgentie;gemeld_door;terugkoppeling;naar;vraag;toestemming_guid;verwijzing_id;afsluitreden;contact_"
    "blijft;"
    "medewerker_id;functie;omschrijving\n";
static const char consent_header[] =
    "registratienummer;leerlingnummer;bsn;geboortedatum;groep;brin_vestiging;wijk;soort;datum;toestemming_"
    "guid;"
    "naar;doel;categorie;gegeven_door;gezag;geldig_tot;medewerker_id;functie;notitie\n";
static const char smw_header[] =
    "dossiernummer;volgnummer;bsn;geboortedatum;school_brin;wijk;aanmelddatum;"
    "verwijzing_id;status;statusdatum;uitkomst;doorverwezen_naar;afsluitreden;"
    "contact_blijft;behandelaar_id;aanbieder_code;wachtlijststatus;verwachte_start;"
    "overbruggingsdoel;overbrugd_door;einddatum;toestemming_id;"
    "toestemming_door;gezag;naar;categorie;geinformeerd_over;hoe\n";
static const char meldcode_header[] = "registratienummer;leerlingnummer;bsn;geboortedatum;groep;brin_"
                                      "vestiging;wijk;soort;datum;tijd;stap;besluit;"
                                      "vt_geraadpleegd;categorie;taxatie;ouders_geinformeerd;reden_niet_"
                                      "geinformeerd;medewerker_id;functie;notitie\n";
static const char absence_header[] =
    "registratienummer;leerlingnummer;bsn;geboortedatum;groep;brin_vestiging;wijk;soort;datum;tijd;"
    "verzuimsoort;"
    "uren;periode_van;periode_tot;melding_leerplicht;thuiszitter_status;reden;thuis_sinds;terug_op;notitie\n";
static const char ppo_header[] =
    "aanvraagnummer;regel;bsn;geboortedatum;brinvest;soort;datum;verwijzing_id;uitkomst;arrangementnummer;"
    "arrangement;financiering;startdatum;einddatum;tlv_nummer;tlv_soort;besluit;geldig_van;geldig_tot;"
    "thuiszitter_status;reden;thuis_sinds;terug_op;afsluitreden;contact_blijft;contactpersoon_id;"
    "toelichting;geinformeerd_over;hoe\n";
static const char gemeente_header[] = "beschikkingnummer;regel;bsn;geboortedatum;soort;datum;verwijzing_id;"
                                      "besluit;zorgvorm;geldig_van;geldig_tot\n";
static const char leerplicht_header[] =
    "registratienummer;regel;bsn;geboortedatum;soort;datum;verzuimsoort;uren;periode_van;periode_tot;reden;"
    "thuis_sinds\n";
static const char vt_header[] =
    "meldingnummer;regel;melding_id;bsn;geboortedatum;soort;datum;tijd;melder_type;"
    "uitkomst;afsluitreden;contact_blijft;vervolgcontact_team;medewerker;notitie\n";

static void clear(demo_org_t *o, int f)
{
    o->len[f] = 0;
    o->rows[f] = 0;
    if (o->buf[f]) o->buf[f][0] = 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* An export file dropped the safe way: written as .tmp, then renamed. */
static int spool_drop(demo_region_t *r, demo_org_t *o, int f, uint64_t no)
{
    char dir[SCHAKEL_PATH_MAX], tmp[SCHAKEL_PATH_MAX], path[SCHAKEL_PATH_MAX];
    static const char *const school_headers[] = {zorg_header, consent_header, meldcode_header,
                                                 absence_header};
    static const char *const school_names[] = {"lvs-zorgregistraties", "lvs-toestemmingen", "lvs-meldcode",
                                               "lvs-verzuim"};
    const char *header = o->kind == DEMO_SMW          ? smw_header
                         : o->kind == DEMO_PPO        ? ppo_header
                         : o->kind == DEMO_VT         ? vt_header
                         : o->kind == DEMO_GEMEENTE   ? gemeente_header
                         : o->kind == DEMO_LEERPLICHT ? leerplicht_header
                                                      : school_headers[f];
    const char *name = o->kind == DEMO_SMW          ? "smw-dossierstatus"
                       : o->kind == DEMO_PPO        ? "ondersteuningsregister"
                       : o->kind == DEMO_VT         ? "vt-meldingen"
                       : o->kind == DEMO_GEMEENTE   ? "jeugdhulp-beschikkingen"
                       : o->kind == DEMO_LEERPLICHT ? "leerplicht-registratie"
                                                    : school_names[f];
    if (schakel_path_fmt(dir, sizeof dir, NULL, "%s/orgs/%s/spool", r->dir, o->id) ||
        schakel_path_fmt(path, sizeof path, NULL, "%s/%010llu-%c-%s.csv", dir, (unsigned long long)no,
                         "bacd"[f], name) ||
        schakel_path_fmt(tmp, sizeof tmp, NULL, "%s.tmp", path))
        return -1;
    (void)mkdir(dir, 0700); /* the adapter makes it too; either may be first */
    FILE *fp = fopen(tmp, "w");
    if (!fp) return -1;
    int bad = fputs(header, fp) < 0 || fwrite(o->buf[f], 1, o->len[f], fp) != o->len[f];
    if (fclose(fp) != 0 || bad || rename(tmp, path) != 0) {
        (void)unlink(tmp); /* tried again at the next flush */
        return -1;
    }
    clear(o, f);
    return 0;
}

typedef struct {
    char *p;
    size_t n;
} answer_t;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    answer_t *a = arg;
    if (a->n < (1u << 22)) { /* more is not an answer we need to read */
        char *q = realloc(a->p, a->n + size * n + 1);
        if (!q) return 0;
        memcpy(q + a->n, p, size * n);
        a->n += size * n;
        q[a->n] = 0;
        a->p = q;
    }
    return size * n;
}

static int read_token(demo_region_t *r, demo_org_t *o)
{
    if (o->token[0]) return 0;
    char path[SCHAKEL_PATH_MAX];
    if (schakel_path_fmt(path, sizeof path, NULL, "%s/orgs/%s/state/http.token", r->dir, o->id)) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1; /* the adapter has not made it yet */
    int ok = fgets(o->token, sizeof o->token, f) != NULL;
    (void)fclose(f); /* read only */
    o->token[strcspn(o->token, "\r\n")] = 0;
    return ok && o->token[0] ? 0 : -1;
}

/* POST /events with the token; the rows stay for the next flush when the
 * adapter does not answer 200. */
static int http_post(demo_region_t *r, demo_org_t *o, uint64_t *rejected)
{
    if (read_token(r, o) != 0) return -1;
    CURL *cu = curl_easy_init();
    if (!cu) return -1;
    char url[64], auth[4300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", o->http_port);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
    size_t n = o->len[0] + 2;
    char *body = malloc(n + 1);
    answer_t answer = {0};
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    long status = 0;
    if (body && h) {
        snprintf(body, n + 1, "[%s]", o->buf[0]);
        curl_easy_setopt(cu, CURLOPT_URL, url);
        curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)n);
        curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(cu, CURLOPT_WRITEDATA, &answer);
        curl_easy_setopt(cu, CURLOPT_TIMEOUT, 30L);
        if (curl_easy_perform(cu) == CURLE_OK) curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    }
    if (status == 200) {
        for (const char *p = answer.p; p && (p = strstr(p, "\"rejected\"")); p++) (*rejected)++;
        clear(o, 0);
    }
    curl_slist_free_all(h);
    free(answer.p);
    free(body);
    curl_easy_cleanup(cu);
    return status == 200 ? 0 : -1;
}

int demo_feed_flush(demo_region_t *r, uint64_t *flush_no, uint64_t *rejected)
{
    int failed = 0;
    uint64_t no = ++*flush_no;
    for (int i = 0; i < r->norgs; i++) {
        demo_org_t *o = &r->orgs[i];
        static const int order[] = {DEMO_F_CONSENT, DEMO_F_CARE, DEMO_F_MELDCODE, DEMO_F_ABSENCE};
        for (int n = 0; n < DEMO_FILES; n++) { /* consents before the referrals that need them */
            int f = order[n];
            if (!o->len[f]) continue;
            if (o->input == DEMO_IN_SPOOL) failed |= spool_drop(r, o, f, no) != 0;
            if (o->input == DEMO_IN_HTTP) failed |= http_post(r, o, rejected) != 0;
            if (o->input == DEMO_IN_STDIN && o->stdin_fd >= 0) {
                failed |= write_all(o->stdin_fd, o->buf[f], o->len[f]) != 0;
                clear(o, f);
            }
        }
    }
    return failed ? -1 : 0;
}

/* What starts a receiver's steps: a referral to a care organisation or
 * the samenwerkingsverband, a signal that asks for follow-up, a report to
 * Veilig Thuis, an intake redirected to the receiver (the referral's id). */
static void read_record(demo_region_t *r, demo_sim_t *s, int o, const char *path)
{
    json_error_t err;
    json_t *rec = json_load_file(path, 0, &err);
    json_t *ev = json_object_get(rec, "event");
    const char *type = json_string_value(json_object_get(ev, "type")) ?: "";
    const char *sub = json_string_value(json_object_get(ev, "subject"));
    const char *rid = NULL;
    demo_kind_t k = r->orgs[o].kind;
    if (!strcmp(type, "referral") && k != DEMO_VT)
        rid = json_string_value(json_object_get(json_object_get(ev, "referral"), "referral_id"));
    json_t *in = json_object_get(ev, "intake");
    if (!strcmp(type, "intake") && k != DEMO_VT &&
        !strcmp(json_string_value(json_object_get(in, "outcome")) ?: "", "redirected") &&
        !strcmp(json_string_value(json_object_get(in, "redirected_to")) ?: "", r->orgs[o].id))
        rid = json_string_value(json_object_get(in, "referral_id"));
    if (!strcmp(type, "veiligthuis_report") && k == DEMO_VT)
        rid = json_string_value(json_object_get(json_object_get(ev, "veiligthuis_report"), "report_id"));
    if (!strcmp(type, "signal") && k != DEMO_VT && k != DEMO_PPO &&
        json_is_true(json_object_get(json_object_get(ev, "signal"), "follow_up_requested")))
        rid = json_string_value(json_object_get(ev, "event_id")); /* the loop of a signal: its event id */
    if (rid && sub) demo_sim_referral(s, o, rid, sub);
    json_t *ab = json_object_get(ev, "absence"), *tz = json_object_get(ev, "thuiszitter_status");
    const char *eid = json_string_value(json_object_get(ev, "event_id"));
    if (k == DEMO_LEERPLICHT && sub && !strcmp(type, "absence") &&
        json_is_true(json_object_get(ab, "leerplicht_report")))
        demo_sim_leerplicht(s, o, sub, eid, 0, json_string_value(json_object_get(ab, "kind")) ?: "other",
                            (int)json_integer_value(json_object_get(ab, "hours")),
                            json_string_value(json_object_get(ab, "period_from")) ?: "",
                            json_string_value(json_object_get(ab, "period_to")) ?: "");
    if (k == DEMO_LEERPLICHT && sub && !strcmp(type, "thuiszitter_status") &&
        !strcmp(json_string_value(json_object_get(tz, "state")) ?: "", "started"))
        demo_sim_leerplicht(s, o, sub, eid, 1, json_string_value(json_object_get(tz, "reason")) ?: "", 0,
                            json_string_value(json_object_get(tz, "since")) ?: "", "");
    json_decref(rec);
}

int demo_feed_inboxes(demo_region_t *r, demo_sim_t *s, uint64_t *received)
{
    char dir[SCHAKEL_PATH_MAX], path[SCHAKEL_PATH_MAX];
    for (int i = 0; i < r->norgs; i++) {
        demo_org_t *o = &r->orgs[i];
        if (schakel_path_fmt(dir, sizeof dir, NULL, "%s/orgs/%s/inbox", r->dir, o->id)) continue;
        DIR *d = opendir(dir);
        if (!d) continue; /* not made yet */
        struct dirent *e;
        int receiver = o->kind == DEMO_SMW || o->kind == DEMO_WIJKTEAM || o->kind == DEMO_GGD ||
                       o->kind == DEMO_PPO || o->kind == DEMO_VT || o->kind == DEMO_LEERPLICHT;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json")) continue;
            if (schakel_path_fmt(path, sizeof path, NULL, "%s/%s", dir, e->d_name)) continue;
            if (receiver) read_record(r, s, i, path);
            if (unlink(path) == 0) (*received)++;
        }
        (void)closedir(d); /* read only */
    }
    return 0;
}
