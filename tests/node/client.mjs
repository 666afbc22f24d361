#!/usr/bin/env node
// A stock npm automerge-repo client, driven from the command line, for end-to-end tests of a
// sync server that speaks the automerge-repo v1 protocol.
//
//   node client.mjs <ws-url> <command> [args…] [--timeout-ms N] [--immutable-strings]
//
//   create <json-object>            create a document with this content; once the server holds
//                                   it, print {"url", "documentId", "heads", "doc"}
//   read <automerge-url>            print {"url", "documentId", "heads", "doc"}
//   change <automerge-url> <patch>  apply the patch; once the server holds the change, print
//                                   the same fields as read
//   wait <automerge-url> <json-pointer> <json-value>
//                                   wait until the value at the pointer equals the given JSON
//                                   (for changes that arrive from elsewhere), then print as read
//
// A patch is either a JSON object, whose top-level keys are set, or a JSON Patch (RFC 6902)
// array using the operations add, replace and remove ("/list/-" appends).
//
// With --immutable-strings, strings in a patch or a created document are written as scalar strings (A.ImmutableString)
// instead of collaborative text objects; schemas that allow only scalar strings (Lianxin's) need it.
//
// The URL is used as given, query string included (the npm client sends no custom headers, so a
// token travels in the query: ws://127.0.0.1:PORT/sync?token=…).
//
// Success: one JSON line on stdout, exit 0. Failure: a message on stderr and exit 1 (the server
// sent an error message, refused the connection, or says the document is unavailable), 2 (bad
// usage) or 124 (timed out; the message says how far the client got). "heads" are the hex change
// hashes of the document, as automerge's ChangeHash prints them.

import * as A from "@automerge/automerge";
import { Repo, cbor, isValidAutomergeUrl } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_TIMEOUT = 124;

class Failure extends Error {
  constructor(message, code = EXIT_FAILURE) {
    super(message);
    this.code = code;
  }
}

function usage(message) {
  throw new Failure(`${message}\nusage: node client.mjs <ws-url> create|read|change|wait … [--timeout-ms N]`, EXIT_USAGE);
}

let immutableStrings = false;

// Strings as scalar strings, recursively, when --immutable-strings is given.
function scalarStrings(value) {
  if (!immutableStrings) return value;
  if (typeof value === "string") return new A.ImmutableString(value);
  if (Array.isArray(value)) return value.map(scalarStrings);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scalarStrings(v)]));
  }
  return value;
}

function parseArgs(argv) {
  const args = [];
  let timeoutMs = Number(process.env.LIANXIN_NODE_TIMEOUT_MS ?? 15000);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--immutable-strings") {
      immutableStrings = true;
    } else if (argv[i] === "--timeout-ms") {
      timeoutMs = Number(argv[++i]);
    } else {
      args.push(argv[i]);
    }
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage("--timeout-ms must be a positive number");
  const [url, command, ...rest] = args;
  if (!url || !/^wss?:\/\//.test(url)) usage("the first argument must be a ws:// or wss:// URL");
  const arity = { create: 1, read: 1, change: 2, wait: 3 }[command];
  if (arity === undefined) usage(`unknown command ${JSON.stringify(command)}`);
  if (rest.length !== arity) usage(`${command} takes ${arity} argument(s), got ${rest.length}`);
  return { url, command, rest, timeoutMs };
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    usage(`${what} is not JSON: ${e.message}`);
  }
}

function checkUrl(url) {
  if (!isValidAutomergeUrl(url)) usage(`not a valid automerge URL: ${url}`);
  return url;
}

// RFC 6901 JSON pointer to path segments.
function pointer(path) {
  if (path === "") return [];
  if (!path.startsWith("/")) usage(`JSON pointer must start with "/": ${path}`);
  return path.slice(1).split("/").map(s => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function valueAt(doc, path) {
  let node = doc;
  for (const segment of pointer(path)) {
    if (node === null || typeof node !== "object" || !(segment in node)) return undefined;
    node = node[segment];
  }
  return node;
}

function applyPatch(doc, patch) {
  if (!Array.isArray(patch)) {
    if (patch === null || typeof patch !== "object") usage("a patch is a JSON object or array");
    for (const [key, value] of Object.entries(patch)) doc[key] = scalarStrings(value);
    return;
  }
  for (const op of patch) {
    const segments = pointer(op.path ?? "");
    if (segments.length === 0) throw new Failure(`cannot ${op.op} the document root`);
    const key = segments.pop();
    let parent = doc;
    for (const segment of segments) {
      parent = parent?.[segment];
      if (parent === null || typeof parent !== "object") throw new Failure(`no such path: ${op.path}`);
    }
    if (Array.isArray(parent)) {
      const index = key === "-" ? parent.length : Number(key);
      if (!Number.isInteger(index) || index < 0 || index > parent.length) {
        throw new Failure(`bad array index in ${op.path}`);
      }
      if (op.op === "add") parent.splice(index, 0, scalarStrings(op.value));
      else if (op.op === "replace") parent[index] = scalarStrings(op.value);
      else if (op.op === "remove") parent.splice(index, 1);
      else usage(`unsupported patch operation ${JSON.stringify(op.op)}`);
    } else {
      if (op.op === "add" || op.op === "replace") parent[key] = scalarStrings(op.value);
      else if (op.op === "remove") delete parent[key];
      else usage(`unsupported patch operation ${JSON.stringify(op.op)}`);
    }
  }
}

const sameHeads = (a, b) => a.length === b.length && [...a].sort().every((h, i) => h === [...b].sort()[i]);

/// A Repo connected to the server, with the events a test needs to know about.
class Client {
  constructor(url) {
    this.progress = "connecting";
    this.serverError = undefined;
    this.opens = 0;
    this.closes = 0;
    this.syncStates = new Map(); // documentId -> latest sync state with the server
    this.listeners = new Set();
    this.adapter = new WebSocketClientAdapter(url);
    this.#instrument(this.adapter);
    this.repo = new Repo({ network: [this.adapter], peerId: `node-client-${Math.random().toString(36).slice(2, 10)}` });
    this.repo.synchronizer.on("sync-state", ({ documentId, syncState }) => {
      this.syncStates.set(documentId, syncState);
      this.#notify();
    });
  }

  // The adapter reconnects for ever and only logs server errors; surface both.
  #instrument(adapter) {
    const { onOpen, onClose, receiveMessage } = adapter;
    adapter.onOpen = () => {
      this.opens += 1;
      this.progress = "connected, waiting for the server's peer message";
      onOpen();
    };
    adapter.onClose = () => {
      this.closes += 1;
      this.progress =
        this.opens === 0
          ? `could not connect (${this.closes} attempt(s))`
          : `the server closed the connection ${this.closes} time(s) before answering`;
      onClose();
      this.#notify();
    };
    adapter.receiveMessage = bytes => {
      try {
        const message = cbor.decode(new Uint8Array(bytes));
        if (message?.type === "error") this.serverError = String(message.message);
        if (message?.type === "peer") this.progress = `joined server peer ${message.senderId}`;
      } catch {
        // The adapter logs undecodable frames itself.
      }
      receiveMessage.call(adapter, bytes);
      this.#notify();
    };
  }

  #notify() {
    for (const listener of this.listeners) listener();
  }

  /// Resolves when check() returns a value other than undefined; fails on a server error.
  until(check) {
    return new Promise((resolve, reject) => {
      const listener = () => {
        if (this.serverError !== undefined) {
          this.listeners.delete(listener);
          reject(new Failure(`server sent an error message: ${this.serverError}`));
          return;
        }
        let value;
        try {
          value = check();
        } catch (e) {
          this.listeners.delete(listener);
          reject(e);
          return;
        }
        if (value !== undefined) {
          this.listeners.delete(listener);
          resolve(value);
        }
      };
      this.listeners.add(listener);
      listener();
    });
  }

  joined() {
    return this.until(() => (this.adapter.remotePeerId ? true : undefined));
  }

  /// Resolves once the sync state shows that the server and this client have the same heads:
  /// after a write, the server holds it; after a read, we hold everything the server has.
  inSync(handle) {
    const heads = () => A.getHeads(handle.doc());
    this.progress = "waiting until the server and this client share the document's heads";
    const onChange = () => this.#notify();
    handle.on("change", onChange);
    return this.until(() => {
      const state = this.syncStates.get(handle.documentId);
      return state && sameHeads(state.sharedHeads ?? [], heads()) ? true : undefined;
    }).finally(() => handle.off("change", onChange));
  }

  async find(url) {
    this.progress = `looking for ${url}`;
    try {
      return await this.repo.find(url);
    } catch (e) {
      if (this.serverError !== undefined) throw new Failure(`server sent an error message: ${this.serverError}`);
      throw new Failure(e.message); // "Document automerge:… is unavailable"
    }
  }
}

function describe(handle) {
  const doc = handle.doc();
  return {
    url: handle.url,
    documentId: handle.documentId,
    heads: A.getHeads(doc),
    doc: JSON.parse(JSON.stringify(doc)),
  };
}

async function run({ url, command, rest }, client) {
  await client.joined();
  if (command === "create") {
    const content = parseJson(rest[0], "the document content");
    if (content === null || typeof content !== "object" || Array.isArray(content)) usage("create takes a JSON object");
    const handle = client.repo.create(scalarStrings(content));
    await client.inSync(handle);
    return describe(handle);
  }
  const handle = await client.find(checkUrl(rest[0]));
  await client.inSync(handle);
  if (command === "read") return describe(handle);
  if (command === "change") {
    const patch = parseJson(rest[1], "the patch");
    let failure;
    handle.change(doc => {
      try {
        applyPatch(doc, patch);
      } catch (e) {
        failure = e;
      }
    });
    if (failure) throw failure;
    await client.inSync(handle);
    return describe(handle);
  }
  // wait
  const [, path, expectedText] = rest;
  const expected = JSON.stringify(parseJson(expectedText, "the expected value"));
  client.progress = `waiting for ${path} to become ${expected}`;
  const onChange = () => client.listeners.forEach(l => l());
  handle.on("change", onChange);
  await client.until(() => {
    const value = valueAt(JSON.parse(JSON.stringify(handle.doc())), path);
    return JSON.stringify(value) === expected ? true : undefined;
  });
  handle.off("change", onChange);
  return describe(handle);
}

function exit(code, out, err) {
  const finish = () => process.exit(code);
  if (err) process.stderr.write(`${err}\n`);
  if (out) process.stdout.write(`${out}\n`, finish);
  else finish();
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    exit(e.code ?? EXIT_FAILURE, null, e.message);
    return;
  }
  let client;
  // The node WebSocket adapter throws from its error handler when the server refuses the
  // upgrade (for example HTTP 401), which surfaces here.
  process.on("uncaughtException", e => exit(EXIT_FAILURE, null, `connection failed: ${e.message}`));
  const timer = setTimeout(() => {
    const where = client ? client.progress : "starting";
    exit(EXIT_TIMEOUT, null, `timed out after ${args.timeoutMs} ms (${where})`);
  }, args.timeoutMs);
  try {
    client = new Client(args.url);
    const result = await run(args, client);
    clearTimeout(timer);
    exit(0, JSON.stringify(result));
  } catch (e) {
    clearTimeout(timer);
    exit(e.code ?? EXIT_FAILURE, null, e.message);
  }
}

main();
