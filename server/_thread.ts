/**
 * The entry of a worker thread (a Web Worker) of a server started with
 * `workers`: it loads the app module and drives one native worker, exactly
 * as the main thread does without `workers`. It imports only the worker
 * layer below it, never the public module.
 *
 * @module
 */
import { loadNative } from "../ffi/native.ts";
import { ThreadWorker, type WorkerHost } from "./_worker.ts";
import type { ThreadInit, ThreadMessage } from "./_pool.ts";
import { type NativeRoute, RouteTable } from "./_routes.ts";

const native = await loadNative();
const scope = globalThis as unknown as {
  postMessage(message: ThreadMessage): void;
  close(): void;
  onmessage: ((event: MessageEvent) => void) | null;
  addEventListener(type: string, fn: (event: Event) => void): void;
};

let worker: ThreadWorker | undefined;

/** Hands what this thread holds back to C before the thread dies, so the
 * loop thread never calls a callback of a dead thread (DESIGN.md, trap 2). */
function crash(message: string): void {
  worker?.detach();
  scope.postMessage({ type: "crashed", message, detached: true });
  scope.close();
}

scope.addEventListener("error", (event) => {
  event.preventDefault();
  const e = event as ErrorEvent;
  crash(e.error instanceof Error ? e.error.stack ?? e.message : e.message);
});
scope.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const reason = (event as PromiseRejectionEvent).reason;
  crash(
    reason instanceof Error ? reason.stack ?? reason.message : String(reason),
  );
});

/**
 * The module's routes compiled on this thread, checked against those the
 * server gave C: the same patterns, methods and numbers, or a TypeError.
 */
function threadRoutes(
  module: string,
  routes: unknown,
  native: readonly NativeRoute[] | undefined,
): RouteTable | undefined {
  const table = routes === undefined ? undefined : new RouteTable(routes);
  const same = JSON.stringify(table?.native ?? []) ===
    JSON.stringify(native ?? []);
  if (!same) {
    throw new TypeError(
      `Invalid module: the routes of ${module} are not those the server was given (pass the module's routes as the routes option)`,
    );
  }
  return table;
}

scope.onmessage = async (event: MessageEvent) => {
  const init: ThreadInit = event.data;
  const { pointer, module, defaultHost, handlerTimeout } = init;
  const app = (await import(module)).default;
  if (typeof app?.fetch !== "function" && app?.routes === undefined) {
    throw new TypeError(
      `Invalid module: ${module} must export default an object with a fetch(request) method or routes`,
    );
  }
  const routes = threadRoutes(module, app.routes, init.routes);
  const host: WorkerHost = {
    handler: typeof app.fetch === "function" ? app.fetch.bind(app) : undefined,
    routes,
    websocket: app.websocket,
    onError: typeof app.onError === "function"
      ? app.onError.bind(app)
      : undefined,
    defaultHost,
    stopping: false,
    handlerTimeout,
    url: init.url,
    port: init.port,
    hostname: init.hostname,
    stop(closeActiveConnections = false): Promise<void> {
      scope.postMessage({ type: "stop", closeActiveConnections });
      return worker!.stopped;
    },
  };
  worker = new ThreadWorker(
    host,
    native.pointerFrom(pointer),
    init.otherLoops.map((other) => native.pointerFrom(other)),
  );
  const current = worker;
  current.stopped.then(() => {
    current.close();
    scope.postMessage({ type: "stopped" });
  });
  current.start();
  scope.postMessage({ type: "ready" });
};

scope.postMessage({ type: "loaded" });
