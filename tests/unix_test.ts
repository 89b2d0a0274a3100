// serve({ path }) (Deno's name) and serve({ unix }) (Bun's) listen on a unix
// domain socket: answered over it (curl --unix-socket), a stale socket file
// replaced, a live one or another file refused, the file removed at the end.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "./_shim.ts";
import { withTempDir } from "./_child.ts";
import { serve, type ServeHandlerInfo } from "../mod.ts";

/** curl over the unix socket at `socket`: [status line, body]. Run
 * asynchronously: the handler runs on this thread. */
function curl(socket: string, url: string): Promise<[string, string]> {
  return new Promise((resolve, reject) => {
    execFile(
      "curl",
      ["-sS", "-i", "--max-time", "5", "--unix-socket", socket, url],
      { encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`curl failed: ${stderr}`));
        const [head, body] = stdout.split("\r\n\r\n");
        resolve([head.split("\r\n")[0], body]);
      },
    );
  });
}

test("serve({ path }) answers over a unix socket, and removes the file when it stops", async () => {
  await withTempDir("unix", async (dir) => {
    const socket = path.join(dir, "ymo.sock");
    let listened: unknown;
    let remote: ServeHandlerInfo["remoteAddr"] | undefined;
    const server = serve({
      path: socket,
      onListen(addr) {
        listened = addr;
      },
    }, (req, info) => {
      remote = info.remoteAddr;
      return new Response(`${req.method} ${req.url}`);
    });
    try {
      assert.deepEqual(listened, { transport: "unix", path: socket });
      assert.deepEqual(server.addr, { transport: "unix", path: socket });
      assert.ok(fs.statSync(socket).isSocket());
      const [status, body] = await curl(socket, "http://localhost/x?y=1");
      assert.equal(status, "HTTP/1.1 200 OK");
      assert.equal(body, "GET http://localhost/x?y=1");
      assert.deepEqual(remote, { transport: "unix", path: "" });
    } finally {
      await server.shutdown();
    }
    assert.equal(fs.existsSync(socket), false, "the socket file is left");
  });
});

test("serve({ unix }) (Bun's name) replaces a stale socket file nobody accepts on", async () => {
  await withTempDir("unix-stale", async (dir) => {
    const socket = path.join(dir, "stale.sock");
    // A socket file bound and never listened on: connecting is refused, as
    // with one left by a process that died.
    const bind = spawnSync("python3", [
      "-c",
      "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
      socket,
    ]);
    assert.equal(bind.status, 0, String(bind.stderr));
    assert.ok(fs.statSync(socket).isSocket());
    const server = serve(
      { unix: socket, onListen() {} },
      () => new Response("fresh"),
    );
    try {
      assert.equal((await curl(socket, "http://localhost/"))[1], "fresh");
    } finally {
      await server.shutdown();
    }
  });
});

test("serve({ path }) refuses a live socket and a file that is not a socket, leaving both", async () => {
  await withTempDir("unix-busy", async (dir) => {
    const socket = path.join(dir, "live.sock");
    const first = serve(
      { path: socket, onListen() {} },
      () => new Response("first"),
    );
    try {
      assert.throws(
        () => serve({ path: socket, onListen() {} }, () => new Response()),
        (e: Error) =>
          (e as { code?: string }).code === "EADDRINUSE" &&
          e.message.includes(socket),
      );
      assert.equal((await curl(socket, "http://localhost/"))[1], "first");
    } finally {
      await first.shutdown();
    }
    const file = path.join(dir, "plain.txt");
    fs.writeFileSync(file, "keep me");
    assert.throws(
      () => serve({ path: file, onListen() {} }, () => new Response()),
      (e: Error) => (e as { code?: string }).code === "EADDRINUSE",
    );
    assert.equal(fs.readFileSync(file, "utf8"), "keep me");
  });
});

test("serve({ path }) refuses a port, hostname or reusePort beside it", () => {
  for (const extra of [{ port: 0 }, { hostname: "127.0.0.1" }]) {
    assert.throws(
      () => serve({ path: "/tmp/x.sock", ...extra }, () => new Response()),
      TypeError,
    );
  }
});
