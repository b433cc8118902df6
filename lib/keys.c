/* Key files: one per organisation, JSON, written atomically with the secret
 * file readable by its owner only. Loaded keys are checked for internal
 * consistency (public parts derive from the secret ones). */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "error.h"
#include "fileio.h"

int schakel_id_valid(const char *id)
{
    size_t n = strnlen(id, SCHAKEL_ID_MAX);
    if (n == 0 || n >= SCHAKEL_ID_MAX) return 0;
    if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9'))) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int schakel_keys_generate(schakel_keys_t *k, const char *id)
{
    memset(k, 0, sizeof *k);
    if (!schakel_id_valid(id) || strchr(id, '/')) return SCHAKEL_EINVAL;
    snprintf(k->id, sizeof k->id, "%s", id);
    if (zmq_curve_keypair(k->curve_public, k->curve_secret) != 0) return SCHAKEL_ECRYPTO;
    if (schakel_ed25519_keygen(k->sign_public, k->sign_secret) != 0) return SCHAKEL_ECRYPTO;
    k->has_secret = 1;
    return 0;
}

static char *dump(const schakel_keys_t *k, int with_secret)
{
    char sp[65], ss[65];
    schakel_hex_encode(k->sign_public, 32, sp);
    json_t *o = json_pack("{s:s, s:s, s:s}", "id", k->id, "curve_public", k->curve_public, "sign_public", sp);
    if (with_secret) {
        schakel_hex_encode(k->sign_secret, 32, ss);
        json_object_set_new(o, "curve_secret", json_string(k->curve_secret));
        json_object_set_new(o, "sign_secret", json_string(ss));
        memset(ss, 0, sizeof ss);
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

int schakel_keys_save(const schakel_keys_t *k, const char *dir)
{
    char path[SCHAKEL_PATH_MAX];
    int rc = 0;
    if (k->has_secret) {
        if ((rc = schakel_path_fmt(path, sizeof path, NULL, "%s/%s.key", dir, k->id)) != 0) return rc;
        if (access(path, F_OK) == 0) return SCHAKEL_EEXIST;
        char *s = dump(k, 1);
        if (!s) return SCHAKEL_ENOMEM;
        rc = schakel_file_write_atomic_mode(path, s, strlen(s), 0600);
        memset(s, 0, strlen(s));
        free(s);
        if (rc) return rc;
    }
    if ((rc = schakel_path_fmt(path, sizeof path, NULL, "%s/%s.pub", dir, k->id)) != 0) return rc;
    char *s = dump(k, 0);
    if (!s) return SCHAKEL_ENOMEM;
    rc = schakel_file_write_atomic_mode(path, s, strlen(s), 0644);
    free(s);
    return rc;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int schakel_keys_load(schakel_keys_t *k, const char *path, char *why)
{
    memset(k, 0, sizeof *k);
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    if (!o) {
        if (access(path, R_OK) != 0) return schakel_fail(why, SCHAKEL_EIO, "%s: %s", path, strerror(errno));
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: line %d: %s", path, err.line, err.text);
    }
    int rc = SCHAKEL_ECONFIG;
    const char *id = str(o, "id"), *cp = str(o, "curve_public"), *cs = str(o, "curve_secret");
    const char *sp = str(o, "sign_public"), *ss = str(o, "sign_secret");
    if (!id || !schakel_id_valid(id)) {
        schakel_fail(why, rc, "%s: \"id\" is missing or not a valid organisation id", path);
        goto out;
    }
    snprintf(k->id, sizeof k->id, "%s", id);
    uint8_t raw[32];
    if (!cp || strlen(cp) != SCHAKEL_Z85_KEY_LEN || !zmq_z85_decode(raw, cp)) {
        schakel_fail(why, rc, "%s: \"curve_public\" must be 40 Z85 characters", path);
        goto out;
    }
    memcpy(k->curve_public, cp, SCHAKEL_Z85_KEY_LEN + 1);
    if (!sp || schakel_hex_decode(sp, k->sign_public, 32) != 0) {
        schakel_fail(why, rc, "%s: \"sign_public\" must be 64 hex characters", path);
        goto out;
    }
    if (cs || ss) {
        char derived[SCHAKEL_Z85_KEY_LEN + 1];
        uint8_t pub[32];
        if (!cs || strlen(cs) != SCHAKEL_Z85_KEY_LEN || !zmq_z85_decode(raw, cs) ||
            zmq_curve_public(derived, cs) != 0 || strcmp(derived, cp) != 0) {
            schakel_fail(why, rc,
                         "%s: \"curve_secret\" is not 40 Z85 characters or does not "
                         "belong to curve_public",
                         path);
            goto out;
        }
        if (!ss || schakel_hex_decode(ss, k->sign_secret, 32) != 0 ||
            schakel_ed25519_public(k->sign_secret, pub) != 0 || memcmp(pub, k->sign_public, 32) != 0) {
            schakel_fail(why, rc,
                         "%s: \"sign_secret\" is not 64 hex characters or does not "
                         "belong to sign_public",
                         path);
            goto out;
        }
        memcpy(k->curve_secret, cs, SCHAKEL_Z85_KEY_LEN + 1);
        k->has_secret = 1;
    }
    rc = 0;
out:
    memset(raw, 0, sizeof raw);
    json_decref(o);
    if (rc) schakel_keys_wipe(k);
    return rc;
}

void schakel_keys_wipe(schakel_keys_t *k)
{
    memset(k->curve_secret, 0, sizeof k->curve_secret);
    memset(k->sign_secret, 0, sizeof k->sign_secret);
    __asm__ __volatile__("" : : "r"(k) : "memory");
    k->has_secret = 0;
}
