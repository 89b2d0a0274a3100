/* Layer 5, WebSocket pub/sub on L (websocket.h): which sessions subscribe
 * to which topic, in a hash table the connection set owns. A publish is
 * framed once on the publishing JS thread; L copies the frame behind each
 * subscriber's output, whichever worker its connection belongs to, so no
 * JavaScript runs per subscriber. A topic with no subscriber left is freed,
 * so topic names cannot pile up. */
#include <stdlib.h>
#include <string.h>

#include "websocket.h"

struct ymo_topic {
  struct ymo_topic *next; /* In its bucket. */
  ymo_session_t **subs;
  size_t n_subs, cap_subs;
  size_t len;
  uint8_t name[];
};

struct ymo_topics {
  ymo_topic_t **buckets;
  size_t n_buckets, count;
};

static uint64_t hash(const uint8_t *p, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static ymo_topic_t **slot_of(struct ymo_topics *t, const uint8_t *name,
                             size_t len) {
  ymo_topic_t **at = &t->buckets[hash(name, len) & (t->n_buckets - 1)];
  while (*at != NULL &&
         ((*at)->len != len || memcmp((*at)->name, name, len) != 0))
    at = &(*at)->next;
  return at;
}

static bool grow(struct ymo_topics *t) {
  size_t n = t->n_buckets ? t->n_buckets * 2 : 64;
  ymo_topic_t **buckets = calloc(n, sizeof(*buckets));
  if (buckets == NULL) return false;
  for (size_t i = 0; i < t->n_buckets; i++) {
    ymo_topic_t *topic = t->buckets[i];
    while (topic != NULL) {
      ymo_topic_t *next = topic->next;
      size_t b = hash(topic->name, topic->len) & (n - 1);
      topic->next = buckets[b];
      buckets[b] = topic;
      topic = next;
    }
  }
  free(t->buckets);
  t->buckets = buckets;
  t->n_buckets = n;
  return true;
}

/* Appends p to a growable array of pointers. */
static bool push(void ***items, size_t *n, size_t *cap, void *p) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 4;
    void **grown = realloc(*items, c * sizeof(*grown));
    if (grown == NULL) return false;
    *items = grown;
    *cap = c;
  }
  (*items)[(*n)++] = p;
  return true;
}

/* Removes p (if there) by moving the last item into its place. */
static bool drop(void **items, size_t *n, const void *p) {
  for (size_t i = 0; i < *n; i++) {
    if (items[i] == p) {
      items[i] = items[--*n];
      return true;
    }
  }
  return false;
}

static void free_topic(struct ymo_topics *t, ymo_topic_t *topic) {
  ymo_topic_t **at = slot_of(t, topic->name, topic->len);
  *at = topic->next;
  t->count--;
  free(topic->subs);
  free(topic);
}

bool ymo__topics_subscribe(ymo_conns_t *c, ymo_session_t *s,
                           const uint8_t *name, size_t len) {
  ymo_ws_conn_t *ws = s->ws;
  if (c->topics == NULL) {
    c->topics = calloc(1, sizeof(*c->topics));
    if (c->topics == NULL) return false;
  }
  struct ymo_topics *t = c->topics;
  if (t->count >= t->n_buckets && !grow(t)) return false;
  ymo_topic_t **at = slot_of(t, name, len);
  ymo_topic_t *topic = *at;
  if (topic == NULL) {
    topic = calloc(1, sizeof(*topic) + len);
    if (topic == NULL) return false;
    memcpy(topic->name, name, len);
    topic->len = len;
    *at = topic;
    t->count++;
  }
  for (size_t i = 0; i < ws->n_topics; i++)
    if (ws->topics[i] == topic) return true; /* Already. */
  if (!push((void ***)&topic->subs, &topic->n_subs, &topic->cap_subs, s)) {
    if (topic->n_subs == 0) free_topic(t, topic);
    return false;
  }
  if (!push((void ***)&ws->topics, &ws->n_topics, &ws->cap_topics, topic)) {
    drop((void **)topic->subs, &topic->n_subs, s);
    if (topic->n_subs == 0) free_topic(t, topic);
    return false;
  }
  return true;
}

static void leave(struct ymo_topics *t, ymo_session_t *s, ymo_topic_t *topic) {
  drop((void **)topic->subs, &topic->n_subs, s);
  if (topic->n_subs == 0) free_topic(t, topic);
}

void ymo__topics_unsubscribe(ymo_conns_t *c, ymo_session_t *s,
                             const uint8_t *name, size_t len) {
  ymo_ws_conn_t *ws = s->ws;
  if (c->topics == NULL || c->topics->n_buckets == 0) return;
  ymo_topic_t *topic = *slot_of(c->topics, name, len);
  if (topic == NULL ||
      !drop((void **)ws->topics, &ws->n_topics, topic))
    return;
  leave(c->topics, s, topic);
}

void ymo__topics_leave_all(ymo_conns_t *c, ymo_session_t *s) {
  ymo_ws_conn_t *ws = s->ws;
  for (size_t i = 0; i < ws->n_topics; i++) leave(c->topics, s, ws->topics[i]);
  free(ws->topics);
  ws->topics = NULL;
  ws->n_topics = ws->cap_topics = 0;
}

size_t ymo__topics_each(ymo_conns_t *c, const uint8_t *name, size_t len,
                        void (*fn)(ymo_session_t *s, void *arg), void *arg) {
  if (c->topics == NULL || c->topics->n_buckets == 0) return 0;
  ymo_topic_t *topic = *slot_of(c->topics, name, len);
  if (topic == NULL) return 0;
  /* fn may close a session, which leaves its topics: walk a copy. */
  size_t n = topic->n_subs;
  ymo_session_t *one[64];
  ymo_session_t **subs = n <= 64 ? one : malloc(n * sizeof(*subs));
  if (subs == NULL) return 0;
  memcpy(subs, topic->subs, n * sizeof(*subs));
  for (size_t i = 0; i < n; i++)
    if (!subs[i]->closed) fn(subs[i], arg);
  if (subs != one) free(subs);
  return n;
}

void ymo__topics_free(ymo_conns_t *c) {
  struct ymo_topics *t = c->topics;
  if (t == NULL) return;
  for (size_t i = 0; i < t->n_buckets; i++) {
    ymo_topic_t *topic = t->buckets[i];
    while (topic != NULL) {
      ymo_topic_t *next = topic->next;
      free(topic->subs);
      free(topic);
      topic = next;
    }
  }
  free(t->buckets);
  free(t);
  c->topics = NULL;
}
