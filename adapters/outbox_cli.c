/* The dead-letter commands. They open the outbox beside a running adapter
 * (LMDB lets two processes share it): `requeue` only moves letters back to
 * the pending events, and the adapter's forwarder, which looks at them
 * several times a second, sends them; one that is not running sends them at
 * its next start. Output is JSON lines on standard output, for scripts;
 * what a line says is an event id, a type, a time and the broker's reason
 * (scrubbed of values when it was stored), never the event's content. */
#include "outbox_cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "json.h"
#include "outbox.h"

typedef struct {
    char event_id[33]; /* "" when the event does not open or decode */
    char type[40];
} letter_id_t;

/* The event id and type of a dead letter's event. */
static void identify(const uint8_t *event, size_t len, letter_id_t *out)
{
    memset(out, 0, sizeof *out);
    schakel_envelope_t *e = event ? schakel_envelope_decode(event, len, NULL) : NULL;
    if (!e) return;
    if (e->event_id.len == 16) schakel_hex_encode(e->event_id.data, 16, out->event_id);
    const char *t = schakel_event_type_name((int)e->type);
    snprintf(out->type, sizeof out->type, "%s", t ? t : "");
    schakel_envelope_free(e);
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

static void print_json(json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (t) puts(t);
    free(t);
    json_decref(o);
}

/* ---- dead-letters ---- */

static int list_one(void *arg, const schakel_outbox_dead_t *d, const uint8_t *event, size_t len)
{
    size_t *count = arg;
    letter_id_t id;
    identify(event, len, &id);
    char at[32] = "";
    if (d->refused_ms) schakel_time_format(d->refused_ms, at);
    json_t *o = json_object();
    json_object_set_new(o, "event_id", str_or_null(id.event_id));
    json_object_set_new(o, "type", str_or_null(id.type));
    json_object_set_new(o, "refused_at", str_or_null(at));
    json_object_set_new(o, "reason", json_string(d->reason));
    if (!event) json_object_set_new(o, "unreadable", json_true());
    print_json(o);
    (*count)++;
    return 0;
}

/* ---- requeue ---- */

typedef struct {
    const char *only; /* --id, or NULL for --all */
    uint64_t *ns;
    letter_id_t *ids;
    size_t n, cap;
    size_t unreadable;
} pick_t;

static int pick_one(void *arg, const schakel_outbox_dead_t *d, const uint8_t *event, size_t len)
{
    pick_t *p = arg;
    letter_id_t id;
    identify(event, len, &id);
    if (!event) {
        p->unreadable++;
        return 0;
    }
    if (p->only && strcmp(p->only, id.event_id) != 0) return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        uint64_t *ns = realloc(p->ns, cap * sizeof *ns);
        if (ns) p->ns = ns;
        letter_id_t *ids = ns ? realloc(p->ids, cap * sizeof *ids) : NULL;
        if (ids) p->ids = ids;
        if (!ns || !ids) return SCHAKEL_ENOMEM;
        p->cap = cap;
    }
    p->ns[p->n] = d->n;
    p->ids[p->n++] = id;
    return 0;
}

static int requeue(schakel_outbox_t *o, const char *only, int all)
{
    pick_t p = {only, NULL, NULL, 0, 0, 0};
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_outbox_dead_letters(o, pick_one, &p);
    if (rc == 0 && p.n) rc = schakel_outbox_requeue(o, p.ns, p.n, schakel_wall_ms(), why);
    int status = 0;
    if (rc) {
        fprintf(stderr, "schakel adapter requeue: %s\n", why[0] ? why : schakel_strerror(rc));
        status = 1;
    } else if (only && !p.n) {
        fprintf(stderr,
                "schakel adapter requeue: %s is not a dead letter of this adapter (see schakel "
                "adapter dead-letters)\n",
                only);
        status = 1;
    } else {
        for (size_t i = 0; i < p.n; i++) {
            json_t *j = json_object();
            json_object_set_new(j, "event_id", json_string(p.ids[i].event_id));
            json_object_set_new(j, "type", str_or_null(p.ids[i].type));
            json_object_set_new(j, "status", json_string("requeued"));
            print_json(j);
        }
        fprintf(stderr,
                "schakel adapter requeue: %zu dead letter%s back in the outbox: the running adapter "
                "sends %s (a stopped one at its next start)\n",
                p.n, p.n == 1 ? "" : "s", p.n == 1 ? "it" : "them");
    }
    if (all && p.unreadable)
        fprintf(stderr,
                "schakel adapter requeue: %zu dead letter%s do not open with this outbox's key and "
                "stay\n",
                p.unreadable, p.unreadable == 1 ? "" : "s");
    free(p.ns);
    free(p.ids);
    return status;
}

int schakel_outbox_cli(const char *cmd, const char *state, const char *only, int all)
{
    int list = !strcmp(cmd, "dead-letters");
    uint8_t raw[16];
    if (!list &&
        (!!all + !!only != 1 || (only && (strlen(only) != 32 || schakel_hex_decode(only, raw, 16) != 0)))) {
        fprintf(stderr,
                "schakel adapter requeue: give --id EVENT_ID (32 hex characters, from schakel adapter "
                "dead-letters) or --all\n");
        return 2;
    }
    char norm[33];
    if (only) { /* ids are printed in lower case */
        schakel_hex_encode(raw, 16, norm);
        only = norm;
    }
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_join(path, sizeof path, state, "data.mdb", why) != 0) {
        fprintf(stderr, "schakel adapter %s: %s\n", cmd, why);
        return 2;
    }
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "schakel adapter %s: no outbox in %s: has the adapter run with this configuration?\n",
                cmd, state);
        return 1;
    }
    /* with its key (dead letters are sealed), so not read_only */
    schakel_outbox_t *o = schakel_outbox_open(state, 0, why);
    if (!o) {
        fprintf(stderr, "schakel adapter %s: %s\n", cmd, why);
        return 1;
    }
    int status = 0;
    if (list) {
        size_t count = 0;
        int rc = schakel_outbox_dead_letters(o, list_one, &count);
        if (rc) {
            fprintf(stderr, "schakel adapter dead-letters: %s\n", schakel_strerror(rc));
            status = 1;
        } else {
            fprintf(stderr, "schakel adapter dead-letters: %zu\n", count);
        }
    } else {
        status = requeue(o, only, all);
    }
    fflush(stdout);
    schakel_outbox_close(&o);
    return status;
}
