// scripts/serve.ts, run as a user would: the demo app, --workers,
// --processes with signal forwarding, systemd socket activation, and an app
// module's `static` routes.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as net from "node:net";
import process from "node:process";
import { isBun, test } from "./_shim.ts";

const SCRIPT = new URL("../scripts/serve.ts", import.meta.url).pathname;
const STATIC_APP = new URL("./_static_app.ts", import.meta.url).pathname;
const ROUTES_APP = new URL("./_routes_app.ts", import.meta.url).pathname;
const RUNTIME = isBun ? [SCRIPT] : ["run", "-A", SCRIPT];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function start(command: string, args: string[], env = process.env) {
  const child = spawn(command, args, {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d) => output += d);
  child.stderr!.on("data", (d) => output += d);
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => resolve(code))
  );
  return { child, exited, output: () => output };
}

async function get(port: number, path = "/"): Promise<string> {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, {
        headers: { connection: "close" },
      });
      return await res.text();
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nothing answered on port ${port}`);
}

async function stop(child: ChildProcess, exited: Promise<number | null>) {
  // process.kill: Deno's child.kill() makes the signal fatal even when the
  // child handles it.
  process.kill(child.pid!, "SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** Starts the CLI with `args` on a free loopback port. */
async function serveCli(...args: string[]) {
  const port = await freePort();
  const run = start(process.execPath, [
    ...RUNTIME,
    ...args,
    "--port",
    String(port),
    "--hostname",
    "127.0.0.1",
  ]);
  return { port, run };
}

test("the CLI serves the demo app and shuts down on SIGTERM", async () => {
  const { port, run } = await serveCli();
  assert.equal(await get(port), "Hello, World!");
  assert.equal(await get(port, "/nope"), "Not Found");
  assert.equal(await stop(run.child, run.exited), 0, run.output());
});

test("the CLI honours PORT and rejects a bad --port", async () => {
  const port = await freePort();
  const run = start(process.execPath, [...RUNTIME, "--hostname", "127.0.0.1"], {
    ...process.env,
    PORT: String(port),
  });
  assert.equal(await get(port), "Hello, World!");
  await stop(run.child, run.exited);
  const bad = spawnSync(process.execPath, [...RUNTIME, "--port", "99999"], {
    encoding: "utf8",
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /Invalid port/);
});

test("--workers 2 serves from worker threads", async () => {
  const { port, run } = await serveCli("--workers", "2");
  assert.equal(await get(port), "Hello, World!");
  assert.equal(await get(port), "Hello, World!");
  assert.equal(await stop(run.child, run.exited), 0, run.output());
});

test("--processes 2 starts two servers on one port and forwards SIGTERM", async () => {
  const { port, run } = await serveCli("--processes", "2");
  assert.equal(await get(port), "Hello, World!");
  // Both children report listening on the shared port.
  for (
    let i = 0;
    i < 100 && run.output().split("Listening on").length < 3;
    i++
  ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(run.output().split("Listening on").length - 1, 2, run.output());
  assert.equal(await stop(run.child, run.exited), 0, run.output());
  // Every child is gone: the port is free again.
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer().on("error", reject);
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
});

test("the CLI serves an app's static routes without calling its fetch", async () => {
  const { port, run } = await serveCli(STATIC_APP);
  assert.equal(await get(port, "/static"), "from static");
  assert.equal(await get(port, "/static"), "from static");
  assert.equal(await get(port, "/other"), "from fetch /other");
  // Only /other and this request reached the handler.
  assert.equal(await get(port, "/calls"), "2");
  assert.equal(await stop(run.child, run.exited), 0, run.output());
});

for (const workers of [[], ["--workers", "2"]]) {
  test(
    `the CLI serves a Bun app's routes, with no fetch${
      workers.length > 0 ? `, ${workers.join(" ")}` : ""
    }`,
    async () => {
      const { port, run } = await serveCli(ROUTES_APP, ...workers);
      assert.equal(await get(port, "/hello/ymo"), "hello ymo");
      assert.equal(await get(port, "/hello/again"), "hello again");
      assert.equal(await get(port, "/fixed"), "fixed");
      assert.equal(await get(port, "/nothing"), "");
      assert.equal(await stop(run.child, run.exited), 0, run.output());
    },
  );
}

test("the CLI serves an app's static routes with --workers 2", async () => {
  const { port, run } = await serveCli(STATIC_APP, "--workers", "2");
  assert.equal(await get(port, "/static"), "from static");
  assert.equal(await get(port, "/other"), "from fetch /other");
  assert.equal(await stop(run.child, run.exited), 0, run.output());
});

test("the CLI rejects an app whose static is not made of Responses", () => {
  const bad = spawnSync(process.execPath, [
    ...RUNTIME,
    STATIC_APP,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
  ], {
    encoding: "utf8",
    env: { ...process.env, YMO_TEST_BAD_STATIC: "1" },
    timeout: 30_000,
  });
  assert.notEqual(bad.status, 0, bad.stderr);
  assert.match(bad.stderr, /Invalid static: "\/static" must map to a Response/);
});

const hasPython = spawnSync("python3", ["--version"]).status === 0;

(hasPython ? test : test.skip)(
  "the CLI serves a socket passed by systemd socket activation (LISTEN_FDS)",
  async () => {
    const port = await freePort();
    // A stand-in for systemd: bind, put the socket on fd 3, set LISTEN_FDS
    // and LISTEN_PID, and exec the server in the same process.
    const activate = [
      "import os, socket, sys",
      "s = socket.socket()",
      `s.bind(("127.0.0.1", ${port}))`,
      "s.listen(16)",
      "os.dup2(s.fileno(), 3)",
      "os.set_inheritable(3, True)",
      "env = dict(os.environ, LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))",
      "os.execve(sys.argv[1], sys.argv[1:], env)",
    ].join("\n");
    const run = start("python3", [
      "-c",
      activate,
      process.execPath,
      ...RUNTIME,
    ]);
    assert.equal(await get(port), "Hello, World!");
    assert.match(
      run.output(),
      new RegExp(`Listening on http://127\\.0\\.0\\.1:${port}/`),
    );
    assert.equal(await stop(run.child, run.exited), 0, run.output());
  },
);
