/**
 * Turns benchmark runs into bench/results.md and bench/results.svg.
 *
 * @module
 */

import type { WrkResult } from "./_wrk.ts";

/** One measured run: one server, one workload, one connection count. */
export interface RunRecord {
  round: number;
  server: string;
  workload: string;
  connections: number;
  workers: number;
  /**
   * wrk's report, absent when the run failed. For a WebSocket workload,
   * ws_load's in the same shape, messages in the place of requests (and so
   * in every per-request figure below).
   */
  wrk?: WrkResult;
  /** Server CPU time (utime + stime, whole process group) during wrk, in s. */
  cpuSeconds?: number;
  /** cpuSeconds divided by completed requests, in us. */
  cpuUsPerRequest?: number;
  /** VmHWM over the process group at the end of the run, in KiB. */
  peakRssKiB?: number;
  /** Cores used on average by processes other than server, wrk and harness. */
  otherCores?: number;
  /** System calls made by the server's threads during wrk (perf), per
   * completed request; absent where perf could not count them. */
  syscallsPerRequest?: number;
  /** Voluntary and involuntary context switches of the server's threads
   * during wrk (/proc/PID/task/TID/status), per completed request. */
  switchesPerRequest?: number;
  /** Why this run is not clean: errors, bad responses, a crash. */
  flags: string[];
}

/**
 * A server as the report names it. A baseline (the plain C server) is not a
 * peer: ymo's ratio to it is reported on its own.
 */
export interface ServerInfo {
  id: string;
  label: string;
  kind: "ymo" | "peer" | "baseline";
}

/** A workload as the report names it. */
export interface WorkloadInfo {
  id: string;
  title: string;
  /** Title in the chart. */
  short: string;
  /**
   * What it counts: HTTP requests (the default), WebSocket messages, or TLS
   * handshakes (one request on each new connection).
   */
  unit?: "req" | "msg" | "handshake";
}

/** Everything the report needs. */
export interface ReportInput {
  records: RunRecord[];
  servers: ServerInfo[];
  workloads: WorkloadInfo[];
  connections: number[];
  workers: number[];
  rounds: number;
  /** Lines for the header: date, machine, versions, command. */
  about: string[];
  /** Servers that were asked for but skipped, with the reason. */
  skipped: { label: string; reason: string }[];
  /** Other load, in cores, above which a run counts as disturbed. */
  noiseCores: number;
}

// ---------------------------------------------------------------- statistics

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median, min and max of a list of numbers (NaN when empty). */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

function spread(values: number[]): Spread {
  const finite = values.filter(Number.isFinite);
  return {
    median: median(finite),
    min: finite.length ? Math.min(...finite) : NaN,
    max: finite.length ? Math.max(...finite) : NaN,
    n: finite.length,
  };
}

/** The rounds of one server on one workload, connection count and worker count. */
export interface Cell {
  server: ServerInfo;
  workload: string;
  connections: number;
  workers: number;
  rps: Spread;
  p50Us: Spread;
  p99Us: Spread;
  cpuUsPerRequest: Spread;
  syscallsPerRequest: Spread;
  switchesPerRequest: Spread;
  /** Highest peak RSS over the rounds, in KiB. */
  peakRssKiB: number;
  socketErrors: number;
  non2xx: number;
  /** Highest load from other processes over the rounds, in cores. */
  otherCores: number;
  flags: string[];
  /** ymo only: this server's figures over the best peer's, round by round. */
  vsBest?: {
    rps: Spread;
    p99: Spread;
    cpu: Spread;
    rss: Spread;
    /** The peer with the most requests/s in most rounds. */
    bestPeer: string;
  };
  /** ymo only: this server's requests/s over the baseline's, round by round. */
  vsBaseline?: {
    rps: Spread;
    /** The baseline's label. */
    baseline: string;
  };
}

/**
 * ymo's requests/s as a share of the plain C server's that it aims for: 0.95
 * for static routes (answered by ymo's own C loop thread), 0.9 where the
 * request goes through JavaScript.
 */
export function baselineGoal(workload: string): number {
  return workload === "static" ? 0.95 : 0.9;
}

function key(workload: string, connections: number, workers: number): string {
  return `${workload}|${connections}|${workers}`;
}

/** Groups records into cells and computes ymo's ratios to the best peer. */
export function summarize(input: ReportInput): Cell[] {
  const cells: Cell[] = [];
  const byServer = new Map(input.servers.map((s) => [s.id, s]));
  const groups = new Map<string, RunRecord[]>();
  for (const record of input.records) {
    const k = `${
      key(record.workload, record.connections, record.workers)
    }|${record.server}`;
    groups.set(k, [...(groups.get(k) ?? []), record]);
  }
  for (const workload of input.workloads) {
    for (const connections of input.connections) {
      for (const workers of input.workers) {
        for (const server of input.servers) {
          const records = groups.get(
            `${key(workload.id, connections, workers)}|${server.id}`,
          ) ?? [];
          if (records.length === 0) continue;
          const ok = records.filter((r) => r.wrk);
          cells.push({
            server,
            workload: workload.id,
            connections,
            workers,
            rps: spread(ok.map((r) => r.wrk!.requestsPerSec)),
            p50Us: spread(ok.map((r) => r.wrk!.latencyP50Us)),
            p99Us: spread(ok.map((r) => r.wrk!.latencyP99Us)),
            cpuUsPerRequest: spread(ok.map((r) => r.cpuUsPerRequest ?? NaN)),
            syscallsPerRequest: spread(
              ok.map((r) => r.syscallsPerRequest ?? NaN),
            ),
            switchesPerRequest: spread(
              ok.map((r) => r.switchesPerRequest ?? NaN),
            ),
            peakRssKiB: Math.max(0, ...records.map((r) => r.peakRssKiB ?? 0)),
            socketErrors: ok.reduce((sum, r) => {
              const e = r.wrk!.socketErrors;
              return sum + e.connect + e.read + e.write + e.timeout;
            }, 0),
            non2xx: ok.reduce((sum, r) => sum + r.wrk!.non2xx, 0),
            otherCores: Math.max(0, ...ok.map((r) => r.otherCores ?? 0)),
            flags: records.flatMap((r) =>
              r.flags.map((f) => `round ${r.round}: ${f}`)
            ),
          });
        }
      }
    }
  }
  addRatios(input, cells, byServer);
  return cells;
}

function addRatios(
  input: ReportInput,
  cells: Cell[],
  byServer: Map<string, ServerInfo>,
) {
  const rounds = new Map<string, RunRecord[]>();
  for (const r of input.records) {
    if (!r.wrk) continue;
    const k = `${key(r.workload, r.connections, r.workers)}|${r.round}`;
    rounds.set(k, [...(rounds.get(k) ?? []), r]);
  }
  for (const cell of cells) {
    if (cell.server.kind !== "ymo") continue;
    const rps: number[] = [],
      p99: number[] = [],
      cpu: number[] = [],
      rss: number[] = [],
      toBaseline: number[] = [];
    const bestCount = new Map<string, number>();
    let baseline = "";
    for (let round = 1; round <= input.rounds; round++) {
      const runs = rounds.get(
        `${key(cell.workload, cell.connections, cell.workers)}|${round}`,
      ) ?? [];
      const mine = runs.find((r) => r.server === cell.server.id);
      if (!mine) continue;
      const bound = runs.filter((r) =>
        byServer.get(r.server)?.kind === "baseline"
      ).sort((a, b) =>
        b.wrk!.requestsPerSec - a.wrk!.requestsPerSec
      )[0];
      if (bound) {
        toBaseline.push(mine.wrk!.requestsPerSec / bound.wrk!.requestsPerSec);
        baseline = byServer.get(bound.server)?.label ?? bound.server;
      }
      const peers = runs.filter((r) => byServer.get(r.server)?.kind === "peer");
      if (peers.length === 0) continue;
      const best = peers.reduce((a, b) =>
        b.wrk!.requestsPerSec > a.wrk!.requestsPerSec ? b : a
      );
      bestCount.set(best.server, (bestCount.get(best.server) ?? 0) + 1);
      const lowest = (f: (r: RunRecord) => number | undefined) =>
        Math.min(...peers.map((r) => f(r) ?? Infinity).filter((v) => v > 0));
      rps.push(mine.wrk!.requestsPerSec / best.wrk!.requestsPerSec);
      p99.push(mine.wrk!.latencyP99Us / lowest((r) => r.wrk!.latencyP99Us));
      cpu.push(
        (mine.cpuUsPerRequest ?? NaN) / lowest((r) => r.cpuUsPerRequest),
      );
      rss.push((mine.peakRssKiB ?? NaN) / lowest((r) => r.peakRssKiB));
    }
    if (toBaseline.length) {
      cell.vsBaseline = { rps: spread(toBaseline), baseline };
    }
    if (rps.length === 0) continue;
    const bestPeer = [...bestCount].sort((a, b) => b[1] - a[1])[0][0];
    cell.vsBest = {
      rps: spread(rps),
      p99: spread(p99),
      cpu: spread(cpu),
      rss: spread(rss),
      bestPeer: byServer.get(bestPeer)?.label ?? bestPeer,
    };
  }
}

// ---------------------------------------------------------------- formatting

/** What a workload's rate is counted in: "req/s", "msgs/s" for
 * WebSocket messages, or "handshakes/s" for new TLS connections. */
export function rateOf(workload: WorkloadInfo): string {
  return workload.unit === "msg"
    ? "msgs/s"
    : workload.unit === "handshake"
    ? "handshakes/s"
    : "req/s";
}

/** The chart's name for what its workloads count, e.g. "Requests". */
function countedThings(workloads: WorkloadInfo[]): string {
  const names = {
    req: "requests",
    msg: "WebSocket messages",
    handshake: "TLS handshakes",
  };
  const text = [...new Set(workloads.map((w) => names[w.unit ?? "req"]))]
    .join(" or ") || names.req;
  return text[0].toUpperCase() + text.slice(1);
}

/** 52341.2 -> "52,341"; 812.44 -> "812.4". */
export function formatRps(value: number): string {
  if (!Number.isFinite(value)) return "–";
  return value >= 100
    ? Math.round(value).toLocaleString("en-US")
    : value.toFixed(1);
}

/** 52341 -> "52.3k" (chart labels). */
export function formatShort(value: number): string {
  if (!Number.isFinite(value)) return "";
  if (value === 0) return "0";
  if (value >= 1e6) return `${(value / 1e6).toFixed(value >= 1e7 ? 0 : 1)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(value >= 1e4 ? 0 : 1)}k`;
  return value.toFixed(value >= 100 ? 0 : 1);
}

/** Microseconds as "487 µs", "1.20 ms" or "2.05 s". */
export function formatTime(us: number): string {
  if (!Number.isFinite(us)) return "–";
  if (us < 1000) return `${us.toFixed(us < 10 ? 1 : 0)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(2)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

function formatCpu(us: number): string {
  if (!Number.isFinite(us)) return "–";
  return `${us.toFixed(us < 100 ? 1 : 0)} µs`;
}

/** Per-request counts: "2.10", or "–" where nothing was counted. */
function formatCount(s: Spread): string {
  return Number.isFinite(s.median) ? s.median.toFixed(2) : "–";
}

function formatMiB(kib: number): string {
  return kib > 0 ? `${(kib / 1024).toFixed(1)} MiB` : "–";
}

function formatRatio(s: Spread): string {
  if (s.n === 0 || !Number.isFinite(s.median)) return "–";
  const range = s.n > 1 ? ` (${s.min.toFixed(2)}–${s.max.toFixed(2)})` : "";
  return `${s.median.toFixed(2)}×${range}`;
}

function formatRange(s: Spread): string {
  return s.n > 1 ? `${formatRps(s.min)}–${formatRps(s.max)}` : "–";
}

function formatErrors(cell: Cell): string {
  if (cell.flags.length === 0) return "0";
  const parts: string[] = [];
  if (cell.socketErrors) parts.push(`${cell.socketErrors} socket`);
  if (cell.non2xx) parts.push(`${cell.non2xx} non-2xx`);
  if (cell.flags.some((f) => !/: (socket errors|non-2xx)/.test(f))) {
    parts.push("see Flags");
  }
  return `⚠ ${parts.join(", ")}`;
}

function formatLoad(cores: number, limit: number): string {
  return `${cores.toFixed(2)}${cores > limit ? " (busy)" : ""}`;
}

function groupLabel(
  connections: number,
  workers: number,
  many: boolean,
): string {
  return many
    ? `${connections} conns, ${workers} worker${workers > 1 ? "s" : ""}`
    : `${connections}`;
}

// ---------------------------------------------------------------- markdown

/** The Markdown report (bench/results.md). */
export function markdown(
  input: ReportInput,
  cells: Cell[],
  chartFile: string,
): string {
  const manyWorkers = input.workers.length > 1;
  const out: string[] = [];
  out.push("# ymo benchmark results", "");
  out.push(...input.about.map((line) => `${line}  `), "");
  for (const s of input.skipped) {
    out.push(`> **Skipped ${s.label}**: ${s.reason}`, "");
  }
  out.push(`![Requests per second by workload and server](${chartFile})`, "");

  const ymo = cells.filter((c) => c.vsBest);
  if (ymo.length) {
    out.push("## ymo against the best peer", "");
    out.push(
      "Each figure is ymo's over the best peer's in the same round (the peer " +
        "with the most requests/s; the lowest p99, CPU time or memory for " +
        "those columns): median over the rounds, min–max in brackets. Above " +
        "1 is better for requests/s, below 1 is better for the others.",
      "",
    );
    // Workloads counted in something other than requests, by their unit.
    const others = input.workloads.filter((w) =>
      (w.unit ?? "req") !== "req" && ymo.some((c) => c.workload === w.id)
    );
    if (others.length) {
      out.push(
        "The rate is requests/s, except for " +
          others.map((w) => `${w.id} (${rateOf(w)})`).join(", ") +
          "; CPU time is per the same unit.",
        "",
      );
    }
    const rate = others.length ? "rate" : "req/s";
    out.push(
      `| workload | ${
        manyWorkers ? "load" : "conns"
      } | server | ${rate} | p99 latency | CPU time/${
        others.length ? "unit" : "req"
      } | peak RSS | best peer (${rate}) |`,
      "|---|--:|---|--:|--:|--:|--:|---|",
    );
    for (const c of ymo) {
      const v = c.vsBest!;
      const warn = c.flags.length ? " ⚠" : "";
      out.push(
        `| ${c.workload} | ${
          groupLabel(c.connections, c.workers, manyWorkers)
        } | ${c.server.label}${warn} | ` +
          `${formatRatio(v.rps)} | ${formatRatio(v.p99)} | ${
            formatRatio(v.cpu)
          } | ` +
          `${formatRatio(v.rss)} | ${v.bestPeer} |`,
      );
    }
    out.push("");
  }

  const bounded = cells.filter((c) => c.vsBaseline);
  if (bounded.length) {
    const names = [...new Set(bounded.map((c) => c.vsBaseline!.baseline))];
    out.push(`## ymo against the plain C server`, "");
    out.push(
      `${names.join(", ")}: scripts/bench/plain_libev.c, one C thread on ` +
        "libev answering the benchmark's routes with the same bytes as ymo, " +
        "the limit of this machine. Each figure is ymo's requests/s over the " +
        "C server's in the same round: median over the rounds, min–max in " +
        "brackets. Static routes, answered by ymo's own C loop thread, aim " +
        `for at least ${baselineGoal("static").toFixed(2)}×; requests that ` +
        `go through JavaScript for at least ${
          baselineGoal("hello").toFixed(2)
        }×.`,
      "",
    );
    out.push(
      `| workload | ${
        manyWorkers ? "load" : "conns"
      } | server | req/s × C server | goal | met |`,
      "|---|--:|---|--:|--:|---|",
    );
    for (const c of bounded) {
      const v = c.vsBaseline!;
      const warn = c.flags.length ? " ⚠" : "";
      out.push(
        `| ${c.workload} | ${
          groupLabel(c.connections, c.workers, manyWorkers)
        } | ${c.server.label}${warn} | ${formatRatio(v.rps)} | ${
          baselineGoal(c.workload).toFixed(2)
        }× | ${v.rps.median >= baselineGoal(c.workload) ? "yes" : "no"} |`,
      );
    }
    out.push("");
  }

  for (const workload of input.workloads) {
    const rows = cells.filter((c) => c.workload === workload.id);
    if (rows.length === 0) continue;
    // A column for the ratio to the baseline where one ran.
    const baseline = rows.find((c) => c.vsBaseline)?.vsBaseline?.baseline;
    const per = workload.unit ?? "req", rate = rateOf(workload);
    out.push(`## ${workload.id}: ${workload.title}`, "");
    out.push(
      `| ${
        manyWorkers ? "load" : "conns"
      } | server | ${rate} (median) | min–max | p50 | p99 | CPU time/${per} | syscalls/${per} | ctx switches/${per} | peak RSS | errors | other load | ${rate} × best peer |${
        baseline ? ` ${rate} × ${baseline} |` : ""
      }`,
      `|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|${
        baseline ? "--:|" : ""
      }`,
    );
    for (const c of rows) {
      const name = c.server.kind === "ymo"
        ? `**${c.server.label}**`
        : c.server.label;
      out.push(
        `| ${groupLabel(c.connections, c.workers, manyWorkers)} | ${name} | ${
          formatRps(c.rps.median)
        } | ` +
          `${formatRange(c.rps)} | ${formatTime(c.p50Us.median)} | ${
            formatTime(c.p99Us.median)
          } | ` +
          `${formatCpu(c.cpuUsPerRequest.median)} | ${
            formatCount(c.syscallsPerRequest)
          } | ${formatCount(c.switchesPerRequest)} | ${
            formatMiB(c.peakRssKiB)
          } | ` +
          `${formatErrors(c)} | ${
            formatLoad(c.otherCores, input.noiseCores)
          } | ` +
          `${c.vsBest ? formatRatio(c.vsBest.rps) : ""} |` +
          (baseline
            ? ` ${c.vsBaseline ? formatRatio(c.vsBaseline.rps) : ""} |`
            : ""),
      );
    }
    out.push("");
  }

  const flagged = cells.filter((c) => c.flags.length);
  out.push("## Flags", "");
  const runs = input.records.filter((r) => r.wrk);
  const noisy = runs.filter((r) => (r.otherCores ?? 0) > input.noiseCores);
  if (noisy.length) {
    const worst = Math.max(...noisy.map((r) => r.otherCores!));
    out.push(
      `${noisy.length} of ${runs.length} runs shared the machine with other processes ` +
        `using more than ${input.noiseCores} cores on average (up to ${
          worst.toFixed(2)
        }): ` +
        "their figures are disturbed; rerun on an idle machine before quoting them.",
      "",
    );
  }
  if (flagged.length === 0) {
    out.push(
      "No run had socket errors, non-2xx responses, bad answers or a crash.",
      "",
    );
  } else {
    out.push(
      "Runs with errors; their figures above are marked ⚠ and should not be trusted.",
      "",
    );
    for (const c of flagged) {
      for (const f of c.flags) {
        out.push(
          `- ${c.server.label}, ${c.workload}, ${
            groupLabel(c.connections, c.workers, true)
          }, ${f}`,
        );
      }
    }
    out.push("");
  }
  return out.join("\n");
}

// ---------------------------------------------------------------- SVG chart

/** Bar colours by server id; ymo in warm colours, peers in cool ones. */
const COLOURS: Record<string, string> = {
  "ymo-deno": "#d1495b",
  "ymo-bun": "#edae49",
  deno: "#00798c",
  bun: "#7d5ba6",
  node: "#66a182",
  "c-libev": "#4d4d4d",
};
const SPARE = ["#30638e", "#8d6a9f", "#a3a3a3"];

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  );
}

/** A round axis maximum above `max`, so that fifths of it are round too. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

/** The notes under the chart, wrapped into lines that fit in `width`. */
function footnotes(input: ReportInput, cells: Cell[], width: number): string[] {
  const runs = input.records.filter((r) => r.wrk);
  const noisy = runs.filter((r) => (r.otherCores ?? 0) > input.noiseCores);
  const notes = ["⚠ marks a server with errors in some run (see results.md)."];
  if (noisy.length) {
    notes.push(
      `${noisy.length} of ${runs.length} runs shared the CPU with other processes (> ${input.noiseCores} cores): figures disturbed.`,
    );
  }
  const bound = cells.find((c) => c.vsBaseline)?.vsBaseline?.baseline;
  if (bound) {
    notes.push(
      `% under a ymo bar: its req/s as a share of ${bound}'s (median over the rounds); ` +
        `dashed line: ymo's goal as a share of ${bound}'s (95% for static ` +
        "routes, 90% through JavaScript).",
    );
  }
  // About 5.8 px per character at 10.5 px.
  const room = Math.floor((width - 32) / 5.8);
  const lines: string[] = [];
  for (const word of notes.join(" ").split(" ")) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= room) {
      lines[last] += ` ${word}`;
    } else {
      lines.push(word);
    }
  }
  return lines;
}

/**
 * The SVG chart (bench/results.svg): one panel per workload, each with its
 * own requests/s axis; in a panel, one group of bars per connection count,
 * one bar per server (the median), with a line from the slowest to the
 * fastest round. Where a baseline ran, a dashed line marks baselineGoal() of
 * its median and each ymo bar has its ratio to it below.
 */
export function svg(input: ReportInput, cells: Cell[]): string {
  const workloads = input.workloads.filter((w) =>
    cells.some((c) => c.workload === w.id)
  );
  const servers = input.servers.filter((s) =>
    cells.some((c) => c.server.id === s.id)
  );
  const loads = input.connections.flatMap((connections) =>
    input.workers.map((workers) => ({ connections, workers }))
  );
  const manyWorkers = input.workers.length > 1;
  const colour = (id: string, i: number) =>
    COLOURS[id] ?? SPARE[i % SPARE.length];

  const columns = Math.min(2, workloads.length);
  const rows = Math.ceil(workloads.length / columns);
  const barWidth = 26, barGap = 4, groupGap = 28;
  const groupWidth = servers.length * (barWidth + barGap) - barGap;
  // The loads each workload ran at: a WebSocket workload has its own.
  const loadsOf = (id: string) =>
    loads.filter((l) =>
      cells.some((c) =>
        c.workload === id && c.connections === l.connections &&
        c.workers === l.workers
      )
    );
  const plotWidth = Math.max(
    260,
    ...workloads.map((w) => loadsOf(w.id).length * (groupWidth + groupGap)),
  );
  const plotHeight = 220;
  const panelWidth = plotWidth + 70, panelHeight = plotHeight + 90;
  const top = 64;
  const legendWidth = servers.reduce(
    (sum, s) => sum + 24 + s.label.length * 6.5,
    32,
  );
  const width = Math.max(columns * panelWidth + 20, legendWidth, 600);
  const notes = footnotes(input, cells, width);
  const height = top + rows * panelHeight + 16 + 14 * notes.length;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="600" fill="#222">${
      countedThings(workloads)
    } per second (median of ${input.rounds} round${
      input.rounds > 1 ? "s" : ""
    }; whiskers: min–max)</text>`,
  );
  // Legend.
  let lx = 16;
  servers.forEach((s, i) => {
    out.push(
      `<rect x="${lx}" y="38" width="12" height="12" fill="${
        colour(s.id, i)
      }"/>`,
      `<text x="${lx + 16}" y="48" fill="#222">${escapeXml(s.label)}</text>`,
    );
    lx += 24 + s.label.length * 6.5;
  });

  workloads.forEach((workload, w) => {
    const px = 10 + (w % columns) * panelWidth + 60;
    const py = top + Math.floor(w / columns) * panelHeight + 30;
    const mine = cells.filter((c) => c.workload === workload.id);
    // Headroom above the highest whisker for its label.
    const axisMax = niceMax(
      1.08 * Math.max(0, ...mine.map((c) => c.rps.max).filter(Number.isFinite)),
    );
    const y = (v: number) => py + plotHeight - (v / axisMax) * plotHeight;

    out.push(
      `<text x="${px}" y="${
        py - 12
      }" font-size="13" font-weight="600" fill="#222">${
        escapeXml(workload.short)
      }</text>`,
    );
    for (let t = 0; t <= 5; t++) {
      const v = (axisMax * t) / 5;
      out.push(
        `<line x1="${px}" x2="${px + plotWidth}" y1="${y(v).toFixed(1)}" y2="${
          y(v).toFixed(1)
        }" stroke="${t ? "#e5e5e5" : "#888"}"/>`,
        `<text x="${px - 6}" y="${
          (y(v) + 4).toFixed(1)
        }" text-anchor="end" fill="#555">${formatShort(v)}</text>`,
      );
    }
    const panelBounded = mine.some((c) => c.vsBaseline);
    loadsOf(workload.id).forEach((load, g) => {
      const gx = px + groupGap / 2 + g * (groupWidth + groupGap);
      const inGroup = (c: Cell) =>
        c.connections === load.connections && c.workers === load.workers;
      const bound = mine.find((c) =>
        c.server.kind === "baseline" && inGroup(c) &&
        Number.isFinite(c.rps.median)
      );
      if (bound) {
        const goal = baselineGoal(workload.id);
        const goalY = y(goal * bound.rps.median).toFixed(1);
        out.push(
          `<line x1="${gx - 2}" x2="${
            gx + groupWidth + 2
          }" y1="${goalY}" y2="${goalY}" stroke="#4d4d4d" stroke-width="1" stroke-dasharray="4 3"><title>${
            escapeXml(
              `${goal * 100}% of ${bound.server.label}: ${
                formatRps(goal * bound.rps.median)
              } req/s`,
            )
          }</title></line>`,
          `<text x="${gx + groupWidth + 4}" y="${
            (Number(goalY) + 3).toFixed(1)
          }" font-size="8.5" fill="#4d4d4d">${goal * 100}%</text>`,
        );
      }
      servers.forEach((server, i) => {
        const cell = mine.find((c) =>
          c.server.id === server.id && c.connections === load.connections &&
          c.workers === load.workers
        );
        if (!cell || !Number.isFinite(cell.rps.median)) return;
        const x = gx + i * (barWidth + barGap);
        const cx = (x + barWidth / 2).toFixed(1);
        const top = y(cell.rps.median);
        const title =
          `${server.label}, ${workload.id}, ${
            groupLabel(load.connections, load.workers, true)
          }: ` +
          `${formatRps(cell.rps.median)} ${rateOf(workload)} (${
            formatRps(cell.rps.min)
          }–${formatRps(cell.rps.max)})`;
        out.push(
          `<rect x="${x.toFixed(1)}" y="${
            top.toFixed(1)
          }" width="${barWidth}" height="${
            (py + plotHeight - top).toFixed(1)
          }" fill="${colour(server.id, i)}"><title>${
            escapeXml(title)
          }</title></rect>`,
        );
        if (cell.rps.n > 1) {
          out.push(
            `<line x1="${cx}" x2="${cx}" y1="${
              y(cell.rps.min).toFixed(1)
            }" y2="${
              y(cell.rps.max).toFixed(1)
            }" stroke="#222" stroke-width="1.2"/>`,
          );
        }
        const labelY = Math.min(top, cell.rps.n > 1 ? y(cell.rps.max) : top) -
          4;
        out.push(
          `<text x="${cx}" y="${
            labelY.toFixed(1)
          }" text-anchor="middle" font-size="9.5" fill="#333">${
            formatShort(cell.rps.median)
          }${cell.flags.length ? "⚠" : ""}</text>`,
        );
        if (cell.vsBaseline && Number.isFinite(cell.vsBaseline.rps.median)) {
          out.push(
            `<text x="${cx}" y="${
              py + plotHeight + 11
            }" text-anchor="middle" font-size="9" fill="#333">${
              Math.round(cell.vsBaseline.rps.median * 100)
            }%</text>`,
          );
        }
      });
      out.push(
        `<text x="${(gx + groupWidth / 2).toFixed(1)}" y="${
          py + plotHeight + (panelBounded ? 25 : 16)
        }" text-anchor="middle" fill="#333">${
          escapeXml(
            manyWorkers
              ? groupLabel(load.connections, load.workers, true)
              : `${load.connections} connections`,
          )
        }</text>`,
      );
    });
  });
  notes.forEach((line, i) => {
    out.push(
      `<text x="16" y="${
        height - 12 - 14 * (notes.length - 1 - i)
      }" font-size="10.5" fill="#666">${escapeXml(line)}</text>`,
    );
  });
  out.push("</svg>", "");
  return out.join("\n");
}
