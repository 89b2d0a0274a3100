/**
 * The command line: serves an app module's `export default { fetch }` (the
 * `deno serve` and Bun convention), or the demo app.
 *
 *     deno run -A scripts/serve.ts [APP] [--port N] [--hostname H] [--workers N]
 *     bun scripts/serve.ts [APP] [--port N] [--hostname H] [--workers N]
 *
 * `--workers N` runs the app on N JavaScript threads (Web Workers).
 *
 * `PORT` in the environment is used when `--port` is not given (`HOSTNAME` is
 * not: shells set it to the machine's name). SIGINT or SIGTERM shuts down
 * gracefully; a second one exits at once.
 *
 * @module
 */
import process from "node:process";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { serve, type ServeHandler } from "../mod.ts";

const USAGE =
  "Usage: serve.ts [APP] [--port N] [--hostname H] [--workers N]";

interface Args {
  app?: string;
  port: number;
  hostname: string;
  workers?: number;
}

function parseArgs(argv: string[]): Args {
  let app: string | undefined;
  let port: string | undefined = process.env.PORT;
  let hostname = "0.0.0.0";
  let workers: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.split("=", 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new TypeError(`Missing value for ${flag}\n${USAGE}`);
      return v;
    };
    if (flag === "--port" || flag === "-p") port = value();
    else if (flag === "--hostname" || flag === "-H") hostname = value();
    else if (flag === "--workers" || flag === "-w") workers = value();
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
  return { app, port: portNumber, hostname, workers: workerCount };
}

function appUrl(app: string | undefined): string {
  if (app === undefined) return new URL("./demo.ts", import.meta.url).href;
  return /^[a-z][a-z0-9+.-]*:/i.test(app) ? app : pathToFileURL(resolve(app)).href;
}

async function loadApp(url: string): Promise<ServeHandler> {
  const mod = await import(url);
  const fetch = mod.default?.fetch;
  if (typeof fetch !== "function") {
    throw new TypeError(
      `Invalid app: ${url} must export default an object with a fetch(request) method`,
    );
  }
  return fetch.bind(mod.default);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const url = appUrl(args.app);
  const options = { port: args.port, hostname: args.hostname };
  const server = args.workers === undefined
    ? serve(options, await loadApp(url))
    : serve({ ...options, workers: args.workers, module: url });
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(130);
    console.error("Shutting down (again to force)");
    server.shutdown();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  await server.finished;
  process.removeListener("SIGINT", onSignal);
  process.removeListener("SIGTERM", onSignal);
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
