/* Layer 1, the bottom: the library's version and the pooled FIFO queue
 * (queue.c). Nothing here knows HTTP, exchanges or threads; every other
 * internal header includes this one. Never installed and never seen by the
 * FFI: symbols declared in the internal headers have hidden visibility (the
 * default for this library), whatever their prefix. */
#ifndef YMO_BASE_H
#define YMO_BASE_H

#include <stdbool.h>
#include <stddef.h>

#include "ymo.h"

#define YMO_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------------------
 * Queue: a FIFO of pointers with a preallocated node pool. Not thread-safe by
 * itself: each queue is protected by the lock of the struct that owns it.
 * ------------------------------------------------------------------------- */
typedef struct ymo_queue_node {
  struct ymo_queue_node *next;
  void *item;
  bool from_pool;
} ymo_queue_node_t;

typedef struct ymo_queue {
  ymo_queue_node_t *head;
  ymo_queue_node_t *tail;
  ymo_queue_node_t *free_nodes; /* Unused pool nodes. */
  size_t count;
} ymo_queue_t;

void ymo__queue_init(ymo_queue_t *q, ymo_queue_node_t *pool, size_t n);
/* Appends item; uses a pool node if one is free, else the heap. Returns 0 or
 * YMO_ENOMEM (only when the heap fails too); an item is never dropped. */
int ymo__queue_push(ymo_queue_t *q, void *item);
/* Removes and returns the first item, or NULL when empty. */
void *ymo__queue_pop(ymo_queue_t *q);
/* Detaches the whole list (for draining outside the lock); the caller walks
 * it and gives the nodes back with ymo__queue_recycle() under the lock. */
ymo_queue_node_t *ymo__queue_take_all(ymo_queue_t *q);
void ymo__queue_recycle(ymo_queue_t *q, ymo_queue_node_t *list);
/* Frees heap nodes; pool nodes belong to the owner's storage. */
void ymo__queue_destroy(ymo_queue_t *q);

#endif /* YMO_BASE_H */
