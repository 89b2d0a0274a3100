/* Layer 1, a utility: SHA-1 (FIPS 180-4), for the WebSocket handshake's
 * Sec-WebSocket-Accept (RFC 6455 section 4.2.2) and nothing else. SHA-1 is
 * broken for collision resistance; the handshake uses it only to show that
 * the server read the client's key, which it still does. OpenSSL is not
 * linked, so this small implementation stands in for it. No global state:
 * each digest lives in its caller's ymo_sha1_t. */
#ifndef YMO_SHA1_H
#define YMO_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define YMO_SHA1_DIGEST_SIZE 20

typedef struct ymo_sha1 {
  uint32_t h[5];
  uint64_t bytes;    /* Message length so far. */
  uint8_t block[64]; /* A partial block, block_len bytes of it. */
  size_t block_len;
} ymo_sha1_t;

void ymo__sha1_init(ymo_sha1_t *c);
void ymo__sha1_update(ymo_sha1_t *c, const void *data, size_t len);
/* Writes the digest; c must be initialised again before reuse. */
void ymo__sha1_final(ymo_sha1_t *c, uint8_t out[YMO_SHA1_DIGEST_SIZE]);
/* The digest of one buffer. */
void ymo__sha1(const void *data, size_t len,
               uint8_t out[YMO_SHA1_DIGEST_SIZE]);

#endif /* YMO_SHA1_H */
