/* Layer 5: batched reads and writes through io_uring (ring.h). L's, or
 * the thread that holds the loop; never two threads at once. */
#include "ring.h"

#include <stddef.h>

#ifdef YMO_HAVE_URING

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
  struct msghdr msg;
  struct iovec iov[YMO__RING_IOV];
} ring_send_t;

struct ymo_ring {
  struct io_uring uring;
  int n;
  /* A batch could not be submitted whole: what is left in the queue must
   * never go out later, so this ring takes no more calls. */
  bool broken;
  ring_send_t sends[YMO__RING_BATCH];
};

ymo_ring_t *ymo__ring_new(void) {
  const char *off = getenv("YMO_NO_URING");
  if (off != NULL && *off == '1') return NULL;
  ymo_ring_t *ring = calloc(1, sizeof(*ring));
  if (ring == NULL) return NULL;
  if (io_uring_queue_init(YMO__RING_BATCH, &ring->uring, 0) != 0) {
    free(ring);
    return NULL;
  }
  return ring;
}

void ymo__ring_free(ymo_ring_t *ring) {
  if (ring == NULL) return;
  io_uring_queue_exit(&ring->uring);
  free(ring);
}

/* The next entry of the batch, or NULL when it is full. */
static struct io_uring_sqe *next_sqe(ymo_ring_t *ring) {
  if (ring->broken || ring->n == YMO__RING_BATCH) return NULL;
  return io_uring_get_sqe(&ring->uring);
}

int ymo__ring_add_recv(ymo_ring_t *ring, int fd, void *buf, size_t len) {
  struct io_uring_sqe *sqe = next_sqe(ring);
  if (sqe == NULL) return -1;
  int index = ring->n++;
  io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, (uint64_t)index);
  return index;
}

int ymo__ring_add_send(ymo_ring_t *ring, int fd, const struct iovec *iov,
                       int n_iov) {
  if (n_iov < 1 || n_iov > YMO__RING_IOV) return -1;
  struct io_uring_sqe *sqe = next_sqe(ring);
  if (sqe == NULL) return -1;
  int index = ring->n++;
  ring_send_t *w = &ring->sends[index];
  memcpy(w->iov, iov, (size_t)n_iov * sizeof(*iov));
  memset(&w->msg, 0, sizeof(w->msg));
  w->msg.msg_iov = w->iov;
  w->msg.msg_iovlen = (size_t)n_iov;
  /* MSG_DONTWAIT: a full socket answers -EAGAIN at once, as send() does,
   * rather than the ring waiting for it to drain. MSG_NOSIGNAL: a client
   * that left raises no SIGPIPE. */
  io_uring_prep_sendmsg(sqe, fd, &w->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, (uint64_t)index);
  return index;
}

void ymo__ring_run(ymo_ring_t *ring, ssize_t *result) {
  int n = ring->n;
  ring->n = 0;
  if (n == 0) return;
  /* A send that never went out reads as a full socket: the connection
   * then waits for writability and writes it the plain way. */
  for (int i = 0; i < n; i++) result[i] = -EAGAIN;
  int submitted;
  do {
    submitted = io_uring_submit_and_wait(&ring->uring, (unsigned)n);
  } while (submitted == -EINTR);
  if (submitted < n) ring->broken = true;
  for (int done = 0; done < submitted;) {
    struct io_uring_cqe *cqe;
    int err = io_uring_wait_cqe(&ring->uring, &cqe);
    if (err == -EINTR) continue;
    if (err != 0) {
      /* Whether these sends happened is unknown: their connections end
       * rather than risk sending bytes twice. */
      for (int i = 0; i < n; i++)
        if (result[i] == -EAGAIN) result[i] = -EIO;
      ring->broken = true;
      break;
    }
    uint64_t index = io_uring_cqe_get_data64(cqe);
    if (index < (uint64_t)n) result[index] = cqe->res;
    io_uring_cqe_seen(&ring->uring, cqe);
    done++;
  }
}

#else /* Built without liburing: plain reads and writes only. */

ymo_ring_t *ymo__ring_new(void) { return NULL; }
void ymo__ring_free(ymo_ring_t *ring) { (void)ring; }
int ymo__ring_add_send(ymo_ring_t *ring, int fd, const struct iovec *iov,
                       int n_iov) {
  (void)ring, (void)fd, (void)iov, (void)n_iov;
  return -1;
}
int ymo__ring_add_recv(ymo_ring_t *ring, int fd, void *buf, size_t len) {
  (void)ring, (void)fd, (void)buf, (void)len;
  return -1;
}
void ymo__ring_run(ymo_ring_t *ring, ssize_t *result) {
  (void)ring, (void)result;
}

#endif
