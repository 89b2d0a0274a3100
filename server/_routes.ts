/**
 * Bun's `routes` option: path patterns ("/users/:id", "/api/*") to a
 * handler, a Response, per-method handlers, or `false`. The table is
 * checked here (the types are in `_options.ts`) and compiled into what C
 * matches (`ymo_server_add_route`, native/src/router.c) and the fixed
 * responses it serves itself (static routes); a matched request comes back with its route's number and its
 * parameters' raw values, which {@linkcode RouteTable.params} decodes.
 *
 * @module
 */
import type { RouteHandler, RouteTarget } from "./_options.ts";

/** One route as C knows it. */
export interface NativeRoute {
  /** The pattern, e.g. "/users/:id". */
  readonly pattern: string;
  /** The one method it takes, or "" for any. */
  readonly method: string;
  /** Its number in {@linkcode RouteTable.entries}. */
  readonly id: number;
}

/** What JavaScript does for a route C matched. */
export interface RouteEntry {
  /** The handler, or null to pass the request to `fetch`. */
  readonly handler: RouteHandler | null;
  /** The parameters' names, in the pattern's order. */
  readonly names: readonly string[];
}

/** A method name as RFC 9110 section 9 allows (a token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A parameter's name. */
const PARAM_NAME = /^[A-Za-z_$][\w$]*$/;

function isHandler(value: unknown): value is RouteHandler {
  return typeof value === "function";
}

/** The parameters' names of `pattern`; a TypeError naming it when it is not
 * a pattern ymo can route. */
function patternNames(pattern: string): string[] {
  const bad = (why: string) =>
    new TypeError(`Invalid routes: "${pattern}" ${why}`);
  if (!pattern.startsWith("/") || /[\s\0?#\\]/.test(pattern)) {
    throw bad('is not a path pattern (it must start with "/")');
  }
  const segments = pattern.slice(1).split("/");
  if (segments.length > 64) throw bad("has more than 64 segments");
  const names: string[] = [];
  segments.forEach((segment, i) => {
    if (segment === "*") {
      if (i !== segments.length - 1) throw bad('has "*" before its end');
    } else if (segment.startsWith(":")) {
      const name = segment.slice(1);
      if (!PARAM_NAME.test(name)) throw bad(`has a bad parameter "${segment}"`);
      if (names.includes(name)) throw bad(`repeats the parameter "${name}"`);
      names.push(name);
    } else if (segment.includes("*") || segment.includes(":")) {
      throw bad(`has "*" or ":" inside the segment "${segment}"`);
    }
  });
  return names;
}

/** Whether a pattern is one exact path, servable as a static route. */
function isExact(pattern: string): boolean {
  return !pattern.includes(":") && !pattern.includes("*");
}

/** `target` as a route's target, or a TypeError naming the route. */
function checkTarget(
  pattern: string,
  method: string,
  target: unknown,
): RouteTarget {
  if (target === false || isHandler(target)) return target;
  if (target instanceof Response) {
    if (target.bodyUsed) {
      throw new TypeError(
        `Invalid routes: the body of "${pattern}"${method} is already read`,
      );
    }
    return target;
  }
  throw new TypeError(
    `Invalid routes: "${pattern}"${method} must be a function, a Response or false`,
  );
}

/** A handler that answers with a copy of a fixed Response. */
function answerWith(response: Response): RouteHandler {
  return () => response.clone();
}

/**
 * A `routes` option compiled: what C matches, what it serves itself, and
 * what JavaScript runs for each route C reports. Made the same way from the
 * same option on every thread, so route numbers agree.
 */
export class RouteTable {
  /** By route number (C's id). */
  readonly entries: RouteEntry[] = [];
  /** For ymo_server_add_route, in precedence order among equals. */
  readonly native: NativeRoute[] = [];
  /** Exact paths whose GET (and HEAD) C answers with a fixed Response. */
  readonly statics: Record<string, Response> = {};

  /**
   * Compiles a `routes` option, throwing a TypeError that names the first
   * bad route: its pattern, a parameter or method name, or a value.
   *
   * @param routes The option.
   */
  constructor(routes: unknown) {
    if (
      routes === null || typeof routes !== "object" || Array.isArray(routes)
    ) {
      throw new TypeError("Invalid routes: expected an object of routes");
    }
    for (const [pattern, value] of Object.entries(routes)) {
      const names = patternNames(pattern);
      if (
        value === false || isHandler(value) || value instanceof Response ||
        value === null || typeof value !== "object"
      ) {
        this.#add(pattern, "", checkTarget(pattern, "", value), names);
        continue;
      }
      const methods = Object.entries(value);
      if (methods.length === 0) {
        throw new TypeError(`Invalid routes: "${pattern}" has no methods`);
      }
      for (const [method, target] of methods) {
        if (!TOKEN.test(method)) {
          throw new TypeError(
            `Invalid routes: "${pattern}" has a bad method name "${method}"`,
          );
        }
        this.#add(
          pattern,
          method,
          checkTarget(pattern, ` ${method}`, target),
          names,
        );
      }
    }
  }

  #add(
    pattern: string,
    method: string,
    target: RouteTarget,
    names: string[],
  ): void {
    if (target instanceof Response) {
      // GET of an exact path is served by C itself; every other method (as
      // Bun does for a Response route) and every pattern get a copy from
      // JavaScript.
      if (isExact(pattern) && (method === "" || method === "GET")) {
        if (method === "GET") {
          this.statics[pattern] = target;
          return;
        }
        // A copy: the server reads the static route's body at start.
        this.statics[pattern] = target.clone();
      }
      target = answerWith(target);
    }
    const id = this.entries.length;
    this.entries.push({ handler: target === false ? null : target, names });
    this.native.push({ pattern, method, id });
  }

  /**
   * The `params` object of a request C matched to route `id`: each name
   * with its value percent-decoded as UTF-8 (bytes that are not UTF-8
   * become U+FFFD, as in Bun).
   */
  params(id: number, values: readonly string[]): Record<string, string> {
    const names = this.entries[id].names;
    const params: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) {
      params[names[i]] = decodeParam(values[i] ?? "");
    }
    return params;
  }
}

const utf8 = new TextDecoder();

/** Percent-decodes `raw` (a Latin-1 string of the path's bytes) as UTF-8. */
export function decodeParam(raw: string): string {
  if (!/[%\x80-\xff]/.test(raw)) return raw;
  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ && isHex(raw, i + 1)) {
      bytes[n++] = parseInt(raw.slice(i + 1, i + 3), 16);
      i += 2;
    } else {
      bytes[n++] = c;
    }
  }
  return utf8.decode(bytes.subarray(0, n));
}

function isHex(s: string, at: number): boolean {
  return at + 1 < s.length && /^[0-9A-Fa-f]{2}$/.test(s.slice(at, at + 2));
}
