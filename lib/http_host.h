/* Is a request for this HTTP endpoint? A web page that a browser loaded
 * from a DNS name it controls can point that name at 127.0.0.1 (DNS
 * rebinding) and read or post to a local endpoint as if it were its own
 * origin; its requests then carry that name in Host (and Origin). An
 * endpoint checks both against the address it is bound to. */
#ifndef SCHAKEL_HTTP_HOST_H
#define SCHAKEL_HTTP_HOST_H

#include <stddef.h>

/* Does hp ("name" or "name:port", len bytes: a Host header, or an Origin
 * after "http://") name the endpoint bound to the dotted IPv4 address
 * bound and port? The bound address itself; on loopback also "localhost"
 * and 127.0.0.1; bound to 0.0.0.0, any IPv4 address or "localhost" (an
 * address cannot be rebound like a name). No port means 80. */
int schakel_http_host_ok(const char *bound, int port, const char *hp, size_t len);

#endif
