/**
 * What ymo needs from the system on every load (finding the native library,
 * a worker's module URL, a certificate file): the environment, testing and
 * reading files, and POSIX paths, without Node's modules on Deno, where
 * loading them is Deno's Node layer (`node:fs` alone is ~8 MB in an empty
 * process; importing ymo without them takes 3.5 MB and ~30 ms less). Bun
 * implements `node:fs` natively, and it is what Bun offers for synchronous
 * file calls. Building the library (once per version, `_build.ts`) still
 * uses Node's modules on both.
 *
 * @module
 */

interface DenoHost {
  build: { os: string };
  errors: Record<string, abstract new () => Error>;
  cwd(): string;
  env: { get(name: string): string | undefined };
  statSync(path: string): { isFile: boolean };
  readFileSync(path: string): Uint8Array;
}

const deno = (globalThis as { Deno?: DenoHost }).Deno;

interface BunProcess {
  platform: string;
  cwd(): string;
  env: Record<string, string | undefined>;
}

const nodeFs = deno === undefined ? await import("node:fs") : undefined;
const bunProcess = deno === undefined
  ? (globalThis as unknown as { process: BunProcess }).process
  : undefined;

/** The platform, as `process.platform` names it ("linux", "darwin", ...). */
export function platform(): string {
  if (deno === undefined) return bunProcess!.platform;
  const os = deno.build.os;
  return os === "windows" ? "win32" : os;
}

/** The process environment, read one variable at a time (on Deno, each read
 * asks for its `--allow-env` permission, as `process.env` does). */
export function processEnv(): Record<string, string | undefined> {
  if (deno === undefined) return bunProcess!.env;
  return new Proxy({}, {
    get: (_, name) => typeof name === "string" ? deno.env.get(name) : undefined,
  });
}

/** True for Deno's permission errors, which callers must see unchanged. */
export function isPermissionError(error: unknown): boolean {
  if (deno === undefined) return false;
  const errors = deno.errors;
  return (errors.NotCapable !== undefined &&
    error instanceof errors.NotCapable) ||
    (errors.PermissionDenied !== undefined &&
      error instanceof errors.PermissionDenied);
}

/** True for an existing file (or a link to one); permission errors throw. */
export function isFile(file: string): boolean {
  try {
    return deno !== undefined
      ? deno.statSync(file).isFile
      : nodeFs!.statSync(file).isFile();
  } catch (error) {
    if (isPermissionError(error)) throw error;
    return false;
  }
}

/** The bytes of a file; throws if it cannot be read. */
export function readBytes(file: string): Uint8Array {
  return deno !== undefined
    ? deno.readFileSync(file)
    : new Uint8Array(nodeFs!.readFileSync(file));
}

/** Whether a POSIX path is absolute. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** Joins POSIX path segments and resolves "." and ".." in them, as
 * `path.join` does for absolute paths. */
export function join(...parts: string[]): string {
  const out: string[] = [];
  for (const segment of parts.join("/").split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return (isAbsolute(parts[0] ?? "") ? "/" : "") + out.join("/");
}

/** An absolute path for `path`, from the working directory if relative. */
export function resolve(path: string): string {
  if (isAbsolute(path)) return join(path);
  return join(deno !== undefined ? deno.cwd() : bunProcess!.cwd(), path);
}

/** The path of a `file:` URL. */
export function fromFileUrl(url: URL): string {
  if (url.protocol !== "file:") throw new TypeError(`Not a file URL: ${url}`);
  return decodeURIComponent(url.pathname);
}

/** The `file:` URL of a path, relative ones from the working directory. */
export function toFileUrl(path: string): URL {
  const url = new URL("file:///");
  // The setter encodes what a path may not hold, but leaves "%" as it is and
  // drops tabs and line breaks.
  url.pathname = resolve(path).replace(
    /[%\t\n\r]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
  return url;
}

/** A module specifier as a URL string: one with a scheme as it is, a path as
 * its `file:` URL (relative ones from the working directory). */
export function moduleHref(module: string | URL): string {
  if (module instanceof URL) return module.href;
  return /^[a-z][a-z0-9+.-]*:/i.test(module) ? module : toFileUrl(module).href;
}
