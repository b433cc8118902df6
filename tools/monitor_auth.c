/* Who may read the monitor's pages: with --http-token FILE, only a
 * request that shows that token (Authorization: Bearer TOKEN, or Basic
 * with TOKEN as the password, which a browser asks for and then sends
 * with every request of the page, its event stream included); /healthz
 * stays open. The token is kept only as its SHA-256, and a presented one
 * is hashed and compared in constant time. Without a token the monitor
 * binds loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "monitor.h"

#define TOKEN_MIN 32  /* characters, as the adapter's http_token: not found by trying */
#define TOKEN_MAX 512 /* fits a request header comfortably */

char *mon_token_read(const char *path, char *why)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        schakel_fail(why, SCHAKEL_EIO, "--http-token %s cannot be read: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = malloc(TOKEN_MAX + 2);
    ssize_t n = -1;
    int rc = 0;
    if (!text) rc = schakel_fail(why, SCHAKEL_ENOMEM, "out of memory");
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = schakel_fail(why, SCHAKEL_EINVAL, "--http-token %s: not a regular file", path);
    else if (st.st_mode & 077)
        rc =
            schakel_fail(why, SCHAKEL_EINVAL,
                         "--http-token %s: mode %04o lets other users read the token: make it readable by "
                         "this user only (chmod 600 %s) and, as it may have been read, put a new token in it",
                         path, (unsigned)(st.st_mode & 07777), path);
    else if (st.st_uid != geteuid())
        rc = schakel_fail(why, SCHAKEL_EINVAL,
                          "--http-token %s: belongs to another user (uid %u): it must belong to the user "
                          "this runs as",
                          path, (unsigned)st.st_uid);
    else if ((n = read(fd, text, TOKEN_MAX + 1)) < 0)
        rc = schakel_fail(why, SCHAKEL_EIO, "--http-token %s: %s", path, strerror(errno));
    (void)close(fd); /* read only */
    size_t len = n > 0 ? (size_t)n : 0;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) len--;
    int bad = 0;
    for (size_t i = 0; i < len; i++) bad |= text[i] <= ' ' || text[i] > '~';
    if (rc == 0 && (len < TOKEN_MIN || len > TOKEN_MAX || bad))
        rc = schakel_fail(why, SCHAKEL_EINVAL,
                          "--http-token %s: the file must hold one token of %d to %d printable characters "
                          "without spaces (e.g. (umask 077; openssl rand -hex 32 > %s))",
                          path, TOKEN_MIN, TOKEN_MAX, path);
    if (rc == 0) {
        text[len] = 0;
        return text;
    }
    if (text) sodium_memzero(text, TOKEN_MAX + 2);
    free(text);
    return NULL;
}

int mon_token_load(const char *path, uint8_t hash[SCHAKEL_SHA256_LEN], char *why)
{
    char *token = mon_token_read(path, why);
    if (!token) return SCHAKEL_EINVAL;
    size_t len = strlen(token);
    schakel_sha256(token, len, hash);
    sodium_memzero(token, len);
    free(token);
    return 0;
}

int mon_is_loopback(const char *host)
{
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* The token a request shows: "Bearer TOKEN", or "Basic base64(USER:TOKEN)"
 * (any user). Its SHA-256 into hash; 0, or -1 when it shows none. */
static int presented(const char *auth, uint8_t hash[SCHAKEL_SHA256_LEN])
{
    if (schakel_bearer_sha256(auth, hash) == 0) return 0; /* no other digest matches a wrong one */
    if (!auth || strncasecmp(auth, "Basic ", 6) != 0) return -1;
    const char *b64 = auth + 6;
    while (*b64 == ' ') b64++;
    char plain[TOKEN_MAX + 256];
    size_t n = 0;
    if (sodium_base642bin((unsigned char *)plain, sizeof plain - 1, b64, strlen(b64), " ", &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    char *colon = memchr(plain, ':', n);
    int rc = -1;
    if (colon && plain + n - colon - 1 > 0) {
        schakel_sha256(colon + 1, (size_t)(plain + n - colon - 1), hash);
        rc = 0;
    }
    sodium_memzero(plain, sizeof plain);
    return rc;
}

int mon_authorized(const mon_t *m, struct MHD_Connection *c)
{
    if (!m->have_token) return 1;
    uint8_t hash[SCHAKEL_SHA256_LEN];
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (presented(auth, hash) != 0) return 0;
    return schakel_memeq_ct(hash, m->token_hash, sizeof hash) == 0;
}

int mon_http_guard(const char *cmd, const char *listen, const char *host, const char *token_path,
                   uint8_t hash[SCHAKEL_SHA256_LEN], int *have_token)
{
    char why[SCHAKEL_ERRLEN];
    *have_token = 0;
    if (token_path) {
        if (mon_token_load(token_path, hash, why) != 0) {
            fprintf(stderr, "schakel %s: %s\n", cmd, why);
            return 2;
        }
        *have_token = 1;
        return 0;
    }
    if (mon_is_loopback(host)) return 0;
    fprintf(stderr,
            "schakel %s: --http %s is not a loopback address: anyone who reaches it would read the "
            "dashboard and /metrics. Give --http-token FILE (a file with one long random token, e.g. "
            "(umask 077; openssl rand -hex 32 > FILE); clients send Authorization: Bearer TOKEN), "
            "or bind 127.0.0.1\n",
            cmd, listen);
    return 2;
}
