// Checks client.mjs against the stock npm server (server.mjs), so the harness is known to be
// right before it is pointed at our own server. Run with `npm test` in this directory.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { createServer } from "node:net";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const servers = [];

async function startServer(...args) {
  const child = spawn(process.execPath, ["server.mjs", ...args], { cwd: here, stdio: ["ignore", "pipe", "inherit"] });
  servers.push(child);
  const [line] = await once(child.stdout, "data");
  return JSON.parse(line.toString()).url;
}

function client(...args) {
  return new Promise(resolve => {
    execFile(process.execPath, ["client.mjs", ...args], { cwd: here }, (error, stdout, stderr) => {
      const code = error ? error.code : 0;
      resolve({ code, result: code === 0 ? JSON.parse(stdout) : undefined, stderr });
    });
  });
}

async function ok(...args) {
  const run = await client(...args);
  assert.equal(run.code, 0, run.stderr);
  return run.result;
}

let url;
before(async () => {
  url = `${await startServer("--token", "secret")}?token=secret`;
});
after(() => servers.forEach(s => s.kill()));

test("create, read, change and wait", async () => {
  const created = await ok(url, "create", JSON.stringify({ title: "hello", items: [1] }));
  assert.match(created.url, /^automerge:\w+$/);
  assert.deepEqual(created.doc, { title: "hello", items: [1] });

  // A fresh client only sees the document if the server holds it.
  const read = await ok(url, "read", created.url);
  assert.deepEqual(read.doc, created.doc);
  assert.deepEqual(read.heads, created.heads);

  const patch = [
    { op: "add", path: "/items/-", value: 2 },
    { op: "replace", path: "/title", value: "bye" },
    { op: "add", path: "/extra", value: { a: 1 } },
    { op: "remove", path: "/extra" },
  ];
  const changed = await ok(url, "change", created.url, JSON.stringify(patch));
  assert.deepEqual(changed.doc, { title: "bye", items: [1, 2] });
  assert.notDeepEqual(changed.heads, created.heads);
  assert.deepEqual((await ok(url, "read", created.url)).doc, changed.doc);

  // wait sees a change made by another client while it waits.
  const waiting = client(url, "wait", created.url, "/status", JSON.stringify("closed"));
  await new Promise(r => setTimeout(r, 500));
  await ok(url, "change", created.url, JSON.stringify({ status: "closed" }));
  const waited = await waiting;
  assert.equal(waited.code, 0, waited.stderr);
  assert.equal(waited.result.doc.status, "closed");
});

test("a document the server does not have is unavailable", async () => {
  const run = await client(url, "read", "automerge:8JT5gXGHPWfPRoMrV1mqqo4QBFn");
  assert.equal(run.code, 1);
  assert.match(run.stderr, /is unavailable/);
});

test("a refused token is reported, whichever way the server refuses", async () => {
  const wrong = url.replace("token=secret", "token=wrong");
  const byMessage = await client(wrong, "create", "{}");
  assert.equal(byMessage.code, 1);
  assert.match(byMessage.stderr, /server sent an error message: invalid or missing token/);

  const httpUrl = await startServer("--token", "secret", "--auth", "http");
  const byHttp = await client(`${httpUrl}?token=wrong`, "create", "{}");
  assert.equal(byHttp.code, 1);
  assert.match(byHttp.stderr, /connection failed: Unexpected server response: 401/);
});

test("no server is a timeout that says how far the client got", async () => {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address();
  probe.close();
  const run = await client(`ws://127.0.0.1:${port}/sync`, "create", "{}", "--timeout-ms", "1500");
  assert.equal(run.code, 124);
  assert.match(run.stderr, /timed out after 1500 ms \(could not connect/);
});

test("bad usage exits with 2", async () => {
  for (const args of [[], [url, "frob"], [url, "read"], [url, "create", "not json"], [url, "read", "automerge:nope"]]) {
    const run = await client(...args);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
  }
});
