/* Layer 1: the pooled FIFO queue behind the worker's queue_in and queue_out,
 * backed by a preallocated node pool and falling back to the heap when the
 * pool runs out, so no item is ever dropped. Callers hold the owning lock
 * around every call. */
#include <stdlib.h>

#include "base.h"

void ymo__queue_init(ymo_queue_t *q, ymo_queue_node_t *pool, size_t n) {
  q->head = q->tail = NULL;
  q->free_nodes = NULL;
  q->count = 0;
  for (size_t i = 0; i < n; i++) {
    pool[i].from_pool = true;
    pool[i].next = q->free_nodes;
    q->free_nodes = &pool[i];
  }
}

int ymo__queue_push(ymo_queue_t *q, void *item) {
  ymo_queue_node_t *node = q->free_nodes;
  if (node != NULL) {
    q->free_nodes = node->next;
  } else {
    node = malloc(sizeof(*node));
    if (node == NULL) return YMO_ENOMEM;
    node->from_pool = false;
  }
  node->item = item;
  node->next = NULL;
  if (q->tail != NULL)
    q->tail->next = node;
  else
    q->head = node;
  q->tail = node;
  q->count++;
  return 0;
}

static void recycle_one(ymo_queue_t *q, ymo_queue_node_t *node) {
  if (node->from_pool) {
    node->next = q->free_nodes;
    q->free_nodes = node;
  } else {
    free(node);
  }
}

void *ymo__queue_pop(ymo_queue_t *q) {
  ymo_queue_node_t *node = q->head;
  if (node == NULL) return NULL;
  q->head = node->next;
  if (q->head == NULL) q->tail = NULL;
  q->count--;
  void *item = node->item;
  recycle_one(q, node);
  return item;
}

ymo_queue_node_t *ymo__queue_take_all(ymo_queue_t *q) {
  ymo_queue_node_t *list = q->head;
  q->head = q->tail = NULL;
  q->count = 0;
  return list;
}

void ymo__queue_recycle(ymo_queue_t *q, ymo_queue_node_t *list) {
  while (list != NULL) {
    ymo_queue_node_t *next = list->next;
    recycle_one(q, list);
    list = next;
  }
}

void ymo__queue_destroy(ymo_queue_t *q) {
  ymo__queue_recycle(q, ymo__queue_take_all(q));
}
