// serve({ static }): fixed responses answered by the native loop thread.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import { serve } from "../mod.ts";
import { RawConnection, requestHead } from "./_http.ts";

function listening(): { promise: Promise<void>; onListen: () => void } {
  let onListen!: () => void;
  const promise = new Promise<void>((resolve) => onListen = resolve);
  return { promise, onListen };
}

test("static routes are answered without calling the handler", async () => {
  let calls = 0;
  const ready = listening();
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: ready.onListen,
    static: {
      "/health": new Response("ok"),
      "/json": Response.json({ a: 1 }, {
        status: 201,
        headers: { "x-static": "yes" },
      }),
      "/stream": new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("st"));
            c.enqueue(new TextEncoder().encode("ream"));
            c.close();
          },
        }),
      ),
    },
  }, (req) => {
    calls++;
    return new Response(`dynamic ${new URL(req.url).pathname}`);
  });
  try {
    await ready.promise;
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(requestHead("GET", "/health"));
      const a = await conn.read();
      assert.equal(a.status, 200);
      assert.equal(a.text(), "ok");
      assert.equal(a.get("content-length"), "2");
      assert.ok(a.get("date"));
      await conn.write(requestHead("GET", "/json"));
      const b = await conn.read();
      assert.equal(b.status, 201);
      assert.equal(b.text(), '{"a":1}');
      assert.equal(b.get("x-static"), "yes");
      assert.match(b.get("content-type") ?? "", /^application\/json/);
      await conn.write(requestHead("GET", "/stream"));
      assert.equal((await conn.read()).text(), "stream");
      // HEAD gets the headers and no body; the same connection goes on.
      await conn.write(requestHead("HEAD", "/health"));
      const h = await conn.read({ head: true });
      assert.equal(h.get("content-length"), "2");
      assert.equal(h.body.length, 0);
      // Other paths, other methods and queries go to the handler.
      await conn.write(requestHead("GET", "/other"));
      assert.equal((await conn.read()).text(), "dynamic /other");
      await conn.write(
        requestHead("POST", "/health", [["content-length", "0"]]),
      );
      assert.equal((await conn.read()).text(), "dynamic /health");
      await conn.write(requestHead("GET", "/health?x=1"));
      assert.equal((await conn.read()).text(), "dynamic /health");
    } finally {
      conn.destroy();
    }
    assert.equal(calls, 3);
  } finally {
    await server.shutdown();
  }
});

test("static and dynamic responses keep pipelined order", async () => {
  const ready = listening();
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: ready.onListen,
    static: { "/s": new Response("static") },
  }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return new Response("slow dynamic");
  });
  try {
    await ready.promise;
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(
        requestHead("GET", "/d") + requestHead("GET", "/s") +
          requestHead("GET", "/d"),
      );
      const got = [await conn.read(), await conn.read(), await conn.read()];
      assert.deepEqual(got.map((r) => r.text()), [
        "slow dynamic",
        "static",
        "slow dynamic",
      ]);
    } finally {
      conn.destroy();
    }
  } finally {
    await server.shutdown();
  }
});

test("serve() rejects bad static routes", () => {
  const base = { port: 0, hostname: "127.0.0.1", onListen() {} };
  const handler = () => new Response();
  assert.throws(
    () => serve({ ...base, static: { "health": new Response("x") } }, handler),
    TypeError,
  );
  assert.throws(
    () => serve({ ...base, static: { "/x": "text" as never } }, handler),
    TypeError,
  );
});
