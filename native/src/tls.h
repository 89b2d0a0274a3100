/* Layer 5, a transport: TLS with OpenSSL (tls.c), under the same protocols
 * as plain TCP. This header is what the server (layer 6) needs to configure
 * it before L starts; no OpenSSL type shows here, so no other file needs
 * OpenSSL's headers. */
#ifndef YMO_TLS_H
#define YMO_TLS_H

#include "conn.h"

/* A server's TLS configuration: one OpenSSL context per site (a server
 * name, or the default), chosen by the client's SNI. Made and filled on the
 * thread that configures the server, before L starts; read-only afterwards
 * (OpenSSL locks what it changes inside a context: its session cache and
 * ticket keys). Owned by the server, which frees it after L is joined. */
typedef struct ymo_tls ymo_tls_t;

/* The transport. Its per-server state (conns->transport_ctx) is the
 * ymo_tls_t; its per-connection state (session->transport_state) is its
 * own. */
extern const ymo_transport_t ymo__tls;

/* Adds a certificate (PEM, its chain after it) and its private key (PEM,
 * encrypted or not) to the site for server_name (NULL or "": the default
 * site; "*.example.com" matches one label), making *tls and the site when
 * they do not exist yet. A site may hold several certificates of different
 * key types (RSA and ECDSA, say). Returns 0, YMO_ETLSCERT, YMO_ETLSKEY,
 * YMO_ETLSPASS, YMO_ETLSMISMATCH, YMO_EINVAL (a bad server name), YMO_ETLS
 * or YMO_ENOMEM; on failure OpenSSL's own words go into detail (cap bytes,
 * NUL terminated). */
int ymo__tls_add_cert(ymo_tls_t **tls, const uint8_t *cert, size_t cert_len,
                      const uint8_t *key, size_t key_len,
                      const char *passphrase, const char *server_name,
                      char *detail, size_t cap);

/* Adds CA certificates (PEM) to the store of server_name's site, which
 * must exist: OpenSSL completes the chain it sends from them when a
 * certificate came without its intermediates. Returns 0, YMO_ETLSCA,
 * YMO_EINVAL (no such site) or YMO_ENOMEM, with detail as above. */
int ymo__tls_add_ca(ymo_tls_t *tls, const uint8_t *ca, size_t ca_len,
                    const char *server_name, char *detail, size_t cap);

/* Gives `to` the session ticket keys of `from` (the loops of one server,
 * ymo_server_add_shard), so a client resumes on whichever loop its next
 * connection is dealt to. Returns 0 or YMO_ETLS. */
int ymo__tls_share_tickets(const ymo_tls_t *from, ymo_tls_t *to);

void ymo__tls_free(ymo_tls_t *tls);

#endif /* YMO_TLS_H */
