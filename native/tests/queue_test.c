/* ymo__queue_*: the FIFO behind queue_in and queue_out. It must keep order,
 * fall back to the heap when its node pool runs out (never dropping an
 * item), give pool nodes back to the pool, and hand over a whole list for
 * draining outside the lock. */
#include "test_util.h"
#include "ymo_internal.h"

#define POOL YMO_WORKER_QUEUE_POOL_SIZE

static ymo_queue_node_t pool[POOL];

static bool in_pool(const ymo_queue_node_t *n) {
  return n >= pool && n < pool + POOL;
}

static size_t free_count(const ymo_queue_t *q) {
  size_t n = 0;
  for (const ymo_queue_node_t *f = q->free_nodes; f != NULL; f = f->next) {
    CHECKF(in_pool(f), "a heap node sits on the free list");
    n++;
  }
  return n;
}

static void *item(uintptr_t i) { return (void *)(i * 8 + 8); }

static void test_fifo_order(void) {
  ymo_queue_t q;
  ymo__queue_init(&q, pool, POOL);
  CHECK_EQ(free_count(&q), POOL);
  CHECK(ymo__queue_pop(&q) == NULL);
  for (uintptr_t i = 0; i < 10; i++) CHECK_OK(ymo__queue_push(&q, item(i)));
  CHECK_EQ(q.count, 10);
  for (uintptr_t i = 0; i < 5; i++) CHECK(ymo__queue_pop(&q) == item(i));
  /* Interleaved pushes keep their place behind the earlier items. */
  for (uintptr_t i = 10; i < 15; i++) CHECK_OK(ymo__queue_push(&q, item(i)));
  for (uintptr_t i = 5; i < 15; i++) CHECK(ymo__queue_pop(&q) == item(i));
  CHECK(ymo__queue_pop(&q) == NULL);
  CHECK_EQ(q.count, 0);
  CHECK(q.head == NULL && q.tail == NULL);
  CHECK_EQ(free_count(&q), POOL); /* Every node went back. */
  ymo__queue_destroy(&q);
}

static void test_pool_exhaustion(void) {
  ymo_queue_t q;
  ymo__queue_init(&q, pool, POOL);
  const uintptr_t n = POOL * 3 + 7;
  for (uintptr_t i = 0; i < n; i++) CHECK_OK(ymo__queue_push(&q, item(i)));
  CHECK_EQ(q.count, n);
  CHECK_EQ(free_count(&q), 0);
  /* The first POOL items use pool nodes, the rest heap nodes. */
  size_t pooled = 0, heap = 0;
  for (ymo_queue_node_t *node = q.head; node != NULL; node = node->next) {
    CHECK_EQ(node->from_pool, in_pool(node));
    if (in_pool(node))
      pooled++;
    else
      heap++;
  }
  CHECK_EQ(pooled, POOL);
  CHECK_EQ(heap, n - POOL);
  /* None dropped, order kept. */
  for (uintptr_t i = 0; i < n; i++) {
    void *got = ymo__queue_pop(&q);
    CHECKF(got == item(i), "pop %lu: got %p, want %p", (unsigned long)i, got,
           item(i));
  }
  CHECK(ymo__queue_pop(&q) == NULL);
  /* Pool nodes are back on the free list; heap nodes were freed (ASan's
   * leak check would see them otherwise). */
  CHECK_EQ(free_count(&q), POOL);
  /* And the pool is used again first. */
  CHECK_OK(ymo__queue_push(&q, item(1)));
  CHECK(in_pool(q.head));
  CHECK(ymo__queue_pop(&q) == item(1));
  ymo__queue_destroy(&q);
}

static void test_take_all_and_recycle(void) {
  ymo_queue_t q;
  ymo__queue_init(&q, pool, POOL);
  CHECK(ymo__queue_take_all(&q) == NULL);
  const uintptr_t n = POOL + 40;
  for (uintptr_t i = 0; i < n; i++) CHECK_OK(ymo__queue_push(&q, item(i)));
  ymo_queue_node_t *list = ymo__queue_take_all(&q);
  /* The queue is empty and usable while the list is out. */
  CHECK_EQ(q.count, 0);
  CHECK(q.head == NULL && q.tail == NULL);
  CHECK(ymo__queue_pop(&q) == NULL);
  CHECK_OK(ymo__queue_push(&q, item(1000))); /* Heap: the pool is all out. */
  CHECK(!q.head->from_pool);
  uintptr_t i = 0;
  for (ymo_queue_node_t *node = list; node != NULL; node = node->next, i++)
    CHECK(node->item == item(i));
  CHECK_EQ(i, n);
  ymo__queue_recycle(&q, list);
  CHECK_EQ(free_count(&q), POOL);
  CHECK_EQ(q.count, 1);
  CHECK(ymo__queue_pop(&q) == item(1000));
  /* Recycling an empty list is a no-op. */
  ymo__queue_recycle(&q, NULL);
  CHECK_EQ(free_count(&q), POOL);
  /* Destroy frees heap nodes still queued. */
  for (uintptr_t k = 0; k < POOL + 5; k++) CHECK_OK(ymo__queue_push(&q, item(k)));
  ymo__queue_destroy(&q);
  CHECK_EQ(q.count, 0);
  CHECK(q.head == NULL);
}

/* Two threads through one queue under a mutex, as L and a worker use it:
 * a producer pushing past the pool and a consumer draining with take_all
 * and recycling; every item arrives once, in order. */
typedef struct {
  ymo_queue_t q;
  pthread_mutex_t lock;
  uintptr_t n;
} shared_t;

static void *producer(void *arg) {
  shared_t *s = arg;
  for (uintptr_t i = 0; i < s->n; i++) {
    pthread_mutex_lock(&s->lock);
    CHECK_OK(ymo__queue_push(&s->q, item(i)));
    pthread_mutex_unlock(&s->lock);
  }
  return NULL;
}

static void test_two_threads(void) {
  shared_t s;
  ymo__queue_init(&s.q, pool, POOL);
  pthread_mutex_init(&s.lock, NULL);
  s.n = 200000;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, producer, &s) == 0);
  uintptr_t next = 0;
  while (next < s.n) {
    pthread_mutex_lock(&s.lock);
    ymo_queue_node_t *list = ymo__queue_take_all(&s.q);
    pthread_mutex_unlock(&s.lock);
    for (ymo_queue_node_t *node = list; node != NULL; node = node->next) {
      CHECKF(node->item == item(next), "item %lu out of order",
             (unsigned long)next);
      next++;
    }
    pthread_mutex_lock(&s.lock);
    ymo__queue_recycle(&s.q, list);
    pthread_mutex_unlock(&s.lock);
    if (list == NULL) sched_yield();
  }
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_EQ(free_count(&s.q), POOL);
  ymo__queue_destroy(&s.q);
  pthread_mutex_destroy(&s.lock);
}

int main(void) {
  test_deadline(50);
  test_fifo_order();
  test_pool_exhaustion();
  test_take_all_and_recycle();
  test_two_threads();
  puts("queue_test: ok");
  return 0;
}
