// A plain WebSocket client (npm `ws`) that holds a connection to the gateway
// through clawgate, authenticated by X-Clawgate-Token, and reports how it
// ends. It never sends OpenClaw's connect frame: it only has to stay open
// long enough (the gateway's pre-auth timeout is 15 s) for revoke.sh to
// revoke it. One JSON line per event on stdout: open, message (first 3),
// close {code, reason}, error; exits after close or WS_MAX_MS.
//
// env: BROWSER_MODULES (node_modules with ws), WS_URL, CLAWGATE_TOKEN,
//      WS_CA (PEM of clawgate's self-signed cert: verified, not skipped),
//      WS_MAX_MS (default 60000)
"use strict";
const fs = require("fs");
const path = require("path");
const WebSocket = require(path.join(process.env.BROWSER_MODULES, "ws"));

const started = Date.now();
const emit = (o) => process.stdout.write(JSON.stringify({ t_ms: Date.now() - started, ...o }) + "\n");
const ws = new WebSocket(process.env.WS_URL, {
  headers: { "X-Clawgate-Token": process.env.CLAWGATE_TOKEN },
  ca: fs.readFileSync(process.env.WS_CA),
  handshakeTimeout: 10000,
});
let messages = 0;
ws.on("upgrade", (res) => emit({ event: "upgrade", status: res.statusCode, request_id: res.headers["x-request-id"] || null }));
ws.on("open", () => emit({ event: "open" }));
ws.on("message", (data) => {
  if (messages++ < 3) emit({ event: "message", data: String(data).slice(0, 200) });
});
ws.on("unexpected-response", (req, res) => {
  emit({ event: "unexpected-response", status: res.statusCode, request_id: res.headers["x-request-id"] || null });
  ws.terminate();
});
ws.on("error", (e) => emit({ event: "error", error: String(e) }));
ws.on("close", (code, reason) => {
  emit({ event: "close", code, reason: String(reason) });
  process.exit(0);
});
setTimeout(() => {
  emit({ event: "timeout" });
  process.exit(2);
}, Number(process.env.WS_MAX_MS || 60000)).unref();
