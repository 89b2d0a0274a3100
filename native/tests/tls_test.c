/* The TLS transport (tls.c) end to end, with OpenSSL clients on threads of
 * this process and certificates made here at run time.
 *
 * "config": each bad input to ymo_server_add_tls_cert() gets its own code
 *   (not PEM, a key that is not the certificate's, a wrong or missing
 *   passphrase), with OpenSSL's words in ymo_server_tls_error().
 * "serve": a C thread drives the worker with the loan, as server/_worker.ts
 *   does, so both L and the driver run TLS reads and writes (ThreadSanitizer
 *   watches the hand-over); clients check TLS 1.3 and 1.2, ALPN, SNI,
 *   keep-alive, pipelining and 1 MiB both ways.
 * "crossed": a certificate chain far larger than the socket buffers and a
 *   client that does not read: the handshake's read must wait for
 *   writability, and completes once the client reads; another client is
 *   served meanwhile.
 * "stall": a client that stops mid-handshake is closed by the keep-alive
 *   idle timeout while others are served. */
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Certificates.                                                            */

typedef struct {
  char *cert, *key; /* PEM, NUL terminated. */
} pem_pair_t;

static char *bio_text(BIO *bio) {
  char *data;
  long len = BIO_get_mem_data(bio, &data);
  char *out = malloc((size_t)len + 1);
  CHECK(out != NULL);
  memcpy(out, data, (size_t)len);
  out[len] = '\0';
  BIO_free(bio);
  return out;
}

/* A self-signed P-256 certificate for cn; the key encrypted with pass when
 * pass is not NULL. */
static pem_pair_t make_cert(const char *cn, const char *pass) {
  EVP_PKEY *pkey = EVP_EC_gen("P-256");
  CHECK(pkey != NULL);
  X509 *x = X509_new();
  CHECK(x != NULL);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now_sec() * 1000) & 0xffff);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pkey);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, name);
  CHECK(X509_sign(x, pkey, EVP_sha256()) > 0);
  BIO *cb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cb, x);
  BIO *kb = BIO_new(BIO_s_mem());
  if (pass != NULL)
    PEM_write_bio_PrivateKey(kb, pkey, EVP_aes_256_cbc(), NULL, 0, NULL,
                             (void *)pass);
  else
    PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL);
  X509_free(x);
  EVP_PKEY_free(pkey);
  return (pem_pair_t){.cert = bio_text(cb), .key = bio_text(kb)};
}

static void free_pair(pem_pair_t *p) {
  free(p->cert);
  free(p->key);
}

static int add_cert(ymo_server_t *srv, const char *cert, const char *key,
                    const char *pass, const char *name) {
  return ymo_server_add_tls_cert(srv, (const uint8_t *)cert,
                                 (int32_t)strlen(cert), (const uint8_t *)key,
                                 (int32_t)strlen(key), pass, name);
}

/* ------------------------------------------------------------------------ */
/* Clients: blocking sockets with timeouts, OpenSSL on top.                 */

typedef struct {
  int fd;
  SSL *ssl;
} tclient_t;

static SSL_CTX *client_ctx(int max_version) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  CHECK(ctx != NULL);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx, max_version);
  static const unsigned char alpn[] = "\x02h2\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
  return ctx;
}

static tclient_t tls_connect_fd(SSL_CTX *ctx, int fd, const char *sni) {
  tclient_t c = {.fd = fd, .ssl = SSL_new(ctx)};
  CHECK(c.ssl != NULL);
  SSL_set_fd(c.ssl, fd);
  if (sni != NULL) SSL_set_tlsext_host_name(c.ssl, sni);
  int rc = SSL_connect(c.ssl);
  if (rc != 1) {
    ERR_print_errors_fp(stderr);
    CHECKF(false, "SSL_connect: %d", SSL_get_error(c.ssl, rc));
  }
  return c;
}

static tclient_t tls_connect(SSL_CTX *ctx, int port, const char *sni) {
  return tls_connect_fd(ctx, client_connect(port), sni);
}

static void tls_close(tclient_t *c) {
  SSL_shutdown(c->ssl);
  SSL_free(c->ssl);
  close(c->fd);
}

static void tls_send(tclient_t *c, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    int n = SSL_write(c->ssl, p, len > (1 << 30) ? (1 << 30) : (int)len);
    CHECKF(n > 0, "SSL_write: %d", SSL_get_error(c->ssl, n));
    p += n;
    len -= (size_t)n;
  }
}

/* Reads one response with a Content-Length; returns its status and puts
 * its body in body. */
static int tls_response(tclient_t *c, dbuf_t *body) {
  dbuf_t in = {0};
  uint8_t tmp[16384];
  char *end = NULL;
  while ((end = in.p ? strstr((char *)in.p, "\r\n\r\n") : NULL) == NULL) {
    int n = SSL_read(c->ssl, tmp, sizeof(tmp));
    CHECKF(n > 0, "SSL_read (head): %d", SSL_get_error(c->ssl, n));
    db_put(&in, tmp, (size_t)n);
  }
  int status = atoi((char *)in.p + 9);
  const char *cl = strcasestr((char *)in.p, "\r\ncontent-length:");
  CHECK(cl != NULL && cl < end);
  size_t len = (size_t)strtoull(cl + 17, NULL, 10);
  size_t head = (size_t)(end + 4 - (char *)in.p);
  db_clear(body);
  db_put(body, in.p + head, in.len - head);
  /* A pipelined reply's bytes may follow: these tests send the next
   * request only after reading, or read pairs in order (see below). */
  CHECKF(body->len <= len, "%zu bytes after a %zu-byte body", body->len, len);
  while (body->len < len) {
    size_t want = len - body->len;
    int n = SSL_read(c->ssl, tmp,
                     want < sizeof(tmp) ? (int)want : (int)sizeof(tmp));
    CHECKF(n > 0, "SSL_read (body): %d", SSL_get_error(c->ssl, n));
    db_put(body, tmp, (size_t)n);
  }
  db_free(&in);
  return status;
}

static void tls_get(tclient_t *c, const char *path) {
  char req[256];
  int n =
      snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  tls_send(c, req, (size_t)n);
}

/* Reads responses byte by byte so two pipelined ones are not mixed. */
static int tls_response_exact(tclient_t *c, dbuf_t *body) {
  dbuf_t head = {0};
  uint8_t ch;
  while (head.len < 4 || memcmp(head.p + head.len - 4, "\r\n\r\n", 4) != 0) {
    int n = SSL_read(c->ssl, &ch, 1);
    CHECKF(n == 1, "SSL_read: %d", SSL_get_error(c->ssl, n));
    db_put(&head, &ch, 1);
  }
  int status = atoi((char *)head.p + 9);
  const char *cl = strcasestr((char *)head.p, "\r\ncontent-length:");
  CHECK(cl != NULL);
  size_t len = (size_t)strtoull(cl + 17, NULL, 10);
  db_clear(body);
  db_reserve(body, len + 1);
  while (body->len < len) {
    int n = SSL_read(c->ssl, body->p + body->len, (int)(len - body->len));
    CHECKF(n > 0, "SSL_read: %d", SSL_get_error(c->ssl, n));
    body->len += (size_t)n;
  }
  body->p[body->len] = 0;
  db_free(&head);
  return status;
}

/* ------------------------------------------------------------------------ */
/* The driver: answers GET with the target, GET /big with 1 MiB, and POST
 * with the request's body; runs the loop while busy (the loan).            */

#define BIG (1024 * 1024)

static uint8_t *big_body;
static atomic_long owned_polls;

static long answer_batch(ymo_worker_t *w, takebuf_t *tb) {
  int32_t n = take_all(w, tb);
  long answered = 0;
  for (size_t off = 0; off < (size_t)n;) {
    rec_t r;
    off += parse_record(tb->p + off, (size_t)n - off, &r);
    if (r.flags & YMO_REQF_ABORT) {
      ymo_worker_release(w, r.id, r.gen);
      continue;
    }
    const uint8_t *body = r.url;
    size_t len = r.url_len;
    if (r.method_len == 4) {
      body = r.body;
      len = r.body_len;
    } else if (r.url_len == 4 && memcmp(r.url, "/big", 4) == 0) {
      body = big_body;
      len = BIG;
    }
    int rc = ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, body,
                                (int32_t)len, YMO_RESP_DONE);
    CHECKF(rc == 0 || rc == YMO_EPIPE, "respond: %d", rc);
    answered++;
  }
  return answered;
}

static void *driver_main(void *arg) {
  ymo_worker_t *w = arg;
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  CHECK_OK(ymo_worker_start(w));
  for (;;) {
    int n = ymo_worker_wait(w);
    if (n == YMO_ESHUTDOWN) break;
    CHECK(n >= 0);
    answer_batch(w, &tb);
    bool owned = false;
    for (int idle = 0; idle < 100;) {
      if (!owned) {
        int rc = ymo_worker_acquire_loop(w);
        if (rc < 0) break;
        owned = rc == 1;
      }
      long got = 0;
      if (owned) {
        int k = ymo_worker_poll(w);
        if (k == YMO_EAGAIN) {
          owned = false;
        } else if (k < 0) {
          break;
        } else {
          atomic_fetch_add(&owned_polls, 1);
          got = answer_batch(w, &tb);
          ymo_worker_flush(w);
        }
      }
      if (!owned) got += answer_batch(w, &tb);
      idle = got > 0 ? 0 : idle + 1;
      sched_yield();
    }
    ymo_worker_release_loop(w);
    answer_batch(w, &tb);
  }
  takebuf_free(&tb);
  free(tb.in);
  return NULL;
}

typedef struct {
  ymo_server_t *srv;
  pthread_t driver;
  int port;
} served_t;

static served_t serve_with(pem_pair_t *def, pem_pair_t *named,
                           const char *name, int64_t keepalive_ms) {
  served_t s;
  s.srv = test_server(1, &s.port);
  CHECK_OK(add_cert(s.srv, def->cert, def->key, NULL, NULL));
  if (named != NULL)
    CHECK_OK(add_cert(s.srv, named->cert, named->key, NULL, name));
  if (keepalive_ms > 0)
    CHECK_OK(ymo_server_set_option(s.srv, YMO_OPT_KEEPALIVE_TIMEOUT_MS,
                                   keepalive_ms));
  return s;
}

static void start(served_t *s) {
  CHECK_OK(ymo_server_start(s->srv));
  CHECK(pthread_create(&s->driver, NULL, driver_main,
                       ymo_server_worker(s->srv, 0)) == 0);
}

static void finish(served_t *s) {
  CHECK_OK(ymo_server_stop(s->srv));
  pthread_join(s->driver, NULL);
  ymo_server_free(s->srv);
}

/* The subject's CN of the server's certificate. */
static void peer_cn(tclient_t *c, char *buf, size_t cap) {
  X509 *x = SSL_get1_peer_certificate(c->ssl);
  CHECK(x != NULL);
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf,
                            (int)cap);
  X509_free(x);
}

/* ------------------------------------------------------------------------ */
/* config                                                                   */

static void test_config(void) {
  pem_pair_t a = make_cert("a.test", NULL), b = make_cert("b.test", NULL);
  pem_pair_t enc = make_cert("enc.test", "secret");
  int port;
  ymo_server_t *srv = test_server(1, &port);
  char detail[256];
  CHECK_EQ(add_cert(srv, "not pem", a.key, NULL, NULL), YMO_ETLSCERT);
  CHECK(ymo_server_tls_error(srv, detail, sizeof(detail)) > 0);
  CHECK_EQ(add_cert(srv, a.key, a.key, NULL, NULL), YMO_ETLSCERT);
  CHECK_EQ(add_cert(srv, a.cert, "garbage", NULL, NULL), YMO_ETLSKEY);
  CHECK_EQ(add_cert(srv, a.cert, a.cert, NULL, NULL), YMO_ETLSKEY);
  CHECK_EQ(add_cert(srv, a.cert, b.key, NULL, NULL), YMO_ETLSMISMATCH);
  CHECK(ymo_server_tls_error(srv, detail, sizeof(detail)) > 0);
  CHECK_EQ(add_cert(srv, enc.cert, enc.key, "wrong", NULL), YMO_ETLSPASS);
  CHECK_EQ(add_cert(srv, enc.cert, enc.key, NULL, NULL), YMO_ETLSPASS);
  CHECK_EQ(add_cert(srv, a.cert, a.key, NULL, "bad name!"), YMO_EINVAL);
  CHECK_EQ(ymo_server_add_tls_ca(srv, (const uint8_t *)"x", 1, "none.test"),
           YMO_EINVAL);
  CHECK_OK(add_cert(srv, enc.cert, enc.key, "secret", NULL));
  CHECK_OK(add_cert(srv, a.cert, a.key, NULL, "a.test"));
  CHECK_OK(add_cert(srv, b.cert, b.key, NULL, "*.b.test"));
  CHECK_EQ(ymo_server_add_tls_ca(srv, (const uint8_t *)"x", 1, NULL),
           YMO_ETLSCA);
  CHECK_OK(ymo_server_add_tls_ca(srv, (const uint8_t *)a.cert,
                                 (int32_t)strlen(a.cert), NULL));
  CHECK_EQ(ymo_strerror(YMO_ETLSPASS)[0] != 'u', 1);
  CHECK_OK(ymo_server_start(srv));
  CHECK_EQ(add_cert(srv, a.cert, a.key, NULL, NULL), YMO_EALREADY);
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  free_pair(&a);
  free_pair(&b);
  free_pair(&enc);
}

/* ------------------------------------------------------------------------ */
/* serve                                                                    */

typedef struct {
  int port, index, max_version;
} client_arg_t;

static void *client_main(void *arg) {
  client_arg_t *a = arg;
  SSL_CTX *ctx = client_ctx(a->max_version);
  tclient_t c = tls_connect(ctx, a->port, a->index % 2 ? "www.b.test" : NULL);
  CHECK_EQ(SSL_version(c.ssl),
           a->max_version ? a->max_version : TLS1_3_VERSION);
  const unsigned char *proto;
  unsigned int proto_len;
  SSL_get0_alpn_selected(c.ssl, &proto, &proto_len);
  CHECK(proto_len == 8 && memcmp(proto, "http/1.1", 8) == 0);
  char cn[64];
  peer_cn(&c, cn, sizeof(cn));
  CHECKF(strcmp(cn, a->index % 2 ? "b.test" : "default.test") == 0, "cn %s",
         cn);
  dbuf_t body = {0};
  char path[64], path2[64];
  for (int i = 0; i < 20; i++) {
    snprintf(path, sizeof(path), "/c/%d/%d", a->index, i);
    tls_get(&c, path);
    CHECK_EQ(tls_response(&c, &body), 200);
    CHECK(strcmp((char *)body.p, path) == 0);
  }
  /* Pipelined: two requests in one record. */
  snprintf(path, sizeof(path), "/p/%d/1", a->index);
  snprintf(path2, sizeof(path2), "/p/%d/2", a->index);
  char req[256];
  int n = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\n"
                   "Host: x\r\n\r\n",
                   path, path2);
  tls_send(&c, req, (size_t)n);
  CHECK_EQ(tls_response_exact(&c, &body), 200);
  CHECK(strcmp((char *)body.p, path) == 0);
  CHECK_EQ(tls_response_exact(&c, &body), 200);
  CHECK(strcmp((char *)body.p, path2) == 0);
  /* 1 MiB down, then 1 MiB up and back. */
  tls_get(&c, "/big");
  CHECK_EQ(tls_response(&c, &body), 200);
  CHECK_EQ(body.len, BIG);
  CHECK(memcmp(body.p, big_body, BIG) == 0);
  n = snprintf(req, sizeof(req),
               "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
               BIG);
  tls_send(&c, req, (size_t)n);
  tls_send(&c, big_body, BIG);
  CHECK_EQ(tls_response(&c, &body), 200);
  CHECK_EQ(body.len, BIG);
  CHECK(memcmp(body.p, big_body, BIG) == 0);
  db_free(&body);
  tls_close(&c);
  SSL_CTX_free(ctx);
  return NULL;
}

static void test_serve(void) {
  pem_pair_t def = make_cert("default.test", NULL);
  pem_pair_t b = make_cert("b.test", NULL);
  served_t s = serve_with(&def, &b, "*.b.test", 0);
  start(&s);
  enum { N = 4 };
  pthread_t threads[N];
  client_arg_t args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (client_arg_t){.port = s.port, .index = i,
                             .max_version = i == 3 ? TLS1_2_VERSION : 0};
    CHECK(pthread_create(&threads[i], NULL, client_main, &args[i]) == 0);
  }
  for (int i = 0; i < N; i++) pthread_join(threads[i], NULL);
  /* TLS 1.1 is refused. */
  SSL_CTX *old = client_ctx(TLS1_1_VERSION);
  SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
  SSL_CTX_set_security_level(old, 0);
  int fd = client_connect(s.port);
  SSL *ssl = SSL_new(old);
  SSL_set_fd(ssl, fd);
  CHECK(SSL_connect(ssl) != 1);
  ERR_clear_error();
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(old);
  /* Plain HTTP to the TLS port: closed, and the server goes on. */
  fd = client_connect(s.port);
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
  dbuf_t rest = {0};
  CHECK_EQ(recv_until_close(fd, &rest), 0);
  CHECK(rest.len == 0 || memcmp(rest.p, "HTTP", 4) != 0);
  db_free(&rest);
  close(fd);
  client_arg_t again = {.port = s.port, .index = 0};
  client_main(&again);
  fprintf(stderr, "tls serve: %ld passes by the driver\n",
          atomic_load(&owned_polls));
  finish(&s);
  free_pair(&def);
  free_pair(&b);
}

/* ------------------------------------------------------------------------ */
/* crossed                                                                  */

static void test_crossed(void) {
  pem_pair_t def = make_cert("default.test", NULL);
  /* The certificate again and again as its chain: about 100 KiB to send. */
  size_t one = strlen(def.cert);
  int copies = 180;
  char *chain = malloc(one * (size_t)(copies + 1) + 1);
  CHECK(chain != NULL);
  for (int i = 0; i <= copies; i++)
    memcpy(chain + one * (size_t)i, def.cert, one);
  chain[one * (size_t)(copies + 1)] = '\0';
  /* A listening socket whose small send buffer its connections inherit
   * (and which stops the kernel from growing it). */
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  setsockopt(lfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  struct sockaddr_in la = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(lfd, (struct sockaddr *)&la, sizeof(la)) == 0);
  CHECK(listen(lfd, 16) == 0);
  int err = 0;
  ymo_server_t *srv = ymo_server_create(1, &err);
  CHECK(srv != NULL);
  CHECK_OK(ymo_server_listen_fd(srv, lfd));
  int port = ymo_server_port(srv);
  CHECK_OK(add_cert(srv, chain, def.key, NULL, NULL));
  served_t s = {.srv = srv, .port = port};
  start(&s);
  SSL_CTX *ctx = client_ctx(0);
  SSL_CTX_set_max_cert_list(ctx, 1 << 20);
  /* A small receive window, and the ClientHello sent before reading. */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  struct timeval tv = {CLIENT_TIMEOUT_SEC, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
  SSL *ssl = SSL_new(ctx);
  BIO *wbio = BIO_new_socket(fd, BIO_NOCLOSE);
  SSL_set_bio(ssl, wbio, wbio);
  /* Non-blocking for the first step: send the ClientHello and stop. */
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  CHECK(SSL_connect(ssl) != 1);
  CHECK_EQ(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
  sleep_ms(300); /* The server fills the buffers and waits. */
  /* Another client is served meanwhile. */
  SSL_CTX *octx = client_ctx(0);
  SSL_CTX_set_max_cert_list(octx, 1 << 20);
  tclient_t c = tls_connect(octx, port, NULL);
  dbuf_t body = {0};
  tls_get(&c, "/other");
  CHECK_EQ(tls_response(&c, &body), 200);
  tls_close(&c);
  /* Now read: the handshake completes and a request is answered. */
  fcntl(fd, F_SETFL, fl);
  int rc = SSL_connect(ssl);
  if (rc != 1) ERR_print_errors_fp(stderr);
  CHECK_EQ(rc, 1);
  tclient_t slow = {.fd = fd, .ssl = ssl};
  tls_get(&slow, "/slow");
  CHECK_EQ(tls_response(&slow, &body), 200);
  CHECK(strcmp((char *)body.p, "/slow") == 0);
  tls_close(&slow);
  db_free(&body);
  SSL_CTX_free(ctx);
  SSL_CTX_free(octx);
  finish(&s);
  free(chain);
  free_pair(&def);
}

/* ------------------------------------------------------------------------ */
/* stall                                                                    */

static void test_stall(void) {
  pem_pair_t def = make_cert("default.test", NULL);
  served_t s = serve_with(&def, NULL, NULL, 500);
  start(&s);
  int stalled = client_connect(s.port);
  /* The first bytes of a ClientHello, and nothing more. */
  send_all(stalled, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  SSL_CTX *ctx = client_ctx(0);
  for (int i = 0; i < 3; i++) {
    tclient_t c = tls_connect(ctx, s.port, NULL);
    dbuf_t body = {0};
    tls_get(&c, "/ok");
    CHECK_EQ(tls_response(&c, &body), 200);
    db_free(&body);
    tls_close(&c);
  }
  double t0 = now_sec();
  dbuf_t rest = {0};
  CHECK_EQ(recv_until_close(stalled, &rest), 0);
  CHECKF(now_sec() - t0 < 5, "closed after %.1f s", now_sec() - t0);
  db_free(&rest);
  close(stalled);
  SSL_CTX_free(ctx);
  finish(&s);
  free_pair(&def);
}

int main(int argc, char **argv) {
  test_deadline(50);
  signal(SIGPIPE, SIG_IGN);
  const char *mode = argc > 1 ? argv[1] : "serve";
  big_body = malloc(BIG);
  CHECK(big_body != NULL);
  for (size_t i = 0; i < BIG; i++) big_body[i] = (uint8_t)('a' + i % 23);
  if (strcmp(mode, "config") == 0)
    test_config();
  else if (strcmp(mode, "serve") == 0)
    test_serve();
  else if (strcmp(mode, "crossed") == 0)
    test_crossed();
  else if (strcmp(mode, "stall") == 0)
    test_stall();
  else
    CHECKF(false, "unknown mode %s", mode);
  free(big_body);
  printf("tls_test %s: ok\n", mode);
  return 0;
}
