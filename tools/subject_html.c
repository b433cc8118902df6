/* The report for the family (schakel audit subject --html): the child's
 * history (subject_history_json) as one printable HTML page in Dutch that
 * a professional can hand to a parent. Every code becomes a sentence (the
 * kind of information, the ground, what each organisation received);
 * there are no ids, no pseudonym and nothing about another child (the
 * history holds only this child's records). Self-contained: inline CSS,
 * no script, no link or image from elsewhere. Every text is escaped. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "calendar.h"
#include "error.h"
#include "json.h"
#include "subject.h"

typedef struct {
    const char *code, *text;
} word_t;

static const char *say(const word_t *w, const char *code, const char *otherwise)
{
    for (; code && w->code; w++)
        if (!strcmp(w->code, code)) return w->text;
    return otherwise;
}

/* What kind of information each event is (docs/events.md). */
static const word_t kinds[] = {
    {"signal", "een signaal van zorg"},
    {"consultation", "een vraag om advies"},
    {"consent_given", "een toestemming die u (of uw kind) gaf"},
    {"consent_withdrawn", "het intrekken van een toestemming"},
    {"referral", "een verwijzing (aanmelding voor hulp)"},
    {"referral_received", "dat een verwijzing is ontvangen"},
    {"intake", "een intakegesprek"},
    {"first_contact", "een eerste contact met het gezin"},
    {"case_lead", "wie de regie over de hulp heeft"},
    {"meeting", "een overleg over uw kind"},
    {"action_item", "een afspraak uit een overleg"},
    {"waiting_list", "een plaats op een wachtlijst"},
    {"bridging_care", "overbruggingshulp tijdens het wachten"},
    {"meldcode_step", "een stap van de meldcode huiselijk geweld en kindermishandeling"},
    {"veiligthuis_report", "een melding bij Veilig Thuis"},
    {"veiligthuis_feedback", "wat Veilig Thuis met een melding heeft gedaan"},
    {"beschikking", "een besluit van de gemeente over jeugdhulp (beschikking)"},
    {"tlv", "een toelaatbaarheidsverklaring voor speciaal onderwijs"},
    {"education_care_arrangement", "een onderwijs-zorgarrangement"},
    {"absence", "een melding van schoolverzuim"},
    {"thuiszitter_status", "dat uw kind thuiszit (niet naar school gaat)"},
    {"feedback_status", "hoe het staat met een verwijzing"},
    {"closure", "het afsluiten van de hulp"},
    {"family_informed", "dat het gezin is ingelicht"},
    {"handover", "een overdracht naar een andere hulpverlener"},
    {"handover_confirmed", "de bevestiging van een overdracht"},
    {"mazl_request", "een verzoek om advies over ziekteverzuim"},
    {"mazl_advice", "een advies over ziekteverzuim"},
    {"loop_reminder", "een herinnering dat een stap in de hulp te laat is"},
    {NULL, NULL},
};

/* The ground a delivery stood on (docs/routing.md, "Consent decisions"). */
static const word_t grounds[] = {
    {"consent", "met toestemming"},
    {"meldcode", "zonder toestemming, op grond van de meldcode huiselijk geweld en kindermishandeling (een "
                 "professional mag Veilig Thuis inschakelen)"},
    {"veiligthuis_feedback", "omdat Veilig Thuis de melder moet laten weten wat het met de melding deed"},
    {"leerplicht", "op grond van de Leerplichtwet (de school moet verzuim melden)"},
    {"anonymous", "zonder de naam van uw kind"},
    {"own_organisation", "binnen de eigen organisatie"},
    {"bus", "voor de administratie van het systeem"},
    {"verwijsindex",
     "op grond van de verwijsindex (Jeugdwet): twee organisaties maken zich zorgen en mogen dat "
     "van elkaar weten"},
    {NULL, NULL},
};

static const word_t purposes[] = {
    {"support", "hulp voor uw kind en het gezin"},
    {"safety", "de veiligheid van uw kind"},
    {"education_support", "extra ondersteuning op school"},
    {"absence", "leerplicht en schoolverzuim"},
    {"consultation", "advies"},
    {"feedback", "terugkoppeling aan wie verwees"},
    {"consent_admin", "het vastleggen van toestemming"},
    {"coordination", "afstemming tussen de hulpverleners"},
    {"bus", "de administratie van het systeem"},
    {NULL, NULL},
};

static const word_t categories[] = {
    {"behaviour", "gedrag"},
    {"attendance", "aanwezigheid op school"},
    {"learning", "leren"},
    {"home_situation", "de thuissituatie"},
    {"health", "gezondheid"},
    {"safety", "veiligheid"},
    {"wellbeing", "welbevinden"},
    {"care_status", "de stand van de hulp"},
    {"education_arrangement", "een onderwijsarrangement"},
    {"contact", "met wie contact op te nemen"},
    {NULL, NULL},
};

/* Why a look was taken, by command (audit_access.request_code). */
static const word_t looks[] = {
    {"explain", "bekeek wie een bericht over uw kind ontving en waarom"},
    {"audit_subject", "vroeg dit overzicht van uw kind op"},
    {"audit_export", "maakte een kopie van de gegevens van uw kind"},
    {"audit_erase", "wiste gegevens van uw kind"},
    {"subject_access", "beantwoordde een verzoek om inzage"},
    {NULL, NULL},
};

static const char *const months[] = {"januari", "februari", "maart",     "april",   "mei",      "juni",
                                     "juli",    "augustus", "september", "oktober", "november", "december"};

/* Writes s with &, <, >, " and ' escaped. */
static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* "1 maart 2027 om 10:02" (Amsterdam time) for an RFC 3339 time. */
static void when(FILE *f, const json_t *v)
{
    int64_t ms;
    const char *t = json_string_value(v);
    char date[11];
    if (!t || schakel_time_parse(t, &ms) != 0) {
        fputs("(onbekend tijdstip)", f);
        return;
    }
    schakel_date_of(ms, date);
    int32_t day = schakel_date_days(date);
    int64_t minutes = (ms - schakel_day_start_ms(day)) / 60000;
    /* schakel_date_of writes YYYY-MM-DD */
    int digits = strlen(date) == 10 && date[4] == '-' && date[7] == '-';
    for (int i = 0; digits && i < 10; i++) digits = i == 4 || i == 7 || (date[i] >= '0' && date[i] <= '9');
    int y = 0, m = 0, d = 0;
    for (int i = 0; digits && i < 10; i++)
        if (i != 4 && i != 7) {
            int *part = i < 4 ? &y : i < 7 ? &m : &d;
            *part = *part * 10 + (date[i] - '0');
        }
    if (m < 1 || m > 12) {
        esc(f, date);
        return;
    }
    fprintf(f, "%d %s %d om %02d:%02d", d, months[m - 1], y, (int)(minutes / 60), (int)(minutes % 60));
}

/* An organisation by its name in the directory, else its id. */
static void org(FILE *f, const schakel_directory_t *dir, const json_t *id)
{
    const char *s = json_string_value(id);
    const schakel_org_t *o = s && dir ? schakel_directory_by_id(dir, s) : NULL;
    esc(f, o && o->name[0] ? o->name : s ? s : "een onbekende organisatie");
}

static void list_words(FILE *f, const word_t *w, const json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (i) fputs(i + 1 == json_array_size(arr) ? " en " : ", ", f);
        esc(f, say(w, json_string_value(v), "andere gegevens"));
    }
}

static const char *get(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* One consent decision as a sentence. */
static void decision(FILE *f, const schakel_directory_t *dir, const json_t *d)
{
    const char *o = get(d, "outcome"), *b = get(d, "legal_basis"), *rule = get(d, "rule");
    fputs("<li>", f);
    org(f, dir, json_object_get(d, "recipient"));
    if (o && !strcmp(o, "deliver")) {
        fputs(" ontving dit, ", f);
        esc(f, say(grounds, b, "op een wettelijke grond"));
        fputs(".", f);
    } else if (o && !strcmp(o, "notice_only")) {
        fputs(" kreeg alleen bericht dat er zorgen zijn en met wie contact op te nemen, niet de inhoud; ", f);
        esc(f, say(grounds, b, "op een wettelijke grond"));
        fputs(".", f);
    } else if (o && !strcmp(o, "hold")) {
        fputs(" kreeg dit niet meteen: het werd vastgehouden tot er toestemming is", f);
        if (rule && !strcmp(rule, "consent/not-entitled"))
            fputs(" (de toestemming die er was, was niet gegeven door wie dat voor de leeftijd van uw kind "
                  "moet doen)",
                  f);
        fputs(".", f);
    } else if (o && !strcmp(o, "deny")) {
        fputs(" kreeg dit niet: er was geen toestemming en geen wettelijke grond.", f);
    } else if (o && !strcmp(o, "expired")) {
        fputs(" kreeg dit niet: er kwam geen toestemming binnen de termijn.", f);
    } else {
        fputs(": geen besluit dat dit overzicht kan uitleggen.", f);
    }
    if (json_is_true(json_object_get(d, "duty_to_inform"))) fputs(" U moet hierover worden ingelicht.", f);
    fputs(" <span class=\"wanneer\">(", f);
    when(f, json_object_get(d, "at"));
    fputs(")</span></li>\n", f);
}

static void event(FILE *f, const schakel_directory_t *dir, const json_t *ev)
{
    const char *type = get(ev, "type");
    fputs("<section class=\"bericht\">\n<h3>", f);
    if (!type) {
        fputs("Een bericht waarvan de inhoud is gewist</h3>\n", f);
    } else {
        when(f, json_object_get(ev, "recorded_at"));
        fputs(": ", f);
        org(f, dir, json_object_get(ev, "source_org"));
        fputs(" stuurde ", f);
        esc(f, say(kinds, type, "een bericht"));
        fputs("</h3>\n", f);
        const json_t *cats = json_object_get(ev, "categories");
        fputs("<p>", f);
        if (json_array_size(cats)) {
            fputs("Het ging over ", f);
            list_words(f, categories, cats);
            fputs(". ", f);
        }
        fputs("Met als doel: ", f);
        esc(f, say(purposes, get(ev, "purpose"), "een ander doel"));
        fputs(".</p>\n", f);
    }
    const json_t *decs = json_object_get(ev, "decisions");
    if (!json_array_size(decs)) {
        fputs("<p>Het is (nog) met niemand anders gedeeld.</p>\n", f);
    } else {
        fputs("<ul>\n", f);
        size_t i;
        json_t *d;
        json_array_foreach(decs, i, d) decision(f, dir, d);
        fputs("</ul>\n", f);
    }
    fputs("</section>\n", f);
}

static void access(FILE *f, const schakel_directory_t *dir, const json_t *a)
{
    fputs("<li>", f);
    when(f, json_object_get(a, "at"));
    fputs(": ", f);
    org(f, dir, json_object_get(a, "by"));
    fputs(" ", f);
    esc(f, say(looks, get(a, "command"), "bekeek gegevens van uw kind"));
    fputs(".", f);
    const char *p = get(a, "purpose");
    if (p && p[0]) {
        fputs(" Opgegeven reden: \xe2\x80\x9c", f);
        esc(f, p);
        fputs("\xe2\x80\x9d.", f);
    }
    fputs("</li>\n", f);
}

/* "een signaal van zorg van Basisschool De Linde" for the event at seq. */
static void what(FILE *f, const schakel_directory_t *dir, const json_t *events, const json_t *seq)
{
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        if (!json_equal(json_object_get(ev, "seq"), seq) || !get(ev, "type")) continue;
        esc(f, say(kinds, get(ev, "type"), "een bericht"));
        fputs(" van ", f);
        org(f, dir, json_object_get(ev, "source_org"));
        return;
    }
    fputs("een bericht", f);
}

/* Why a child's records were erased (docs/events.md, `erasure`). */
static const word_t bases[] = {
    {"avg17_request", "een verzoek om de gegevens te verwijderen (AVG artikel 17)"},
    {"retention", "het einde van de bewaartermijn"},
    {"age_23", "dat uw kind 23 jaar werd"},
    {"deceased", "het overlijden van uw kind"},
    {"unlawful", "dat de gegevens niet verwerkt hadden mogen worden (AVG artikel 17 lid 1 d)"},
    {NULL, NULL},
};

static void erased(FILE *f, const json_t *erasures)
{
    if (!json_array_size(erasures)) return;
    fputs("<h2>Wat er is gewist</h2>\n<ul>\n", f);
    size_t i;
    json_t *x;
    json_array_foreach(erasures, i, x) {
        fputs("<li>Op ", f);
        when(f, json_object_get(x, "at"));
        fputs(" zijn de gegevens over uw kind gewist, vanwege ", f);
        esc(f, say(bases, get(x, "basis"), "een andere reden"));
        fputs(".</li>\n", f);
    }
    fputs("</ul>\n<p class=\"uitleg\">Wat daarvoor over uw kind is gestuurd, kan niemand meer lezen, ook "
          "schakel niet; daarom staat het niet in dit overzicht. Dat het is gestuurd en gewist, blijft "
          "vastgelegd.</p>\n",
          f);
}

static const char style[] =
    "body{font-family:Georgia,'Times New Roman',serif;max-width:46em;margin:2em auto;padding:0 1em;"
    "line-height:1.45;color:#111;background:#fff}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #888;margin-top:1.8em}"
    "h3{font-size:1.05em;margin:1.2em 0 .3em}ul{padding-left:1.3em}li{margin:.25em 0}"
    ".wanneer{color:#444}.uitleg{font-size:.92em;color:#333}"
    "@media print{body{margin:0;max-width:none}section{page-break-inside:avoid}}";

static void page(FILE *f, const json_t *h, const schakel_directory_t *dir)
{
    fputs("<!DOCTYPE html>\n<html lang=\"nl\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<title>Wie deelde wat over uw kind</title>\n<style>",
          f);
    fputs(style, f);
    fputs("</style>\n</head>\n<body>\n<h1>Wie deelde wat over uw kind</h1>\n"
          "<p>Dit overzicht laat zien welke organisaties rond uw kind (school, schoolmaatschappelijk werk, "
          "GGD, wijkteam, samenwerkingsverband, Veilig Thuis, gemeente) via schakel informatie over uw kind "
          "met elkaar deelden: wie wat stuurde, wie het ontving en waarom. Het laat ook zien wie deze "
          "gegevens heeft bekeken. Het gaat over berichten, niet over dossiers: de inhoud van een dossier "
          "blijft bij de organisatie zelf.</p>\n",
          f);
    const json_t *events = json_object_get(h, "events");
    fputs("<h2>Wat er is gestuurd, en wie het kreeg</h2>\n", f);
    if (!json_array_size(events))
        fputs(json_array_size(json_object_get(h, "erasures"))
                  ? "<p>Er is niets meer te lezen van wat over uw kind is gestuurd: het is gewist "
                    "(hieronder).</p>\n"
                  : "<p>Er is niets over uw kind gestuurd.</p>\n",
              f);
    size_t i;
    json_t *x;
    json_array_foreach(events, i, x) event(f, dir, x);

    fputs("<h2>Wat (nog) niet is gedeeld</h2>\n", f);
    const json_t *held = json_object_get(h, "held"), *denied = json_object_get(h, "denied");
    if (!json_array_size(held) && !json_array_size(denied))
        fputs("<p>Er is niets tegengehouden: alles hierboven is gedeeld zoals beschreven.</p>\n", f);
    else fputs("<ul>\n", f);
    json_array_foreach(held, i, x) {
        fputs("<li>", f);
        org(f, dir, json_object_get(x, "recipient"));
        fputs(" kreeg ", f);
        what(f, dir, events, json_object_get(x, "event_seq"));
        fputs(" niet meteen: het wachtte op toestemming (sinds ", f);
        when(f, json_object_get(x, "at"));
        const char *then = get(x, "then");
        if (then && !strcmp(then, "delivered")) {
            fputs("). Het is gedeeld nadat er toestemming kwam (", f);
            when(f, json_object_get(x, "then_at"));
            fputs(").", f);
        } else if (then && !strcmp(then, "expired")) {
            fputs("). Er kwam geen toestemming op tijd; het is niet gedeeld.", f);
        } else {
            fputs("). Het wacht nog; zonder toestemming wordt het niet gedeeld.", f);
        }
        fputs("</li>\n", f);
    }
    json_array_foreach(denied, i, x) {
        fputs("<li>", f);
        org(f, dir, json_object_get(x, "recipient"));
        fputs(" kreeg ", f);
        what(f, dir, events, json_object_get(x, "event_seq"));
        fputs(" niet: er was geen toestemming en geen wettelijke grond (", f);
        when(f, json_object_get(x, "at"));
        fputs(").</li>\n", f);
    }
    if (json_array_size(held) || json_array_size(denied)) fputs("</ul>\n", f);

    erased(f, json_object_get(h, "erasures"));

    fputs("<h2>Wie deze gegevens bekeek</h2>\n", f);
    const json_t *acc = json_object_get(h, "accesses");
    if (!json_array_size(acc)) fputs("<p>Niemand heeft deze gegevens eerder bekeken.</p>\n", f);
    else fputs("<ul>\n", f);
    json_array_foreach(acc, i, x) access(f, dir, x);
    if (json_array_size(acc)) fputs("</ul>\n", f);
    fputs(
        "<p class=\"uitleg\">Elke keer dat iemand dit soort gegevens bekijkt, wordt dat vastgelegd. Ook het "
        "opvragen van dit overzicht is vastgelegd; het staat in een volgend overzicht. Hebt u "
        "vragen over dit overzicht, of wilt u iets laten verbeteren of verwijderen, vraag het dan aan de "
        "professional die het u gaf.</p>\n</body>\n</html>\n",
        f);
}

int subject_html_write(const json_t *history, const schakel_directory_t *dir, const char *path, char *why)
{
    FILE *f = fopen(path, "w");
    if (!f) return schakel_fail(why, SCHAKEL_EIO, "cannot be written (%s)", strerror(errno));
    page(f, history, dir);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return schakel_fail(why, SCHAKEL_EIO, "could not be written whole");
    return 0;
}
