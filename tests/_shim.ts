/**
 * A tiny test registrar that lets the same test files run unchanged under
 * `deno test` and `bun test`.
 *
 * Under Deno it maps to `Deno.test`; under Bun it maps to the `test` export of
 * `bun:test`, which is imported dynamically through a variable so that Deno
 * never tries to resolve the `bun:` scheme (neither while building the module
 * graph nor while type-checking).
 *
 * Every test gets the same generous time limit, enforced here on both runtimes
 * so a hung server fails one test with a clear message instead of hanging the
 * whole run. Tests never assert on how long something took.
 *
 * @module
 */

/** The body of a test. */
export type TestFn = () => void | Promise<void>;

/** How long one test may run before it fails. */
export const TEST_TIMEOUT_MS = 30_000;

/** True when running under Bun. */
export const isBun: boolean =
  typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** True when running under Deno. */
export const isDeno: boolean = !isBun && "Deno" in globalThis;

type BunTest = {
  (name: string, fn: () => Promise<void>, timeoutMs?: number): void;
  skip(name: string, fn: () => Promise<void>): void;
};

let bunTest: BunTest | undefined;
if (isBun) {
  // A variable specifier keeps Deno from resolving "bun:test".
  const specifier = "bun:test";
  bunTest = ((await import(specifier)) as { test: BunTest }).test;
} else if (!isDeno) {
  throw new Error("Unsupported runtime: run these tests with deno or bun");
}

/** Runs `fn`, failing with a clear message if it outlives the time limit. */
async function withTimeout(name: string, fn: TestFn): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`Test timed out after ${TEST_TIMEOUT_MS} ms: ${name}`),
        ),
      TEST_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([Promise.resolve().then(fn), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function register(name: string, fn: TestFn, ignore: boolean): void {
  const body = () => withTimeout(name, fn);
  if (bunTest !== undefined) {
    // Bun's own limit is a backstop a little beyond ours.
    if (ignore) bunTest.skip(name, body);
    else bunTest(name, body, TEST_TIMEOUT_MS + 5_000);
    return;
  }
  Deno.test({
    name,
    fn: body,
    ignore,
    // Deno's op and resource sanitizers stay on: a server that leaves a
    // timer, socket or pending op behind after shutdown() is a bug worth a
    // failing test. (Deno.dlopen libraries and nonblocking FFI calls are not
    // tracked by the sanitizers, so the native library kept open across
    // tests does not trip them.)
  });
}

/** Registers a test. */
export function test(name: string, fn: TestFn): void {
  register(name, fn, false);
}

/** Registers a test that is reported as skipped. */
test.skip = function skip(name: string, fn: TestFn): void {
  register(name, fn, true);
};
