/* Layer 6, the top: the server. It owns the loop, the listening socket, the
 * options, the static routes, the workers and the set of connections, and
 * hands each layer below what it needs. */
#ifndef YMO_SERVER_H
#define YMO_SERVER_H

#include "conn.h"
#include "tls.h"

struct ymo_server {
  struct ev_loop *loop;
  pthread_t thread;
  bool thread_started;
  bool joined;
  pthread_mutex_t state_lock;  /* Serialises start/stop/join callers. */

  int listen_fd;
  int port;                    /* Saved at listen; never changes after. */
  char host[108];              /* The bound address (or unix path), likewise. */
  bool unix_owned;             /* host is a socket file ymo made: removed
                                  when the listener closes. */
  ev_io accept_watcher;
  ev_async control;            /* Shutdown and stop requests. */
  ev_timer grace_timer;
  atomic_int draining;         /* Set once; read by JS threads too. */
  atomic_int stop_now;
  bool finished;               /* The loop broke for shutdown (whoever ran it). */
  atomic_int grace_ms;

  int64_t options[16];         /* Indexed by enum ymo_option. */
  ymo_routes_t routes;         /* Immutable once started. */
  ymo_tls_t *tls;              /* HTTPS when set; immutable once started. */
  char tls_error[256];         /* OpenSSL's words for the last TLS error. */
  ymo_conns_t conns;           /* L only, but for conns.connections. */
  ev_prepare reaper;

  /* One listener for several loops (ymo_server_add_shard): the leader
   * accepts every connection and deals them round-robin to itself and its
   * shards, each with its own loop thread and worker, so a JS thread per
   * loop can borrow its loop like a server's only worker. */
  ymo_server_t **shards;       /* Leader: its shards, n_shards of them. */
  int n_shards;
  unsigned next_shard;         /* Leader's L only. */
  ymo_server_t *leader;        /* Shard: who deals it connections. */
  bool accepting;              /* L: takes new connections (until drain). */
  /* Shard: connections dealt and not yet started, under incoming_lock;
   * the leader signals incoming_ready. Once incoming_closed, what comes is
   * closed at once. */
  pthread_mutex_t incoming_lock;
  struct ymo_dealt *incoming;
  size_t n_incoming, cap_incoming;
  bool incoming_closed;
  ev_async incoming_ready;

  int n_workers;
  ymo_worker_t *workers[];
};

#endif /* YMO_SERVER_H */
