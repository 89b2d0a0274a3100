/* Layer 5: the table of static routes, fixed responses that L serves itself
 * for GET and HEAD of an exact request target (ymo_server_add_static). The
 * server owns the table and hands it to the connections; it is immutable
 * once the loop runs. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

int ymo__routes_add(ymo_routes_t *t, const char *path, int status,
                    const uint8_t *headers, size_t headers_len,
                    const uint8_t *body, size_t body_len) {
  ymo_static_route_t route = {0};
  route.path_len = strlen(path);
  route.path = malloc(route.path_len + 1);
  route.headers = malloc(headers_len + 1);
  route.body = malloc(body_len + 1);
  ymo_static_route_t *routes =
      realloc(t->routes, (t->n_routes + 1) * sizeof(*routes));
  if (routes != NULL) t->routes = routes;
  if (route.path == NULL || route.headers == NULL || route.body == NULL ||
      routes == NULL) {
    free(route.path);
    free(route.headers);
    free(route.body);
    return YMO_ENOMEM;
  }
  memcpy(route.path, path, route.path_len + 1);
  route.status = status;
  if (headers_len > 0) memcpy(route.headers, headers, headers_len);
  route.headers_len = headers_len;
  if (body_len > 0) memcpy(route.body, body, body_len);
  route.body_len = body_len;
  /* Newest first, so a later route for the same path wins. */
  memmove(t->routes + 1, t->routes, t->n_routes * sizeof(*routes));
  t->routes[0] = route;
  t->n_routes++;
  return 0;
}

const ymo_static_route_t *ymo__routes_find(const ymo_routes_t *t,
                                           const uint8_t *target, size_t len) {
  for (size_t i = 0; i < t->n_routes; i++) {
    const ymo_static_route_t *r = &t->routes[i];
    if (r->path_len == len && memcmp(r->path, target, len) == 0) return r;
  }
  return NULL;
}

void ymo__routes_free(ymo_routes_t *t) {
  for (size_t i = 0; i < t->n_routes; i++) {
    free(t->routes[i].path);
    free(t->routes[i].headers);
    free(t->routes[i].body);
  }
  free(t->routes);
  t->routes = NULL;
  t->n_routes = 0;
}
