// ffi/_host.ts: the system calls ymo makes on every load without Node's
// modules on Deno must answer as the Node modules do.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "./_shim.ts";
import {
  fromFileUrl,
  isAbsolute,
  isFile,
  join,
  moduleHref,
  platform,
  processEnv,
  readBytes,
  resolve,
  toFileUrl,
} from "../ffi/_host.ts";

const PATHS = [
  "/tmp/a b#c?d%e.ts",
  "/x/ü/日本.ts",
  "/tab\there\nand\rthere.ts",
  "rel/../w.ts",
  "./a/./b.ts",
  "/a//b/../c",
  "/",
];

test("paths and file URLs come out as node:path and node:url make them", () => {
  for (const p of PATHS) {
    assert.equal(resolve(p), path.resolve(p), p);
    assert.equal(toFileUrl(p).href, pathToFileURL(path.resolve(p)).href, p);
    assert.equal(fromFileUrl(toFileUrl(p)), fileURLToPath(toFileUrl(p)), p);
    assert.equal(isAbsolute(p), path.isAbsolute(p), p);
  }
  for (
    const parts of [["/a", "b", "../c"], ["/a/", "/b"], ["/", "x"], [
      "/a",
      "native/src/x.c",
    ], ["/a", "..", "..", "b"]]
  ) {
    assert.equal(join(...parts), path.join(...parts), parts.join(" "));
  }
  assert.throws(() => fromFileUrl(new URL("https://x/y")), TypeError);
});

test("moduleHref() keeps URLs and turns paths into file: URLs", () => {
  assert.equal(moduleHref("https://x/y.ts"), "https://x/y.ts");
  assert.equal(moduleHref("jsr:@ymo/ymo"), "jsr:@ymo/ymo");
  assert.equal(moduleHref(new URL("file:///a/b.ts")), "file:///a/b.ts");
  assert.equal(
    moduleHref("rel/app.ts"),
    pathToFileURL(path.resolve("rel/app.ts")).href,
  );
});

test("files, the environment and the platform read as Node reads them", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ymo-host-"));
  try {
    const file = path.join(dir, "f.bin");
    fs.writeFileSync(file, new Uint8Array([1, 2, 3]));
    assert.equal(isFile(file), true);
    assert.equal(isFile(dir), false, "a folder is not a file");
    assert.equal(isFile(path.join(dir, "missing")), false);
    assert.deepEqual(readBytes(file), new Uint8Array([1, 2, 3]));
    assert.throws(() => readBytes(path.join(dir, "missing")));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(processEnv().HOME, process.env.HOME);
  assert.equal(processEnv().YMO_NO_SUCH_VARIABLE, undefined);
  assert.equal(platform(), process.platform);
});
