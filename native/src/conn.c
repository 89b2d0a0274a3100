/* Layer 5, the connection core: the set of open connections, and for each
 * one its reads, its FIFO of exchanges in request order, its one timer, and
 * the writes of their responses. Bytes move through the session's transport
 * (tcp.c, tls.c) and are given meaning by its protocol (http1.c,
 * websocket.c); this file calls both only through their tables. It is also
 * the drain callback that the workers' watchers call to deliver queue_out.
 * Everything here runs on L. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ring.h"
#include "websocket.h"

#define READ_BUF_SIZE 65536
#define MAX_IOV 64

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* ------------------------------------------------------------------------ */
/* Timer and reading.                                                       */

/* One ev_timer per connection, re-armed with ev_timer_again() only when the
 * connection changes state. */
void ymo__conn_arm_timer(ymo_session_t *s) {
  ymo_conns_t *c = s->conns;
  if (s->ws != NULL) return; /* WebSocket times itself (websocket.c). */
  int state;
  if (s->cur != NULL && s->cur->streaming && !s->reading)
    state = YMO_TIMER_OFF; /* Waiting for JS to read the body. */
  else if (s->cur != NULL)
    state = YMO_TIMER_HEAD;
  else if (s->fifo_head != NULL && s->fifo_head->flight_timeout_ms > 0)
    state = YMO_TIMER_FLIGHT;
  else if (s->fifo_len > 0)
    state = YMO_TIMER_OFF;
  else
    state = YMO_TIMER_IDLE;
  if (state == s->timer_state) return;
  s->timer_state = state;
  if (state == YMO_TIMER_OFF) {
    ev_timer_stop(c->loop, &s->timer);
    return;
  }
  int64_t ms = state == YMO_TIMER_HEAD     ? YMO_OPT(c, HEADER_TIMEOUT_MS)
               : state == YMO_TIMER_FLIGHT ? s->fifo_head->flight_timeout_ms
                                           : YMO_OPT(c, KEEPALIVE_TIMEOUT_MS);
  s->timer.repeat = (ev_tstamp)ms / 1000.0;
  ev_timer_again(c->loop, &s->timer);
}

void ymo__conn_touch(ymo_session_t *s) {
  if (s->timer_state == YMO_TIMER_FLIGHT)
    ev_timer_again(s->conns->loop, &s->timer);
}

/* rio runs while the protocol reads (`reading`), but not while a read
 * waits for writability, and also while a write waits for readability (see
 * the transport's `crossed`). */
/* Whether the transport holds bytes the fd will not signal. */
static bool buffered(ymo_session_t *s) {
  return s->transport->buffered != NULL && s->transport->buffered(s);
}

void ymo__conn_start_reading(ymo_session_t *s) {
  if (!s->reading && !s->closed && !s->read_eof) {
    if (!s->read_crossed) ev_io_start(s->conns->loop, &s->rio);
    s->reading = true;
    /* What the transport read ahead while reading was paused. */
    if (!s->read_crossed && buffered(s))
      ev_feed_event(s->conns->loop, &s->rio, EV_READ);
  }
}

void ymo__conn_stop_reading(ymo_session_t *s) {
  if (s->reading) {
    if (!s->write_crossed) ev_io_stop(s->conns->loop, &s->rio);
    s->reading = false;
  }
}

/* Whether an EAGAIN from the transport waits for the other readiness. */
static bool crossed(ymo_session_t *s) {
  return s->transport->crossed != NULL && s->transport->crossed(s);
}

/* Hands the result of a read (n bytes at buf, 0 for the end of stream, or
 * -1 with errno) to the protocol. */
static void got_read(ymo_session_t *s, uint8_t *buf, ssize_t n) {
  if (n > 0) {
    ymo__conn_touch(s);
    if (!s->protocol->data(s, buf, (size_t)n)) return;
    /* More is decrypted or buffered than one read took: read again in
     * this loop iteration's wake, as if the fd had said so. */
    if (s->reading && !s->read_crossed && buffered(s))
      ev_feed_event(s->conns->loop, &s->rio, EV_READ);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    if (crossed(s)) {
      /* Stop rio, which would fire on and on; on_writable reads again. */
      s->read_crossed = true;
      ev_io_stop(s->conns->loop, &s->rio);
      ev_io_start(s->conns->loop, &s->wio);
    }
    return;
  }
  if (n < 0) {
    /* A reset or another error: the client is gone; its exchanges abort. */
    ymo__conn_close(s);
    return;
  }
  /* End of stream: the client may only have shut down its sending side and
   * still wait for its responses (RFC 9112 section 9.6), as Deno.serve,
   * Bun.serve and node:http allow; the protocol decides. A client that is
   * really gone shows when a write fails, which closes as before. */
  s->read_eof = true;
  ymo__conn_stop_reading(s);
  s->protocol->eof(s);
}

static void read_once(ymo_session_t *s) {
  uint8_t *buf = s->conns->read_buf;
  got_read(s, buf, s->transport->read(s, buf, READ_BUF_SIZE));
}

/* Bytes each listed session may read in a batch: a request head fits. A
 * read that fills its slot goes on with a plain one into the loop's read
 * buffer before the protocol sees any of it, so a request is parsed from
 * as much as one plain read would have given (a body that arrived with its
 * head is not streamed for want of room). */
#define READ_SLOT 2048

/* The check watcher of batched reads (ymo_conns_t.read_batch): every
 * session found readable in this iteration, read in batches of the ring. */
static void on_read_batch(struct ev_loop *loop, ev_check *w, int revents) {
  (void)loop, (void)revents;
  ymo_conns_t *c = w->data;
  while (c->to_read != NULL) {
    ymo_session_t *sessions[YMO__RING_BATCH];
    ssize_t result[YMO__RING_BATCH];
    int n = 0;
    ymo_session_t *s = c->to_read;
    for (; s != NULL && n < YMO__RING_BATCH; s = s->read_next) {
      if (s->closed || !s->reading || s->read_crossed) {
        s->read_listed = false;
        continue;
      }
      if (ymo__ring_add_recv(c->ring, s->fd, c->read_slots + n * READ_SLOT,
                             READ_SLOT) != n)
        break;
      sessions[n++] = s;
    }
    c->to_read = s;
    if (n == 0 && s != NULL) {
      /* The ring failed: the plain way, for good. */
      for (; s != NULL; s = s->read_next) {
        s->read_listed = false;
        if (!s->closed && s->reading) read_once(s);
      }
      c->to_read = NULL;
      ymo__ring_free(c->ring);
      c->ring = NULL;
      ev_check_stop(c->loop, w);
      return;
    }
    ymo__ring_run(c->ring, result);
    c->stat_read_batches++;
    c->stat_reads += (unsigned long)n;
    for (int i = 0; i < n; i++) {
      ymo_session_t *read = sessions[i];
      read->read_listed = false;
      if (read->closed) continue;
      uint8_t *buf = c->read_slots + i * READ_SLOT;
      ssize_t got = result[i];
      errno = got < 0 ? (int)-got : 0;
      if (got == READ_SLOT) {
        memcpy(c->read_buf, buf, READ_SLOT);
        buf = c->read_buf;
        ssize_t more = read->transport->read(read, buf + READ_SLOT,
                                             READ_BUF_SIZE - READ_SLOT);
        /* An end of stream or error after the data shows on the next read
         * (the fd stays readable). */
        if (more > 0) got += more;
      }
      got_read(read, buf, got < 0 ? -1 : got);
    }
  }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  ymo_session_t *s = w->data;
  if (s->write_crossed) {
    /* A write waited for this: write first, then read if reading. */
    s->write_crossed = false;
    if (!s->reading) ev_io_stop(loop, &s->rio);
    ymo__conn_flush(s);
    if (s->closed || !s->reading || s->read_crossed) return;
  }
  ymo_conns_t *c = s->conns;
  if (c->ring != NULL) {
    /* Read with the others found readable in this iteration. */
    if (!s->read_listed) {
      s->read_listed = true;
      s->read_next = c->to_read;
      c->to_read = s;
    }
    return;
  }
  read_once(s);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  ymo_session_t *s = w->data;
  s->timer_state = YMO_TIMER_OFF;
  s->protocol->timeout(s);
}

/* ------------------------------------------------------------------------ */
/* Opening and closing.                                                     */

void ymo__conn_start(ymo_conns_t *c, int fd,
                     const struct sockaddr_storage *peer) {
  ymo_session_t *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    c->transport->close(&(ymo_session_t){.fd = fd});
    return;
  }
  s->conns = c;
  s->fd = fd;
  if (c->transport->open != NULL && !c->transport->open(s)) {
    c->transport->close(s);
    free(s);
    return;
  }
  s->transport = c->transport;
  s->protocol = c->protocol;
  s->peer = *peer;
  s->worker = c->workers[c->next_worker++ % (size_t)c->n_workers];
  ev_io_init(&s->rio, on_readable, fd, EV_READ);
  s->rio.data = s;
  ev_io_init(&s->wio, on_writable, fd, EV_WRITE);
  s->wio.data = s;
  ev_init(&s->timer, on_timeout);
  s->timer.data = s;
  s->timer_state = YMO_TIMER_OFF;
  s->protocol->open(s);
  s->next = c->sessions;
  if (c->sessions != NULL) c->sessions->prev = s;
  c->sessions = s;
  atomic_fetch_add(&c->connections, 1);
  ymo__conn_start_reading(s);
  ymo__conn_arm_timer(s);
}

/* Lets go of the pieces ex still had to write. */
static void free_out_list(ymo_exchange_t *ex) {
  ymo_out_t *out = ex->out_head;
  while (out != NULL) {
    ymo_out_t *next = out->next;
    atomic_fetch_sub_explicit(&ex->unwritten, (long long)(out->len - out->off),
                              memory_order_relaxed);
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    out = next;
  }
  ex->out_head = ex->out_tail = NULL;
}

void ymo__conn_close(ymo_session_t *s) {
  if (s->closed) return;
  s->closed = true;
  ymo_conns_t *c = s->conns;
  ymo__conn_stop_reading(s);
  ev_io_stop(c->loop, &s->wio);
  ev_timer_stop(c->loop, &s->timer);
  s->transport->close(s);
  if (s->cur != NULL) ymo__exchange_unref(s->cur);
  ymo_exchange_t *ex = s->fifo_head;
  while (ex != NULL) {
    ymo_exchange_t *next = ex->fifo_next;
    ex->session = NULL;
    atomic_store_explicit(&ex->aborted, 1, memory_order_release);
    if (!ex->local && !ex->response_done)
      ymo__worker_add_abort(ex->worker, ex);
    free_out_list(ex);
    ymo__exchange_unref(ex);
    ex = next;
  }
  s->protocol->close(s);
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    c->sessions = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  atomic_fetch_sub(&c->connections, 1);
  /* Callers up the stack may still look at s->closed: free it only after
   * this loop iteration (see ymo__conns_reap). */
  s->next = c->closed_sessions;
  c->closed_sessions = s;
  if (c->sessions == NULL && c->on_empty != NULL) c->on_empty(c->on_empty_arg);
}

void ymo__conn_fifo_push(ymo_session_t *s, ymo_exchange_t *ex) {
  ex->fifo_next = NULL;
  if (s->fifo_tail != NULL)
    s->fifo_tail->fifo_next = ex;
  else
    s->fifo_head = ex;
  s->fifo_tail = ex;
  s->fifo_len++;
}

/* ------------------------------------------------------------------------ */
/* Writing.                                                                 */

void ymo__conn_send_now(ymo_session_t *s, const void *data, size_t len) {
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  ssize_t n = s->transport->writev(s, &iov, 1);
  (void)n; /* A lost interim response only costs the client its wait. */
}

/* Drops the head exchange once its response is written. Returns false when
 * the connection was closed as a result. */
static bool finish_head(ymo_session_t *s) {
  ymo_exchange_t *ex = s->fifo_head;
  s->fifo_head = ex->fifo_next;
  if (s->fifo_head == NULL) s->fifo_tail = NULL;
  s->fifo_len--;
  bool close_now = ex->close_after;
  ex->session = NULL;
  ymo__exchange_unref(ex);
  if (close_now) {
    ymo__conn_close(s);
    return false;
  }
  return true;
}

/* Whether the transport still holds bytes it took (see `unsent`). */
static bool unsent(ymo_session_t *s) {
  return s->transport->unsent != NULL && s->transport->unsent(s);
}

/* Pushes what the transport holds; false when it must wait for
 * writability (then watched) or the connection closed. */
static bool push_unsent(ymo_session_t *s) {
  if (!unsent(s)) return true;
  if (s->transport->writev(s, NULL, 0) >= 0) return true;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    ev_io_start(s->conns->loop, &s->wio);
  else
    ymo__conn_close(s);
  return false;
}

/* Accounts for a write of `offered` bytes of ex's pieces (written bytes,
 * or -1 with errno). Returns false when flushing stops here: the socket is
 * full (then watched) or the connection closed. */
static bool wrote(ymo_session_t *s, ymo_exchange_t *ex, size_t offered,
                  ssize_t written) {
  ymo_conns_t *c = s->conns;
  if (written < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (crossed(s)) {
        /* on_readable writes again. */
        s->write_crossed = true;
        ev_io_start(c->loop, &s->rio);
      } else {
        ev_io_start(c->loop, &s->wio);
      }
      return false;
    }
    ymo__conn_close(s);
    return false;
  }
  if (written > 0) ymo__conn_touch(s);
  size_t left = (size_t)written;
  while (ex->out_head != NULL) {
    ymo_out_t *o = ex->out_head;
    size_t avail = o->len - o->off;
    size_t take = left < avail ? left : avail;
    o->off += take;
    left -= take;
    atomic_fetch_sub_explicit(&ex->unwritten, (long long)take,
                              memory_order_relaxed);
    if (o->off < o->len) break;
    ex->out_head = o->next;
    if (ex->out_head == NULL) ex->out_tail = NULL;
    ymo__out_free(o);
    ymo__exchange_unref(ex);
  }
  if (atomic_load_explicit(&ex->want_drain, memory_order_relaxed) &&
      atomic_load_explicit(&ex->unwritten, memory_order_relaxed) <=
          YMO_RESP_LOW_WATER &&
      atomic_exchange(&ex->want_drain, 0))
    ymo__worker_add_drain(ex->worker, ex);
  /* Less than offered: the socket is full. All of it, with pieces left
   * (more than one write's iovecs): write on. */
  if (ex->out_head != NULL && (size_t)written < offered) {
    ev_io_start(c->loop, &s->wio);
    return false;
  }
  return true;
}

static size_t iov_bytes(const struct iovec *iov, int n_iov) {
  size_t n = 0;
  for (int i = 0; i < n_iov; i++) n += iov[i].iov_len;
  return n;
}

/* The iovecs of ex's unwritten pieces, at most max. */
static int pieces_iov(ymo_exchange_t *ex, struct iovec *iov, int max) {
  int n_iov = 0;
  for (ymo_out_t *o = ex->out_head; o != NULL && n_iov < max; o = o->next) {
    if (o->len == o->off) continue;
    iov[n_iov].iov_base = o->data + o->off;
    iov[n_iov].iov_len = o->len - o->off;
    n_iov++;
  }
  return n_iov;
}

void ymo__conn_flush(ymo_session_t *s) {
  ymo_conns_t *c = s->conns;
  struct iovec iov[MAX_IOV];
  if (!push_unsent(s)) return;
  while (s->fifo_head != NULL) {
    ymo_exchange_t *ex = s->fifo_head;
    if (ex->out_head == NULL) {
      if (!ex->response_done) break;
      /* A close after this response waits until all of it is sent. */
      if (ex->close_after && !push_unsent(s)) return;
      if (!finish_head(s)) return;
      continue;
    }
    int n_iov = pieces_iov(ex, iov, MAX_IOV);
    ssize_t written = 0;
    if (n_iov > 0) written = s->transport->writev(s, iov, n_iov);
    if (!wrote(s, ex, iov_bytes(iov, n_iov), written)) return;
  }
  /* The protocol may close once all is written: all of it, on the
   * socket. */
  if (!push_unsent(s)) return;
  if (!s->read_crossed) ev_io_stop(c->loop, &s->wio);
  if (!s->protocol->flushed(s)) return;
  ymo__conn_arm_timer(s);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  ymo_session_t *s = w->data;
  if (s->read_crossed) {
    /* A read waited for this: read again first, if still reading. */
    s->read_crossed = false;
    if (s->reading) {
      ev_io_start(loop, &s->rio);
      read_once(s);
      if (s->closed) return;
    }
  }
  ymo__conn_flush(s);
}

/* ------------------------------------------------------------------------ */
/* The drain of queue_out: L's side of the handoff out.                     */

/* Moves an out piece into its exchange; the session is written by
 * flush_delivered() once the whole drain is delivered, so several pieces
 * for one connection go out in one writev. */
static void deliver_out(ymo_conns_t *c, ymo_out_t *out) {
  ymo_exchange_t *ex = out->exchange;
  ymo_session_t *s = ex->session;
  if (out->flags & YMO__OUT_RESUME) {
    if (s != NULL && s->cur == ex) s->protocol->resume(s);
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    return;
  }
  if (out->flags & YMO__OUT_TIMEOUT) {
    /* The new timeout is in off; a fresh deadline from now. */
    ex->flight_timeout_ms = (int64_t)out->off;
    if (s != NULL && !s->closed && s->fifo_head == ex) {
      s->timer_state = YMO_TIMER_OFF;
      ymo__conn_arm_timer(s);
    }
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    return;
  }
  if (s != NULL && (out->flags & YMO_RESP_DONE) && s->cur == ex &&
      !ex->local) {
    /* Answered before its body was all read: the rest is read and thrown
     * away (RFC 9112 section 9.3 keeps the connection usable), so reading
     * must not stay paused for a handler that no longer reads. */
    ex->response_done = true;
    s->protocol->resume(s);
  }
  if (s == NULL || ex->local || (s->ws != NULL && !ymo__websocket_out(s, out))) {
    /* The client is gone, or L answered this request itself, or it is a
     * WebSocket frame after the close frame. */
    atomic_fetch_sub_explicit(&ex->unwritten, (long long)out->len,
                              memory_order_relaxed);
    ymo__exchange_unref(ex);
    ymo__out_free(out);
    return;
  }
  if (ex->out_tail != NULL)
    ex->out_tail->next = out;
  else
    ex->out_head = out;
  ex->out_tail = out;
  ex->answer_started = true;
  if (out->flags & YMO_RESP_DONE) ex->response_done = true;
  if (out->flags & YMO_RESP_CLOSE) ex->close_after = true;
  if (ex == s->fifo_head && !s->flush_listed) {
    s->flush_listed = true;
    s->flush_next = c->to_flush;
    c->to_flush = s;
  }
  /* The 101 is on its way: the connection speaks WebSocket from here. */
  if (out->flags & YMO__OUT_UPGRADE) ymo__websocket_switch(s, ex);
}

/* The first write of up to YMO__RING_BATCH listed sessions from `list`
 * in one batch of the ring; each is then flushed on as usual from where
 * its write left it (the rest of a long output, the next pipelined
 * response, reading on). The sessions it took are no longer flush_listed.
 * Returns the session to go on from with the next batch, or NULL when
 * none is left or the ring failed (the plain writes do the rest). */
static ymo_session_t *flush_batch(ymo_conns_t *c, ymo_session_t *list) {
  ymo_session_t *sessions[YMO__RING_BATCH];
  ymo_exchange_t *heads[YMO__RING_BATCH];
  size_t offered[YMO__RING_BATCH];
  ssize_t result[YMO__RING_BATCH];
  int n = 0;
  ymo_session_t *s = list;
  for (; s != NULL; s = s->flush_next) {
    ymo_exchange_t *ex = s->fifo_head;
    if (s->closed || ex == NULL || ex->out_head == NULL) continue;
    struct iovec iov[YMO__RING_IOV];
    int n_iov = pieces_iov(ex, iov, YMO__RING_IOV);
    if (n_iov == 0) continue;
    if (ymo__ring_add_send(c->ring, s->fd, iov, n_iov) != n) break;
    sessions[n] = s;
    heads[n] = ex;
    offered[n] = iov_bytes(iov, n_iov);
    n++;
  }
  /* Stopped with none taken: the ring failed. */
  ymo_session_t *rest = n > 0 ? s : NULL;
  ymo__ring_run(c->ring, result);
  if (n > 0) c->stat_write_batches++;
  c->stat_writes += (unsigned long)n;
  for (int i = 0; i < n; i++) {
    ymo_session_t *taken = sessions[i];
    taken->flush_listed = false;
    if (taken->closed) continue;
    errno = result[i] < 0 ? (int)-result[i] : 0;
    if (wrote(taken, heads[i], offered[i], result[i] < 0 ? -1 : result[i]) &&
        !taken->closed)
      ymo__conn_flush(taken);
  }
  return rest;
}

static void flush_delivered(ymo_conns_t *c) {
  ymo_session_t *s = c->to_flush;
  c->to_flush = NULL;
  /* Several connections to write: one system call for all of them. */
  if (c->ring != NULL) {
    for (ymo_session_t *from = s; from != NULL && from->flush_next != NULL;)
      from = flush_batch(c, from);
  }
  while (s != NULL) {
    ymo_session_t *next = s->flush_next;
    /* Closed sessions stay allocated until the reaper runs, after this. */
    if (s->flush_listed && !s->closed) ymo__conn_flush(s);
    s->flush_listed = false;
    s = next;
  }
}

/* The workers' drain callback (ymo_drain_fn). */
static bool drain_out(ymo_worker_t *w, void *arg) {
  ymo_conns_t *c = arg;
  ymo_queue_node_t *list = ymo__worker_take_out(w);
  if (list == NULL) return false;
  for (ymo_queue_node_t *n = list; n != NULL; n = n->next) {
    ymo_out_t *out = n->item;
    if (out->flags & (YMO__OUT_WS_SUBSCRIBE | YMO__OUT_WS_UNSUBSCRIBE |
                      YMO__OUT_WS_PUBLISH)) {
      ymo__websocket_topic_out(c, out);
      if (out->exchange != NULL) {
        atomic_fetch_sub_explicit(&out->exchange->unwritten,
                                  (long long)out->len, memory_order_relaxed);
        ymo__exchange_unref(out->exchange);
      }
      ymo__out_free(out);
      continue;
    }
    if (out->flags & YMO__OUT_ABORT) {
      ymo_exchange_t *ex = out->exchange;
      /* What came before the abort is written first. */
      flush_delivered(c);
      if (ex->session != NULL) ymo__conn_close(ex->session);
      ymo__exchange_unref(ex);
      ymo__out_free(out);
      continue;
    }
    deliver_out(c, out);
  }
  flush_delivered(c);
  ymo__worker_recycle_out(w, list);
  return true;
}

/* ------------------------------------------------------------------------ */
/* The set.                                                                 */

int ymo__conns_init(ymo_conns_t *c) {
  ymo__out_pool_init(&c->ws_frames, NULL, YMO__WS_FRAMES_PIECE,
                     YMO__WS_FRAMES_SPARES, NULL);
  c->read_buf = malloc(READ_BUF_SIZE);
  return c->read_buf != NULL ? 0 : YMO_ENOMEM;
}

void ymo__conns_free(ymo_conns_t *c) {
  const char *stats = getenv("YMO_STATS");
  if (c->ring != NULL && stats != NULL && *stats == '1')
    fprintf(stderr,
            "ymo ring: %lu sends in %lu batches, %lu receives in %lu\n",
            c->stat_writes, c->stat_write_batches, c->stat_reads,
            c->stat_read_batches);
  ymo__ring_free(c->ring);
  c->ring = NULL;
  free(c->read_slots);
  c->read_slots = NULL;
  ymo__topics_free(c);
  ymo__out_pool_destroy(&c->ws_frames);
  free(c->read_buf);
  c->read_buf = NULL;
}

/* The ring of batched reads and writes, for plain TCP only (TLS reads and
 * writes through OpenSSL); set up once the transport is known. Without
 * one, c->ring stays NULL and every call is a plain one. */
static void start_ring(ymo_conns_t *c) {
  if (c->transport != &ymo__tcp) return;
  if (c->ring == NULL) {
    c->read_slots = malloc((size_t)YMO__RING_BATCH * READ_SLOT);
    c->ring = c->read_slots != NULL ? ymo__ring_new() : NULL;
    if (c->ring == NULL) return;
  }
  ev_check_init(&c->read_batch, on_read_batch);
  c->read_batch.data = c;
  ev_set_priority(&c->read_batch, EV_MINPRI);
  ev_check_start(c->loop, &c->read_batch);
}

void ymo__conns_attach(ymo_conns_t *c) {
  start_ring(c);
  for (int i = 0; i < c->n_workers; i++)
    ymo__worker_attach(c->workers[i], drain_out, c);
}

void ymo__conns_detach(ymo_conns_t *c) {
  if (ev_is_active(&c->read_batch)) ev_check_stop(c->loop, &c->read_batch);
  for (int i = 0; i < c->n_workers; i++) ymo__worker_detach(c->workers[i]);
}

void ymo__conns_drain(ymo_conns_t *c) {
  ymo_session_t *s = c->sessions;
  while (s != NULL) {
    ymo_session_t *next = s->next;
    s->protocol->drain(s);
    s = next;
  }
}

void ymo__conns_close_all(ymo_conns_t *c) {
  while (c->sessions != NULL) ymo__conn_close(c->sessions);
}

void ymo__conns_reap(ymo_conns_t *c) {
  ymo_session_t *s = c->closed_sessions;
  c->closed_sessions = NULL;
  while (s != NULL) {
    ymo_session_t *next = s->next;
    free(s);
    s = next;
  }
}
