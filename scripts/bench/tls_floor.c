/* The system OpenSSL's own CPU time per new TLS connection on the server
 * side, with no sockets and no server around it: full TLS 1.3 handshakes
 * through in-memory BIO pairs, configured as native/src/tls.c configures
 * its contexts (TLS 1.2-1.3, X25519 then P-256, one session ticket), each
 * carrying one small request and response, then a close_notify and
 * SSL_free. Only the server's calls are timed (CLOCK_THREAD_CPUTIME_ID), so
 * the client's work does not count. No server built on this library can
 * spend less per handshake; the handshake-tls workload compares servers'
 * totals, which add the kernel's TCP work and the HTTP exchange.
 *
 *   gcc -O2 -o /tmp/tls_floor scripts/bench/tls_floor.c -lssl -lcrypto
 *   /tmp/tls_floor bench/tmp/tls/leaf.pem bench/tmp/tls/leaf.key [N]
 *
 * (bench/tmp/tls/ is made by the first TLS workload of scripts/bench.ts.) */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double thread_cpu_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static SSL_CTX *server_ctx(const char *cert, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set1_groups_list(ctx, "X25519:P-256");
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* One connection; the server's CPU time in microseconds, or -1. */
static double one_connection(SSL_CTX *sctx, SSL_CTX *cctx) {
  static const char request[] =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  static const char response[] =
      "HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: close\r\n\r\n"
      "Hello, World!";
  double used = 0, t0 = thread_cpu_us();
  SSL *server = SSL_new(sctx);
  used += thread_cpu_us() - t0;
  SSL *client = SSL_new(cctx);
  BIO *server_bio, *client_bio;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_accept_state(server);
  SSL_set_connect_state(client);
  char buf[4096];
  int got = 0;
  for (int flight = 0; flight < 20 && got <= 0; flight++) {
    if (SSL_do_handshake(client) == 1)
      SSL_write(client, request, sizeof(request) - 1);
    t0 = thread_cpu_us();
    got = SSL_read(server, buf, sizeof(buf));
    if (got > 0) {
      SSL_write(server, response, sizeof(response) - 1);
      SSL_shutdown(server);
    }
    used += thread_cpu_us() - t0;
  }
  t0 = thread_cpu_us();
  SSL_free(server);
  used += thread_cpu_us() - t0;
  SSL_free(client);
  return got > 0 ? used : -1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CERT.pem KEY.pem [N]\n", argv[0]);
    return 2;
  }
  int n = argc > 3 ? atoi(argv[3]) : 3000;
  SSL_CTX *sctx = server_ctx(argv[1], argv[2]);
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  if (sctx == NULL || cctx == NULL || n <= 0) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
  double total = 0;
  for (int i = -n / 10; i < n; i++) { /* The first tenth warms up. */
    double used = one_connection(sctx, cctx);
    if (used < 0) {
      fprintf(stderr, "connection %d: no request reached the server\n", i);
      ERR_print_errors_fp(stderr);
      return 1;
    }
    if (i >= 0) total += used;
  }
  printf("%s: %.1f us of server CPU per full handshake with one request "
         "(%d connections)\n",
         OpenSSL_version(OPENSSL_VERSION), total / n, n);
  return 0;
}
