/* Layer 5: the table of static routes, fixed responses that L serves itself
 * for GET and HEAD of an exact request target (ymo_server_add_static), and,
 * with automatic compression, each route compressed once per coding at
 * start, L picking the variant by the request's Accept-Encoding. The server
 * owns the table and hands it to the connections; it is immutable once the
 * loop runs. */
#include <stdlib.h>
#include <string.h>

#include "compress.h"
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

static void free_coded(ymo_static_route_t *route) {
  if (route->coded == NULL) return;
  for (int c = 0; c < YMO__N_CODINGS; c++) {
    free(route->coded[c].headers);
    /* [NONE] shares the route's body. */
    if (c != YMO__CODING_NONE) free(route->coded[c].body);
  }
  free(route->coded);
  route->coded = NULL;
}

/* One variant of route: its header lines for coding (Vary, and for a
 * coding Content-Encoding and a weak ETag) and its body so coded. */
static int make_variant(const ymo_static_route_t *route, int coding,
                        bool vary_has, ymo_static_route_t *v) {
  *v = *route;
  v->coded = NULL;
  v->headers = ymo__compress_fields(route->headers, route->headers_len,
                                    coding, vary_has, &v->headers_len);
  if (v->headers == NULL) return YMO_ENOMEM;
  if (coding != YMO__CODING_NONE) {
    v->body = ymo__compress_all(coding, route->body, route->body_len,
                                &v->body_len);
    if (v->body == NULL) return YMO_ENOMEM;
  }
  return 0;
}

int ymo__routes_compress(ymo_routes_t *t) {
  for (size_t i = 0; i < t->n_routes; i++) {
    ymo_static_route_t *route = &t->routes[i];
    /* As for a handler's response (worker.c): no body, no Vary. */
    if (route->coded != NULL || route->body_len == 0 || route->status == 204 ||
        route->status == 304)
      continue;
    ymo_compress_plan_t plan;
    ymo__compress_plan(&plan, route->status, route->headers,
                       route->headers_len);
    route->coded = calloc(YMO__N_CODINGS, sizeof(*route->coded));
    if (route->coded == NULL) return YMO_ENOMEM;
    bool compress = plan.eligible && route->body_len >= YMO__COMPRESS_MIN;
    for (int c = 0; c < (compress ? YMO__N_CODINGS : 1); c++) {
      if (make_variant(route, c, plan.vary_has, &route->coded[c]) != 0) {
        free(route->coded[c].headers);
        if (c != YMO__CODING_NONE) free(route->coded[c].body);
        route->coded[c] = (ymo_static_route_t){0};
        free_coded(route);
        return YMO_ENOMEM;
      }
    }
  }
  return 0;
}

const ymo_static_route_t *ymo__routes_pick(const ymo_static_route_t *route,
                                           const ymo_exchange_t *ex) {
  if (route == NULL || route->coded == NULL) return route;
  /* HEAD gets the identity head, as from a handler (worker.c). */
  int coding = ex->req_flags & YMO_REQF_HEAD
                   ? YMO__CODING_NONE
                   : ymo__compress_request_coding(ex);
  if (route->coded[coding].headers == NULL) coding = YMO__CODING_NONE;
  return &route->coded[coding];
}

void ymo__routes_free(ymo_routes_t *t) {
  for (size_t i = 0; i < t->n_routes; i++) {
    free_coded(&t->routes[i]);
    free(t->routes[i].path);
    free(t->routes[i].headers);
    free(t->routes[i].body);
  }
  free(t->routes);
  t->routes = NULL;
  t->n_routes = 0;
}
