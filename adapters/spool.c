/* The file inputs: the spool directory (CSV or JSON files an
 * organisation's system drops there, taken once they have settled, moved
 * to spool/done/ after their events are in the outbox, their bad rows to
 * spool/rejected/ with a reason each), and standard input (JSON lines,
 * one acknowledgement line each). The spool runs in the main thread,
 * standard input in its own. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_impl.h"
#include "fileio.h"

/* The elements of a JSON list as JSON lines (malloc'd; NULL if none). */
static char *json_lines(json_t *list, size_t *len)
{
    char *out = NULL;
    size_t i;
    json_t *x;
    *len = 0;
    json_array_foreach(list, i, x) {
        char *t = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        size_t tl = t ? strlen(t) : 0;
        char *nl = t ? realloc(out, *len + tl + 2) : NULL;
        if (nl) {
            out = nl;
            memcpy(out + *len, t, tl);
            out[*len + tl] = '\n';
            *len += tl + 1;
            out[*len] = 0;
        }
        free(t);
    }
    return out;
}

/* A name in dir that does not exist yet: name, or name.1, name.2, ...
 * (it fits: the configuration left SPOOL_ROOM after the spool's path). */
static int free_name(const char *dir, const char *name, char *out, size_t cap, char *why)
{
    int rc = schakel_path_join(out, cap, dir, name, why);
    for (int i = 1; rc == 0 && access(out, F_OK) == 0 && i < 10000; i++)
        rc = schakel_path_fmt(out, cap, why, "%s/%s.%d", dir, name, i);
    return rc;
}

static int is_bad_row(const batch_t *b, size_t number)
{
    for (size_t i = 0; i < b->n_bad; i++)
        if (b->bad_rows[i] == number) return 1;
    return 0;
}

/* The text of the given rows: for CSV the header and the rows' records
 * (a row's number is the line it starts on; a quoted cell with a line end
 * keeps its lines together), for JSON lines the lines themselves, for a
 * JSON list the elements as JSON lines. */
static char *bad_lines(const adapter_t *a, const char *text, size_t len, const batch_t *b, int csv,
                       size_t *out_len)
{
    char *out = malloc(len + 2);
    size_t o = 0;
    if (!out) return NULL;
    size_t first = 0;
    while (first < len && strchr(" \t\r\n", text[first]) && text[first]) first++;
    if (csv) {
        int header = 0;
        for (size_t at = 0, line = 1; at < len;) {
            size_t number = line;
            size_t end = schakel_csv_record_end(a->profile, text, len, at, &line);
            if (end <= at) break;
            int blank = 1;
            for (size_t i = at; i < end && blank; i++) blank = strchr(" \t\r\n", text[i]) && text[i];
            if (len >= 3 && at == 0 && !memcmp(text, "\xef\xbb\xbf", 3)) blank = 0;
            if (!blank && (!header || is_bad_row(b, number))) {
                memcpy(out + o, text + at, end - at);
                o += end - at;
                if (out[o - 1] != '\n') out[o++] = '\n';
            }
            header |= !blank;
            at = end;
        }
    } else if (first < len && text[first] == '[') {
        json_error_t err;
        json_t *list = json_loadb(text, len, 0, &err);
        json_t *bad = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x)
            if (is_bad_row(b, i + 1)) json_array_append(bad, x);
        size_t l = 0;
        char *t = json_lines(bad, &l);
        if (t && l <= len) memcpy(out, t, o = l);
        free(t);
        json_decref(bad);
        json_decref(list);
    } else {
        size_t row = 0;
        for (size_t at = 0, start = 0; at <= len; at++) {
            if (at < len && text[at] != '\n') continue;
            row++;
            size_t end = at < len ? at + 1 : at;
            if (end > start && is_bad_row(b, row)) {
                memcpy(out + o, text + start, end - start);
                o += end - start;
            }
            start = end;
        }
    }
    *out_len = o;
    return out;
}

/* How the log names a spool file: never by its name (an export named
 * after a child, or a name with a line break, must not reach the log) but
 * by 12 hex digits of a hash of the name keyed with the region key, so
 * that the same name gives the same reference and a reader of the log
 * cannot try names against it. The rejected file's reasons carry it too. */
static void file_ref(const adapter_t *a, const char *name, char out[13])
{
    uint8_t mac[SCHAKEL_SHA256_LEN];
    char msg[SCHAKEL_PATH_MAX + 32], hex[2 * SCHAKEL_SHA256_LEN + 1];
    int n = snprintf(msg, sizeof msg, "schakel/v1/spool-file:%s", name);
    if (n < 0 || (size_t)n >= sizeof msg ||
        schakel_hmac_sha256(a->region_key, sizeof a->region_key, msg, (size_t)n, mac) != 0) {
        snprintf(out, 13, "unknown");
        return;
    }
    schakel_hex_encode(mac, 6, hex);
    memcpy(out, hex, 13);
}

static void process_file(adapter_t *a, const char *name)
{
    char ref[13];
    file_ref(a, name, ref);
    char path[SCHAKEL_PATH_MAX], done_dir[SCHAKEL_PATH_MAX], rej_dir[SCHAKEL_PATH_MAX],
        dest[SCHAKEL_PATH_MAX];
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_path_join(path, sizeof path, a->spool, name, why) ||
        schakel_path_join(done_dir, sizeof done_dir, a->spool, "done", why) ||
        schakel_path_join(rej_dir, sizeof rej_dir, a->spool, "rejected", why)) {
        schakel_log(SCHAKEL_LOG_ERROR, "adapter",
                    "event=file_skipped file_ref=%s reason=\"the spool path and the name are too long\"",
                    ref);
        return;
    }
    size_t len = strlen(name);
    int csv = len > 4 && !strcasecmp(name + len - 4, ".csv");
    int jsonl = (len > 6 && !strcasecmp(name + len - 6, ".jsonl")) ||
                (len > 5 && !strcasecmp(name + len - 5, ".json"));
    batch_t b = {.a = a};
    b.rejects = json_array();
    size_t size = 0;
    char *text = csv || jsonl ? schakel_file_read(path, FILE_MAX, &size) : NULL;
    int rc;
    if (!csv && !jsonl) {
        rc = schakel_fail(why, SCHAKEL_EINVAL, "not a .csv or .jsonl file");
    } else if (!text) {
        rc = schakel_fail(why, SCHAKEL_EIO, "cannot read: %s", strerror(errno));
    } else {
        rc = csv ? schakel_rows_csv(a->profile, text, size, adapter_map_row, &b, why)
                 : schakel_rows_jsonl(text, size, adapter_map_row, &b, why);
    }
    if (rc == 0) rc = adapter_batch_commit(&b, why);
    if (rc == SCHAKEL_ESTORE || rc == SCHAKEL_EFULL || rc == SCHAKEL_ENOMEM) {
        /* nothing acknowledged: the file stays and is tried again */
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=file_retry file_ref=%s reason=\"%s\"", ref, why);
        schakel_outbox_error(a->outbox, why, schakel_wall_ms());
        adapter_batch_free(&b);
        free(text);
        return;
    }
    if (rc) { /* the whole file is unreadable: it goes to rejected/ as it is */
        adapter_batch_reject(&b, 0, why);
        b.n_bad = 0;
    }
    size_t queued = 0, known = 0;
    for (size_t i = 0; i < b.n; i++) queued += b.items[i].queued > 0, known += b.items[i].queued == 0;
    if (json_array_size(b.rejects)) {
        char reasons[SCHAKEL_PATH_MAX], where[SCHAKEL_ERRLEN] = "";
        int named = free_name(rej_dir, name, dest, sizeof dest, where) == 0 &&
                    schakel_path_fmt(reasons, sizeof reasons, where, "%s.reasons.jsonl", dest) == 0;
        size_t n;
        json_t *r;
        json_array_foreach(b.rejects, n, r) {
            json_object_set_new(r, "file", json_string(name));
            json_object_set_new(r, "file_ref", json_string(ref));
        }
        size_t llen = 0;
        char *lines = json_lines(b.rejects, &llen);
        /* the bad rows themselves, ready to be fixed and dropped back in */
        size_t blen = 0;
        char *bad = rc == 0 ? bad_lines(a, text, size, &b, csv, &blen) : NULL;
        int wrote =
            named && schakel_file_write_atomic(reasons, lines ? lines : "", llen) == 0 &&
            (rc ? rename(path, dest) == 0 : schakel_file_write_atomic(dest, bad ? bad : "", blen) == 0);
        free(lines);
        free(bad);
        if (!wrote)
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=reject_not_written file_ref=%s reason=\"%s\"",
                        ref, named ? strerror(errno) : "no free name under rejected/");
    }
    if (rc == 0) {
        char where[SCHAKEL_ERRLEN] = "";
        int named = free_name(done_dir, name, dest, sizeof dest, where) == 0;
        if (!named || rename(path, dest) != 0)
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=not_moved file_ref=%s reason=\"%s\"", ref,
                        named ? strerror(errno) : "no free name under done/");
    }
    schakel_log(rc ? SCHAKEL_LOG_WARN : SCHAKEL_LOG_INFO, "adapter",
                "event=file_done file_ref=%s queued=%zu known=%zu rejected=%zu%s%s%s", ref, queued, known,
                json_array_size(b.rejects), rc ? " reason=\"" : "", rc ? why : "", rc ? "\"" : "");
    adapter_batch_free(&b);
    free(text);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Handles every settled file in the spool, oldest name first. Returns how
 * many files the spool holds (handled, or still being written). */
size_t adapter_scan_spool(adapter_t *a)
{
    size_t seen = 0;
    DIR *d = opendir(a->spool);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int64_t now = schakel_wall_ms();
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t l = strlen(e->d_name);
        char path[SCHAKEL_PATH_MAX];
        struct stat st;
        if (schakel_path_join(path, sizeof path, a->spool, e->d_name, NULL) != 0)
            continue; /* cannot be: SPOOL_ROOM */
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        seen++;
        if ((l > 4 && !strcmp(e->d_name + l - 4, ".tmp")) || (l > 5 && !strcmp(e->d_name + l - 5, ".part")))
            continue; /* still being written */
        int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        if (now - mtime < SETTLE_MS) continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (names[i] && !atomic_load(&a->stop)) process_file(a, names[i]);
        free(names[i]);
    }
    free(names);
    return seen;
}

/* Standard input: JSON lines, one acknowledgement line each. */
void *adapter_stdin_main(void *arg)
{
    adapter_t *a = arg;
    char *line = NULL;
    size_t cap = 0, number = 0;
    ssize_t got;
    while (!atomic_load(&a->stop) && (got = getline(&line, &cap, stdin)) >= 0) {
        number++;
        batch_t b = {.a = a};
        b.rejects = json_array();
        char why[SCHAKEL_ERRLEN] = "";
        int rc = schakel_rows_jsonl_at(line, (size_t)got, number, 0, adapter_map_row, &b, why);
        if (rc == SCHAKEL_EINVAL) adapter_batch_reject(&b, number, why);
        else if (rc == 0) rc = adapter_batch_commit(&b, why);
        char idhex[33] = "";
        if (b.n) schakel_hex_encode(b.ids[0], 16, idhex);
        json_t *ack = json_pack("{s:I}", "line", (json_int_t)number);
        if (json_array_size(b.rejects)) {
            json_object_set_new(ack, "status", json_string("rejected"));
            json_object_set(ack, "reason", json_object_get(json_array_get(b.rejects, 0), "reason"));
        } else if (rc) {
            json_object_set_new(ack, "status", json_string("error"));
            json_object_set_new(ack, "reason", json_string(why));
        } else if (b.n) {
            json_object_set_new(ack, "event_id", json_string(idhex));
            json_object_set_new(ack, "status", json_string(b.items[0].queued > 0 ? "queued" : "known"));
        }
        if (json_object_size(ack) > 1) {
            char *t = json_dumps(ack, JSON_COMPACT);
            printf("%s\n", t);
            fflush(stdout);
            free(t);
        }
        json_decref(ack);
        adapter_batch_free(&b);
    }
    free(line);
    atomic_store(&a->stdin_done, 1);
    return NULL;
}
