// A plain Node `http` server for the probe's tests: no npm packages, no bytewatch, no per-request
// logging (wrk pushes tens of thousands of requests a second at it).
//
//   node node_server.js PORT [CERT KEY]    (with CERT and KEY: HTTPS)
//
// The endpoints and their bodies are the same in every runtime (see tests/servers/README.md).
"use strict";

const fs = require("fs");
const http = require("http");
const https = require("https");

const MAX_BIG_BYTES = 64 * 1024 * 1024;
const MAX_PARTS = 10000;
const MAX_SLEEP_MS = 60000;
const CLOSE_MID_ANNOUNCED = 100000;
const CLOSE_MID_SENT = 1000;
const USER_PATH = /^\/users\/(0|[1-9][0-9]{0,17})$/;

function bigBody(n) {
  if (n < 11) return Buffer.alloc(n, "x");
  const body = Buffer.alloc(n, "x");
  body.write('{"data":"', 0, "latin1");
  body.write('"}', n - 2, "latin1");
  return body;
}

function chunkPart(i, parts) {
  return (i === 0 ? "[" : ",") + `{"part":${i}}` + (i === parts - 1 ? "]" : "");
}

function send(res, status, body, contentType = "application/json") {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": bytes.length });
  res.end(bytes);
}

// A non-negative integer query parameter, its default when absent, or null when malformed.
function intParam(query, name, fallback, max) {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^[0-9]{1,9}$/.test(raw)) return null;
  const value = Number(raw);
  return value <= max ? value : null;
}

function sendChunked(res, parts) {
  res.writeHead(200, { "Content-Type": "application/json" });
  let i = 0;
  // One write per event-loop turn, so each chunk tends to leave in its own write(2).
  const next = () => {
    if (i >= parts) {
      res.end();
      return;
    }
    res.write(chunkPart(i, parts));
    i += 1;
    setImmediate(next);
  };
  next();
}

function closeMid(res) {
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Content-Length": CLOSE_MID_ANNOUNCED,
  });
  res.write(bigBody(CLOSE_MID_ANNOUNCED).subarray(0, CLOSE_MID_SENT), () => {
    res.socket.destroy();
  });
}

function route(req, res) {
  const url = new URL(req.url, "http://localhost");
  const path = url.pathname;
  const query = url.searchParams;
  const get = req.method === "GET";
  const badRequest = () => send(res, 400, '{"error":"bad_request"}');

  if (path === "/health" && get) return send(res, 200, "ok", "text/plain");
  if (path === "/hello" && get) return send(res, 200, '{"message":"hello"}');
  const user = USER_PATH.exec(path);
  if (user && get) return send(res, 200, `{"id":${user[1]},"name":"user-${user[1]}"}`);
  if (path === "/payments" && req.method === "POST") {
    return send(
      res,
      200,
      '{"error":"insufficient_balance","message":"balance too low for this payment"}',
    );
  }
  if (path === "/fail" && get) return send(res, 500, '{"error":"boom"}');
  if (path === "/big" && get) {
    const n = intParam(query, "bytes", 1024, MAX_BIG_BYTES);
    return n === null ? badRequest() : send(res, 200, bigBody(n));
  }
  if (path === "/chunked" && get) {
    const parts = intParam(query, "parts", 3, MAX_PARTS);
    return parts === null ? badRequest() : sendChunked(res, parts);
  }
  if (path === "/slow" && get) {
    const ms = intParam(query, "ms", 100, MAX_SLEEP_MS);
    if (ms === null) return badRequest();
    setTimeout(() => send(res, 200, `{"slept_ms":${ms}}`), ms);
    return undefined;
  }
  if (path === "/close-mid" && get) return closeMid(res);
  const known = ["/health", "/hello", "/payments", "/fail", "/big", "/chunked", "/slow", "/close-mid"];
  if (known.includes(path) || USER_PATH.test(path)) {
    return send(res, 405, '{"error":"method_not_allowed"}');
  }
  return send(res, 404, '{"error":"not_found"}');
}

function main() {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write(`usage: node node_server.js PORT (got ${process.argv[2]})\n`);
    process.exit(2);
  }
  const handler = (req, res) => {
    // Answer once the whole request body has arrived, as a handler that parses JSON would.
    req.on("data", () => {});
    req.on("end", () => route(req, res));
  };
  const [cert, key] = process.argv.slice(3);
  const server = cert
    ? https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler)
    : http.createServer(handler);
  server.on("error", (err) => {
    process.stderr.write(`node_server: ${err.message}\n`);
    process.exit(1);
  });
  process.on("SIGTERM", () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
  server.listen(port, "127.0.0.1");
}

main();
