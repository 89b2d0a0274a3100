// ffi/_static_body.ts: the shortcut for fixed bodies must find exactly the
// bodies it may send without reading them, and nothing else.
import assert from "node:assert/strict";
import { isDeno, test } from "./_shim.ts";
import { hasStaticBody, staticBody } from "../ffi/_static_body.ts";

test("the static-body shortcut is on for Deno and off for Bun", () => {
  // On Deno it reads Deno.serve's own inner state; if a Deno upgrade moved
  // it, this fails and says so, instead of the server quietly slowing down.
  assert.equal(hasStaticBody, isDeno);
});

test("staticBody() returns fixed strings and bytes, unread", () => {
  if (!hasStaticBody) {
    assert.equal(staticBody(new Response("text")), undefined);
    return;
  }
  assert.equal(staticBody(new Response("text")), "text");
  assert.equal(
    staticBody(new Response("text", { headers: { "x-a": "1" } })),
    "text",
  );
  const bytes = new Uint8Array([1, 2, 3]);
  assert.deepEqual(staticBody(new Response(bytes)), bytes);
  assert.equal(staticBody(Response.json({ a: 1 })), '{"a":1}');
});

test("staticBody() leaves streams, blobs, null and read bodies alone", async () => {
  assert.equal(staticBody(new Response(new ReadableStream())), undefined);
  assert.equal(staticBody(new Response(new Blob(["b"]))), undefined);
  assert.equal(staticBody(new Response(null)), undefined);
  const read = new Response("once");
  await read.text();
  assert.equal(staticBody(read), undefined);
});
