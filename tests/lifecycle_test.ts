/**
 * Process-level lifecycle tests: a live server keeps its process alive, and
 * `unref()` / `shutdown()` let the process exit on its own. Each runs a child
 * process of the same runtime so the parent test runner is unaffected.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isBun, test } from "./_shim.ts";
import { delay, RawConnection, requestHead } from "./_http.ts";

interface Child {
  port: number;
  exited: Promise<{ code: number | null; signal: string | null }>;
  stderr(): string;
  kill(): void;
}

function startChild(): Promise<Child> {
  const script = fileURLToPath(new URL("./_unref_child.ts", import.meta.url));
  const args = isBun ? [script] : ["run", "-A", script];
  const child = spawn(process.execPath, args, {
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += String(d)));
  const exited = new Promise<{ code: number | null; signal: string | null }>(
    (resolve) => child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      stdout += String(d);
      const m = /port=(\d+)/.exec(stdout);
      if (m) {
        resolve({
          port: Number(m[1]),
          exited,
          stderr: () => stderr,
          kill: () => child.kill("SIGKILL"),
        });
      }
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`Child exited early (${code ?? signal}): ${stderr}`))
    );
  });
}

async function requestChild(port: number, path: string): Promise<string> {
  const conn = await RawConnection.open(port);
  try {
    await conn.write(requestHead("GET", path, [["Connection", "close"]]));
    return (await conn.read()).text();
  } finally {
    conn.destroy();
  }
}

async function exitsOnItsOwn(path: string): Promise<void> {
  const child = await startChild();
  try {
    // The child serves several requests: an open server keeps it alive
    // (the request would be refused if the process had already exited).
    for (let i = 0; i < 3; i++) {
      assert.equal(await requestChild(child.port, "/ping"), "child /ping");
      await delay(20);
    }
    assert.equal(await requestChild(child.port, path), `child ${path}`);
    const { code, signal } = await child.exited;
    assert.equal(signal, null, `child killed by ${signal}: ${child.stderr()}`);
    assert.equal(code, 0, `child exit code ${code}: ${child.stderr()}`);
  } finally {
    child.kill();
  }
}

test("a process whose server calls unref() exits on its own", async () => {
  await exitsOnItsOwn("/unref");
});

test("a process whose server shuts down exits on its own", async () => {
  await exitsOnItsOwn("/shutdown");
});
