// serve({ handlerTimeout }): a handler that never settles gets a 503 in its
// place, its request's signal is aborted, and the server goes on.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import { serve } from "../mod.ts";

test("a handler past handlerTimeout is answered 503 and aborted", async () => {
  let aborted!: () => void;
  const signalled = new Promise<void>((resolve) => aborted = resolve);
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    handlerTimeout: 200,
  }, (req) => {
    if (new URL(req.url).pathname === "/ok") return new Response("ok");
    req.signal.addEventListener("abort", () => aborted());
    return new Promise<Response>(() => {}); // Never settles.
  });
  try {
    const stuck = await fetch(`http://127.0.0.1:${server.port}/stuck`);
    assert.equal(stuck.status, 503);
    assert.equal(await stuck.text(), "Service Unavailable");
    await signalled;
    const ok = await fetch(`http://127.0.0.1:${server.port}/ok`);
    assert.equal(await ok.text(), "ok");
  } finally {
    await server.shutdown();
  }
});

test("a handler that answers in time is not cut off by handlerTimeout", async () => {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    handlerTimeout: 1000,
  }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return new Response("in time");
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "in time");
  } finally {
    await server.shutdown();
  }
});

test("serve() rejects a bad handlerTimeout with a RangeError", () => {
  for (const handlerTimeout of [0, -5, Number.NaN]) {
    assert.throws(
      () =>
        serve({ port: 0, onListen() {}, handlerTimeout }, () => new Response()),
      (e: unknown) =>
        e instanceof RangeError && /handlerTimeout/.test(e.message),
    );
  }
});
