// The benchmark app for node:http: the routes of app.ts written against
// Node's own API, since Node 20 cannot import TypeScript.
//
//   node scripts/bench/app_node.mjs --port 8000 [--hostname 127.0.0.1]
//                                   [--workers N]
//
// With --workers N > 1, node:cluster forks N processes sharing the port.

import cluster from "node:cluster";
import http from "node:http";
import process from "node:process";
import {
  BODY_16K,
  cpuWork,
  HELLO,
  STREAM_CHUNK,
  STREAM_CHUNKS,
} from "./_work.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}

const port = Number(option("port", "8000"));
const hostname = option("hostname", "127.0.0.1");
const workers = Number(option("workers", "1"));

function send(res, status, type, body) {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

function echo(req, res) {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const type = req.headers["content-type"] ?? "application/octet-stream";
    send(res, 200, type, Buffer.concat(chunks));
  });
}

function stream(res) {
  res.writeHead(200, { "content-type": "application/octet-stream" });
  let sent = 0;
  const more = () => {
    while (sent < STREAM_CHUNKS) {
      sent++;
      // A fresh copy per chunk, as app.ts does.
      if (!res.write(STREAM_CHUNK.slice())) return void res.once("drain", more);
    }
    res.end();
  };
  more();
}

function handle(req, res) {
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  switch (query < 0 ? url : url.slice(0, query)) {
    case "/":
    case "/static":
      return send(res, 200, "text/plain;charset=UTF-8", HELLO);
    case "/echo":
      if (req.method !== "POST") break;
      return echo(req, res);
    case "/16k":
      return send(res, 200, "application/octet-stream", BODY_16K);
    case "/stream":
      return stream(res);
    case "/cpu":
      return send(res, 200, "text/plain;charset=UTF-8", cpuWork());
  }
  send(res, 404, "text/plain;charset=UTF-8", "Not Found");
}

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  http.createServer(handle).listen(port, hostname);
}
