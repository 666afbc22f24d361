#!/usr/bin/env node
// A stock npm automerge-repo sync server (NodeWSServerAdapter, documents in memory), as the
// reference that client.mjs is checked against and that our server is compared with.
//
//   node server.mjs [--port N] [--path /sync] [--token T] [--auth error|http]
//
// Listens on 127.0.0.1 and prints one JSON line {"url": "ws://127.0.0.1:PORT/sync"} once ready.
// Upgrades on any other path get HTTP 404. With --token, a connection whose query lacks
// token=T is refused: by default the way an automerge-repo server refuses (an `error` message,
// then close), with --auth http by an HTTP 401 on the upgrade. Runs until killed.

import http from "node:http";
import { WebSocketServer } from "ws";
import { Repo, cbor } from "@automerge/automerge-repo";
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

const port = Number(option("port", 0));
const path = option("path", "/sync");
const token = option("token", undefined);
const auth = option("auth", "error");
if (!["error", "http"].includes(auth)) {
  process.stderr.write("--auth is error or http\n");
  process.exit(2);
}

const wss = new WebSocketServer({ noServer: true });
new Repo({ network: [new NodeWSServerAdapter(wss)], peerId: "npm-reference-server" });

const server = http.createServer((_req, res) => {
  res.writeHead(404).end();
});
server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== path) {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const allowed = token === undefined || url.searchParams.get("token") === token;
  if (!allowed && auth === "http") {
    socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, ws => {
    if (allowed) {
      wss.emit("connection", ws, req);
      return;
    }
    // Answer the join with an error message and close, as the v1 protocol prescribes.
    ws.once("message", data => {
      let senderId;
      try {
        senderId = cbor.decode(new Uint8Array(data)).senderId;
      } catch {
        // No sender id to echo.
      }
      const error = { type: "error", senderId: "npm-reference-server", message: "invalid or missing token", targetId: senderId };
      ws.send(cbor.encode(error), () => ws.close());
    });
  });
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${server.address().port}${path}` })}\n`);
});
