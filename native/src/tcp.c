/* Layer 5, a transport: plain TCP, the session's fd used as it is. TLS will
 * be another file with a table of the same shape. */
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

/* recv and send rather than read and write: the socket calls skip the file
 * layer (about 0.1 us each in pinned perf profiles against Deno.serve). */
static ssize_t tcp_read(ymo_session_t *s, uint8_t *buf, size_t cap) {
  return recv(s->fd, buf, cap, 0);
}

/* MSG_NOSIGNAL: a client that went away must not raise SIGPIPE in a host
 * that does not ignore it. One piece, the usual whole response, goes with
 * send, which copies no msghdr and iovec in from user space. */
static ssize_t tcp_writev(ymo_session_t *s, const struct iovec *iov,
                          int n_iov) {
  if (n_iov == 1)
    return send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                       .msg_iovlen = (size_t)n_iov};
  return sendmsg(s->fd, &msg, MSG_NOSIGNAL);
}

static void tcp_close(ymo_session_t *s) { close(s->fd); }

const ymo_transport_t ymo__tcp = {
    .read = tcp_read,
    .writev = tcp_writev,
    .close = tcp_close,
};
