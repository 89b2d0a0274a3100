/**
 * The command line: serves an app module's `export default { fetch }` (the
 * `deno serve` and Bun convention), or the demo app.
 *
 *     deno run -A scripts/serve.ts [APP] [--port N] [--hostname H] [--workers N]
 *     bun scripts/serve.ts [APP] [--port N] [--hostname H] [--workers N]
 *
 * `--compress` turns on automatic response compression
 * (`automaticCompression`: gzip, deflate or br by the request's
 * Accept-Encoding, in C). `--cert FILE --key FILE` serve HTTPS with that
 * certificate (PEM, intermediates after it) and private key (PEM).
 *
 * The default export may also have `static: { "/path": Response }`: fixed
 * responses that the native loop thread answers without calling `fetch`
 * (`serve({ static })`). With `--workers`, the module is then imported on
 * the main thread too, to read them. Bun's `routes` are taken too (without
 * `--workers`), and with them `fetch` is optional, and so are Bun's
 * `websocket` handlers (for `server.upgrade(request)` in `fetch`).
 *
 * `--workers N` runs the app on N JavaScript threads (Web Workers);
 * `--processes N` starts N processes sharing the port (SO_REUSEPORT) and
 * forwards SIGINT and SIGTERM to them. Under systemd socket activation
 * (`LISTEN_FDS`), the inherited socket (fd 3) is served instead.
 *
 * `PORT` in the environment is used when `--port` is not given (`HOSTNAME` is
 * not: shells set it to the machine's name). SIGINT or SIGTERM shuts down
 * gracefully; a second one exits at once.
 *
 * @module
 */
import process from "node:process";
import type { ChildProcess } from "node:child_process";
import { moduleHref, readBytes } from "../ffi/_host.ts";
import {
  type Routes,
  serve,
  type ServeHandler,
  type ServeInit,
  type WebSocketHandler,
} from "../mod.ts";

const USAGE =
  "Usage: serve.ts [APP] [--port N] [--hostname H] [--workers N] [--processes N] [--compress] [--cert FILE --key FILE]";

interface Args {
  app?: string;
  port: number;
  hostname: string;
  workers?: number;
  processes?: number;
  reusePort: boolean;
  compress: boolean;
  cert?: string;
  key?: string;
}

function parseArgs(argv: string[]): Args {
  let app: string | undefined;
  let port: string | undefined = process.env.PORT;
  let hostname = "0.0.0.0";
  let workers: string | undefined;
  let processes: string | undefined;
  let reusePort = false;
  let compress = false;
  let cert: string | undefined;
  let key: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.split("=", 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) {
        throw new TypeError(`Missing value for ${flag}\n${USAGE}`);
      }
      return v;
    };
    if (flag === "--port" || flag === "-p") port = value();
    else if (flag === "--hostname" || flag === "-H") hostname = value();
    else if (flag === "--workers" || flag === "-w") workers = value();
    else if (flag === "--processes") processes = value();
    else if (flag === "--reuse-port") reusePort = true;
    else if (flag === "--compress") compress = true;
    else if (flag === "--cert") cert = value();
    else if (flag === "--key") key = value();
    else if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg.startsWith("-")) {
      throw new TypeError(`Unknown option: ${arg}\n${USAGE}`);
    } else if (app === undefined) app = arg;
    else throw new TypeError(`Unexpected argument: ${arg}\n${USAGE}`);
  }
  const portNumber = port === undefined ? 8000 : Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
    throw new RangeError(`Invalid port: ${port} (expected 0 to 65535)`);
  }
  const workerCount = workers === undefined ? undefined : Number(workers);
  if (
    workerCount !== undefined &&
    (!Number.isInteger(workerCount) || workerCount < 1 || workerCount > 256)
  ) {
    throw new RangeError(`Invalid workers: ${workers} (expected 1 to 256)`);
  }
  const processCount = processes === undefined ? undefined : Number(processes);
  if (
    processCount !== undefined &&
    (!Number.isInteger(processCount) || processCount < 1 || processCount > 256)
  ) {
    throw new RangeError(`Invalid processes: ${processes} (expected 1 to 256)`);
  }
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError(`--cert and --key go together\n${USAGE}`);
  }
  return {
    app,
    cert,
    key,
    port: portNumber,
    hostname,
    workers: workerCount,
    processes: processCount,
    reusePort,
    compress,
  };
}

/** A file's text (through _host.ts: not node:fs, which costs a Deno process
 * megabytes to load). */
function readText(file: string): string {
  return new TextDecoder().decode(readBytes(file));
}

function appUrl(app: string | undefined): string {
  if (app === undefined) return new URL("./demo.ts", import.meta.url).href;
  return moduleHref(app);
}

/** What serve.ts takes from an app module's default export. */
interface App {
  fetch?: ServeHandler;
  static?: Record<string, Response>;
  routes?: Routes;
  websocket?: WebSocketHandler;
}

async function loadApp(url: string): Promise<App> {
  const mod = await import(url);
  const fetch = mod.default?.fetch;
  const routes = mod.default?.routes;
  if (typeof fetch !== "function" && routes === undefined) {
    throw new TypeError(
      `Invalid app: ${url} must export default an object with a fetch(request) method or routes`,
    );
  }
  // serve() validates `static` and `routes` itself.
  return {
    fetch: typeof fetch === "function" ? fetch.bind(mod.default) : undefined,
    static: mod.default.static,
    routes,
    websocket: mod.default.websocket,
  };
}

/** The socket systemd passed us (fd 3), if it passed one to this process. */
function inheritedSocket(): number | undefined {
  const fds = Number(process.env.LISTEN_FDS ?? 0);
  const pid = process.env.LISTEN_PID;
  if (fds < 1 || (pid !== undefined && Number(pid) !== process.pid)) {
    return undefined;
  }
  return 3; // SD_LISTEN_FDS_START
}

/** Runs `count` copies of this command line sharing the port, until they
 * all exit; signals are passed on to them. */
async function supervise(count: number, argv: string[]): Promise<number> {
  // Imported only here: on Deno, Node's modules cost megabytes to load.
  const { spawn } = await import("node:child_process");
  const script = process.argv[1];
  const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
    ? [script]
    : ["run", "-A", script];
  const childArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    if (flag === "--processes") {
      if (inline === undefined) i++;
      continue;
    }
    childArgs.push(argv[i]);
  }
  const children: ChildProcess[] = [];
  // process.kill, not child.kill: Deno's ChildProcess.kill() lets the
  // signal's default action kill the child even when it handles the signal.
  const forward = (signal: NodeJS.Signals) => () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null) {
        process.kill(child.pid, signal);
      }
    }
  };
  process.on("SIGINT", forward("SIGINT"));
  process.on("SIGTERM", forward("SIGTERM"));
  children.push(...Array.from(
    { length: count },
    () =>
      spawn(process.execPath, [...runtime, ...childArgs, "--reuse-port"], {
        stdio: "inherit",
      }),
  ));
  const codes = await Promise.all(
    children.map((child) =>
      new Promise<number>((resolve) =>
        child.on("exit", (code) => resolve(code ?? 1))
      )
    ),
  );
  return Math.max(...codes);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  if (args.processes !== undefined) {
    process.exitCode = await supervise(args.processes, argv);
    return;
  }
  // Handlers first: a signal that came between "Listening on" and their
  // installation took its default action (seen under Bun with --processes).
  // Assigned once, below, but read by onSignal before that.
  // deno-lint-ignore prefer-const
  let server: ReturnType<typeof serve> | undefined;
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1 || server === undefined) process.exit(130);
    console.error("Shutting down (again to force)");
    server.shutdown();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const url = appUrl(args.app);
  // With workers each thread imports the app itself; this import is for
  // `static`, which the main thread hands to the server.
  const app = await loadApp(url);
  // The files are read here, so a missing one is reported with its path.
  const tls = args.cert === undefined
    ? {}
    : { cert: readText(args.cert), key: readText(args.key!) };
  const options = {
    ...tls,
    port: args.port,
    hostname: args.hostname,
    reusePort: args.reusePort,
    automaticCompression: args.compress,
    fd: inheritedSocket(),
    ...(app.static === undefined ? {} : { static: app.static }),
    ...(app.routes === undefined ? {} : { routes: app.routes }),
    // With workers, the threads take the handlers from the module; these
    // are for the settings (maxPayloadLength, idleTimeout).
    ...(app.websocket === undefined ? {} : { websocket: app.websocket }),
  };
  server = args.workers === undefined
    ? serve({ ...options, fetch: app.fetch } as ServeInit)
    : serve({ ...options, workers: args.workers, module: url });
  await server.finished;
  // Exit here rather than by removing the listeners: Deno re-raises a
  // handled SIGTERM when its last listener goes away, killing the process.
  process.exit(0);
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
