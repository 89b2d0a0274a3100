// ffi/_bun_inner.ts: the fixed-body shortcut must be on for Bun, give the
// bytes the standard path gives, and never touch a body that is a stream
// (reading one with bytes() would buffer a streamed response whole); and
// fulfilled(), which streamed bodies use to take a ready chunk at once.
import assert from "node:assert/strict";
import { isDeno, test } from "./_shim.ts";
import { hasStaticBody, staticBody } from "../ffi/_bun_inner.ts";
import { loadNative } from "../ffi/native.ts";

const text = (bytes: unknown) => new TextDecoder().decode(bytes as Uint8Array);

test("the Bun shortcut is on for Bun and off for Deno", () => {
  // It relies on Bun's memory estimate of a Response; if a Bun upgrade
  // changed that, this fails and says so instead of quietly slowing down.
  assert.equal(hasStaticBody, !isDeno);
});

test("staticBody() on Bun returns fixed strings and bytes", () => {
  if (!hasStaticBody) {
    assert.equal(staticBody(new Response("text")), undefined);
    return;
  }
  assert.equal(text(staticBody(new Response("text"))), "text");
  assert.equal(text(staticBody(new Response("héllo ✓"))), "héllo ✓");
  assert.equal(
    text(staticBody(new Response("text", { statusText: "Fine" }))),
    "text",
  );
  assert.deepEqual(
    staticBody(new Response(new Uint8Array([0, 255, 7]))),
    new Uint8Array([0, 255, 7]),
  );
  assert.equal(text(staticBody(Response.json({ a: 1 }))), '{"a":1}');
  // The body is used once taken, as with any read.
  const response = new Response("once");
  staticBody(response);
  assert.equal(response.bodyUsed, true);
});

test("staticBody() leaves streams, blobs, empty and read bodies alone", async () => {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(4));
    },
  });
  const streamed = new Response(stream, { statusText: "Streaming" });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 5));
  await settle(); // The stream fills its queue (one pull) by itself.
  const before = pulled;
  assert.equal(staticBody(streamed), undefined);
  assert.equal(streamed.bodyUsed, false);
  assert.equal(stream.locked, false);
  await settle();
  assert.equal(pulled, before, "the stream was not read");

  assert.equal(staticBody(new Response(new Blob(["b"]))), undefined);
  assert.equal(staticBody(new Response(null)), undefined);
  assert.equal(staticBody(new Response(null, { statusText: "No" })), undefined);
  const read = new Response("read");
  await read.text();
  assert.equal(staticBody(read), undefined);
});

test("fulfilled() reads a settled promise at once on Bun, and nothing on Deno", async () => {
  const { fulfilled } = await loadNative();
  const pending = new Promise<number>(() => {});
  const rejected = Promise.reject(new Error("no"));
  rejected.catch(() => {});
  assert.equal(fulfilled(pending), undefined);
  assert.equal(fulfilled(rejected), undefined);
  // What a stream read gives when the stream has a chunk already.
  const reader = new ReadableStream<string>({
    start(controller) {
      controller.enqueue("ready");
    },
  }).getReader();
  const read = reader.read();
  assert.deepEqual(
    fulfilled(read),
    isDeno ? undefined : { value: "ready", done: false },
  );
  assert.equal(fulfilled(Promise.resolve(3)), isDeno ? undefined : 3);
});
