/**
 * Tests of the native library locator (ffi/_locate.ts), its file manifest and
 * the package version. Each runs against temporary package and cache folders,
 * never the user's cache; one test really builds the library, into a temporary
 * cache, from sources "downloaded" by a fake fetch that reads this checkout.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isBun, test } from "./_shim.ts";
import {
  cacheDirectory,
  ensureLibrary,
  libraryFileName,
} from "../ffi/_locate.ts";
import { locateLibrary } from "../ffi/_build.ts";
import { NATIVE_FILES } from "../ffi/_native_files.ts";
import { VERSION } from "../ffi/_version.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const FILE = libraryFileName();
const INSTALL =
  "sudo apt-get install libev-dev cmake gcc pkg-config node-llhttp zlib1g-dev libdeflate-dev libbrotli-dev libssl-dev";
/** A module URL as Deno sees it when the package comes from JSR. */
const REMOTE = "https://jsr.example/@ymo/ymo/0.1.0/ffi/_locate.ts";

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
async function withTemp(fn: (dir: string) => void | Promise<void>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ymo-locate-"));
  try {
    await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Options for a package at `<dir>/pkg` and a cache at `<dir>/cache`. */
function fakePackage(dir: string, lines: string[] = []) {
  return {
    env: { XDG_CACHE_HOME: path.join(dir, "cache"), HOME: dir },
    moduleUrl: pathToFileURL(path.join(dir, "pkg", "ffi", "_locate.ts")).href,
    log: (line: string) => void lines.push(line),
  };
}

function writeFile(file: string, data: string | Uint8Array) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
}

/** Copies this checkout's native sources to `<to>/<rel>` for each rel. */
function copySources(to: (rel: string) => string) {
  for (const rel of NATIVE_FILES) {
    writeFile(to(rel), fs.readFileSync(path.join(ROOT, rel)));
  }
}

/** Catches the error thrown by `fn`. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail("expected an error");
}

/** Lists files under `dir` as "prefix/a/b", skipping build folders. */
function listFiles(dir: string, prefix: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = `${prefix}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!entry.name.startsWith("build")) {
        out.push(...listFiles(path.join(dir, entry.name), rel));
      }
    } else {
      out.push(rel);
    }
  }
  return out;
}

/** Calls the library's ymo_version() through the runtime's FFI. */
async function libraryVersion(file: string): Promise<string> {
  if (isBun) {
    const specifier = "bun:ffi"; // A variable keeps Deno from resolving it.
    const ffi = await import(specifier);
    const lib = ffi.dlopen(file, { ymo_version: { args: [], returns: "ptr" } });
    try {
      return String(new ffi.CString(lib.symbols.ymo_version()));
    } finally {
      lib.close();
    }
  }
  const lib = Deno.dlopen(file, {
    ymo_version: { parameters: [], result: "pointer" },
  });
  try {
    const pointer = lib.symbols.ymo_version();
    assert.ok(pointer !== null);
    return Deno.UnsafePointerView.getCString(pointer);
  } finally {
    lib.close();
  }
}

test("libraryFileName() names the shared library of each platform", () => {
  assert.equal(libraryFileName("linux"), "libymo.so");
  assert.equal(libraryFileName("darwin"), "libymo.dylib");
  assert.equal(libraryFileName("win32"), "ymo.dll");
  assert.equal(libraryFileName(), libraryFileName(os.platform()));
});

test("cacheDirectory() honours XDG_CACHE_HOME and falls back to ~/.cache", () => {
  assert.equal(
    cacheDirectory({ XDG_CACHE_HOME: "/x/cache", HOME: "/home/u" }),
    path.join("/x/cache", "ymo", VERSION),
  );
  assert.equal(
    cacheDirectory({ HOME: "/home/u" }),
    path.join("/home/u", ".cache", "ymo", VERSION),
  );
  // The XDG spec says a relative value is invalid and must be ignored.
  assert.equal(
    cacheDirectory({ XDG_CACHE_HOME: "rel", HOME: "/home/u" }),
    path.join("/home/u", ".cache", "ymo", VERSION),
  );
});

test("locateLibrary() returns the YMO_LIB file before any other", async () => {
  await withTemp((dir) => {
    const lines: string[] = [];
    const options = fakePackage(dir, lines);
    const override = path.join(dir, "custom", FILE);
    writeFile(override, "not really a library");
    // A local build exists too, and must lose to the override.
    writeFile(path.join(dir, "pkg", "native", "build", FILE), "local");
    const env = { ...options.env, YMO_LIB: override };
    assert.equal(locateLibrary({ ...options, env }), override);
    assert.deepEqual(lines, []);
  });
});

test("without HOME or XDG_CACHE_HOME, only the cache and the build are out of reach", async () => {
  await withTemp((dir) => {
    const options = { ...fakePackage(dir), env: {} };
    const override = path.join(dir, "custom", FILE);
    writeFile(override, "not really a library");
    assert.equal(
      locateLibrary({ ...options, env: { YMO_LIB: override } }),
      override,
    );
    const local = path.join(dir, "pkg", "native", "build", FILE);
    writeFile(local, "local");
    assert.equal(locateLibrary(options), local);
    fs.rmSync(local);
    const message = thrown(() => locateLibrary(options)).message;
    assert.match(message, /neither XDG_CACHE_HOME nor HOME is set/);
    assert.match(message, /no cache to build into/);
  });
});

test("locateLibrary() rejects a YMO_LIB that names no file", async () => {
  await withTemp(async (dir) => {
    const options = fakePackage(dir);
    const missing = path.join(dir, "nowhere", FILE);
    // A local build exists, and must not hide the typo.
    writeFile(path.join(dir, "pkg", "native", "build", FILE), "local");
    const env = { ...options.env, YMO_LIB: missing };
    const error = thrown(() => locateLibrary({ ...options, env }));
    assert.match(error.message, /^YMO_LIB names a native library that does/);
    assert.ok(error.message.includes(missing), error.message);
    await assert.rejects(ensureLibrary({ ...options, env }), (e: Error) => {
      assert.ok(e.message.includes(missing), e.message);
      return true;
    });
  });
});

test("locateLibrary() prefers the local build to the cache", async () => {
  await withTemp((dir) => {
    const options = fakePackage(dir);
    const local = path.join(dir, "pkg", "native", "build", FILE);
    writeFile(local, "local");
    writeFile(path.join(cacheDirectory(options.env), FILE), "cached");
    assert.equal(locateLibrary(options), local);
  });
});

test("locateLibrary() uses the cache only if it was built from the same sources", async () => {
  await withTemp((dir) => {
    const options = { ...fakePackage(dir), build: false };
    const cache = cacheDirectory(options.env);
    const cached = path.join(cache, FILE);
    writeFile(cached, "cached");
    const pkg = path.join(dir, "pkg");
    copySources((rel) => path.join(pkg, rel));
    copySources((rel) => path.join(cache, "src", rel.slice("native/".length)));
    assert.equal(locateLibrary(options), cached);

    // Editing one source file in the package makes the cached build stale.
    fs.appendFileSync(path.join(pkg, NATIVE_FILES.at(-1)!), "\n/* edit */\n");
    const error = thrown(() => locateLibrary(options));
    assert.ok(
      error.message.includes(`${cached}: built from other sources`),
      error.message,
    );
    assert.match(error.message, /build: not attempted/);
  });
});

test("locateLibrary() lists every path tried and what to install", async () => {
  await withTemp((dir) => {
    const lines: string[] = [];
    // A package without native sources: the build fails before CMake runs.
    const options = fakePackage(dir, lines);
    const error = thrown(() => locateLibrary(options));
    const message = error.message;
    const cache = cacheDirectory(options.env);
    assert.match(message, /^Could not find or build the ymo native library/);
    for (
      const part of [
        "YMO_LIB: not set",
        `${path.join(dir, "pkg", "native", "build", FILE)}: not found`,
        `${path.join(cache, FILE)}: not found`,
        `build from ${path.join(dir, "pkg", "native")} into`,
        INSTALL,
        "brew install",
      ]
    ) {
      assert.ok(message.includes(part), `missing "${part}" in:\n${message}`);
    }
    assert.ok(error.cause instanceof Error, "the error has a cause");
    // A failed build leaves no staging folder behind.
    assert.deepEqual(
      fs.readdirSync(cache).filter((name) => name.startsWith(".staging")),
      [],
    );
  });
});

test("locateLibrary() from a remote URL uses the cache or asks for ensureLibrary()", async () => {
  await withTemp((dir) => {
    const options = { ...fakePackage(dir), moduleUrl: REMOTE };
    const error = thrown(() => locateLibrary(options));
    assert.match(error.message, /ensureLibrary\(\)/);
    assert.doesNotMatch(error.message, /local build/);
    // A remote package is immutable per version: its cache needs no sources.
    const cached = path.join(cacheDirectory(options.env), FILE);
    writeFile(cached, "cached");
    assert.equal(locateLibrary(options), cached);
  });
});

// Bun has no permission system, so this one is Deno's alone.
(isBun ? test.skip : test)(
  "locateLibrary() lets Deno's permission errors through unchanged",
  async () => {
    await withTemp(async (dir) => {
      // Read access only: the build's first write into the cache must fail
      // with Deno's own NotCapable, not the combined "could not find" error.
      const options = {
        env: { XDG_CACHE_HOME: path.join(dir, "cache") },
        moduleUrl: fakePackage(dir).moduleUrl,
      };
      const probe = path.join(dir, "probe.ts");
      const locate = new URL("../ffi/_build.ts", import.meta.url).href;
      writeFile(
        probe,
        `import { locateLibrary } from ${JSON.stringify(locate)};
try {
  locateLibrary({ ...${JSON.stringify(options)}, log: () => {} });
  console.log("no error");
} catch (error) {
  console.log(error instanceof Deno.errors.NotCapable ? "NotCapable" : error);
}
`,
      );
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--allow-read", probe],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout).trim();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(stdout, "NotCapable", stderr);
    });
  },
);

test("ensureLibrary() names the download that failed", async () => {
  await withTemp(async (dir) => {
    const requested: string[] = [];
    const options = {
      ...fakePackage(dir),
      moduleUrl: REMOTE,
      fetch: (url: URL) => {
        requested.push(url.href);
        return Promise.resolve(new Response("gone", { status: 404 }));
      },
    };
    await assert.rejects(ensureLibrary(options), (error: Error) => {
      assert.match(error.message, /^Could not find or build/);
      assert.match(
        error.message,
        /download from https:\/\/jsr\.example\/@ymo\/ymo\/0\.1\.0\/: GET https:\/\/jsr\.example\/\S+ answered 404/,
      );
      assert.ok(error.message.includes(INSTALL), error.message);
      assert.ok(error.cause instanceof Error);
      return true;
    });
    assert.deepEqual(
      requested.sort(),
      NATIVE_FILES.map((rel) => new URL(rel, new URL("../", REMOTE)).href)
        .sort(),
    );
  });
});

test("ensureLibrary() downloads, builds and caches a working library once", async () => {
  await withTemp(async (dir) => {
    const lines: string[] = [];
    let fetches = 0;
    const base = new URL("../", REMOTE);
    const options = {
      ...fakePackage(dir, lines),
      moduleUrl: REMOTE,
      // Serves this checkout's files as if they were published.
      fetch: (url: URL) => {
        fetches++;
        const rel = url.href.slice(base.href.length);
        const data = fs.readFileSync(path.join(ROOT, rel));
        return Promise.resolve(new Response(new Uint8Array(data)));
      },
    };
    const cache = cacheDirectory(options.env);
    const built = await ensureLibrary(options);
    assert.equal(built, path.join(cache, FILE));
    assert.equal(fetches, NATIVE_FILES.length);
    assert.ok(lines.some((line) => line.includes("building")), lines.join());
    assert.equal(await libraryVersion(built), VERSION);
    assert.deepEqual(
      fs.readdirSync(cache).filter((name) => name !== "src").sort(),
      [FILE],
      "only the library and its sources stay in the cache",
    );

    // The second call finds the cached library: no download, no log.
    lines.length = 0;
    assert.equal(await ensureLibrary(options), built);
    assert.equal(fetches, NATIVE_FILES.length);
    assert.deepEqual(lines, []);

    // A local package with the same sources reuses that build.
    copySources((rel) => path.join(dir, "pkg", rel));
    assert.equal(locateLibrary({ ...options, build: false }), built);
  });
});

test("the native manifest lists exactly the files under native/ that build the library", () => {
  const native = path.join(ROOT, "native");
  const actual = [
    "native/CMakeLists.txt",
    ...listFiles(path.join(native, "include"), "native/include"),
    ...listFiles(path.join(native, "src"), "native/src"),
  ].sort();
  assert.deepEqual(
    [...NATIVE_FILES].sort(),
    actual,
    `update ffi/_native_files.ts to:\n${JSON.stringify(actual, null, 2)}`,
  );
});

test("every native file is published by deno.json and package.json", () => {
  const deno = JSON.parse(
    fs.readFileSync(path.join(ROOT, "deno.json"), "utf8"),
  );
  const npm = JSON.parse(
    fs.readFileSync(path.join(ROOT, "package.json"), "utf8"),
  );
  const covered = (rel: string, patterns: string[]) =>
    patterns.some((p) => p.endsWith("/") ? rel.startsWith(p) : rel === p);
  for (const rel of NATIVE_FILES) {
    assert.ok(covered(rel, deno.publish.include), `deno.json omits ${rel}`);
    assert.ok(covered(rel, npm.files), `package.json omits ${rel}`);
  }
  for (const rel of ["ffi/_locate.ts", "ffi/_native_files.ts"]) {
    assert.ok(covered(rel, deno.publish.include), `deno.json omits ${rel}`);
    assert.ok(covered(rel, npm.files), `package.json omits ${rel}`);
  }
});

test("deno.json and package.json publish the same files", () => {
  const deno = JSON.parse(
    fs.readFileSync(path.join(ROOT, "deno.json"), "utf8"),
  );
  const npm = JSON.parse(
    fs.readFileSync(path.join(ROOT, "package.json"), "utf8"),
  );
  // deno.json lists itself; npm always packs package.json on its own.
  const jsr = deno.publish.include.filter((p: string) => p !== "deno.json");
  assert.deepEqual([...npm.files].sort(), [...jsr].sort());
  for (const pattern of jsr) {
    assert.ok(
      fs.existsSync(path.join(ROOT, pattern)),
      `deno.json publishes ${pattern}, which does not exist`,
    );
  }
});

test("VERSION equals the versions in deno.json and package.json", () => {
  for (const name of ["deno.json", "package.json"]) {
    const json = JSON.parse(fs.readFileSync(path.join(ROOT, name), "utf8"));
    assert.equal(json.version, VERSION, `${name} version`);
  }
});
