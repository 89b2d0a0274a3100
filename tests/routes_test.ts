// Bun's `routes` option, on both runtimes: exact paths, `:params` (decoded,
// on `request.params`), wildcards, per-method handler objects, Response
// values and `false`, with Bun's precedence (exact, then parameters, then
// wildcards), `fetch` as the fallback and 404 without one. C matches the
// path (native/src/router.c), so requests are also sent raw, with dot
// segments and backslashes that fetch() would have cleaned up.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import { rawRequest, requestHead } from "./_http.ts";
import { serve, type Server } from "../mod.ts";
import { decodeParam } from "../server/_routes.ts";

const QUIET = { hostname: "127.0.0.1", port: 0, onListen() {} };

async function call(server: Server, path: string, init?: RequestInit) {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, init);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** The body a raw request gets, the path sent exactly as given. */
async function raw(server: Server, method: string, path: string) {
  const { responses } = await rawRequest(
    server.port,
    requestHead(method, path),
    { methods: [method] },
  );
  return { status: responses[0].status, body: responses[0].text() };
}

/** What every route handler of the precedence test answers: its name and
 * its params. */
const tag = (name: string) => (req: Request & { params?: unknown }) =>
  Response.json({ name, params: req.params });

async function withRoutes(
  options: Record<string, unknown>,
  fn: (server: Server) => Promise<void>,
) {
  const server = serve({ ...QUIET, ...options } as never);
  try {
    await fn(server);
  } finally {
    await server.shutdown();
  }
}

test("routes: exact before parameters before wildcards, fetch for the rest", async () => {
  await withRoutes({
    routes: {
      "/api/users/me": tag("me"),
      "/api/users/:id": tag("user"),
      "/api/users/:id/posts/:post": tag("post"),
      "/api/*": tag("api"),
      "/*": tag("all"),
    },
    fetch: () => new Response("fetch"),
  }, async (server) => {
    const json = async (path: string) =>
      JSON.parse((await call(server, path)).body);
    assert.deepEqual(await json("/api/users/me"), { name: "me", params: {} });
    assert.deepEqual(await json("/api/users/42"), {
      name: "user",
      params: { id: "42" },
    });
    assert.deepEqual(await json("/api/users/42/posts/7?x=1"), {
      name: "post",
      params: { id: "42", post: "7" },
    });
    assert.deepEqual(await json("/api/other/deep/path"), {
      name: "api",
      params: {},
    });
    // A parameter takes one non-empty segment: "/api/users/" is the
    // wildcard's.
    assert.equal((await json("/api/users/")).name, "api");
    assert.equal((await json("/elsewhere")).name, "all");
    assert.equal((await json("/")).name, "all");
  });
});

test("routes: without a catch-all, unmatched requests go to fetch, or get 404 without one", async () => {
  await withRoutes({
    routes: { "/a": () => new Response("a") },
    fetch: (req: Request) => new Response(`fetch ${new URL(req.url).pathname}`),
  }, async (server) => {
    assert.equal((await call(server, "/a")).body, "a");
    assert.equal((await call(server, "/b")).body, "fetch /b");
    // "/a/*" is not "/a", and "/a" is not "/a/".
    assert.equal((await call(server, "/a/")).body, "fetch /a/");
  });
  await withRoutes({
    routes: { "/a": () => new Response("a") },
  }, async (server) => {
    assert.equal((await call(server, "/a")).body, "a");
    const missing = await call(server, "/b");
    assert.equal(missing.status, 404);
  });
});

test("routes: per-method handlers; GET answers HEAD; other methods fall through", async () => {
  await withRoutes({
    routes: {
      "/items/:id": {
        GET: (req: Request & { params: Record<string, string> }) =>
          new Response(`get ${req.params.id}`),
        POST: async (req: Request & { params: Record<string, string> }) =>
          new Response(`post ${req.params.id} ${await req.text()}`),
        DELETE: false,
      },
      "/items/*": () => new Response("items wildcard"),
    },
    fetch: (req: Request) => new Response(`fetch ${req.method}`),
  }, async (server) => {
    assert.equal((await call(server, "/items/3")).body, "get 3");
    assert.equal(
      (await call(server, "/items/3", { method: "POST", body: "x" })).body,
      "post 3 x",
    );
    const head = await call(server, "/items/3", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal(head.headers.get("content-length"), "5");
    // PUT has no handler here: the less specific wildcard takes it.
    assert.equal(
      (await call(server, "/items/3", { method: "PUT" })).body,
      "items wildcard",
    );
    // `false` sends the request to fetch, past the wildcard.
    assert.equal(
      (await call(server, "/items/3", { method: "DELETE" })).body,
      "fetch DELETE",
    );
  });
});

test("routes: a Response is served for every method; at an exact path C serves GET itself", async () => {
  await withRoutes({
    routes: {
      "/health": new Response("OK", { headers: { "x-kind": "health" } }),
      "/files/:name": new Response("a file"),
      "/json": { GET: Response.json({ ok: true }) },
    },
    fetch: () => new Response("fetch"),
  }, async (server) => {
    for (let i = 0; i < 2; i++) {
      const got = await call(server, "/health");
      assert.equal(got.body, "OK");
      assert.equal(got.headers.get("x-kind"), "health");
    }
    assert.equal(
      (await call(server, "/health", { method: "POST", body: "" })).body,
      "OK",
    );
    assert.equal((await call(server, "/files/x")).body, "a file");
    assert.equal((await call(server, "/files/y")).body, "a file");
    assert.deepEqual(JSON.parse((await call(server, "/json")).body), {
      ok: true,
    });
    assert.equal(
      (await call(server, "/json", { method: "POST", body: "" })).body,
      "fetch",
    );
  });
});

test("routes: params are percent-decoded as UTF-8, bad bytes as U+FFFD", async () => {
  await withRoutes({
    routes: { "/p/:value": tag("p") },
  }, async (server) => {
    const param = async (raw: string) =>
      JSON.parse((await call(server, `/p/${raw}`)).body).params.value;
    assert.equal(await param("a%20b"), "a b");
    assert.equal(await param("caf%C3%A9"), "caf\u00e9");
    assert.equal(await param("%E2%82%AC"), "\u20ac");
    assert.equal(await param("%2F"), "/");
    assert.equal(await param("bad%FF"), "bad\ufffd");
    assert.equal(await param("100%"), "100%");
  });
  assert.equal(decodeParam("plain"), "plain");
  assert.equal(decodeParam("%zz%4"), "%zz%4");
  assert.equal(decodeParam("%41%42"), "AB");
});

test("routes: dot segments and backslashes are resolved before matching, as the URL parser does", async () => {
  await withRoutes({
    routes: {
      "/admin": () => new Response("admin"),
      "/public/:file": tag("public"),
    },
    fetch: (req: Request) => new Response(`fetch ${new URL(req.url).pathname}`),
  }, async (server) => {
    assert.equal((await raw(server, "GET", "/public/../admin")).body, "admin");
    assert.equal(
      (await raw(server, "GET", "/public/%2e%2E/admin")).body,
      "admin",
    );
    assert.equal((await raw(server, "GET", "/./admin")).body, "admin");
    assert.equal(
      JSON.parse((await raw(server, "GET", "/public\\x.txt")).body).params.file,
      "x.txt",
    );
    // ".." above the root stays at the root.
    assert.equal((await raw(server, "GET", "/../../admin")).body, "admin");
    // A trailing dot segment leaves an empty last segment: no route.
    assert.equal(
      (await raw(server, "GET", "/public/x/..")).body,
      "fetch /public/",
    );
    // Absolute-form targets are routed by their path.
    assert.equal(
      (await raw(server, "GET", "http://127.0.0.1/admin")).body,
      "admin",
    );
  });
});

test("routes: a bad route is a TypeError naming it", () => {
  const cases: [unknown, RegExp][] = [
    [{ "nope": () => new Response() }, /"nope" is not a path pattern/],
    [
      { "/a/*/b": () => new Response() },
      /"\/a\/\*\/b" has "\*" before its end/,
    ],
    [{ "/a/:": () => new Response() }, /bad parameter ":"/],
    [{ "/a/:x/:x": () => new Response() }, /repeats the parameter "x"/],
    [{ "/a": 42 }, /"\/a" must be a function, a Response or false/],
    [{ "/a": { GET: "x" } }, /"\/a" GET must be a function/],
    [{ "/a": { "G E T": () => new Response() } }, /bad method name "G E T"/],
    [{ "/a": {} }, /"\/a" has no methods/],
    ["routes", /expected an object of routes/],
  ];
  for (const [routes, message] of cases) {
    assert.throws(
      () => serve({ ...QUIET, routes } as never),
      (e: Error) => e instanceof TypeError && message.test(e.message),
      String(message),
    );
  }
  // Without routes, a handler is still required.
  assert.throws(() => serve({ ...QUIET } as never), TypeError);
});
