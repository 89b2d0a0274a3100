/**
 * The package as a user gets it: a project in a temporary folder outside the
 * repository imports ymo by its package name, runs on the runtime that runs
 * this test (`deno test` starts deno, `bun test` starts bun), serves one
 * request, shuts down and exits 0.
 *
 * How each project finds ymo, offline:
 *
 * - Deno: `deno.json` maps `@ymo/ymo` to a `file:` URL of `mod.ts`, as
 *   `deno add jsr:@ymo/ymo` would map it to JSR.
 * - Bun, this checkout: `tsconfig.json` `paths` maps `ymo` to `mod.ts`. A
 *   `"ymo": "file:<repo>"` dependency is not used because `bun install`
 *   (1.4.4) resolves the devDependencies of a folder dependency (the pinned
 *   `deno` and `bun` npm packages) from the registry, even with
 *   `--production` or `--omit=dev`, so it cannot run offline.
 * - Bun, the published package: `bun pm pack` makes the tarball npm would
 *   get (package.json `files`), and the project depends on it as
 *   `file:<tarball>`, installed with `bun install --offline`.
 *
 * The checkout's `native/build` has the library, so a project that imports
 * the checkout must load it from there and leave the cache alone. A published
 * package has no `native/build`: its first import builds the library into the
 * per-user cache (`XDG_CACHE_HOME`) and says so on stderr, and the next run
 * loads the cached library without building. On Deno these runs use exactly
 * the permissions that README.md documents.
 */

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { isBun, test } from "./_shim.ts";
import {
  childEnv,
  type Exit,
  ROOT,
  runChild,
  startChild,
  withTempDir,
} from "./_child.ts";

const RUNTIME = isBun ? "bun" : "deno";

/** Deno's permissions once the library exists (README.md, "Deno"): no
 * --allow-net, since ymo opens its sockets in C. */
const DENO_RUN = ["--allow-ffi", "--allow-read", "--allow-env"];

/** Deno's permissions for the first run, which builds (README.md). */
const DENO_FIRST_RUN = [...DENO_RUN, "--allow-run=cmake", "--allow-write"];

/** A user's program: serves until GET /shutdown, then exits on its own. */
function mainSource(specifier: string): string {
  return `import { serve } from ${JSON.stringify(specifier)};

const runtime = "Bun" in globalThis ? "bun" : "deno";
const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.log(\`listening on port \${port}\`),
}, (request) => {
  const { pathname } = new URL(request.url);
  if (pathname === "/shutdown") {
    setTimeout(() => server.shutdown(), 0);
    return new Response("shutting down");
  }
  return new Response(\`Hello from \${pathname} on \${runtime}\`);
});
await server.finished;
console.log("finished");
`;
}

function writeFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

function writeJson(file: string, value: unknown): void {
  writeFile(file, JSON.stringify(value, null, 2) + "\n");
}

/** A Deno project whose deno.json maps `@ymo/ymo` to `mod`. */
function denoProject(dir: string, mod: string): void {
  writeJson(path.join(dir, "deno.json"), {
    imports: { "@ymo/ymo": pathToFileURL(mod).href },
    lock: false,
  });
  writeFile(path.join(dir, "main.ts"), mainSource("@ymo/ymo"));
}

/** A Bun project whose tsconfig.json maps `ymo` to `mod`. */
function bunPathsProject(dir: string, mod: string): void {
  writeJson(path.join(dir, "package.json"), {
    name: "app",
    private: true,
    type: "module",
  });
  writeJson(path.join(dir, "tsconfig.json"), {
    compilerOptions: { paths: { ymo: [mod] } },
  });
  writeFile(path.join(dir, "main.ts"), mainSource("ymo"));
}

/** A Bun project that installs the packed tarball, offline. */
async function bunTarballProject(dir: string, tarball: string): Promise<void> {
  writeJson(path.join(dir, "package.json"), {
    name: "app",
    private: true,
    type: "module",
    dependencies: { ymo: `file:${tarball}` },
  });
  writeFile(path.join(dir, "main.ts"), mainSource("ymo"));
  const install = await runChild(
    process.execPath,
    ["install", "--offline", "--ignore-scripts"],
    { cwd: dir, env: childEnv() },
  );
  assert.equal(install.code, 0, `bun install failed: ${install.output}`);
  assert.ok(
    fs.existsSync(path.join(dir, "node_modules", "ymo", "mod.ts")),
    `bun install did not install ymo: ${install.output}`,
  );
}

/**
 * Copies what `deno publish` uploads (deno.json `publish.include`, minus
 * `publish.exclude`) into `to`, so the copy is the package JSR serves.
 */
function copyPublishedFiles(to: string): void {
  const config = JSON.parse(
    fs.readFileSync(path.join(ROOT, "deno.json"), "utf8"),
  ) as { publish: { include: string[]; exclude?: string[] } };
  const excluded = (config.publish.exclude ?? []).map((glob) =>
    new RegExp(
      "^" + glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*") +
        "(/|$)",
    )
  );
  for (const entry of config.publish.include) {
    fs.cpSync(path.join(ROOT, entry), path.join(to, entry), {
      recursive: true,
      filter: (from) => {
        const rel = path.relative(ROOT, from).split(path.sep).join("/");
        return !excluded.some((re) => re.test(rel));
      },
    });
  }
}

/** Makes the tarball npm would get, with `bun pm pack`; returns its path. */
async function packTarball(destination: string): Promise<string> {
  const pack = await runChild(
    process.execPath,
    ["pm", "pack", "--destination", destination, "--ignore-scripts"],
    { cwd: ROOT, env: childEnv() },
  );
  assert.equal(pack.code, 0, `bun pm pack failed: ${pack.output}`);
  const tarballs = fs.readdirSync(destination).filter((f) =>
    f.endsWith(".tgz")
  );
  assert.equal(tarballs.length, 1, `expected one tarball: ${pack.output}`);
  return path.join(destination, tarballs[0]);
}

/** The command that runs the project's main.ts on this runtime. */
function mainCommand(denoPermissions: string[]): string[] {
  return isBun ? ["main.ts"] : ["run", ...denoPermissions, "main.ts"];
}

/** What one run of a user's program did. */
interface Run extends Exit {
  stderr: string;
}

/**
 * Runs the project's main.ts, checks one answer, asks it to shut down, and
 * checks that it exits 0 on its own.
 */
async function serveOnce(
  project: string,
  env: Record<string, string | undefined>,
  denoPermissions: string[],
): Promise<Run> {
  const child = startChild(process.execPath, mainCommand(denoPermissions), {
    cwd: project,
    env,
  });
  try {
    const [, port] = await child.waitFor(/listening on port (\d+)/);
    const base = `http://127.0.0.1:${port}`;
    const response = await fetch(`${base}/from-a-package`);
    assert.equal(response.status, 200, child.output());
    assert.equal(
      await response.text(),
      `Hello from /from-a-package on ${RUNTIME}`,
    );
    const bye = await fetch(`${base}/shutdown`);
    assert.equal(await bye.text(), "shutting down");
    const exit = await child.waitExit();
    assert.deepEqual(exit, { code: 0, signal: null }, child.output());
    assert.match(child.stdout(), /^finished$/m, child.output());
    return { ...exit, stderr: child.stderr() };
  } finally {
    await child.stop();
  }
}

test(`a ${RUNTIME} project outside the repository imports ymo by name and loads native/build`, async () => {
  await withTempDir("package", async (dir) => {
    const project = path.join(dir, "app");
    const mod = path.join(ROOT, "mod.ts");
    if (isBun) bunPathsProject(project, mod);
    else denoProject(project, mod);
    const cache = path.join(dir, "cache");
    const run = await serveOnce(
      project,
      childEnv({ XDG_CACHE_HOME: cache }),
      DENO_RUN,
    );
    // The checkout's library was used: nothing was built, nothing cached.
    assert.doesNotMatch(run.stderr, /ymo: building/);
    assert.equal(
      fs.existsSync(path.join(cache, "ymo")),
      false,
      `the checkout has native/build, yet the cache was used: ${run.stderr}`,
    );
  });
});

test(`the published package on ${RUNTIME} builds the library into the cache once, then loads it`, async () => {
  await withTempDir("package-cache", async (dir) => {
    const project = path.join(dir, "app");
    if (isBun) {
      await bunTarballProject(project, await packTarball(dir));
    } else {
      const pkg = path.join(dir, "pkg");
      copyPublishedFiles(pkg);
      denoProject(project, path.join(pkg, "mod.ts"));
    }
    const installed = isBun
      ? path.join(project, "node_modules", "ymo")
      : path.join(dir, "pkg");
    assert.equal(
      fs.existsSync(path.join(installed, "native", "build")),
      false,
      "the published package must not contain native/build",
    );
    const cache = path.join(dir, "cache");
    const env = childEnv({ XDG_CACHE_HOME: cache });

    if (!isBun) {
      // Without --allow-write the build is refused, naming the flag.
      const denied = await runChild(
        process.execPath,
        ["run", "--no-prompt", ...DENO_RUN, "main.ts"],
        { cwd: project, env },
      );
      assert.notEqual(denied.code, 0, denied.output);
      assert.match(denied.stderr, /--allow-write/, denied.output);
      // Without --allow-run the refusal names that flag too.
      const noRun = await runChild(
        process.execPath,
        ["run", "--no-prompt", ...DENO_RUN, "--allow-write", "main.ts"],
        { cwd: project, env },
      );
      assert.notEqual(noRun.code, 0, noRun.output);
      assert.match(noRun.stderr, /--allow-run=cmake/, noRun.output);
      assert.doesNotMatch(noRun.stderr, /exit|apt-get/, noRun.output);
    }

    const first = await serveOnce(project, env, DENO_FIRST_RUN);
    // Built once, though several modules wait for the library.
    assert.equal(
      first.stderr.match(/ymo: building the native library/g)?.length,
      1,
      first.stderr,
    );
    const built = /ymo: built (\S+)/.exec(first.stderr);
    assert.ok(built, `no "ymo: built" line: ${first.stderr}`);
    const library = built[1];
    assert.equal(path.dirname(path.dirname(path.dirname(library))), cache);
    const before = fs.statSync(library);

    const second = await serveOnce(project, env, DENO_RUN);
    assert.doesNotMatch(second.stderr, /ymo: build/, second.stderr);
    const after = fs.statSync(library);
    assert.equal(after.ino, before.ino, "the cached library was replaced");
    assert.equal(after.mtimeMs, before.mtimeMs);
  });
});

test(`the package's command line serves an app module on ${RUNTIME}`, async () => {
  await withTempDir("package-cli", async (dir) => {
    // An app in the `deno serve` / Bun convention, in the user's project.
    writeFile(
      path.join(dir, "app.ts"),
      `export default {
  fetch(request: Request): Response {
    return new Response(\`app saw \${new URL(request.url).pathname}\`);
  },
};
`,
    );
    const cli = path.join(ROOT, "scripts", "serve.ts");
    const args = ["app.ts", "--port", "0", "--hostname", "127.0.0.1"];
    const child = startChild(
      process.execPath,
      isBun ? [cli, ...args] : ["run", ...DENO_RUN, cli, ...args],
      { cwd: dir, env: childEnv({ XDG_CACHE_HOME: path.join(dir, "cache") }) },
    );
    try {
      const [, port] = await child.waitFor(
        /Listening on http:\/\/127\.0\.0\.1:(\d+)\//,
        undefined,
        "stderr",
      );
      const response = await fetch(`http://127.0.0.1:${port}/cli`);
      assert.equal(await response.text(), "app saw /cli");
      // SIGTERM shuts down gracefully and the process exits 0.
      child.kill("SIGTERM");
      const exit = await child.waitExit();
      assert.deepEqual(exit, { code: 0, signal: null }, child.output());
      assert.match(child.stderr(), /Shutting down/);
    } finally {
      await child.stop();
    }
  });
});
