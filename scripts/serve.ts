/**
 * The command line: serves an app module's `export default { fetch }` (the
 * `deno serve` and Bun convention), or the demo app.
 *
 *     deno run -A scripts/serve.ts [APP] [--port N] [--hostname H]
 *     bun scripts/serve.ts [APP] [--port N] [--hostname H]
 *
 * `PORT` and `HOSTNAME` in the environment are used when the flags are not
 * given. SIGINT or SIGTERM shuts down gracefully; a second one exits at once.
 *
 * @module
 */
import process from "node:process";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { serve, type ServeHandler } from "../mod.ts";

const USAGE = "Usage: serve.ts [APP] [--port N] [--hostname H]";

interface Args {
  app?: string;
  port: number;
  hostname: string;
}

function parseArgs(argv: string[]): Args {
  let app: string | undefined;
  let port: string | undefined = process.env.PORT;
  let hostname = process.env.HOSTNAME_OVERRIDE ?? "0.0.0.0";
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
  return { app, port: portNumber, hostname };
}

async function loadApp(app: string | undefined): Promise<ServeHandler> {
  const specifier = app === undefined
    ? new URL("./demo.ts", import.meta.url).href
    : /^[a-z]+:/i.test(app)
    ? app
    : pathToFileURL(resolve(app)).href;
  const mod = await import(specifier);
  const fetch = mod.default?.fetch;
  if (typeof fetch !== "function") {
    throw new TypeError(
      `Invalid app: ${app} must export default an object with a fetch(request) method`,
    );
  }
  return fetch.bind(mod.default);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const handler = await loadApp(args.app);
  const server = serve({ port: args.port, hostname: args.hostname }, handler);
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
