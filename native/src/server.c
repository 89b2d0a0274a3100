/* Layer 6: the server. Creating it with its workers, options, listening,
 * static routes (kept in a table handed down to the connections), the loop
 * thread L with its accept watcher, and shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"

static const int64_t option_defaults[] = {
#define YMO__OPT_DEFAULT(name, value, dflt) [value] = dflt,
    YMO_OPTION_MAP(YMO__OPT_DEFAULT)
#undef YMO__OPT_DEFAULT
};

#define N_OPTIONS (sizeof(option_defaults) / sizeof(option_defaults[0]))

/* Which numbers name an option: a retired one (11, STREAM_BODY_MIN) stays
 * a hole that is refused, not a setting silently ignored. */
static const bool option_known[N_OPTIONS] = {
#define YMO__OPT_KNOWN(name, value, dflt) [value] = true,
    YMO_OPTION_MAP(YMO__OPT_KNOWN)
#undef YMO__OPT_KNOWN
};

static void on_sessions_gone(void *arg);
static void on_incoming(struct ev_loop *loop, ev_async *w, int revents);
static void close_incoming(ymo_server_t *srv);

ymo_server_t *ymo_server_create(int n_workers, int *err) {
  int dummy;
  if (err == NULL) err = &dummy;
  if (n_workers < 1 || n_workers > 256) {
    *err = YMO_EINVAL;
    return NULL;
  }
  ymo_server_t *srv =
      calloc(1, sizeof(*srv) + (size_t)n_workers * sizeof(ymo_worker_t *));
  if (srv == NULL) {
    *err = YMO_ENOMEM;
    return NULL;
  }
  srv->listen_fd = -1;
  srv->n_workers = n_workers;
  memcpy(srv->options, option_defaults, sizeof(option_defaults));
  srv->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  if (srv->loop == NULL || ymo__conns_init(&srv->conns) != 0) goto fail;
  pthread_mutex_init(&srv->state_lock, NULL);
  pthread_mutex_init(&srv->incoming_lock, NULL);
  for (int i = 0; i < n_workers; i++) {
    ymo_worker_t *w = malloc(sizeof(*w));
    if (w == NULL ||
        ymo__worker_init(w, srv->loop, (size_t)i, &srv->draining,
                         srv->options) != 0) {
      free(w);
      srv->n_workers = i;
      ymo_server_free(srv);
      *err = YMO_ENOMEM;
      return NULL;
    }
    srv->workers[i] = w;
  }
  /* One worker may borrow the loop (loan.c); decided here, since its JS
   * thread may ask before the server starts. With several workers, each JS
   * thread would wait for the others' loans: they keep the handoff. */
  const char *no_loan = getenv("YMO_NO_LOAN");
  if (n_workers == 1 && !(no_loan != NULL && *no_loan == '1'))
    ymo__worker_allow_loans(srv->workers[0]);
  ymo_conns_t *c = &srv->conns;
  c->loop = srv->loop;
  c->options = srv->options;
  c->routes = &srv->routes;
  c->draining = &srv->draining;
  c->transport = &ymo__tcp;
  c->protocol = &ymo__http1;
  c->workers = srv->workers;
  c->n_workers = n_workers;
  c->on_empty = on_sessions_gone;
  c->on_empty_arg = srv;
  *err = 0;
  return srv;
fail:
  if (srv->loop != NULL) ev_loop_destroy(srv->loop);
  ymo__conns_free(&srv->conns);
  free(srv);
  *err = YMO_ENOMEM;
  return NULL;
}

int ymo_server_set_option(ymo_server_t *srv, int option, int64_t value) {
  if (srv == NULL || option <= 0 || (size_t)option >= N_OPTIONS ||
      !option_known[option])
    return YMO_EINVAL;
  if (value < 0 || srv->thread_started) return YMO_EINVAL;
  srv->options[option] = value;
  return 0;
}

static int listen_on(ymo_server_t *srv, const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (YMO_OPT(srv, REUSE_PORT) &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      listen(fd, (int)YMO_OPT(srv, BACKLOG)) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

int ymo_server_listen_fd(ymo_server_t *srv, int fd) {
  if (srv == NULL || fd < 0 || srv->listen_fd >= 0 || srv->thread_started)
    return YMO_EINVAL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return -errno;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  srv->listen_fd = fd;
  if (ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
    srv->port = 0;
    snprintf(srv->host, sizeof(srv->host), "%.107s",
             un->sun_path[0] != '\0' ? un->sun_path : "unix");
    return 0;
  }
  const void *addr;
  if (ss.ss_family == AF_INET6) {
    srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
  } else {
    srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    addr = &((struct sockaddr_in *)&ss)->sin_addr;
  }
  if (inet_ntop(ss.ss_family, addr, srv->host, sizeof(srv->host)) == NULL)
    strcpy(srv->host, "?");
  return 0;
}

int ymo_server_listen(ymo_server_t *srv, const char *host, int port) {
  if (srv == NULL || port < 0 || port > 65535 || srv->listen_fd >= 0 ||
      srv->thread_started)
    return YMO_EINVAL;
  char port_str[8];
  snprintf(port_str, sizeof(port_str), "%d", port);
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(host != NULL && *host ? host : NULL, port_str, &hints,
                        &res);
  if (gai != 0) return YMO_EADDRNOTAVAIL;
  int err = YMO_EADDRNOTAVAIL;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    int fd = listen_on(srv, ai);
    if (fd >= 0) {
      freeaddrinfo(res);
      return ymo_server_listen_fd(srv, fd);
    }
    err = fd;
  }
  freeaddrinfo(res);
  return err;
}

/* Whether the file at addr's path is a stale socket (nothing accepts on it:
 * left by a process that died): 1, and the caller may replace it; 0 for a
 * live socket or no file; -1 for a file that is not a socket. */
static int stale_socket(const struct sockaddr_un *addr) {
  struct stat st;
  if (lstat(addr->sun_path, &st) != 0) return 0;
  if (!S_ISSOCK(st.st_mode)) return -1; /* Not ours to remove. */
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return -1;
  int rc = connect(probe, (const struct sockaddr *)addr, sizeof(*addr));
  int err = errno;
  close(probe);
  return rc != 0 && err == ECONNREFUSED ? 1 : 0;
}

int ymo_server_listen_unix(ymo_server_t *srv, const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (srv == NULL || path == NULL || path[0] == '\0' ||
      strlen(path) >= sizeof(addr.sun_path) || srv->listen_fd >= 0 ||
      srv->thread_started)
    return YMO_EINVAL;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int stale = stale_socket(&addr);
  if (stale < 0) return YMO_EADDRINUSE;
  if (stale == 1) unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) != 0 ||
      listen(fd, (int)YMO_OPT(srv, BACKLOG)) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  int err = ymo_server_listen_fd(srv, fd);
  if (err != 0) {
    close(fd);
    unlink(path);
    return err;
  }
  srv->unix_owned = true;
  return 0;
}

/* Both read what was saved when the socket was bound: the loop thread
 * closes listen_fd at shutdown, so it must not be looked at from here. */
int ymo_server_add_static(ymo_server_t *srv, const char *path, int status,
                          const uint8_t *headers, int32_t headers_len,
                          const uint8_t *body, int32_t body_len) {
  if (srv == NULL || path == NULL || path[0] == '\0' || status < 200 ||
      status > 999 || headers_len < 0 || body_len < 0 ||
      (headers_len > 0 && headers == NULL) || (body_len > 0 && body == NULL))
    return YMO_EINVAL;
  if (srv->thread_started) return YMO_EALREADY;
  return ymo__routes_add(&srv->routes, path, status, headers,
                         (size_t)headers_len, body, (size_t)body_len);
}

int ymo_server_add_route(ymo_server_t *srv, const char *pattern,
                         const char *method, int32_t id) {
  /* The record carries id + 1 in two bytes. */
  if (srv == NULL || pattern == NULL || id < 0 || id >= UINT16_MAX)
    return YMO_EINVAL;
  if (method != NULL && method[0] == '\0') method = NULL;
  if (srv->thread_started) return YMO_EALREADY;
  return ymo__router_add(&srv->routes.router, pattern, method, id);
}

/* The server's transport is TLS from its first certificate on. */
int ymo_server_add_tls_cert(ymo_server_t *srv, const uint8_t *cert,
                            int32_t cert_len, const uint8_t *key,
                            int32_t key_len, const char *passphrase,
                            const char *server_name) {
  if (srv == NULL || cert == NULL || key == NULL || cert_len <= 0 ||
      key_len <= 0)
    return YMO_EINVAL;
  if (srv->thread_started) return YMO_EALREADY;
  int rc = ymo__tls_add_cert(&srv->tls, cert, (size_t)cert_len, key,
                             (size_t)key_len, passphrase, server_name,
                             srv->tls_error, sizeof(srv->tls_error));
  if (rc == 0) {
    srv->conns.transport = &ymo__tls;
    srv->conns.transport_ctx = srv->tls;
  }
  return rc;
}

int ymo_server_add_tls_ca(ymo_server_t *srv, const uint8_t *ca, int32_t ca_len,
                          const char *server_name) {
  if (srv == NULL || ca == NULL || ca_len <= 0) return YMO_EINVAL;
  if (srv->thread_started) return YMO_EALREADY;
  return ymo__tls_add_ca(srv->tls, ca, (size_t)ca_len, server_name,
                         srv->tls_error, sizeof(srv->tls_error));
}

int ymo_server_tls_error(ymo_server_t *srv, char *buf, int cap) {
  if (srv == NULL || buf == NULL || cap < 1) return YMO_EINVAL;
  int len = snprintf(buf, (size_t)cap, "%s", srv->tls_error);
  return len < cap ? len : cap - 1;
}

int ymo_server_port(ymo_server_t *srv) {
  if (srv == NULL) return YMO_EINVAL;
  return srv->host[0] != '\0' ? srv->port : YMO_ENOTCONN;
}

int ymo_server_host(ymo_server_t *srv, char *buf, int cap) {
  if (srv == NULL || buf == NULL || cap < 1) return YMO_EINVAL;
  if (srv->host[0] == '\0') return YMO_ENOTCONN;
  int len = (int)strlen(srv->host);
  if (len >= cap) return YMO_ENOBUFS;
  memcpy(buf, srv->host, (size_t)len + 1);
  return len;
}

int ymo_server_connections(ymo_server_t *srv) {
  return srv == NULL ? YMO_EINVAL : atomic_load(&srv->conns.connections);
}

ymo_worker_t *ymo_server_worker(ymo_server_t *srv, int i) {
  if (srv == NULL || i < 0 || i >= srv->n_workers) return NULL;
  return srv->workers[i];
}

int ymo_server_add_shard(ymo_server_t *leader, ymo_server_t *shard) {
  if (leader == NULL || shard == NULL || leader == shard ||
      leader->leader != NULL || shard->leader != NULL ||
      shard->n_shards > 0 || shard->listen_fd >= 0)
    return YMO_EINVAL;
  /* Both before they start: the leader's L reads the list unlocked, and
   * the shard's watcher must be on before anything is dealt to it. */
  pthread_mutex_lock(&leader->state_lock);
  pthread_mutex_lock(&shard->state_lock);
  int err = 0;
  if (leader->thread_started || shard->thread_started) {
    err = YMO_EALREADY;
  } else {
    ymo_server_t **grown = realloc(
        leader->shards, (size_t)(leader->n_shards + 1) * sizeof(*grown));
    if (grown == NULL) {
      err = YMO_ENOMEM;
    } else {
      leader->shards = grown;
      leader->shards[leader->n_shards++] = shard;
      shard->leader = leader;
      ev_async_init(&shard->incoming_ready, on_incoming);
      shard->incoming_ready.data = shard;
      ev_async_start(shard->loop, &shard->incoming_ready);
    }
  }
  pthread_mutex_unlock(&shard->state_lock);
  pthread_mutex_unlock(&leader->state_lock);
  return err;
}

/* ------------------------------------------------------------------------ */
/* The loop thread.                                                         */

/* L: no new connections from here on (the listener closes; a shard
 * closes what is dealt to it). */
static void stop_accepting(ymo_server_t *srv) {
  srv->accepting = false;
  if (srv->listen_fd >= 0) {
    ev_io_stop(srv->loop, &srv->accept_watcher);
    close(srv->listen_fd);
    srv->listen_fd = -1;
    if (srv->unix_owned) unlink(srv->host);
  }
  if (srv->leader != NULL) close_incoming(srv);
}

/* Ends the loop for good. `finished` is what tells L that ev_run returned
 * for shutdown, not to lend the loop: this may run in a pass by the JS
 * thread, whose ev_run the break does not outlive. */
static void finish(ymo_server_t *srv) {
  srv->finished = true;
  ev_break(srv->loop, EVBREAK_ALL);
}

/* The connection set's on_empty: the last connection closed. */
static void on_sessions_gone(void *arg) {
  ymo_server_t *srv = arg;
  if (atomic_load(&srv->draining) && !srv->accepting) finish(srv);
}

/* A connection the leader dealt a shard, waiting for the shard's loop. */
struct ymo_dealt {
  int fd;
  struct sockaddr_storage peer;
};

/* Open connections on the leader's loop and all its shards', those dealt
 * and not started yet included (a snapshot). */
static int64_t group_connections(ymo_server_t *srv) {
  int64_t n = atomic_load(&srv->conns.connections);
  for (int i = 0; i < srv->n_shards; i++) {
    ymo_server_t *shard = srv->shards[i];
    pthread_mutex_lock(&shard->incoming_lock);
    n += (int64_t)shard->n_incoming;
    pthread_mutex_unlock(&shard->incoming_lock);
    n += atomic_load(&shard->conns.connections);
  }
  return n;
}

/* Leader's L: hands a connection to a shard's loop (any state: a shard
 * that is not running yet starts it when it does; one that no longer
 * accepts closes it). */
static void deal(ymo_server_t *shard, int fd,
                 const struct sockaddr_storage *peer) {
  pthread_mutex_lock(&shard->incoming_lock);
  bool kept = false;
  if (!shard->incoming_closed) {
    if (shard->n_incoming == shard->cap_incoming) {
      size_t cap = shard->cap_incoming < 16 ? 16 : shard->cap_incoming * 2;
      struct ymo_dealt *grown =
          realloc(shard->incoming, cap * sizeof(*grown));
      if (grown != NULL) {
        shard->incoming = grown;
        shard->cap_incoming = cap;
      }
    }
    if (shard->n_incoming < shard->cap_incoming) {
      shard->incoming[shard->n_incoming].fd = fd;
      shard->incoming[shard->n_incoming].peer = *peer;
      shard->n_incoming++;
      kept = true;
    }
  }
  pthread_mutex_unlock(&shard->incoming_lock);
  if (kept)
    ev_async_send(shard->loop, &shard->incoming_ready);
  else
    close(fd);
}

/* Shard's L: starts the connections the leader dealt it; under the lock,
 * so that the leader's count sees each one either dealt or open. */
static void on_incoming(struct ev_loop *loop, ev_async *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_server_t *srv = w->data;
  pthread_mutex_lock(&srv->incoming_lock);
  for (size_t i = 0; i < srv->n_incoming; i++) {
    struct ymo_dealt *dealt = &srv->incoming[i];
    if (srv->accepting)
      ymo__conn_start(&srv->conns, dealt->fd, &dealt->peer);
    else
      close(dealt->fd);
  }
  srv->n_incoming = 0;
  pthread_mutex_unlock(&srv->incoming_lock);
}

/* Shard: no more connections; those dealt and not started are closed. */
static void close_incoming(ymo_server_t *srv) {
  pthread_mutex_lock(&srv->incoming_lock);
  srv->incoming_closed = true;
  for (size_t i = 0; i < srv->n_incoming; i++) close(srv->incoming[i].fd);
  free(srv->incoming);
  srv->incoming = NULL;
  srv->n_incoming = srv->cap_incoming = 0;
  pthread_mutex_unlock(&srv->incoming_lock);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_server_t *srv = w->data;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int fd = accept4(srv->listen_fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or an error the next event retries. */
    if (group_connections(srv) >= YMO_OPT(srv, MAX_CONNECTIONS)) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Round-robin over the loops, this one first. */
    unsigned turn = srv->next_shard++ % (unsigned)(srv->n_shards + 1);
    if (turn == 0)
      ymo__conn_start(&srv->conns, fd, &peer);
    else
      deal(srv->shards[turn - 1], fd, &peer);
  }
}

static void on_grace_over(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_server_t *srv = w->data;
  ymo__conns_close_all(&srv->conns);
}

static void on_control(struct ev_loop *loop, ev_async *w, int revents) {
  (void)revents;
  ymo_server_t *srv = w->data;
  if (atomic_load(&srv->stop_now)) {
    stop_accepting(srv);
    ymo__conns_close_all(&srv->conns);
    finish(srv);
    return;
  }
  if (atomic_load(&srv->draining) && srv->accepting) {
    stop_accepting(srv);
    ymo__conns_drain(&srv->conns);
    if (srv->conns.sessions == NULL) {
      finish(srv);
      return;
    }
    int grace = atomic_load(&srv->grace_ms);
    if (grace >= 0) {
      ev_timer_set(&srv->grace_timer, grace / 1000.0, 0.0);
      ev_timer_start(loop, &srv->grace_timer);
    }
  }
}

static void on_reap(struct ev_loop *loop, ev_prepare *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_server_t *srv = w->data;
  ymo__conns_reap(&srv->conns);
}

static void *loop_main(void *arg) {
  ymo_server_t *srv = arg;
  struct ev_loop *loop = srv->loop;
  ymo__conns_attach(&srv->conns);
  ev_prepare_init(&srv->reaper, on_reap);
  srv->reaper.data = srv;
  ev_prepare_start(loop, &srv->reaper);
  srv->accepting = true;
  if (srv->listen_fd >= 0) {
    ev_io_init(&srv->accept_watcher, on_accept, srv->listen_fd, EV_READ);
    srv->accept_watcher.data = srv;
    ev_io_start(loop, &srv->accept_watcher);
  }
  /* A shard's connections dealt before its loop ran start at once. */
  if (srv->leader != NULL) ev_async_send(loop, &srv->incoming_ready);
  /* A shutdown requested before the loop ran is picked up at once. */
  if (atomic_load(&srv->draining)) ev_async_send(loop, &srv->control);
  /* ev_run returns for shutdown, or because the JS thread asked for the
   * loop: lend it, and run it again once it is back, unless a pass on the
   * JS thread finished the server meanwhile (its break ended that pass's
   * ev_run, not the next one here, which would then wait for good). */
  while (!srv->finished && !atomic_load(&srv->stop_now)) {
    ev_run(loop, 0);
    if (srv->finished || atomic_load(&srv->stop_now)) break;
    ymo__worker_lend(srv->workers[0]);
  }

  stop_accepting(srv);
  ymo__conns_close_all(&srv->conns);
  ev_timer_stop(loop, &srv->grace_timer);
  if (srv->leader != NULL) ev_async_stop(loop, &srv->incoming_ready);
  ev_async_stop(loop, &srv->control);
  ymo__conns_detach(&srv->conns);
  ymo__conns_reap(&srv->conns);
  ev_prepare_stop(loop, &srv->reaper);
  for (int i = 0; i < srv->n_workers; i++)
    ymo__worker_release_waiters(srv->workers[i]);
  return NULL;
}

int ymo_server_start(ymo_server_t *srv) {
  if (srv == NULL) return YMO_EINVAL;
  pthread_mutex_lock(&srv->state_lock);
  int err = 0;
  if (srv->thread_started)
    err = YMO_EALREADY;
  else if (srv->listen_fd < 0 && srv->leader == NULL)
    err = YMO_ENOTCONN;
  if (err == 0) {
    /* Before L exists: every JS thread sees it through lock_in. */
    bool compress = srv->options[YMO_OPT_COMPRESSION] != 0;
    for (int i = 0; i < srv->n_workers; i++)
      srv->workers[i]->compress = compress;
    /* Static routes are compressed here, once per coding. */
    if (compress) err = ymo__routes_compress(&srv->routes);
  }
  /* A shard resumes the leader's TLS sessions (both are set up by now;
   * the leader's keys are only read). */
  if (err == 0 && srv->leader != NULL && srv->tls != NULL &&
      srv->leader->tls != NULL)
    err = ymo__tls_share_tickets(srv->leader->tls, srv->tls);
  if (err == 0) {
    ev_async_init(&srv->control, on_control);
    srv->control.data = srv;
    ev_async_start(srv->loop, &srv->control);
    ev_init(&srv->grace_timer, on_grace_over);
    srv->grace_timer.data = srv;
    if (pthread_create(&srv->thread, NULL, loop_main, srv) != 0) {
      ev_async_stop(srv->loop, &srv->control);
      err = YMO_ENOMEM;
    } else {
      srv->thread_started = true;
    }
  }
  pthread_mutex_unlock(&srv->state_lock);
  return err;
}

int ymo_server_shutdown(ymo_server_t *srv, int grace_ms) {
  if (srv == NULL) return YMO_EINVAL;
  pthread_mutex_lock(&srv->state_lock);
  int err = 0;
  if (!srv->thread_started || srv->joined) {
    err = srv->joined ? 0 : YMO_ENOTCONN;
  } else if (!atomic_exchange(&srv->draining, 1)) {
    atomic_store(&srv->grace_ms, grace_ms);
    ev_async_send(srv->loop, &srv->control);
  }
  pthread_mutex_unlock(&srv->state_lock);
  return err;
}

int ymo_server_stop(ymo_server_t *srv) {
  if (srv == NULL) return YMO_EINVAL;
  pthread_mutex_lock(&srv->state_lock);
  if (srv->thread_started && !srv->joined) {
    atomic_store(&srv->stop_now, 1);
    atomic_store(&srv->draining, 1);
    /* L may be waiting for the loop to come back from a JS thread. */
    ymo__worker_end_loans(srv->workers[0]);
    ev_async_send(srv->loop, &srv->control);
    pthread_join(srv->thread, NULL);
    srv->joined = true;
  } else if (!srv->thread_started) {
    /* Never started: nothing runs, but waiters must still be released. */
    atomic_store(&srv->draining, 1);
    for (int i = 0; i < srv->n_workers; i++)
      ymo__worker_release_waiters(srv->workers[i]);
  }
  pthread_mutex_unlock(&srv->state_lock);
  return 0;
}

void ymo_server_free(ymo_server_t *srv) {
  if (srv == NULL) return;
  ymo_server_stop(srv);
  if (srv->listen_fd >= 0) {
    close(srv->listen_fd);
    if (srv->unix_owned) unlink(srv->host);
  }
  for (int i = 0; i < srv->n_workers; i++) {
    ymo__worker_destroy(srv->workers[i]);
    free(srv->workers[i]);
  }
  ymo__routes_free(&srv->routes);
  ymo__router_free(&srv->routes.router);
  ymo__tls_free(srv->tls);
  if (srv->leader != NULL) close_incoming(srv);
  free(srv->shards);
  pthread_mutex_destroy(&srv->incoming_lock);
  pthread_mutex_destroy(&srv->state_lock);
  ev_loop_destroy(srv->loop);
  ymo__conns_free(&srv->conns);
  free(srv);
}
