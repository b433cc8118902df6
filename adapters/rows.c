/* Mapping rows into the outbox, the first step of the data path: every
 * input (spool, standard input, HTTP) collects the rows of one file,
 * line or request in a batch_t, maps each by the profile (mapping*.c: BSN
 * to pseudonym, the row to a signed-for event), and puts the mapped
 * events in the outbox in one durable transaction (outbox.c) before it
 * acknowledges anything; then it wakes the forwarder. A row that does not
 * map is a reject with its row number and reason, never its values. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>

#include "adapter_impl.h"

void adapter_batch_reject(batch_t *b, size_t number, const char *reason)
{
    json_array_append_new(b->rejects, json_pack("{s:I, s:s}", "row", (json_int_t)number, "reason", reason));
    if (b->n_bad == b->cap_bad) {
        size_t cap = b->cap_bad ? b->cap_bad * 2 : 16;
        size_t *nb = realloc(b->bad_rows, cap * sizeof *nb);
        if (!nb) return;
        b->bad_rows = nb;
        b->cap_bad = cap;
    }
    b->bad_rows[b->n_bad++] = number;
}

int adapter_map_row(void *arg, const schakel_row_t *row, size_t number)
{
    batch_t *b = arg;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        schakel_outbox_item_t *ni = realloc(b->items, cap * sizeof *ni);
        if (ni) b->items = ni;
        uint8_t(*nd)[16] = realloc(b->ids, cap * sizeof *nd);
        if (nd) b->ids = nd;
        size_t *nn = realloc(b->numbers, cap * sizeof *nn);
        if (nn) b->numbers = nn;
        if (!ni || !nd || !nn) return SCHAKEL_ENOMEM;
        b->cap = cap;
    }
    uint8_t *buf;
    size_t len;
    char why[SCHAKEL_ERRLEN] = "";
    pthread_mutex_lock(&b->a->map_lock);
    int mrc = schakel_profile_map(b->a->profile, b->a->conn.as_org, b->a->region_key, row, &buf, &len,
                                  b->ids[b->n], why);
    pthread_mutex_unlock(&b->a->map_lock);
    if (mrc != 0) {
        adapter_batch_reject(b, number, why);
        return 0;
    }
    b->items[b->n] = (schakel_outbox_item_t){buf, len, b->ids[b->n], 0};
    b->numbers[b->n] = number;
    b->n++;
    return 0;
}

void adapter_batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) free((void *)b->items[i].event);
    free(b->items);
    free(b->ids);
    free(b->numbers);
    free(b->bad_rows);
    json_decref(b->rejects);
}

/* Puts the mapped events; a record that came back changed is a reject. */
int adapter_batch_commit(batch_t *b, char *why)
{
    for (size_t i = 0; i < b->n; i++) b->items[i].id = b->ids[i]; /* realloc may have moved them */
    int rc = b->n ? schakel_outbox_put(b->a->outbox, b->items, b->n, why) : 0;
    if (rc) return rc;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].queued < 0)
            adapter_batch_reject(b, b->numbers[i],
                                 "this record was sent before with other content: the bus keeps "
                                 "the first; send a correction as a new record");
    if (b->n) adapter_wake_forwarder(b->a);
    return 0;
}
