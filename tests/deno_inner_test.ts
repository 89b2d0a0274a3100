// ffi/_deno_inner.ts: the shortcuts through Deno's Request and Response
// internals must be on where they can be, and give what the standard path
// gives. (Requests made the fast way also go through every server test.)
import assert from "node:assert/strict";
import { isDeno, test } from "./_shim.ts";
import {
  bodySent,
  fastRequest,
  hasBodySent,
  hasHeaderList,
  hasStaticBody,
  headerList,
  staticBody,
} from "../ffi/_deno_inner.ts";

test("the Deno shortcuts are on for Deno and off for Bun", () => {
  // They read Deno.serve's own inner state; if a Deno upgrade moved it,
  // this fails and says so, instead of the server quietly slowing down.
  assert.equal(hasStaticBody, isDeno);
  assert.equal(hasHeaderList, isDeno);
  assert.equal(fastRequest !== undefined, isDeno);
  assert.equal(hasBodySent, isDeno);
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

test("bodySent() marks the Response used and frees the bytes Deno copied, never the caller's", async () => {
  const mine = new Uint8Array([1, 2, 3]);
  const response = new Response(mine, { headers: { "x-a": "1" } });
  const body = staticBody(response);
  if (!hasBodySent) {
    bodySent(response, mine);
    assert.equal(response.bodyUsed, false);
    return;
  }
  assert.ok(body instanceof Uint8Array);
  bodySent(response, body);
  assert.equal(response.bodyUsed, true);
  assert.equal(body.byteLength, 0); // Detached: its memory is given back.
  assert.deepEqual(mine, new Uint8Array([1, 2, 3]));
  await assert.rejects(response.arrayBuffer(), TypeError);
  assert.throws(() => response.clone(), TypeError);
  assert.equal(staticBody(response), undefined);

  const text = new Response("text");
  bodySent(text, staticBody(text) as string);
  assert.equal(text.bodyUsed, true);
  await assert.rejects(text.text(), TypeError);
  assert.equal(staticBody(text), undefined);

  // A view that does not span its buffer is not detached.
  const whole = new Uint8Array([9, 9, 9, 9]);
  const part = whole.subarray(1, 3);
  bodySent(new Response("x"), part);
  assert.equal(part.byteLength, 2);
});

/** Fields as "name: value" lines, names lowercased, sorted. */
function lines(pairs: Iterable<readonly [string, string]>): string[] {
  return [...pairs].map(([n, v]) => `${n.toLowerCase()}: ${v}`).sort();
}

test("headerList() gives the fields the Response's Headers hold", () => {
  const makers: (() => Response)[] = [
    () => new Response("text"),
    () => new Response("text", { headers: { "X-Mixed": "A", "x-b": "b" } }),
    () =>
      new Response("text", {
        headers: { "content-type": "text/plain;charset=UTF-8" },
      }),
    () => new Response("text", { status: 201 }),
    () => Response.json([1], { status: 201, headers: { etag: '"1"' } }),
    () => new Response(new Blob(["b"], { type: "image/png" })),
    () =>
      new Response(null, {
        headers: [["set-cookie", "a"], ["Set-Cookie", "b"]],
      }),
    () => new Response(new ReadableStream()),
    () => Response.redirect("http://example.com/", 307),
  ];
  for (const make of makers) {
    const list = headerList(make());
    if (!hasHeaderList) {
      assert.equal(list, undefined);
      continue;
    }
    // A Blob's type is only in its Headers once they are read; such a
    // response must fall back (undefined) or match.
    if (list !== undefined) {
      assert.deepEqual(lines(list), lines(make().headers));
    }
  }
  const edited = new Response("x", { headers: { a: "1" } });
  edited.headers.set("b", "2");
  edited.headers.delete("a");
  if (hasHeaderList) {
    assert.deepEqual(lines(headerList(edited)!), lines(edited.headers));
  }
});

test("a fast Request behaves like a constructed one", async () => {
  if (fastRequest === undefined) return;
  class Made extends Request {
    constructor() {
      super(fastRequest!.brand as unknown as string);
    }
  }
  const body = new TextEncoder().encode('{"a":1}');
  const fast = new Made();
  fastRequest.fill(fast, "PATCH", "http://h:8/p?x=1", [
    "Host",
    "h:8",
    "Content-Type",
    "application/json",
    "Accept",
    "a",
    "accept",
    "b",
  ], body);
  const made = new Request("http://h:8/p?x=1", {
    method: "PATCH",
    headers: [["Host", "h:8"], ["Content-Type", "application/json"], [
      "Accept",
      "a",
    ], ["accept", "b"]],
    body,
  });
  for (
    const key of [
      "method",
      "url",
      "bodyUsed",
      "redirect",
      "mode",
      "cache",
    ] as const
  ) {
    assert.equal(fast[key], made[key], key);
  }
  assert.deepEqual([...fast.headers], [...made.headers]);
  assert.deepEqual(await fast.clone().json(), await made.clone().json());
  const copy = new Request(fast, { method: "PUT" });
  assert.equal(copy.headers.get("accept"), "a, b");
  assert.deepEqual(await copy.json(), { a: 1 });
  assert.equal(
    fast.bodyUsed,
    true,
    "a copy takes the body, as with any Request",
  );
  fast.headers.set("x-added", "1");
  assert.equal(
    new Request(fast.url, { headers: fast.headers }).headers.get("x-added"),
    "1",
  );
});
