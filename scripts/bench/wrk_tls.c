/*
 * An LD_PRELOAD library for wrk's TLS workloads: it counts wrk's TLS
 * handshakes and, when asked, makes each of them a full one.
 *
 *   gcc -O2 -Wall -shared -fPIC -o bench/tmp/wrk_tls.so \
 *     scripts/bench/wrk_tls.c -ldl
 *   LD_PRELOAD=bench/tmp/wrk_tls.so YMO_BENCH_TLS_FRESH=1 wrk ...
 *
 * wrk (src/ssl.c) gives each connection one SSL object for its whole life:
 * when it reconnects (after a response with `Connection: close`) it calls
 * SSL_shutdown() and SSL_clear(), and SSL_clear() keeps the session of the
 * last connection. The next SSL_connect() then offers it (a TLS 1.2
 * session ID or ticket, a TLS 1.3 PSK), so against a server that issues
 * tickets most of wrk's "new connections" are resumed handshakes, which
 * skip the certificate and its signature.
 *
 * With YMO_BENCH_TLS_FRESH=1 in the environment, SSL_clear() below also
 * drops that session (SSL_set_session(ssl, NULL)), so every handshake is a
 * full one. In every case, SSL_connect() counts the handshakes it completes,
 * full or resumed (SSL_session_reused()), and at exit one line goes to
 * stderr for the harness to read:
 *
 *   TLS handshakes: <full> full, <resumed> resumed
 *
 * Only the OpenSSL symbols are declared here, so no OpenSSL headers are
 * needed; the real functions are found with dlsym(RTLD_NEXT) once, before
 * wrk's threads start.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

static int (*real_clear)(SSL *);
static int (*real_connect)(SSL *);
static int (*set_session)(SSL *, SSL_SESSION *);
static int (*session_reused)(const SSL *);
static int fresh;

/* Updated by wrk's threads with atomic adds, read once at exit. */
static unsigned long full_handshakes, resumed_handshakes;

__attribute__((constructor)) static void init(void) {
  real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
  real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
  set_session =
      (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
  session_reused = (int (*)(const SSL *))dlsym(RTLD_NEXT,
                                               "SSL_session_reused");
  const char *env = getenv("YMO_BENCH_TLS_FRESH");
  fresh = env != NULL && strcmp(env, "1") == 0;
}

/* Runs in programs without libssl too (taskset, which execs wrk): only a
 * process that found SSL_connect reports. */
__attribute__((destructor)) static void report(void) {
  if (real_connect == NULL) return;
  fprintf(stderr, "TLS handshakes: %lu full, %lu resumed\n",
          __atomic_load_n(&full_handshakes, __ATOMIC_RELAXED),
          __atomic_load_n(&resumed_handshakes, __ATOMIC_RELAXED));
}

int SSL_clear(SSL *ssl) {
  int result = real_clear(ssl);
  if (fresh) set_session(ssl, NULL);
  return result;
}

int SSL_connect(SSL *ssl) {
  int result = real_connect(ssl);
  if (result == 1) {
    __atomic_fetch_add(session_reused(ssl) ? &resumed_handshakes
                                           : &full_handshakes,
                       1, __ATOMIC_RELAXED);
  }
  return result;
}
