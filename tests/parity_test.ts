// A Deno.serve app and a Bun.serve app run on ymo unchanged: both handler
// shapes and option spellings, the platform's error for a busy port, and a
// TypeError naming every option ymo does not know or does not have yet.
import assert from "node:assert/strict";
import { isBun, test } from "./_shim.ts";
import { serve, type ServeHandlerInfo, type Server } from "../mod.ts";

const QUIET = { hostname: "127.0.0.1", onListen() {} };

async function get(server: Server, path: string, init?: RequestInit) {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, init);
  return { status: res.status, body: await res.text() };
}

test("serve() refuses an unknown option with a TypeError naming it", () => {
  assert.throws(
    () => serve({ ...QUIET, port: 0, bogus: 1 } as never, () => new Response()),
    (e: Error) =>
      e instanceof TypeError && /Unknown option: bogus/.test(e.message),
  );
});

test("serve() refuses TLS options it does not have or that are incomplete, and bad websocket handlers, saying which", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ cert: "x" }, /Invalid options: cert needs key/],
    [
      { tls: { cert: "x", key: "y", requestCert: true } },
      /Unsupported option: tls.requestCert/,
    ],
    [{ websocket: {} }, /Invalid websocket.message: expected a function/],
    [
      { websocket: { message() {}, bogus: 1 } },
      /Unknown option: websocket.bogus/,
    ],
    [{ transport: "unix" }, /Invalid transport: unix/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => serve({ ...QUIET, port: 0, ...options }, () => new Response()),
      (e: Error) => e instanceof TypeError && message.test(e.message),
      JSON.stringify(options),
    );
  }
});

test("serve() takes the port as a numeric string, as Bun does, and refuses other strings", async () => {
  const server = serve({ ...QUIET, port: "0" }, () => new Response("ok"));
  try {
    assert.ok(server.port > 0);
    assert.equal((await get(server, "/")).body, "ok");
  } finally {
    await server.shutdown();
  }
  assert.throws(
    () => serve({ ...QUIET, port: "eighty" }, () => new Response()),
    RangeError,
  );
});

test("a busy port throws the platform's error: Deno.errors.AddrInUse on Deno, code EADDRINUSE on both", async () => {
  const first = serve({ ...QUIET, port: 0 }, () => new Response());
  try {
    let caught: unknown;
    try {
      serve({ ...QUIET, port: first.port }, () => new Response()).shutdown();
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof Error, String(caught));
    assert.equal((caught as { code?: string }).code, "EADDRINUSE");
    assert.match(
      caught.message,
      new RegExp(
        `Cannot listen on 127\\.0\\.0\\.1:${first.port}: address already in use`,
      ),
    );
    if (!isBun) {
      const deno = (globalThis as unknown as {
        Deno: { errors: { AddrInUse: new () => Error } };
      }).Deno;
      assert.ok(caught instanceof deno.errors.AddrInUse);
    }
  } finally {
    await first.shutdown();
  }
});

test("a Bun.serve app runs unchanged: fetch(req, server), error, maxRequestBodySize, idleTimeout, server.stop()", async () => {
  let stopped = false;
  const server = serve({
    ...QUIET,
    port: "0",
    idleTimeout: 5,
    maxRequestBodySize: 16,
    fetch(req, server) {
      const path = new URL(req.url).pathname;
      if (path === "/throw") throw new Error("on purpose");
      if (path === "/stop") {
        server.stop().then(() => stopped = true);
        return new Response("stopping");
      }
      const ip = server.requestIP(req);
      return new Response(
        `${ip?.address} ${ip?.family} ${typeof ip?.port} ${server.port} ` +
          `${server.hostname} ${server.url.port} ${server.pendingRequests}`,
      );
    },
    error(error) {
      return new Response(`error: ${(error as Error).message}`, {
        status: 500,
      });
    },
  });
  const ok = await get(server, "/");
  assert.equal(
    ok.body,
    `127.0.0.1 IPv4 number ${server.port} 127.0.0.1 ${server.port} 1`,
  );
  assert.deepEqual(await get(server, "/throw"), {
    status: 500,
    body: "error: on purpose",
  });
  const big = await get(server, "/", { method: "POST", body: "x".repeat(17) });
  assert.equal(big.status, 413);
  assert.equal((await get(server, "/stop")).body, "stopping");
  await server.finished;
  await Promise.resolve();
  assert.equal(stopped, true);
});

test("a Deno.serve app runs unchanged: { handler }, info.remoteAddr and info.completed", async () => {
  let completed: Promise<void> | undefined;
  let seen: ServeHandlerInfo["remoteAddr"] | undefined;
  const server = serve({
    ...QUIET,
    port: 0,
    handler(_req, info) {
      seen = info.remoteAddr;
      completed = info.completed;
      return new Response("deno style");
    },
  });
  try {
    assert.equal((await get(server, "/")).body, "deno style");
    assert.equal(seen?.transport, "tcp");
    assert.equal(seen?.hostname, "127.0.0.1");
    assert.ok(seen!.port > 0);
    await completed; // Resolves once the response was handed over.
  } finally {
    await server.shutdown();
  }
});

test("a Response is sent once, as by Deno.serve and Bun.serve: then it is used, and sending it again answers 500", async () => {
  // Each kind of fixed body the runtimes keep aside, and a stream.
  const makers: [string, () => Response][] = [
    ["string", () => new Response("once")],
    [
      "string with headers",
      () => new Response("once", { headers: { "x-a": "1" } }),
    ],
    ["bytes", () => new Response(new TextEncoder().encode("once"))],
    ["json", () => Response.json("once")],
    ["stream", () => new Response(new Blob(["once"]).stream())],
  ];
  for (const [kind, make] of makers) {
    const response = make();
    const server = serve({
      ...QUIET,
      port: 0,
      onError: () => new Response("refused", { status: 500 }),
    }, () => response);
    try {
      const first = await get(server, "/");
      assert.equal(first.status, 200, kind);
      assert.match(first.body, /once/, kind);
      assert.equal(response.bodyUsed, true, kind);
      await assert.rejects(response.text(), TypeError, kind);
      assert.deepEqual(
        await get(server, "/"),
        { status: 500, body: "refused" },
        kind,
      );
    } finally {
      await server.shutdown();
    }
  }
});

test("Server has Bun's members too: hostname, requestIP(), pendingRequests, stop(true)", async () => {
  let addressOf: string | null | undefined;
  const server: Server = serve({ ...QUIET, port: 0 }, (req) => {
    addressOf = server.requestIP(req)?.address;
    return new Response("ok");
  });
  assert.equal(server.hostname, "127.0.0.1");
  assert.equal(server.pendingRequests, 0);
  assert.equal(server.requestIP(new Request("http://x/")), null);
  await get(server, "/");
  assert.equal(addressOf, "127.0.0.1");
  await server.stop(true);
});

test("stop(true) aborts the signal of a request whose response is still streaming", async () => {
  let aborted = false;
  const server: Server = serve({ ...QUIET, port: 0 }, (req) => {
    req.signal.addEventListener("abort", () => (aborted = true));
    // One chunk, then nothing: the response never ends by itself.
    return new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode("x"));
        },
      }),
    );
  });
  // The first chunk has reached the client: the response is under way.
  const res = await fetch(`http://127.0.0.1:${server.port}/`);
  const reader = res.body!.getReader();
  assert.equal((await reader.read()).value?.byteLength, 1);
  await server.stop(true);
  for (let i = 0; i < 100 && !aborted; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(aborted, true, "request.signal aborted by stop(true)");
  await reader.read().catch(() => {});
});

test("serve() refuses two spellings of one option at once", () => {
  const h = () => new Response();
  for (
    const options of [
      { onError: h, error: h },
      { maxBodySize: 1, maxRequestBodySize: 1 },
      { keepAliveTimeout: 1000, idleTimeout: 1 },
    ]
  ) {
    assert.throws(
      () => serve({ ...QUIET, port: 0, ...options }, h),
      TypeError,
      JSON.stringify(Object.keys(options)),
    );
  }
  assert.throws(
    () => serve({ ...QUIET, port: 0, fetch: h, handler: h } as never),
    TypeError,
  );
});

test("server.timeout(req, s): a request idle that long loses its connection; 0 and other requests are left alone", async () => {
  const { rawRequest, requestHead } = await import("./_http.ts");
  // The handler whose connection timed out sees its signal abort (C tells
  // JS after the close, so the test waits for it).
  let sawAbort!: () => void;
  const aborted = new Promise<void>((resolve) => sawAbort = resolve);
  const server = serve({
    ...QUIET,
    port: 0,
    async fetch(req, server) {
      const path = new URL(req.url).pathname;
      if (path === "/bad") {
        const errors: string[] = [];
        for (const seconds of [-1, NaN, Infinity, "1"] as unknown[]) {
          try {
            server.timeout(req, seconds as number);
          } catch (e) {
            errors.push((e as Error).name);
          }
        }
        // Someone else's Request is ignored.
        server.timeout(new Request("http://x/"), 1);
        return new Response(errors.join(","));
      }
      if (path === "/quick") {
        server.timeout(req, 1);
        return new Response("quick");
      }
      // Nothing is sent: the connection goes idle, then is closed.
      server.timeout(req, 1);
      await new Promise<void>((resolve) =>
        req.signal.addEventListener("abort", () => resolve())
      );
      sawAbort();
      return new Response("too late");
    },
  });
  try {
    assert.equal(
      (await get(server, "/bad")).body,
      "RangeError,RangeError,RangeError,TypeError",
    );
    // A response that went out leaves the connection to keep-alive.
    const quick = await rawRequest(
      server.port,
      requestHead("GET", "/quick") + requestHead("GET", "/quick"),
      { until: 2 },
    );
    assert.deepEqual(quick.responses.map((r) => r.text()), ["quick", "quick"]);
    assert.equal(quick.closed, false);
    const idle = await rawRequest(server.port, requestHead("GET", "/idle"), {
      until: "close",
    });
    assert.equal(idle.responses.length, 0);
    assert.equal(idle.closed, true);
    await aborted;
  } finally {
    await server.shutdown();
  }
});
