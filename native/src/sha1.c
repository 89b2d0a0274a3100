/* Layer 1: SHA-1 as FIPS 180-4 section 6.1 describes it, one 64-byte block
 * at a time (see sha1.h for why it is here). */
#include "sha1.h"

#include <string.h>

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Folds one 64-byte block into the state (FIPS 180-4 section 6.1.2). */
static void compress_block(uint32_t h[5], const uint8_t *block) {
  uint32_t w[80];
  for (int t = 0; t < 16; t++) w[t] = load_be32(block + 4 * t);
  for (int t = 16; t < 80; t++)
    w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    uint32_t tmp = rol(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = tmp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void ymo__sha1_init(ymo_sha1_t *c) {
  c->h[0] = 0x67452301;
  c->h[1] = 0xefcdab89;
  c->h[2] = 0x98badcfe;
  c->h[3] = 0x10325476;
  c->h[4] = 0xc3d2e1f0;
  c->bytes = 0;
  c->block_len = 0;
}

void ymo__sha1_update(ymo_sha1_t *c, const void *data, size_t len) {
  const uint8_t *p = data;
  c->bytes += len;
  if (c->block_len > 0) {
    size_t n = 64 - c->block_len;
    if (n > len) n = len;
    memcpy(c->block + c->block_len, p, n);
    c->block_len += n;
    p += n;
    len -= n;
    if (c->block_len < 64) return;
    compress_block(c->h, c->block);
    c->block_len = 0;
  }
  for (; len >= 64; p += 64, len -= 64) compress_block(c->h, p);
  memcpy(c->block, p, len);
  c->block_len = len;
}

void ymo__sha1_final(ymo_sha1_t *c, uint8_t out[YMO_SHA1_DIGEST_SIZE]) {
  /* Padding: a 1 bit, zeros up to 56 bytes into a block, then the length in
   * bits as a big-endian 64-bit number (FIPS 180-4 section 5.1.1). */
  uint64_t bits = c->bytes * 8;
  c->block[c->block_len++] = 0x80;
  if (c->block_len > 56) {
    memset(c->block + c->block_len, 0, 64 - c->block_len);
    compress_block(c->h, c->block);
    c->block_len = 0;
  }
  memset(c->block + c->block_len, 0, 56 - c->block_len);
  store_be32(c->block + 56, (uint32_t)(bits >> 32));
  store_be32(c->block + 60, (uint32_t)bits);
  compress_block(c->h, c->block);
  for (int i = 0; i < 5; i++) store_be32(out + 4 * i, c->h[i]);
}

void ymo__sha1(const void *data, size_t len,
               uint8_t out[YMO_SHA1_DIGEST_SIZE]) {
  ymo_sha1_t c;
  ymo__sha1_init(&c);
  ymo__sha1_update(&c, data, len);
  ymo__sha1_final(&c, out);
}
