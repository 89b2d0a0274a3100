/**
 * `reusePort: true` sets SO_REUSEPORT, so several processes can listen on one
 * port and the kernel spreads new connections over them; without it, a second
 * listener on a taken port fails with "address already in use".
 *
 * The spreading test runs two servers in child processes of the runtime that
 * runs this test (tests/_reuseport_child.ts), each answering with its own
 * name, and opens a fresh connection per request.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isBun, test } from "./_shim.ts";
import { RawConnection, requestHead } from "./_http.ts";
import { type Child, childEnv, freePort, startChild } from "./_child.ts";
import { serve } from "../mod.ts";

const CHILD = fileURLToPath(
  new URL("./_reuseport_child.ts", import.meta.url),
);

function startServerProcess(
  name: string,
  port: number,
  reusePort: boolean,
): Child {
  const args = isBun ? [CHILD] : ["run", "-A", CHILD];
  return startChild(process.execPath, args, {
    env: childEnv({
      YMO_TEST_NAME: name,
      YMO_TEST_PORT: String(port),
      YMO_TEST_REUSE_PORT: reusePort ? "1" : "0",
    }),
  });
}

/** One request on a new connection; returns the body ("NAME PID"). */
async function askWho(port: number): Promise<string> {
  const conn = await RawConnection.open(port);
  try {
    await conn.write(requestHead("GET", "/who", [["Connection", "close"]]));
    const response = await conn.read();
    assert.equal(response.status, 200);
    return response.text();
  } finally {
    conn.destroy();
  }
}

/** Counts the answers of `n` fresh connections by process name. */
async function spread(port: number, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const name = (await askWho(port)).split(" ")[0];
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** Stops a server process with SIGTERM and checks that it exits cleanly. */
async function terminate(child: Child): Promise<void> {
  child.kill("SIGTERM");
  const exit = await child.waitExit();
  assert.deepEqual(exit, { code: 0, signal: null }, child.output());
  assert.match(child.stdout(), /^finished$/m, child.output());
}

test("two processes with reusePort: true listen on one port and share its connections", async () => {
  const port = await freePort();
  const a = startServerProcess("a", port, true);
  const b = startServerProcess("b", port, true);
  try {
    for (const child of [a, b]) {
      const [, listening] = await child.waitFor(
        /listening on port (\d+)|error: .*/,
      );
      assert.equal(Number(listening), port, child.output());
    }
    const counts = await spread(port, 50);
    assert.equal((counts.get("a") ?? 0) + (counts.get("b") ?? 0), 50);
    assert.ok(
      (counts.get("a") ?? 0) > 0 && (counts.get("b") ?? 0) > 0,
      `50 connections went to ${JSON.stringify([...counts])}`,
    );

    // Once one process has stopped, the other takes every connection.
    await terminate(a);
    assert.deepEqual([...await spread(port, 20)], [["b", 20]]);
    await terminate(b);
  } finally {
    await a.stop();
    await b.stop();
  }
});

const IN_USE = /address already in use/i;

test("without reusePort, a second server on a taken port fails: address already in use", async () => {
  const quiet = { hostname: "127.0.0.1", onListen() {} };
  const handler = () => new Response("first");
  // Every pair but (true, true) must fail: SO_REUSEPORT needs both sockets.
  for (
    const [first, second] of [[false, false], [true, false], [false, true]]
  ) {
    const server = serve({ ...quiet, port: 0, reusePort: first }, handler);
    try {
      assert.throws(
        () =>
          serve({ ...quiet, port: server.port, reusePort: second }, handler),
        (error: Error) => {
          assert.match(error.message, IN_USE);
          assert.ok(
            error.message.includes(`127.0.0.1:${server.port}`),
            error.message,
          );
          return true;
        },
        `reusePort ${first} then ${second}`,
      );
      // The first server is unharmed.
      const response = await fetch(`http://127.0.0.1:${server.port}/`);
      assert.equal(await response.text(), "first");
    } finally {
      await server.shutdown();
    }
  }
});

test("a second process without reusePort exits with address already in use", async () => {
  const port = await freePort();
  const a = startServerProcess("a", port, false);
  try {
    await a.waitFor(/listening on port \d+/);
    const b = startServerProcess("b", port, false);
    try {
      await b.waitFor(/error: .*/);
      assert.match(b.stdout(), IN_USE);
      assert.equal((await b.waitExit()).code, 3, b.output());
    } finally {
      await b.stop();
    }
    assert.equal(await askWho(port), `a ${a.pid}`);
    await terminate(a);
  } finally {
    await a.stop();
  }
});
