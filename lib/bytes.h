/* Big-endian integers in byte strings, in one place: LMDB keys that must
 * sort by number (sequence numbers, outbox entries) and fixed fields of
 * hashed or sealed data. Header-only. */
#ifndef SCHAKEL_BYTES_H
#define SCHAKEL_BYTES_H

#include <stdint.h>

static inline void schakel_put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static inline uint64_t schakel_get_be64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | in[i];
    return v;
}

static inline void schakel_put_be32(uint8_t out[4], uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static inline uint32_t schakel_get_be32(const uint8_t in[4])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

#endif
