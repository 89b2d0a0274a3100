/**
 * Black-box tests of `serve()` over real sockets. They run unchanged under
 * `deno test -A tests/` and `bun test tests/`.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { isBun, test } from "./_shim.ts";
import { serve, type Server } from "./_target.ts";
import {
  canBind,
  deferred,
  delay,
  expectRefused,
  fetchText,
  firstDifference,
  pattern,
  RawConnection,
  rawRequest,
  requestHead,
  startServer,
  TEST_OPTIONS,
  utf8,
  withServer,
} from "./_http.ts";

const hello = () => new Response("hello");

function assertBytesEqual(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length, "body length");
  const at = firstDifference(actual, expected);
  assert.equal(at, -1, `bodies differ first at byte ${at}`);
}

// ---------------------------------------------------------------------------
// Basic requests

test("serve() answers a GET request", async () => {
  await withServer({}, (req) => {
    return new Response(`${req.method} ok`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }, async (server) => {
    const res = await fetchText(server, "/");
    assert.equal(res.status, 200);
    assert.equal(res.body, "GET ok");
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  });
});

test("serve() reports its address, port and url", async () => {
  const listened = deferred<
    { hostname: string; port: number; transport: string }
  >();
  const server = startServer(hello, {
    onListen: (addr) => listened.resolve(addr),
  });
  try {
    assert.equal(server.addr.transport, "tcp");
    assert.equal(server.addr.hostname, "127.0.0.1");
    assert.ok(server.port > 0 && server.port < 65536, `port ${server.port}`);
    assert.equal(server.addr.port, server.port);
    assert.ok(server.url instanceof URL);
    assert.equal(server.url.href, `http://127.0.0.1:${server.port}/`);
    const addr = await listened.promise;
    assert.deepEqual(
      { transport: addr.transport, hostname: addr.hostname, port: addr.port },
      { transport: "tcp", hostname: "127.0.0.1", port: server.port },
    );
    const res = await fetchText(server, "/");
    assert.equal(res.body, "hello");
  } finally {
    await server.shutdown();
  }
});

test("serve() answers HEAD with headers and Content-Length but no body", async () => {
  const methods: string[] = [];
  await withServer({}, (req) => {
    methods.push(req.method);
    const path = new URL(req.url).pathname;
    if (path === "/stream") {
      const parts = ["streamed ", "body"];
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            const p = parts.shift();
            if (p === undefined) c.close();
            else c.enqueue(utf8(p));
          },
        }),
      );
    }
    return new Response(path === "/next" ? "second" : "hello world", {
      headers: { "x-path": path },
    });
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(requestHead("HEAD", "/"));
      const head = await conn.read({ head: true });
      assert.equal(head.status, 200);
      assert.equal(head.get("content-length"), "11");
      assert.equal(head.get("x-path"), "/");
      assert.equal(head.chunked, false);
      // If the server wrongly sent the 11 body bytes, they would sit in front
      // of the next response and break its status line.
      await conn.write(requestHead("GET", "/next"));
      const next = await conn.read();
      assert.equal(next.status, 200);
      assert.equal(next.text(), "second");
      assert.equal(next.get("x-path"), "/next");
      // A streamed body must not leak its chunked framing into a HEAD reply.
      await conn.write(requestHead("HEAD", "/stream"));
      const streamed = await conn.read({ head: true });
      assert.equal(streamed.status, 200);
      await conn.write(requestHead("GET", "/next"));
      assert.equal((await conn.read()).text(), "second");
      assert.deepEqual(methods, ["HEAD", "GET", "HEAD", "GET"]);
    } finally {
      conn.destroy();
    }
  });
});

test("serve() passes request headers to the handler", async () => {
  await withServer({}, (req) => {
    return Response.json({
      custom: req.headers.get("x-custom"),
      mixedCase: req.headers.get("X-MiXeD-CaSe"),
      multi: req.headers.get("x-multi"),
      host: req.headers.get("host"),
    });
  }, async (server) => {
    const { responses } = await rawRequest(
      server.port,
      requestHead("GET", "/", [
        ["Host", "example.test"],
        ["X-Custom", "custom value"],
        ["x-mixed-case", "yes"],
        ["X-Multi", "a"],
        ["X-Multi", "b"],
      ]),
    );
    assert.equal(responses[0].status, 200);
    assert.deepEqual(JSON.parse(responses[0].text()), {
      custom: "custom value",
      mixedCase: "yes",
      multi: "a, b",
      host: "example.test",
    });
  });
});

test("serve() gives the handler the request method, path and query", async () => {
  await withServer({}, (req) => {
    const url = new URL(req.url);
    return Response.json({
      method: req.method,
      protocol: url.protocol,
      pathname: url.pathname,
      search: url.search,
      x: url.searchParams.get("x"),
      y: url.searchParams.get("y"),
    });
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      for (const method of ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
        const body = method === "PUT" || method === "PATCH";
        await conn.write(
          requestHead(
            method,
            "/some/path/here?x=1&y=two%20words",
            body ? [["Content-Length", "0"]] : [],
          ),
        );
        const res = await conn.read();
        assert.equal(res.status, 200, method);
        assert.deepEqual(JSON.parse(res.text()), {
          method,
          protocol: "http:",
          pathname: "/some/path/here",
          search: "?x=1&y=two%20words",
          x: "1",
          y: "two words",
        });
      }
    } finally {
      conn.destroy();
    }
  });
});

test("serve() gives the handler the client's address", async () => {
  const seen = deferred<
    { transport: string; hostname: string; port: number }
  >();
  await withServer({}, (_req, info) => {
    seen.resolve(info.remoteAddr);
    return new Response("ok");
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(requestHead("GET", "/"));
      assert.equal((await conn.read()).status, 200);
      const remote = await seen.promise;
      assert.equal(remote.transport, "tcp");
      assert.equal(remote.hostname, "127.0.0.1");
      assert.equal(remote.port, conn.localPort);
    } finally {
      conn.destroy();
    }
  });
});

test("serve() gives header bytes above 0x7f as Latin-1 code points, short values and long", async () => {
  // Deno.serve and Bun.serve both do: byte 0x82 is U+0082, not the
  // windows-1252 U+201A that TextDecoder("latin1") makes of it.
  const euro = Buffer.from("\u20ac", "utf8"); // e2 82 ac
  const short = Buffer.concat([euro, euro]);
  const long = Buffer.concat(Array.from({ length: 30 }, () => euro));
  const codes = (v: string | null) =>
    [...(v ?? "")].map((c) => c.charCodeAt(0));
  await withServer({}, (req) => {
    return Response.json({
      short: codes(req.headers.get("x-short")),
      long: codes(req.headers.get("x-long")),
    });
  }, async (server) => {
    const head = Buffer.concat([
      Buffer.from("GET / HTTP/1.1\r\nHost: a\r\nX-Short: "),
      short,
      Buffer.from("\r\nX-Long: "),
      long,
      Buffer.from("\r\n\r\n"),
    ]);
    const { responses } = await rawRequest(server.port, new Uint8Array(head));
    assert.equal(responses[0].status, 200);
    const got = JSON.parse(responses[0].text());
    assert.deepEqual(got.short, [...short]);
    assert.deepEqual(got.long, [...long]);
  });
});

test("serve() sends response headers set by the handler, including repeated Set-Cookie", async () => {
  await withServer({}, () => {
    const headers = new Headers({
      "x-custom": "yes",
      "content-type": "application/x-test",
    });
    headers.append("set-cookie", "a=1; Path=/");
    headers.append("set-cookie", "b=2; HttpOnly");
    return new Response("cookies", { headers });
  }, async (server) => {
    const { responses } = await rawRequest(
      server.port,
      requestHead("GET", "/"),
    );
    const res = responses[0];
    assert.equal(res.status, 200);
    assert.equal(res.get("x-custom"), "yes");
    assert.equal(res.get("content-type"), "application/x-test");
    // Set-Cookie must not be folded into one line.
    assert.deepEqual(res.getAll("set-cookie"), [
      "a=1; Path=/",
      "b=2; HttpOnly",
    ]);
    assert.equal(res.text(), "cookies");
  });
});

test("serve() adds a valid Date header", async () => {
  await withServer({}, hello, async (server) => {
    const { responses } = await rawRequest(
      server.port,
      requestHead("GET", "/"),
    );
    const date = responses[0].getAll("date");
    assert.equal(date.length, 1, "exactly one Date header");
    assert.match(
      date[0],
      /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/,
    );
    // A sanity check that the clock is the real one, not a timing assertion.
    const skew = Math.abs(Date.parse(date[0]) - Date.now());
    assert.ok(skew < 3600_000, `Date ${date[0]} is ${skew} ms from now`);
  });
});

test("serve() sends the status codes the handler chooses", async () => {
  await withServer({}, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/created") {
      return new Response("made", {
        status: 201,
        headers: { location: "/thing/1" },
      });
    }
    if (path === "/empty") return new Response(null, { status: 204 });
    return new Response("nothing here", { status: 404 });
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(requestHead("GET", "/created"));
      const created = await conn.read();
      assert.equal(created.status, 201);
      assert.equal(created.get("location"), "/thing/1");
      assert.equal(created.text(), "made");

      await conn.write(requestHead("GET", "/empty"));
      const empty = await conn.read();
      assert.equal(empty.status, 204);
      assert.equal(
        empty.get("transfer-encoding"),
        null,
        "204 must not be chunked",
      );
      assert.equal(
        empty.get("content-length"),
        null,
        "204 must not have Content-Length",
      );

      // Any stray body bytes after the 204 would corrupt this response.
      await conn.write(requestHead("GET", "/missing"));
      const missing = await conn.read();
      assert.equal(missing.status, 404);
      assert.equal(missing.text(), "nothing here");
    } finally {
      conn.destroy();
    }
  });
});

// ---------------------------------------------------------------------------
// Response bodies

test("serve() sends string, Uint8Array, ArrayBuffer, Blob, null and empty bodies", async () => {
  const bytes = pattern(1000, 7);
  await withServer({}, (req) => {
    switch (new URL(req.url).pathname) {
      case "/string":
        return new Response("héllo wörld");
      case "/uint8array":
        return new Response(bytes);
      case "/arraybuffer":
        return new Response(bytes.slice().buffer);
      case "/blob":
        return new Response(
          new Blob(["blob ", "parts"], { type: "text/x-blob" }),
        );
      case "/null":
        return new Response(null);
      case "/empty":
        return new Response("");
      default:
        return new Response("unexpected", { status: 500 });
    }
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    const get = async (path: string) => {
      await conn.write(requestHead("GET", path));
      const res = await conn.read();
      assert.equal(res.status, 200, path);
      return res;
    };
    try {
      const s = await get("/string");
      assert.equal(s.text(), "héllo wörld");
      assert.equal(s.get("content-length"), String(utf8("héllo wörld").length));

      const u = await get("/uint8array");
      assertBytesEqual(u.body, bytes);
      assert.equal(u.get("content-length"), "1000");

      const ab = await get("/arraybuffer");
      assertBytesEqual(ab.body, bytes);
      assert.equal(ab.get("content-length"), "1000");

      const blob = await get("/blob");
      assert.equal(blob.text(), "blob parts");
      assert.equal(blob.get("content-length"), "10");

      const nul = await get("/null");
      assert.equal(nul.body.length, 0);
      assert.equal(nul.get("content-length"), "0");
      assert.equal(nul.chunked, false);

      const empty = await get("/empty");
      assert.equal(empty.body.length, 0);
      assert.equal(empty.get("content-length"), "0");
      assert.equal(empty.chunked, false);
    } finally {
      conn.destroy();
    }
  });
});

test("serve() sends the Content-Type that a Response body implies", async () => {
  // Deno's Response sets these headers itself; Bun's leaves some of them to
  // the server (and drops a Blob's once the body is read), so a server that
  // runs on both must fill them in to behave the same everywhere.
  await withServer({}, (req) => {
    switch (new URL(req.url).pathname) {
      case "/string":
        return new Response("text");
      case "/blob":
        return new Response(new Blob(["blob"], { type: "text/x-blob" }));
      case "/params":
        return new Response(new URLSearchParams({ a: "1", b: "x y" }));
      case "/explicit":
        return new Response("text", {
          headers: { "content-type": "text/x-own" },
        });
      case "/explicit-default":
        // Deno keeps this one out of its header list until it is read.
        return new Response("text", {
          headers: { "content-type": "text/plain;charset=UTF-8" },
        });
      case "/json":
        return Response.json({ a: 1 });
      default:
        return new Response("unexpected", { status: 500 });
    }
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    const contentType = async (path: string) => {
      await conn.write(requestHead("GET", path));
      const res = await conn.read();
      assert.equal(res.status, 200, path);
      return res.getAll("content-type").map((v) => v.toLowerCase());
    };
    try {
      const stringType = await contentType("/string");
      // Bun's Response keeps a string body's type out of `headers` and gives
      // JavaScript no way to see it without reading the body whole, which a
      // server cannot do to a body that may be an endless stream. So on Bun
      // ymo sends no Content-Type for a bare string (known gap, README).
      if (!isBun) assert.deepEqual(stringType, ["text/plain;charset=utf-8"]);
      assert.deepEqual(await contentType("/blob"), ["text/x-blob"]);
      assert.deepEqual(await contentType("/params"), [
        "application/x-www-form-urlencoded;charset=utf-8",
      ]);
      assert.deepEqual(await contentType("/explicit"), ["text/x-own"]);
      assert.deepEqual(await contentType("/explicit-default"), [
        "text/plain;charset=utf-8",
      ]);
      // Each runtime's Response.json() picks its own (Bun adds a charset).
      assert.match((await contentType("/json"))[0] ?? "", /^application\/json/);
    } finally {
      conn.destroy();
    }
  });
});

test("serve() streams a ReadableStream body with chunked encoding", async () => {
  await withServer({}, (req) => {
    if (new URL(req.url).pathname === "/after") return new Response("after");
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i < 3) {
          await delay(5);
          controller.enqueue(utf8(`part${i}-`));
          i++;
        } else {
          controller.close();
        }
      },
    });
    return new Response(stream, { headers: { "content-type": "text/plain" } });
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(requestHead("GET", "/stream"));
      const res = await conn.read();
      assert.equal(res.status, 200);
      assert.equal(res.get("transfer-encoding"), "chunked");
      assert.equal(res.get("content-length"), null);
      assert.equal(res.chunked, true);
      assert.ok(res.chunkSizes.length >= 1);
      assert.equal(res.text(), "part0-part1-part2-");
      // The terminating chunk must leave the connection usable.
      await conn.write(requestHead("GET", "/after"));
      assert.equal((await conn.read()).text(), "after");
    } finally {
      conn.destroy();
    }
  });
});

test("serve() streams a 4 MiB ReadableStream body intact", async () => {
  const total = 4 * 1024 * 1024;
  const data = pattern(total, 42);
  await withServer({}, () => {
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) {
          controller.close();
          return;
        }
        const n = Math.min(64 * 1024, total - sent);
        controller.enqueue(data.slice(sent, sent + n));
        sent += n;
      },
    });
    return new Response(stream);
  }, async (server) => {
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(res.status, 200);
    assertBytesEqual(new Uint8Array(await res.arrayBuffer()), data);
  });
});

// ---------------------------------------------------------------------------
// Request bodies

test("serve() delivers a Content-Length request body", async () => {
  await withServer({}, async (req) => {
    const body = await req.text();
    return new Response(
      `${req.method} ${req.headers.get("content-length")} ${body}`,
    );
  }, async (server) => {
    const { responses } = await rawRequest(
      server.port,
      requestHead("POST", "/echo", [["Content-Length", "11"]]) + "hello world",
    );
    assert.equal(responses[0].status, 200);
    assert.equal(responses[0].text(), "POST 11 hello world");
  });
});

test("serve() delivers a request body sent with fetch", async () => {
  await withServer({}, async (req) => {
    return Response.json({ method: req.method, body: await req.json() });
  }, async (server) => {
    const res = await fetchText(server, "/json", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ a: [1, 2, 3], b: "ü" }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), {
      method: "POST",
      body: { a: [1, 2, 3], b: "ü" },
    });
  });
});

test("serve() delivers a chunked request body", async () => {
  await withServer({}, async (req) => {
    const body = await req.text();
    return new Response(`${req.headers.get("transfer-encoding")}|${body}`);
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(
        requestHead("POST", "/echo", [["Transfer-Encoding", "chunked"]]),
      );
      await conn.write("5\r\nhello\r\n");
      await conn.write("6;ext=1\r\n world\r\n");
      await conn.write("0\r\n\r\n");
      const res = await conn.read();
      assert.equal(res.status, 200);
      assert.equal(res.text(), "chunked|hello world");
    } finally {
      conn.destroy();
    }
  });
});

test("serve() delivers a request body through req.body", async () => {
  await withServer({}, async (req) => {
    assert.ok(req.body, "req.body is a stream");
    const reader = req.body.getReader();
    let n = 0;
    let sum = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      for (const b of value) sum = (sum + b) % 65521;
    }
    return new Response(`${n} ${sum}`);
  }, async (server) => {
    const data = pattern(200_000, 3);
    let sum = 0;
    for (const b of data) sum = (sum + b) % 65521;
    const res = await fetchText(server, "/", { method: "POST", body: data });
    assert.equal(res.status, 200);
    assert.equal(res.body, `${data.length} ${sum}`);
  });
});

test("serve() echoes a 1 MiB request body byte for byte", async () => {
  const data = pattern(1024 * 1024, 1);
  await withServer({}, async (req) => {
    return new Response(await req.arrayBuffer());
  }, async (server) => {
    const res = await fetch(`http://127.0.0.1:${server.port}/echo`, {
      method: "POST",
      body: data,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(data.length));
    assertBytesEqual(new Uint8Array(await res.arrayBuffer()), data);
  });
});

test("serve() echoes a 1 MiB chunked request body byte for byte", async () => {
  const data = pattern(1024 * 1024, 2);
  await withServer({}, async (req) => {
    return new Response(new Uint8Array(await req.arrayBuffer()));
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(
        requestHead("POST", "/echo", [["Transfer-Encoding", "chunked"]]),
      );
      // Uneven chunk sizes, so chunk and read boundaries never line up.
      for (let off = 0, k = 0; off < data.length; k++) {
        const n = Math.min(40_000 + k * 997, data.length - off);
        await conn.write(`${n.toString(16)}\r\n`);
        await conn.write(data.subarray(off, off + n));
        await conn.write("\r\n");
        off += n;
      }
      await conn.write("0\r\n\r\n");
      const res = await conn.read();
      assert.equal(res.status, 200);
      assertBytesEqual(res.body, data);
    } finally {
      conn.destroy();
    }
  });
});

// ---------------------------------------------------------------------------
// Connections

test("serve() answers 100 requests on one keep-alive connection", async () => {
  const ports = new Set<number>();
  await withServer({}, (req, info) => {
    ports.add(info.remoteAddr.port);
    return new Response(`n=${new URL(req.url).searchParams.get("n")}`);
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      for (let i = 0; i < 100; i++) {
        await conn.write(requestHead("GET", `/?n=${i}`));
        const res = await conn.read();
        assert.equal(res.status, 200);
        assert.equal(res.text(), `n=${i}`);
        assert.equal(conn.ended, false, `connection closed after request ${i}`);
      }
      assert.deepEqual([...ports], [conn.localPort]);
    } finally {
      conn.destroy();
    }
  });
});

test("serve() answers pipelined requests in request order", async () => {
  const finishedOrder: string[] = [];
  await withServer({}, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/slow") await delay(200);
    if (path === "/medium") await delay(50);
    finishedOrder.push(path);
    return new Response(`body of ${path}`, { headers: { "x-path": path } });
  }, async (server) => {
    const { responses } = await rawRequest(
      server.port,
      requestHead("GET", "/slow") + requestHead("GET", "/medium") +
        requestHead("GET", "/fast"),
      { until: 3 },
    );
    assert.deepEqual(
      responses.map((r) => [r.status, r.get("x-path"), r.text()]),
      [
        [200, "/slow", "body of /slow"],
        [200, "/medium", "body of /medium"],
        [200, "/fast", "body of /fast"],
      ],
    );
    assert.equal(finishedOrder.length, 3);
  });
});

test("serve() answers 50 pipelined requests in order", async () => {
  await withServer({}, async (req) => {
    const n = Number(new URL(req.url).searchParams.get("n"));
    // Earlier requests take longer, so any reordering would show.
    if (n % 3 === 0) await delay((50 - n) % 7);
    return new Response(`n=${n}`);
  }, async (server) => {
    let bytes = "";
    for (let n = 0; n < 50; n++) bytes += requestHead("GET", `/?n=${n}`);
    const { responses } = await rawRequest(server.port, bytes, { until: 50 });
    assert.deepEqual(
      responses.map((r) => r.text()),
      Array.from({ length: 50 }, (_, n) => `n=${n}`),
    );
  });
});

test("serve() answers pipelined requests with bodies in order", async () => {
  await withServer({}, async (req) => {
    const body = await req.text();
    if (body === "first") await delay(100);
    return new Response(`got ${body}`);
  }, async (server) => {
    const post = (body: string) =>
      requestHead("POST", "/", [["Content-Length", String(body.length)]]) +
      body;
    const { responses } = await rawRequest(
      server.port,
      post("first") + requestHead("GET", "/") + post("third"),
      { until: 3 },
    );
    assert.deepEqual(responses.map((r) => r.text()), [
      "got first",
      "got ",
      "got third",
    ]);
  });
});

test("serve() handles many connections at once", async () => {
  await withServer({}, async (req) => {
    const id = new URL(req.url).searchParams.get("id");
    await delay(Number(id) % 5);
    return new Response(`id=${id}`);
  }, async (server) => {
    const ids = Array.from({ length: 32 }, (_, i) => i);
    const results = await Promise.all(
      ids.map((id) =>
        rawRequest(server.port, requestHead("GET", `/?id=${id}`))
      ),
    );
    assert.deepEqual(
      results.map((r) => r.responses[0].text()),
      ids.map((id) => `id=${id}`),
    );
  });
});

test("serve() closes the connection after a response when the client sends Connection: close", async () => {
  await withServer({}, hello, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(requestHead("GET", "/", [["Connection", "close"]]));
      const res = await conn.read();
      assert.equal(res.status, 200);
      assert.equal(res.text(), "hello");
      const rest = await conn.closed();
      assert.equal(rest.length, 0, "nothing after the response");
    } finally {
      conn.destroy();
    }
  });
});

test("serve() answers an HTTP/1.0 request and closes the connection", async () => {
  await withServer({}, hello, async (server) => {
    const { responses, closed, trailing } = await rawRequest(
      server.port,
      "GET / HTTP/1.0\r\n\r\n",
      { until: "close" },
    );
    assert.equal(closed, true);
    assert.equal(responses.length, 1);
    assert.equal(responses[0].status, 200);
    assert.equal(responses[0].text(), "hello");
    assert.equal(trailing.length, 0);
  });
});

test("serve() does not use chunked encoding for an HTTP/1.0 client", async () => {
  await withServer({}, () => {
    const parts = ["one ", "two ", "three"];
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          const p = parts.shift();
          if (p === undefined) c.close();
          else c.enqueue(utf8(p));
        },
      }),
    );
  }, async (server) => {
    const { responses, closed } = await rawRequest(
      server.port,
      "GET / HTTP/1.0\r\n\r\n",
      { until: "close" },
    );
    assert.equal(closed, true);
    assert.equal(responses.length, 1);
    assert.equal(responses[0].get("transfer-encoding"), null);
    assert.equal(responses[0].chunked, false);
    assert.equal(responses[0].text(), "one two three");
  });
});

test("serve() answers Expect: 100-continue", async () => {
  await withServer(
    {},
    async (req) => new Response(`echo ${await req.text()}`),
    async (server) => {
      const conn = await RawConnection.open(server.port);
      try {
        await conn.write(
          requestHead("POST", "/", [["Content-Length", "5"], [
            "Expect",
            "100-continue",
          ]]),
        );
        const interim = await conn.read({ interim: true });
        assert.equal(interim.status, 100);
        await conn.write("hello");
        const res = await conn.read();
        assert.equal(res.status, 200);
        assert.equal(res.text(), "echo hello");
      } finally {
        conn.destroy();
      }
    },
  );
});

test("serve() aborts req.signal when the client goes away", async () => {
  const entered = deferred();
  const aborted = deferred();
  const giveUp = deferred();
  await withServer({}, (req) => {
    req.signal.addEventListener("abort", () => aborted.resolve());
    entered.resolve();
    return Promise.race([aborted.promise, giveUp.promise]).then(() =>
      new Response("done")
    );
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    await conn.write(requestHead("GET", "/"));
    await entered.promise;
    // Issue 10: a reset, since a FIN alone is now a half-close (RFC 9112
    // 9.6) whose request is still answered, as conformance10_test.ts pins.
    conn.reset();
    // Fail with a clear message rather than the test timeout, and let the
    // handler finish so shutdown() is not held up by it.
    const timer = setTimeout(() => giveUp.resolve(), 5_000);
    try {
      const which = await Promise.race([
        aborted.promise.then(() => "aborted"),
        giveUp.promise.then(() => "not aborted"),
      ]);
      assert.equal(
        which,
        "aborted",
        "req.signal was not aborted within 5 s of the client closing",
      );
    } finally {
      clearTimeout(timer);
      giveUp.resolve();
    }
    // The server still serves others afterwards.
    assert.equal((await fetchText(server, "/")).body, "done");
  });
});

// ---------------------------------------------------------------------------
// Handlers and errors

test("serve() awaits an async handler", async () => {
  await withServer({}, async (req) => {
    await delay(20);
    const n = await Promise.resolve(21);
    return new Response(`${req.method} ${n * 2}`);
  }, async (server) => {
    const res = await fetchText(server, "/");
    assert.equal(res.status, 200);
    assert.equal(res.body, "GET 42");
  });
});

test("serve() turns a throwing handler into a 500 and keeps serving", async () => {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    await withServer({}, (req) => {
      if (new URL(req.url).pathname === "/throw") throw new Error("sync boom");
      return new Response("fine");
    }, async (server) => {
      const bad = await fetchText(server, "/throw");
      assert.equal(bad.status, 500);
      const good = await fetchText(server, "/ok");
      assert.equal(good.status, 200);
      assert.equal(good.body, "fine");
    });
  } finally {
    console.error = original;
  }
  // The default onError logs the error.
  assert.ok(
    logged.some((args) =>
      args.some((a) =>
        String(a instanceof Error ? a.message : a).includes("sync boom")
      )
    ),
    `console.error was not called with the error: ${
      JSON.stringify(logged.map(String))
    }`,
  );
});

test("serve() turns a rejected promise into a 500 and keeps serving", async () => {
  const original = console.error;
  console.error = () => {};
  try {
    await withServer({}, async (req) => {
      await delay(1);
      if (new URL(req.url).pathname === "/reject") {
        throw new Error("async boom");
      }
      return new Response("fine");
    }, async (server) => {
      const conn = await RawConnection.open(server.port);
      try {
        await conn.write(requestHead("GET", "/reject"));
        assert.equal((await conn.read()).status, 500);
      } finally {
        conn.destroy();
      }
      const good = await fetchText(server, "/ok");
      assert.equal(good.status, 200);
      assert.equal(good.body, "fine");
    });
  } finally {
    console.error = original;
  }
});

test("serve() calls onError with the error and sends its response", async () => {
  const errors: unknown[] = [];
  const syncError = new Error("sync boom");
  const asyncError = new TypeError("async boom");
  await withServer({
    onError(error) {
      errors.push(error);
      return new Response(`handled: ${(error as Error).message}`, {
        status: 503,
      });
    },
  }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/sync") throw syncError;
    if (path === "/async") {
      await delay(1);
      throw asyncError;
    }
    return new Response("fine");
  }, async (server) => {
    const a = await fetchText(server, "/sync");
    assert.equal(a.status, 503);
    assert.equal(a.body, "handled: sync boom");
    const b = await fetchText(server, "/async");
    assert.equal(b.status, 503);
    assert.equal(b.body, "handled: async boom");
    const c = await fetchText(server, "/ok");
    assert.equal(c.status, 200);
    assert.equal(c.body, "fine");
    assert.equal(errors.length, 2);
    assert.equal(errors[0], syncError);
    assert.equal(errors[1], asyncError);
  });
});

// ---------------------------------------------------------------------------
// Call forms and argument checks

test("serve() accepts (options, handler) and ({ ...options, fetch })", async () => {
  const a = serve({ ...TEST_OPTIONS }, () => new Response("two-arg"));
  const b = serve({
    ...TEST_OPTIONS,
    fetch: () => new Response("fetch-option"),
  });
  try {
    assert.notEqual(a.port, b.port);
    const [ra, rb] = await Promise.all([fetchText(a, "/"), fetchText(b, "/")]);
    assert.equal(ra.body, "two-arg");
    assert.equal(rb.body, "fetch-option");
  } finally {
    await Promise.all([a.shutdown(), b.shutdown()]);
  }
});

test("serve(handler) listens on 0.0.0.0:8000 and logs its address", async () => {
  assert.ok(await canBind(8000), "port 8000 must be free for this test");
  // The default onListen may log to stdout or stderr (Deno.serve uses
  // stderr), so both are captured.
  const logged: unknown[][] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => logged.push(args);
  console.error = (...args: unknown[]) => logged.push(args);
  let server: Server | undefined;
  try {
    server = serve(() => new Response("default"));
    assert.equal(server.port, 8000);
    assert.equal(server.addr.hostname, "0.0.0.0");
    const res = await fetchText(server, "/");
    assert.equal(res.body, "default");
  } finally {
    console.log = log;
    console.error = error;
    await server?.shutdown();
  }
  const text = logged.map((args) => args.map(String).join(" ")).join("\n");
  assert.match(text, /Listening on http:\/\/\S*:8000/);
});

test("serve() rejects a bad port with a RangeError", () => {
  for (const port of [70000, 65536, -1, 1.5, NaN]) {
    assert.throws(
      () => serve({ ...TEST_OPTIONS, port }, hello),
      (e: unknown) => e instanceof RangeError && /port/i.test(e.message),
      `port ${port}`,
    );
  }
});

test("serve() rejects a missing or non-function handler with a TypeError", () => {
  const untyped = serve as unknown as (...args: unknown[]) => Server;
  assert.throws(() => untyped({ ...TEST_OPTIONS }), TypeError);
  assert.throws(
    () => untyped({ ...TEST_OPTIONS }, "not a function"),
    TypeError,
  );
  assert.throws(() => untyped({ ...TEST_OPTIONS, fetch: 42 }), TypeError);
  assert.throws(() => untyped(), TypeError);
});

// ---------------------------------------------------------------------------
// Lifecycle

test("shutdown() resolves, finished resolves, and the port is freed", async () => {
  const server = startServer(hello);
  const port = server.port;
  let finished = false;
  const finishedPromise = server.finished.then(() => (finished = true));
  assert.equal((await fetchText(server, "/")).body, "hello");
  // A keep-alive connection left idle must not hold shutdown up.
  const idle = await RawConnection.open(port);
  await idle.write(requestHead("GET", "/"));
  assert.equal((await idle.read()).status, 200);
  // `finished` must not resolve while the server is still serving.
  await Promise.resolve();
  assert.equal(finished, false);
  try {
    // shutdown() may be called more than once; every call resolves.
    await Promise.all([server.shutdown(), server.shutdown()]);
    await finishedPromise;
    assert.equal(finished, true);
    await expectRefused(port);
  } finally {
    idle.destroy();
  }
  // The same port can be served again.
  const again = startServer(() => new Response("again"), { port });
  try {
    assert.equal(again.port, port);
    assert.equal((await fetchText(again, "/")).body, "again");
  } finally {
    await again.shutdown();
  }
  await expectRefused(port);
  assert.equal(await canBind(port), true);
});

test("shutdown() lets an in-flight response finish", async () => {
  const entered = deferred();
  const release = deferred();
  const server = startServer(async () => {
    entered.resolve();
    await release.promise;
    return new Response("finished in flight");
  });
  const port = server.port;
  const conn = await RawConnection.open(port);
  try {
    await conn.write(requestHead("GET", "/"));
    await entered.promise;
    let stopped = false;
    const stopping = server.shutdown().then(() => (stopped = true));
    // Let shutdown begin while the handler is still waiting.
    await delay(50);
    release.resolve();
    const res = await conn.read();
    assert.equal(res.status, 200);
    assert.equal(res.text(), "finished in flight");
    await stopping;
    assert.equal(stopped, true);
    await server.finished;
    await expectRefused(port);
  } finally {
    release.resolve();
    conn.destroy();
  }
});

test("aborting the signal shuts the server down", async () => {
  const controller = new AbortController();
  const server = startServer(hello, { signal: controller.signal });
  const port = server.port;
  assert.equal((await fetchText(server, "/")).body, "hello");
  controller.abort();
  await server.finished;
  await expectRefused(port);
});

test("Symbol.asyncDispose shuts the server down", async () => {
  const server = startServer(hello);
  const port = server.port;
  assert.equal((await fetchText(server, "/")).body, "hello");
  await server[Symbol.asyncDispose]();
  await server.finished;
  await expectRefused(port);
});

test("two servers serve at the same time in one process", async () => {
  await withServer({}, () => new Response("first"), async (one) => {
    await withServer({}, () => new Response("second"), async (two) => {
      assert.notEqual(one.port, two.port);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => fetchText(i % 2 ? two : one, "/")),
      );
      assert.deepEqual(
        results.map((r) => r.body),
        Array.from({ length: 10 }, (_, i) => (i % 2 ? "second" : "first")),
      );
    });
    // The first keeps serving after the second stops.
    assert.equal((await fetchText(one, "/")).body, "first");
  });
});
