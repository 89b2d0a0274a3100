/* Layer 5, a transport: TLS 1.2 and 1.3 with OpenSSL, non-blocking, under
 * the same protocols as plain TCP (tcp.c): HTTP/1.1 and WebSocket see only
 * the transport table, so they run over it unchanged.
 *
 * How it maps onto the core. The handshake has no state of its own in the
 * core: it is driven by the reads (SSL_read performs it; a connection is
 * read from the moment it opens), and nothing is written before a request
 * was read, so before the handshake finished. SSL_ERROR_WANT_READ and
 * SSL_ERROR_WANT_WRITE become the EAGAIN of the system calls they stand
 * for. When a read must first write (a handshake flight or the session
 * tickets into a full socket buffer) or, in principle, a write must first
 * read, the call says so through the table's `crossed` hook, and the core
 * waits for the other readiness before it calls again (conn.c). A client
 * stalled mid-handshake costs one idle session and nothing else: the
 * protocol has not seen a byte, so the connection's timer is still the
 * keep-alive idle timeout armed when it opened, which closes it.
 *
 * Threads: the loan. A session's SSL object is used only by the thread
 * running the server's loop: L, or the JS thread of the only worker while
 * it holds the loan (loan.c), which runs the same watchers and so the same
 * reads and writes. Only one thread runs the loop at a time and the loan's
 * mutex is taken on every hand-over, so each SSL object is used by one
 * thread at a time with happens-before between them, which is all OpenSSL
 * asks of an SSL object; no thread ever writes to a connection from
 * outside the loop (responses reach the loop through queue_out). So no lock
 * of our own is needed, and none is taken per read or write. The SSL_CTXs
 * are shared by every connection; they are filled before L starts and only
 * read afterwards, but for OpenSSL's own session cache and ticket state,
 * which it locks itself. OpenSSL's error queue is per thread: every path
 * that leaves errors on it clears them, so the next call on either thread
 * starts clean.
 *
 * Defaults: TLS 1.2 and 1.3 only; ECDHE key exchange with AEAD ciphers
 * (AES-GCM, ChaCha20-Poly1305), the server's order preferred; session
 * tickets and OpenSSL's session cache for resumption; ALPN selects
 * http/1.1 (http/1.0 when that is all the client offers), never h2, and a
 * client offering neither gets the no_application_protocol alert (RFC 7301
 * section 3.2); no renegotiation; close_notify on close after a completed
 * handshake; SNI picks the site whose name matches. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"

/* TLS 1.2: ECDHE with AEAD only, ECDSA first (cheaper), AES-128 before
 * AES-256 before ChaCha20 (fastest on hardware with AES instructions,
 * which is where servers run). TLS 1.3's suites are all ECDHE and AEAD. */
#define TLS12_CIPHERS                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES                                  \
  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
  "TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"

/* The most plaintext one TLS record carries. */
#define MAX_RECORD 16384

typedef struct ymo_tls_site {
  char *name;   /* Lower case; NULL for a site added without a name. */
  SSL_CTX *ctx;
  bool has_cert; /* A certificate and key were added. */
} ymo_tls_site_t;

struct ymo_tls {
  ymo_tls_site_t *sites;
  size_t n_sites;
  /* The site a connection starts with (and keeps without a matching SNI):
   * the first one added without a name, else the first one added. Its
   * context also holds the session ticket keys and cache for all, since
   * OpenSSL keeps resumption on the context an SSL object was made with. */
  size_t default_site;
};

/* One connection's state (session->transport_state). */
typedef struct tls_conn {
  SSL *ssl;
  /* The last EAGAIN waits for the other readiness than the call's own. */
  bool crossed;
  /* A fatal error happened: no close_notify may be sent. */
  bool failed;
  /* The plaintext of the record OpenSSL holds after a write's WANT_WRITE
   * (malloc'd, MAX_RECORD bytes, on the first), see tls_writev. */
  uint8_t *held;
  size_t held_len;
  int fd;
  /* Inside tls_writev: the socket BIO gathers records into `out` instead
   * of sending each, and tls_writev sends them with one call. */
  bool gather;
  /* Records made and not yet sent: out[out_off, out_len). */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
} tls_conn_t;

/* ------------------------------------------------------------------------ */
/* The socket BIO: OpenSSL's own writes with write(2), which raises SIGPIPE
 * when the peer is gone; this one sends with MSG_NOSIGNAL, as tcp.c does. */

static BIO_METHOD *socket_method;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;

/* A gathered piece larger than this is freed once sent, so an idle
 * connection does not keep a large burst's buffer. */
#define OUT_KEEP (64 * 1024)
/* Plaintext one tls_writev takes at most, so `out` stays small. */
#define GATHER_MAX (256 * 1024)

/* Sends what `out` holds: 1 when all of it went, 0 when the socket is full
 * (the rest stays), -1 on an error (errno set). */
static int out_flush(tls_conn_t *t) {
  while (t->out_off < t->out_len) {
    ssize_t n = send(t->fd, t->out + t->out_off, t->out_len - t->out_off,
                     MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
      return -1;
    }
    t->out_off += (size_t)n;
  }
  t->out_off = t->out_len = 0;
  if (t->out_cap > OUT_KEEP) {
    free(t->out);
    t->out = NULL;
    t->out_cap = 0;
  }
  return 1;
}

static int bio_write(BIO *b, const char *data, int len) {
  tls_conn_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->gather) {
    size_t need = t->out_len + (size_t)len;
    if (need > t->out_cap) {
      size_t cap = t->out_cap ? t->out_cap * 2 : 32 * 1024;
      while (cap < need) cap *= 2;
      uint8_t *grown = realloc(t->out, cap);
      if (grown == NULL) {
        errno = ENOMEM;
        return -1;
      }
      t->out = grown;
      t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, data, (size_t)len);
    t->out_len = need;
    return len;
  }
  /* A write of OpenSSL's own (a handshake flight, a ticket, an alert):
   * after what was gathered before it. */
  int flushed = out_flush(t);
  if (flushed <= 0) {
    if (flushed == 0) {
      BIO_set_retry_write(b);
      errno = EAGAIN;
    }
    return -1;
  }
  ssize_t n = send(t->fd, data, (size_t)len, MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write(b);
  return (int)n;
}

static int bio_read(BIO *b, char *buf, int cap) {
  int fd = ((tls_conn_t *)BIO_get_data(b))->fd;
  BIO_clear_retry_flags(b);
  ssize_t n = recv(fd, buf, (size_t)cap, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_read(b);
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void init_openssl(void) {
  /* No atexit handler: the process may exit while L still runs (it is
   * stopped from exit hooks, in no fixed order with OpenSSL's). */
  if (OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT |
                           OPENSSL_INIT_LOAD_SSL_STRINGS |
                           OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
                       NULL) != 1)
    return;
  socket_method =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ymo socket");
  if (socket_method == NULL) return;
  BIO_meth_set_write(socket_method, bio_write);
  BIO_meth_set_read(socket_method, bio_read);
  BIO_meth_set_ctrl(socket_method, bio_ctrl);
  init_ok = true;
}

/* ------------------------------------------------------------------------ */
/* Contexts (before start, on the configuring thread).                      */

/* OpenSSL's words for what just failed, then an empty error queue. */
static void take_detail(char *detail, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  if (detail != NULL && cap > 0) {
    detail[0] = '\0';
    if (e != 0) ERR_error_string_n(e, detail, cap);
  }
  ERR_clear_error();
}

static void set_detail(char *detail, size_t cap, const char *text) {
  ERR_clear_error();
  if (detail != NULL && cap > 0) snprintf(detail, cap, "%s", text);
}

/* Which site a server name names: exact (case-insensitive) first, then a
 * "*.rest" site for a name with one more label in front of rest. */
static ymo_tls_site_t *find_site(ymo_tls_t *tls, const char *name) {
  for (size_t i = 0; i < tls->n_sites; i++)
    if (tls->sites[i].name != NULL && strcasecmp(tls->sites[i].name, name) == 0)
      return &tls->sites[i];
  const char *dot = strchr(name, '.');
  if (dot == NULL || dot == name) return NULL;
  for (size_t i = 0; i < tls->n_sites; i++) {
    const char *n = tls->sites[i].name;
    if (n != NULL && n[0] == '*' && n[1] == '.' &&
        strcasecmp(n + 1, dot) == 0)
      return &tls->sites[i];
  }
  return NULL;
}

/* SNI: the client named a server; serve it from that site's context. */
static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  ymo_tls_t *tls = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == NULL) return SSL_TLSEXT_ERR_NOACK;
  ymo_tls_site_t *site = find_site(tls, name);
  if (site != NULL && site->has_cert && site->ctx != SSL_get_SSL_CTX(ssl))
    SSL_set_SSL_CTX(ssl, site->ctx);
  return SSL_TLSEXT_ERR_OK;
}

/* ALPN: http/1.1, or http/1.0 when the client offers only that; never h2
 * (ymo speaks no HTTP/2). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  const unsigned char *http10 = NULL;
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (len == 0 || i + 1 + len > inlen) break;
    const unsigned char *p = in + i + 1;
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0) {
      *out = p;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    if (len == 8 && memcmp(p, "http/1.0", 8) == 0) http10 = p;
    i += 1 + len;
  }
  if (http10 != NULL) {
    *out = http10;
    *outlen = 8;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol. */
}

static SSL_CTX *new_ctx(ymo_tls_t *tls) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) return NULL;
  static const unsigned char sid_ctx[] = "ymo";
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
      SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
      SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  /* A FIN without close_notify reads as the end of stream, as on TCP: an
   * HTTP message's own framing says whether it was cut short. */
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
  /* A write may return after some records (as writev does), and is
   * retried from wherever the core keeps the unwritten bytes. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* One recv takes what the socket has, not a record's header then its
   * body (two calls a record); what is read ahead is handed over by
   * tls_read and announced to the core by tls_buffered. */
  SSL_CTX_set_read_ahead(ctx, 1);
  /* One TLS 1.3 ticket after a handshake (OpenSSL sends two by default):
   * a client resumes with one; each costs a record and a send. */
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, tls);
  return ctx;
}

/* The site named name (NULL or "": the default), made when missing. */
static int get_site(ymo_tls_t *tls, const char *name, ymo_tls_site_t **out) {
  if (name != NULL && name[0] == '\0') name = NULL;
  for (size_t i = 0; i < tls->n_sites; i++) {
    const char *n = tls->sites[i].name;
    if ((n == NULL && name == NULL) ||
        (n != NULL && name != NULL && strcasecmp(n, name) == 0)) {
      *out = &tls->sites[i];
      return 0;
    }
  }
  if (name != NULL) {
    /* A DNS name, or "*." and one: letters, digits, '-', '.'. */
    const char *p = name[0] == '*' && name[1] == '.' ? name + 2 : name;
    if (*p == '\0' || *p == '.' || strlen(name) > 253) return YMO_EINVAL;
    for (; *p != '\0'; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
        return YMO_EINVAL;
  }
  ymo_tls_site_t *sites =
      realloc(tls->sites, (tls->n_sites + 1) * sizeof(*sites));
  if (sites == NULL) return YMO_ENOMEM;
  tls->sites = sites;
  ymo_tls_site_t *site = &sites[tls->n_sites];
  *site = (ymo_tls_site_t){0};
  if (name != NULL && (site->name = strdup(name)) == NULL) return YMO_ENOMEM;
  site->ctx = new_ctx(tls);
  if (site->ctx == NULL) {
    free(site->name);
    return YMO_ETLS;
  }
  tls->n_sites++;
  *out = site;
  return 0;
}

/* Picks the default site again after a certificate was added: the first
 * site without a name, else the first, among those with a certificate. */
static void choose_default(ymo_tls_t *tls) {
  bool found = false;
  for (size_t i = 0; i < tls->n_sites; i++) {
    if (!tls->sites[i].has_cert) continue;
    if (tls->sites[i].name == NULL) {
      tls->default_site = i;
      return;
    }
    if (!found) tls->default_site = i;
    found = true;
  }
}

/* What the key's passphrase callback was given and whether it was asked:
 * an encrypted key asks, so a failure after asking is the passphrase's. */
typedef struct {
  const char *passphrase;
  bool asked;
} pass_state_t;

static int on_passphrase(char *buf, int size, int rwflag, void *arg) {
  (void)rwflag;
  pass_state_t *st = arg;
  st->asked = true;
  if (st->passphrase == NULL) return -1;
  size_t len = strlen(st->passphrase);
  if (len > (size_t)size) return -1;
  memcpy(buf, st->passphrase, len);
  return (int)len;
}

/* Whether the error queue only says that no more PEM blocks follow. */
static bool only_no_more_pem(void) {
  unsigned long e = ERR_peek_last_error();
  return e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM &&
                    ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
}

static int use_cert_chain(SSL_CTX *ctx, const uint8_t *pem, size_t len,
                          char *detail, size_t cap) {
  if (len > INT_MAX) return YMO_EINVAL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL) return YMO_ENOMEM;
  int rc = 0;
  X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
  if (leaf == NULL) {
    if (ERR_peek_last_error() == 0 || only_no_more_pem())
      set_detail(detail, cap, "no PEM CERTIFICATE block");
    else
      take_detail(detail, cap);
    rc = YMO_ETLSCERT;
  } else if (SSL_CTX_use_certificate(ctx, leaf) != 1 ||
             SSL_CTX_clear_chain_certs(ctx) != 1) {
    take_detail(detail, cap); /* Too weak a key, say. */
    rc = YMO_ETLSCERT;
  } else {
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
        X509_free(x);
        take_detail(detail, cap);
        rc = YMO_ETLSCERT;
        break;
      }
    }
    if (rc == 0 && !only_no_more_pem()) {
      take_detail(detail, cap);
      rc = YMO_ETLSCERT;
    }
  }
  if (rc == 0) ERR_clear_error();
  X509_free(leaf);
  BIO_free(bio);
  return rc;
}

static int use_key(SSL_CTX *ctx, const uint8_t *pem, size_t len,
                   const char *passphrase, char *detail, size_t cap) {
  if (len > INT_MAX) return YMO_EINVAL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL) return YMO_ENOMEM;
  pass_state_t st = {.passphrase = passphrase};
  EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, on_passphrase, &st);
  BIO_free(bio);
  if (pkey == NULL) {
    if (st.asked && passphrase == NULL)
      set_detail(detail, cap,
                 "the key is encrypted and no passphrase was given");
    else if (!st.asked && only_no_more_pem())
      set_detail(detail, cap, "no PEM PRIVATE KEY block");
    else
      take_detail(detail, cap);
    return st.asked ? YMO_ETLSPASS : YMO_ETLSKEY;
  }
  int rc = 0;
  if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    take_detail(detail, cap);
    rc = YMO_ETLSMISMATCH;
  }
  EVP_PKEY_free(pkey);
  return rc;
}

int ymo__tls_add_cert(ymo_tls_t **tlsp, const uint8_t *cert, size_t cert_len,
                      const uint8_t *key, size_t key_len,
                      const char *passphrase, const char *server_name,
                      char *detail, size_t cap) {
  if (detail != NULL && cap > 0) detail[0] = '\0';
  pthread_once(&init_once, init_openssl);
  if (!init_ok) {
    take_detail(detail, cap);
    return YMO_ETLS;
  }
  ERR_clear_error();
  if (*tlsp == NULL) {
    *tlsp = calloc(1, sizeof(**tlsp));
    if (*tlsp == NULL) return YMO_ENOMEM;
  }
  ymo_tls_t *tls = *tlsp;
  ymo_tls_site_t *site;
  int rc = get_site(tls, server_name, &site);
  if (rc == YMO_EINVAL)
    set_detail(detail, cap, "a server name is a DNS name or *. and one");
  if (rc == 0) rc = use_cert_chain(site->ctx, cert, cert_len, detail, cap);
  if (rc == 0)
    rc = use_key(site->ctx, key, key_len, passphrase, detail, cap);
  if (rc == 0) {
    site->has_cert = true;
    choose_default(tls);
  }
  ERR_clear_error();
  return rc;
}

int ymo__tls_add_ca(ymo_tls_t *tls, const uint8_t *ca, size_t ca_len,
                    const char *server_name, char *detail, size_t cap) {
  if (detail != NULL && cap > 0) detail[0] = '\0';
  if (tls == NULL || ca_len > INT_MAX) return YMO_EINVAL;
  if (server_name != NULL && server_name[0] == '\0') server_name = NULL;
  ymo_tls_site_t *site = NULL;
  for (size_t i = 0; i < tls->n_sites && site == NULL; i++) {
    const char *n = tls->sites[i].name;
    if ((n == NULL && server_name == NULL) ||
        (n != NULL && server_name != NULL && strcasecmp(n, server_name) == 0))
      site = &tls->sites[i];
  }
  if (site == NULL) return YMO_EINVAL;
  ERR_clear_error();
  BIO *bio = BIO_new_mem_buf(ca, (int)ca_len);
  if (bio == NULL) return YMO_ENOMEM;
  X509_STORE *store = SSL_CTX_get_cert_store(site->ctx);
  int added = 0, rc = 0;
  X509 *x;
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(store, x) == 1) added++;
    X509_free(x);
  }
  if (!only_no_more_pem()) {
    take_detail(detail, cap);
    rc = YMO_ETLSCA;
  } else if (added == 0) {
    set_detail(detail, cap, "no PEM CERTIFICATE block");
    rc = YMO_ETLSCA;
  }
  ERR_clear_error();
  BIO_free(bio);
  return rc;
}

int ymo__tls_share_tickets(const ymo_tls_t *from, ymo_tls_t *to) {
  /* OpenSSL's form of them: key name, HMAC secret and AES key. */
  unsigned char keys[80];
  SSL_CTX *source = from->sites[from->default_site].ctx;
  int rc = 0;
  if (SSL_CTX_get_tlsext_ticket_keys(source, keys, sizeof(keys)) != 1)
    rc = YMO_ETLS;
  /* Resumption runs on the default site's context (see ymo_tls_t). */
  else if (SSL_CTX_set_tlsext_ticket_keys(to->sites[to->default_site].ctx,
                                          keys, sizeof(keys)) != 1)
    rc = YMO_ETLS;
  OPENSSL_cleanse(keys, sizeof(keys));
  return rc;
}

void ymo__tls_free(ymo_tls_t *tls) {
  if (tls == NULL) return;
  for (size_t i = 0; i < tls->n_sites; i++) {
    SSL_CTX_free(tls->sites[i].ctx);
    free(tls->sites[i].name);
  }
  free(tls->sites);
  free(tls);
}

/* ------------------------------------------------------------------------ */
/* The transport (on the thread running the loop).                         */

static bool tls_open(ymo_session_t *s) {
  ymo_tls_t *tls = s->conns->transport_ctx;
  tls_conn_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return false;
  t->ssl = SSL_new(tls->sites[tls->default_site].ctx);
  BIO *bio = t->ssl != NULL ? BIO_new(socket_method) : NULL;
  if (bio == NULL) {
    SSL_free(t->ssl);
    free(t->held);
    free(t);
    ERR_clear_error();
    return false;
  }
  t->fd = s->fd;
  BIO_set_data(bio, t);
  BIO_set_init(bio, 1);
  SSL_set_bio(t->ssl, bio, bio);
  SSL_set_accept_state(t->ssl);
  s->transport_state = t;
  return true;
}

/* After SSL_read or SSL_write returned n <= 0: -1 with errno as the system
 * call would have it (EAGAIN, with t->crossed when the other readiness is
 * awaited), or 0 for the end of the stream. */
static ssize_t failed_io(tls_conn_t *t, int n, bool reading) {
  int saved = errno;
  switch (SSL_get_error(t->ssl, n)) {
    case SSL_ERROR_WANT_READ:
      t->crossed = !reading;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      t->crossed = reading;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      /* close_notify, or a FIN (SSL_OP_IGNORE_UNEXPECTED_EOF). */
      ERR_clear_error();
      return 0;
    case SSL_ERROR_SYSCALL:
      t->failed = true;
      ERR_clear_error();
      errno = saved != 0 ? saved : ECONNRESET;
      return -1;
    default:
      /* A protocol error (plain HTTP to this port, a bad record, a refused
       * version): OpenSSL has sent its alert. */
      t->failed = true;
      ERR_clear_error();
      errno = EPROTO;
      return -1;
  }
}

/* Reads whole records while the buffer has room for one. OpenSSL reads
 * ahead (one recv for what the socket has); what it still holds when the
 * buffer is full is announced by tls_buffered, and the core reads again. A record's end of stream or error after data is found
 * again by the next call, which OpenSSL answers the same way. */
static ssize_t tls_read(ymo_session_t *s, uint8_t *buf, size_t cap) {
  tls_conn_t *t = s->transport_state;
  t->crossed = false;
  size_t total = 0;
  for (;;) {
    size_t room = cap - total;
    int n = SSL_read(t->ssl, buf + total, room > INT_MAX ? INT_MAX : (int)room);
    if (n > 0) {
      total += (size_t)n;
      /* On while OpenSSL holds more (it read ahead); the socket's own
       * bytes are the read watcher's: another recv now would mostly say
       * EAGAIN, a system call per request for nothing. */
      if (cap - total >= MAX_RECORD && SSL_has_pending(t->ssl)) continue;
      return (ssize_t)total;
    }
    if (total > 0) {
      if (SSL_get_error(t->ssl, n) != SSL_ERROR_WANT_READ) ERR_clear_error();
      return (ssize_t)total;
    }
    return failed_io(t, n, true);
  }
}

/* Whether iov begins with the len bytes at p. */
static bool starts_with(const struct iovec *iov, int n_iov, const uint8_t *p,
                        size_t len) {
  for (int i = 0; i < n_iov && len > 0; i++) {
    size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;
    if (memcmp(iov[i].iov_base, p, n) != 0) return false;
    p += n;
    len -= n;
  }
  return len == 0;
}

/* Writes iov in records. Pieces smaller than a record are gathered into
 * one (a response head and a short body make one record and one send),
 * larger ones go as they are. After EAGAIN OpenSSL holds a record made of
 * the call's first bytes and wants them again, with at least the same
 * length; the core calls again from where the written bytes end, with the
 * same pieces and perhaps more, so the same gathering gives that. The one
 * write the core does not retry is ymo__conn_send_now's (100 Continue):
 * when a call does not start with the held bytes, the held record is
 * finished first, so it reaches the client ahead of what follows, as the
 * core meant. */
static ssize_t write_records(ymo_session_t *s, const struct iovec *iov,
                             int n_iov) {
  tls_conn_t *t = s->transport_state;
  if (t->held_len > 0 && !starts_with(iov, n_iov, t->held, t->held_len)) {
    int n = SSL_write(t->ssl, t->held, (int)t->held_len);
    if (n <= 0) {
      ssize_t r = failed_io(t, n, false);
      if (r == 0) errno = EPIPE;
      return -1;
    }
    t->held_len = 0;
  }
  uint8_t stage[MAX_RECORD];
  size_t total = 0, off = 0;
  int i = 0;
  while (i < n_iov && total < GATHER_MAX) {
    size_t left = iov[i].iov_len - off;
    if (left == 0) {
      i++;
      off = 0;
      continue;
    }
    const uint8_t *p = (const uint8_t *)iov[i].iov_base + off;
    size_t len = left;
    if (left < MAX_RECORD && i + 1 < n_iov) {
      len = 0;
      size_t o = off;
      for (int j = i; j < n_iov && len < MAX_RECORD; j++, o = 0) {
        size_t take = iov[j].iov_len - o;
        if (take > MAX_RECORD - len) take = MAX_RECORD - len;
        memcpy(stage + len, (const uint8_t *)iov[j].iov_base + o, take);
        len += take;
      }
      p = stage;
    }
    int n = SSL_write(t->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
    if (n <= 0 && SSL_get_error(t->ssl, n) == SSL_ERROR_WANT_WRITE) {
      if (t->held == NULL) t->held = malloc(MAX_RECORD);
      if (t->held == NULL) {
        /* Cannot tell a retry from another write later: give up. */
        t->failed = true;
        errno = ENOMEM;
        return -1;
      }
      t->held_len = len < MAX_RECORD ? len : MAX_RECORD;
      memcpy(t->held, p, t->held_len);
    }
    if (n <= 0) {
      if (total > 0) {
        if (SSL_get_error(t->ssl, n) != SSL_ERROR_WANT_WRITE)
          ERR_clear_error();
        return (ssize_t)total;
      }
      ssize_t r = failed_io(t, n, false);
      if (r == 0) errno = EPIPE; /* Not for a write. */
      return -1;
    }
    t->held_len = 0;
    total += (size_t)n;
    /* Advance over n bytes of the pieces. */
    size_t adv = (size_t)n;
    while (adv > 0 && i < n_iov) {
      size_t rest = iov[i].iov_len - off;
      if (adv < rest) {
        off += adv;
        adv = 0;
      } else {
        adv -= rest;
        i++;
        off = 0;
      }
    }
  }
  return (ssize_t)total;
}

/* Writes iov as records gathered into one send (see write_records): a
 * response head and body in one record and one call, a 16 KiB body's two
 * records in one call, not one each. What the socket does not take stays
 * in `out`, is sent first by the next call (or by tls_unsent's caller),
 * and holds back every later write, so records keep their order. */
static ssize_t tls_writev(ymo_session_t *s, const struct iovec *iov,
                          int n_iov) {
  tls_conn_t *t = s->transport_state;
  t->crossed = false;
  int flushed = out_flush(t);
  if (flushed < 0) return -1;
  if (flushed == 0) {
    errno = EAGAIN;
    return -1;
  }
  if (n_iov == 0) return 0;
  t->gather = true;
  ssize_t n = write_records(s, iov, n_iov);
  t->gather = false;
  int saved = errno;
  if (out_flush(t) < 0) return -1;
  errno = saved;
  return n;
}

static bool tls_unsent(ymo_session_t *s) {
  tls_conn_t *t = s->transport_state;
  return t != NULL && t->out_off < t->out_len;
}

static bool tls_buffered(ymo_session_t *s) {
  tls_conn_t *t = s->transport_state;
  return t != NULL && SSL_has_pending(t->ssl);
}

static bool tls_crossed(ymo_session_t *s) {
  tls_conn_t *t = s->transport_state;
  return t != NULL && t->crossed;
}

/* close_notify once, without waiting for the client's; then the fd. Not
 * after a fatal error (OpenSSL forbids it) nor mid-handshake. */
static void tls_close(ymo_session_t *s) {
  tls_conn_t *t = s->transport_state;
  if (t != NULL) {
    /* Records still unsent go first, as far as the socket takes them. */
    if (!t->failed && out_flush(t) < 0) t->failed = true;
    if (!t->failed && SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t->held);
    free(t->out);
    free(t);
    s->transport_state = NULL;
  }
  close(s->fd);
}

const ymo_transport_t ymo__tls = {
    .open = tls_open,
    .read = tls_read,
    .writev = tls_writev,
    .crossed = tls_crossed,
    .buffered = tls_buffered,
    .unsent = tls_unsent,
    .close = tls_close,
};
