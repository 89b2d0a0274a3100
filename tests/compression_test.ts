// serve({ automaticCompression: true }): responses compressed in C by the
// request's Accept-Encoding, with Deno.serve's rules.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { isBun, test } from "./_shim.ts";
import { serve, type ServeOptions, type Server } from "../mod.ts";
import {
  deferred,
  delay,
  RawConnection,
  type RawResponse,
  requestHead,
} from "./_http.ts";

const encoder = new TextEncoder();
const TEXT = "The quick brown fox jumps over the lazy dog. ".repeat(100);
const JSON_BODY = JSON.stringify(
  Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })),
);
const ON: ServeOptions = { automaticCompression: true };

/** Runs fn against a ymo server on a loopback port, then shuts it down. */
async function withServer(
  options: ServeOptions,
  handler: (req: Request) => Response,
  fn: (server: Server) => Promise<void>,
): Promise<void> {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...options },
    handler,
  );
  try {
    await fn(server);
  } finally {
    await server.shutdown();
  }
}

/** A text Response with its type said outright: Bun keeps a bare string's
 * implied type out of `headers`, where ymo cannot see it (README, known
 * gaps), and an untyped response is never compressed. */
function text(body: string, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  if (!headers.has("content-type")) {
    headers.set("content-type", "text/plain;charset=UTF-8");
  }
  return new Response(body, { ...init, headers });
}

/** The routes the tests ask for, by path. */
function app(req: Request): Response {
  const path = new URL(req.url).pathname;
  switch (path) {
    case "/bare":
      return new Response(TEXT);
    case "/text":
      return text(TEXT);
    case "/json":
      return Response.json(JSON.parse(JSON_BODY));
    case "/small":
      return text("tiny");
    case "/png":
      return text(TEXT, { headers: { "content-type": "image/png" } });
    case "/no-transform":
      return text(TEXT, {
        headers: { "cache-control": "public, no-transform" },
      });
    case "/encoded":
      return text(TEXT, { headers: { "content-encoding": "gzip" } });
    case "/etag":
      return text(TEXT, { headers: { etag: '"v1"' } });
    case "/weak-etag":
      return text(TEXT, { headers: { etag: 'W/"v1"' } });
    case "/vary":
      return text(TEXT, { headers: { vary: "Origin" } });
    case "/vary-ae":
      return text(TEXT, { headers: { vary: "accept-encoding" } });
    case "/range":
      return text(TEXT.slice(0, 100), {
        status: 206,
        headers: { "content-range": `bytes 0-99/${TEXT.length}` },
      });
    case "/empty":
      return new Response(null, { status: 204 });
    default:
      return new Response("not found", { status: 404 });
  }
}

/** One GET (or HEAD) of path with the given Accept-Encoding. */
async function get(
  port: number,
  path: string,
  acceptEncoding?: string,
  method = "GET",
): Promise<RawResponse> {
  const conn = await RawConnection.open(port);
  try {
    const headers: [string, string][] = acceptEncoding === undefined
      ? []
      : [["Accept-Encoding", acceptEncoding]];
    await conn.write(requestHead(method, path, headers));
    return await conn.read({ head: method === "HEAD" });
  } finally {
    conn.destroy();
  }
}

/** The body decoded by its Content-Encoding, with node:zlib. */
function decode(res: RawResponse): string {
  const body = res.body;
  const coding = res.get("content-encoding");
  const bytes = coding === "gzip"
    ? zlib.gunzipSync(body)
    : coding === "br"
    ? zlib.brotliDecompressSync(body)
    : coding === "deflate"
    ? zlib.inflateSync(body)
    : body;
  return new TextDecoder().decode(bytes);
}

/** Asserts res came with `coding` (null: none), the right length, and the
 * original bytes once decoded. */
function assertCoded(
  res: RawResponse,
  coding: string | null,
  original = TEXT,
): void {
  assert.equal(res.status, 200);
  assert.equal(res.get("content-encoding"), coding);
  assert.equal(res.get("content-length"), String(res.body.length));
  if (coding !== null) assert.ok(res.body.length < original.length);
  assert.equal(decode(res), original);
}

test("automaticCompression: gzip, br and deflate each decode to the body", async () => {
  await withServer(ON, app, async (server) => {
    const gzip = await get(server.port, "/text", "gzip");
    assertCoded(gzip, "gzip");
    assert.equal(gzip.get("vary"), "Accept-Encoding");
    assertCoded(await get(server.port, "/text", "br"), "br");
    assertCoded(await get(server.port, "/text", "deflate"), "deflate");
    // What browsers send: br first.
    assertCoded(await get(server.port, "/text", "gzip, deflate, br"), "br");
    const json = await get(server.port, "/json", "gzip, deflate, br, zstd");
    assertCoded(json, "br", JSON_BODY);
    // A bare string's implied text/plain: seen on Deno; on Bun the type is
    // hidden, so the response is untyped and left alone, as Deno.serve
    // leaves an untyped one.
    const bare = await get(server.port, "/bare", "gzip");
    assertCoded(bare, isBun ? null : "gzip");
  });
});

test("automaticCompression: Accept-Encoding q-values, identity and *", async () => {
  await withServer(ON, app, async (server) => {
    const cases: [string | undefined, string | null][] = [
      ["gzip;q=0.5, br;q=0.8, deflate", "deflate"],
      ["br;q=0, gzip", "gzip"],
      ["BR ; q=0.9 , GZIP;q=0.9", "br"],
      ["deflate, gzip", "gzip"],
      ["gzip;q=0", null],
      ["*", "br"],
      ["*;q=0.5, br;q=0", "gzip"],
      ["*;q=0", null],
      ["identity", null],
      ["identity;q=1, gzip;q=0.5", null],
      ["x-gzip", "gzip"],
      ["zstd, compress", null],
      ["", null],
      [undefined, null],
    ];
    for (const [accept, coding] of cases) {
      const res = await get(server.port, "/text", accept);
      assert.equal(
        res.get("content-encoding"),
        coding,
        `Accept-Encoding: ${accept}`,
      );
      assertCoded(res, coding);
      assert.equal(res.get("vary"), "Accept-Encoding");
    }
  });
});

test("automaticCompression: responses that must not be compressed", async () => {
  await withServer(ON, app, async (server) => {
    const all = "gzip, deflate, br";
    // Cache-Control: no-transform forbids it.
    const nt = await get(server.port, "/no-transform", all);
    assertCoded(nt, null);
    // Already encoded: sent as it is, not encoded twice.
    const enc = await get(server.port, "/encoded", all);
    assert.equal(enc.get("content-encoding"), "gzip");
    assert.equal(enc.text(), TEXT);
    // A range is a range of the identity body.
    const range = await get(server.port, "/range", all);
    assert.equal(range.status, 206);
    assert.equal(range.get("content-encoding"), null);
    assert.equal(range.text(), TEXT.slice(0, 100));
    // Not a compressible type.
    const png = await get(server.port, "/png", all);
    assertCoded(png, null);
    // Below 64 bytes, left alone, still marked as varying.
    const small = await get(server.port, "/small", all);
    assert.equal(small.get("content-encoding"), null);
    assert.equal(small.text(), "tiny");
    assert.equal(small.get("vary"), "Accept-Encoding");
    // No body.
    const empty = await get(server.port, "/empty", all);
    assert.equal(empty.status, 204);
    assert.equal(empty.get("content-encoding"), null);
    assert.equal(empty.body.length, 0);
    // HEAD: no body to compress; the same Vary as GET.
    const head = await get(server.port, "/text", all, "HEAD");
    assert.equal(head.get("content-encoding"), null);
    assert.equal(head.get("vary"), "Accept-Encoding");
    assert.equal(head.body.length, 0);
  });
});

test("automaticCompression: ETag made weak, Vary merged", async () => {
  await withServer(ON, app, async (server) => {
    const strong = await get(server.port, "/etag", "gzip");
    assertCoded(strong, "gzip");
    assert.equal(strong.get("etag"), 'W/"v1"');
    // Not compressed: the strong ETag stays.
    assert.equal((await get(server.port, "/etag")).get("etag"), '"v1"');
    const weak = await get(server.port, "/weak-etag", "gzip");
    assert.equal(weak.get("etag"), 'W/"v1"');
    const vary = await get(server.port, "/vary", "br");
    assertCoded(vary, "br");
    assert.equal(vary.get("vary"), "Accept-Encoding, Origin");
    const already = await get(server.port, "/vary-ae", "br");
    assertCoded(already, "br");
    assert.deepEqual(already.getAll("vary"), ["accept-encoding"]);
  });
});

test("automaticCompression: off by default, and only a boolean", async () => {
  await withServer({}, app, async (server) => {
    const res = await get(server.port, "/text", "gzip, deflate, br");
    assertCoded(res, null);
    assert.equal(res.get("vary"), null);
  });
  assert.throws(
    () =>
      serve(
        { port: 0, automaticCompression: "yes" as unknown as boolean },
        app,
      ),
    TypeError,
  );
});

/** Bytes of the first chunk of a chunked body at the start of raw (the
 * bytes after the head), or null while it has not all come. */
function firstChunk(raw: Uint8Array): Uint8Array | null {
  const text = new TextDecoder("latin1").decode(raw);
  const head = text.indexOf("\r\n\r\n");
  if (head < 0) return null;
  const line = text.indexOf("\r\n", head + 4);
  if (line < 0) return null;
  const size = parseInt(text.slice(head + 4, line), 16);
  const start = line + 2;
  if (raw.length < start + size) return null;
  return raw.subarray(start, start + size);
}

for (const coding of ["gzip", "br", "deflate"]) {
  test(`automaticCompression: a streamed body is ${coding}-compressed as it streams`, async () => {
    const go = deferred();
    const first = "first piece of the stream, ".repeat(10);
    const second = "second piece, after the client saw the first. ".repeat(10);
    const handler = () =>
      new Response(
        new ReadableStream({
          async start(c) {
            c.enqueue(encoder.encode(first));
            await go.promise;
            c.enqueue(encoder.encode(second));
            c.close();
          },
        }),
        { headers: { "content-type": "text/plain" } },
      );
    await withServer(ON, handler, async (server) => {
      const conn = await RawConnection.open(server.port);
      try {
        await conn.write(
          requestHead("GET", "/", [["Accept-Encoding", coding]]),
        );
        // The first piece arrives, decodable, before the stream ends.
        let chunk: Uint8Array | null = null;
        for (let i = 0; i < 500 && chunk === null; i++) {
          chunk = firstChunk(conn.pending);
          if (chunk === null) await delay(10);
        }
        assert.ok(chunk !== null, "the first piece did not arrive");
        const flush = coding === "br"
          ? { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }
          : { finishFlush: zlib.constants.Z_SYNC_FLUSH };
        const partial = coding === "gzip"
          ? zlib.gunzipSync(chunk, flush)
          : coding === "br"
          ? zlib.brotliDecompressSync(chunk, flush)
          : zlib.inflateSync(chunk, flush);
        assert.equal(new TextDecoder().decode(partial), first);
        go.resolve();
        const res = await conn.read();
        assert.equal(res.chunked, true);
        assert.equal(res.get("content-encoding"), coding);
        assert.equal(res.get("vary"), "Accept-Encoding");
        assert.equal(res.get("content-length"), null);
        assert.equal(decode(res), first + second);
      } finally {
        go.resolve();
        conn.destroy();
      }
    });
  });
}

test("automaticCompression: static routes are compressed once, picked per request", async () => {
  let calls = 0;
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    automaticCompression: true,
    static: {
      "/page": text(TEXT, { headers: { etag: '"p1"' } }),
      "/tiny": text("tiny"),
      "/png": text(TEXT, { headers: { "content-type": "image/png" } }),
    },
  }, () => {
    calls++;
    return new Response("dynamic");
  });
  try {
    // The server starts once its static bodies are read: wait for it.
    let res: RawResponse | undefined;
    for (let i = 0; i < 100; i++) {
      res = await get(server.port, "/page", "gzip");
      if (res.get("content-encoding") !== null) break;
      await delay(10);
    }
    assertCoded(res!, "gzip");
    assert.equal(res!.get("vary"), "Accept-Encoding");
    assert.equal(res!.get("etag"), 'W/"p1"');
    assertCoded(await get(server.port, "/page", "gzip, deflate, br"), "br");
    assertCoded(await get(server.port, "/page", "deflate"), "deflate");
    const plain = await get(server.port, "/page", "gzip;q=0");
    assertCoded(plain, null);
    assert.equal(plain.get("vary"), "Accept-Encoding");
    assert.equal(plain.get("etag"), '"p1"');
    assertCoded(await get(server.port, "/page"), null);
    const head = await get(server.port, "/page", "gzip", "HEAD");
    assert.equal(head.get("content-encoding"), null);
    assert.equal(head.get("content-length"), String(TEXT.length));
    assert.equal(head.get("vary"), "Accept-Encoding");
    const tiny = await get(server.port, "/tiny", "gzip");
    assert.equal(tiny.get("content-encoding"), null);
    assert.equal(tiny.text(), "tiny");
    assertCoded(await get(server.port, "/png", "gzip"), null);
    assert.equal(calls, 0);
  } finally {
    await server.shutdown();
  }
});

// Deno's own serve tests on compression (tests/unit/serve_test.ts,
// compressionTestCases): a streamed body of `length` bytes of 0x01 with the
// handler's own Content-Length, and the coding each Accept-Encoding gets.
const DENO_CASES: {
  name: string;
  length: number;
  accept?: string;
  out: Record<string, string>;
  expect: string | null;
}[] = [
  { name: "Empty", length: 0, out: {}, expect: null },
  { name: "EmptyAcceptGzip", length: 0, accept: "gzip", out: {}, expect: null },
  { name: "Incompressible", length: 1024, out: {}, expect: null },
  {
    name: "IncompressibleAcceptGzip",
    length: 1024,
    accept: "gzip",
    out: {},
    expect: null,
  },
  {
    name: "IncompressibleType",
    length: 1024,
    accept: "gzip",
    out: { "Content-Type": "text/fake" },
    expect: null,
  },
  ...([
    ["CompressibleType", "gzip", "gzip"],
    ["CompressibleType2", "gzip, deflate, br", "br"],
    ["CompressibleType3", "br", "br"],
    ["CompressibleTypeChrome", "gzip, deflate, br, zstd", "br"],
    ["CompressibleTypeUnsupportedToken", "br, compress", "br"],
    ["RefusedCompression", "br;q=0, gzip;q=0", null],
    ["CompressionSubstring", "xbr, gzipx", null],
    ["BadHeader", "\x81", null],
  ] as const).map(([name, accept, expect]) => ({
    name,
    length: 1024,
    accept,
    out: { "Content-Type": "text/plain" },
    expect,
  })),
  ...([
    ["IncompressibleRange", { "Content-Range": "1" }],
    ["IncompressibleCE", { "Content-Encoding": "random" }],
    ["IncompressibleCC", { "Cache-Control": "no-transform" }],
  ] as const).map(([name, extra]) => ({
    name,
    length: 1024,
    accept: "gzip",
    out: { "Content-Type": "text/plain", ...extra },
    expect: null,
  })),
];

test("automaticCompression: Deno.serve's compression cases", async () => {
  let current = DENO_CASES[0];
  const handler = () =>
    new Response(
      new ReadableStream({
        start(c) {
          if (current.length > 0) {
            c.enqueue(new Uint8Array(current.length).fill(1));
          }
          c.close();
        },
      }),
      {
        headers: {
          ...current.out,
          "Content-Length": String(current.length),
        },
      },
    );
  await withServer(ON, handler, async (server) => {
    for (const c of DENO_CASES) {
      current = c;
      const res = await get(server.port, "/", c.accept);
      const what = `${c.name} (Accept-Encoding: ${c.accept})`;
      assert.equal(res.status, 200, what);
      assert.equal(
        res.get("content-encoding"),
        c.expect ?? c.out["Content-Encoding"] ?? null,
        what,
      );
      if (c.out["Content-Encoding"] !== undefined) continue;
      const body = c.expect === null ? res.body : zlibDecode(res);
      assert.equal(body.length, c.length, what);
      assert.ok(body.every((b) => b === 1), what);
      if (res.get("content-length") !== null) {
        assert.equal(res.get("content-length"), String(res.body.length), what);
      }
    }
  });
});

/** The body decoded by its Content-Encoding, as bytes. */
function zlibDecode(res: RawResponse): Uint8Array {
  const coding = res.get("content-encoding");
  return coding === "gzip"
    ? zlib.gunzipSync(res.body)
    : coding === "br"
    ? zlib.brotliDecompressSync(res.body)
    : zlib.inflateSync(res.body);
}
