// serve({ workers, module }): the app on several JavaScript threads.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
// Straight from mod.ts: the reference servers have no worker threads.
import { serve } from "../mod.ts";
import { RawConnection } from "./_http.ts";
import { exchange } from "./_wire.ts";

const MODULE = new URL("./_worker_app.ts", import.meta.url);
const OPTIONS = { port: 0, hostname: "127.0.0.1", onListen() {} };

async function get(port: number, path: string): Promise<[number, string]> {
  // A new connection each time: connections, not requests, are spread.
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: { connection: "close" },
    signal: AbortSignal.timeout(10_000),
  });
  return [res.status, await res.text()];
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("condition not met within 5 s");
}

test("serve({ workers: 2 }) spreads connections over two threads", async () => {
  const server = serve({ ...OPTIONS, workers: 2, module: MODULE });
  try {
    const ids = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const [status, body] = await get(server.port, "/");
      assert.equal(status, 200);
      ids.add(body);
    }
    assert.equal(ids.size, 2, `two threads answered: ${[...ids]}`);
    const [, echoed] = await fetch(`http://127.0.0.1:${server.port}/echo`, {
      method: "POST",
      body: "x".repeat(100_000),
    }).then(async (r) => [r.status, await r.text()] as const);
    assert.equal(echoed, "x".repeat(100_000));
  } finally {
    await server.shutdown();
  }
});

test("with workers, maxConnections counts the connections of every thread", async () => {
  const server = serve({
    ...OPTIONS,
    workers: 2,
    module: MODULE,
    maxConnections: 2,
  });
  const request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const a = await RawConnection.open(server.port);
  const b = await RawConnection.open(server.port);
  try {
    await a.write(request);
    await b.write(request);
    const text = async (c: RawConnection) =>
      new TextDecoder().decode((await c.read()).body);
    const ids = new Set([await text(a), await text(b)]);
    assert.equal(ids.size, 2, "one connection on each thread");
    const c = await exchange(server.port, request, { timeoutMs: 2_000 });
    assert.ok(c.closed && c.responses.length === 0, "the third is refused");
  } finally {
    a.destroy();
    b.destroy();
    await server.shutdown();
  }
});

test("a crashed worker thread is restarted and the server goes on", async () => {
  const errors: unknown[] = [];
  const { error } = console;
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  const server = serve({ ...OPTIONS, workers: 1, module: MODULE });
  try {
    const [, before] = await get(server.port, "/");
    const [, crashed] = await get(server.port, "/crash");
    assert.equal(crashed, before, "the crash request was answered first");
    // The new thread loads the module again, so it has a new id.
    let after = before;
    await waitFor(async () => {
      const [status, body] = await get(server.port, "/");
      assert.equal(status, 200);
      after = body;
      return after !== before;
    });
    assert.notEqual(after, before);
    assert.ok(
      errors.some((e) => String(e).includes("crashed")),
      "the crash was reported",
    );
  } finally {
    console.error = error;
    await server.shutdown();
  }
});

test("requests a crashed thread held are answered with 503", async () => {
  const { error } = console;
  console.error = () => {};
  const server = serve({ ...OPTIONS, workers: 1, module: MODULE });
  try {
    const held = get(server.port, "/hang");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await get(server.port, "/crash");
    const [status] = await held;
    assert.equal(status, 503);
  } finally {
    console.error = error;
    await server.shutdown();
  }
});

test("serve() rejects bad workers options", () => {
  assert.throws(
    () => serve({ ...OPTIONS, workers: 0, module: MODULE }),
    (e: unknown) => e instanceof RangeError && /workers/.test(e.message),
  );
  assert.throws(
    () => serve({ ...OPTIONS, workers: 2 } as never),
    (e: unknown) => e instanceof TypeError && /module/.test(e.message),
  );
  assert.throws(
    () =>
      (serve as (...a: unknown[]) => unknown)(
        { ...OPTIONS, workers: 2, module: MODULE },
        () => new Response(),
      ),
    TypeError,
  );
});
