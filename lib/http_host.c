/* The Host (and Origin) check of the local HTTP endpoints: http_host.h. */
#include "http_host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int name_ok(const char *bound, const char *name, size_t len)
{
    char n[64];
    struct in_addr in, b;
    if (!len || len >= sizeof n || inet_pton(AF_INET, bound, &b) != 1) return 0;
    memcpy(n, name, len);
    n[len] = 0;
    uint32_t addr = ntohl(b.s_addr);
    if (!strcmp(n, bound)) return 1;
    if ((addr >> 24) == 127 && (!strcasecmp(n, "localhost") || !strcmp(n, "127.0.0.1"))) return 1;
    if (addr == 0 && (inet_pton(AF_INET, n, &in) == 1 || !strcasecmp(n, "localhost"))) return 1;
    return 0;
}

int schakel_http_host_ok(const char *bound, int port, const char *hp, size_t len)
{
    if (!hp) return 0;
    const char *colon = memchr(hp, ':', len);
    size_t nlen = colon ? (size_t)(colon - hp) : len;
    long p = 80;
    if (colon) {
        char digits[8];
        size_t plen = len - nlen - 1;
        char *end;
        if (!plen || plen >= sizeof digits) return 0;
        memcpy(digits, colon + 1, plen);
        digits[plen] = 0;
        p = strtol(digits, &end, 10);
        if (*end || digits[0] < '0' || digits[0] > '9') return 0;
    }
    return p == port && name_ok(bound, hp, nlen);
}
