/* Layer 5: batched reads and writes through io_uring. The connections
 * found readable in one loop iteration are read in one io_uring_enter, and
 * when a drain gives output to many connections, their first writes go in
 * one more, instead of a recv or a send each: on this project's machines a
 * system call costs about 1 us, as much as a small request's share of
 * everything else (see the benchmarks in README.md). Optional: built only
 * with liburing, and a ring that cannot be set up (an old kernel,
 * io_uring_disabled, a seccomp filter, YMO_NO_URING=1) means plain calls. */
#ifndef YMO_RING_H
#define YMO_RING_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Calls one batch holds, and iovecs per write (the rest of a longer
 * output goes in the plain write that follows, conn.c). */
#define YMO__RING_BATCH 256
#define YMO__RING_IOV 8

typedef struct ymo_ring ymo_ring_t;

/* A ring, or NULL when batched calls are not available here. */
ymo_ring_t *ymo__ring_new(void);
void ymo__ring_free(ymo_ring_t *ring);

/* Adds a non-blocking send of iov (n_iov at most YMO__RING_IOV; the iovecs
 * are copied, the bytes they point at must stay until ymo__ring_run
 * returns) on fd. Returns its index in the batch, or -1 when the batch is
 * full. */
int ymo__ring_add_send(ymo_ring_t *ring, int fd, const struct iovec *iov,
                       int n_iov);
/* Adds a non-blocking receive of up to len bytes into buf on fd (buf must
 * stay until ymo__ring_run returns). Returns its index, or -1 when the
 * batch is full. */
int ymo__ring_add_recv(ymo_ring_t *ring, int fd, void *buf, size_t len);
/* Runs the batch and waits for every result: bytes sent or received (0:
 * the peer's end of stream), or -errno (-EAGAIN for a full socket, or
 * nothing to read: nothing waits), into result[index]. The batch is empty
 * again on return. */
void ymo__ring_run(ymo_ring_t *ring, ssize_t *result);

#endif /* YMO_RING_H */
