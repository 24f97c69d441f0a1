// The violation-log reader against every kind of line the file can hold, and the printers
// against terminal escape injection.

import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import {
  followViolations, formatViolations, LineSplitter, MAX_LINE_BYTES, parseViolationLine, readViolations, skippedNotes, toViolationEvent,
} from "./violations.js";
import { escapeControl, psqlTable, safeJson } from "../render/format.js";
import type { ViolationEvent } from "../host/violation-event.js";

const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-violations-"));
let files = 0;
const file = (content: string | Buffer) => {
  const p = join(dir, `log${++files}.jsonl`);
  writeFileSync(p, content);
  return p;
};

const GOOD: ViolationEvent = {
  time: "2026-01-02T03:04:05.678Z", pid: 4242, process: "postgres: alice db [local] COPY", context: "session",
  role: "alice", database: "db", query: "copy (select 1) to program 'id'", syscall: "execve", nr: 59,
  args: ["0x0", "0x1"], action: "error", errno: 13,
};
const good = (over: Record<string, unknown> = {}) => JSON.stringify({ ...GOOD, ...over });

test("valid records are read back as written; unknown fields are dropped", () => {
  const p = file(good() + "\n" + good({ pid: 7, extra: { a: 1 } }) + "\n");
  const r = readViolations(p);
  assert.deepEqual(r.events, [GOOD, { ...GOOD, pid: 7 }]);
  assert.deepEqual(r.skipped, { notRecord: 0, tooLong: 0, torn: 0 });
  assert.deepEqual(skippedNotes(r.skipped), []);
});

test("a missing file is an empty log; a FIFO or directory is refused with a message", () => {
  assert.deepEqual(readViolations(join(dir, "missing.jsonl")).events, []);
  assert.throws(() => readViolations(dir), (e: Error) => e.name === "UsageError" && /not a regular file/.test(e.message));
  const fifo = join(dir, "fifo");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
  assert.throws(() => readViolations(fifo), /not a regular file/);
});

test("hostile lines are skipped and counted, never thrown", () => {
  const hostile = [
    "[1,2,3]", "42", "null", '"a string"', "true", "{}", "{",
    good({ pid: null }), good({ pid: "4242" }), good({ pid: 1.5 }), good({ pid: 2 ** 31 }), good({ nr: "59" }),
    good({ time: "yesterday" }), good({ time: 5 }), good({ args: "0x0" }), good({ args: [1, 2] }), good({ args: [null] }),
    good({ action: "ALLOW" }), good({ action: null }), good({ role: 7 }), good({ errno: "EACCES" }), good({ errno: 1e9 }),
    good({ process: { toString: 1 } }), good({ context: ["session"] }),
    "[".repeat(60_000), "[".repeat(30_000) + "]".repeat(30_000), "{\"a\":".repeat(10_000), JSON.stringify({ __proto__: { pid: 1 } }),
  ];
  const invalidUtf8 = Buffer.concat([Buffer.from(good().slice(0, -2)), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from('"}')]);
  const overlong = good({ query: "x".repeat(MAX_LINE_BYTES) });
  const content = Buffer.concat([
    Buffer.from(good() + "\n" + hostile.join("\n") + "\n"),
    invalidUtf8, Buffer.from("\n"),
    Buffer.from(overlong + "\n"),
    Buffer.from("[".repeat(100_000) + "\n"),
    Buffer.from("\n   \n"), // blank lines are nothing, not skipped records
    Buffer.from(good({ pid: 2 }) + "\n"),
    Buffer.from(good({ pid: 3 }).slice(0, 40)), // torn last line
  ]);
  const r = readViolations(file(content));
  assert.deepEqual(r.events.map((e) => e.pid), [4242, 2]);
  assert.deepEqual(r.skipped, { notRecord: hostile.length + 1, tooLong: 2, torn: 1 });
  assert.deepEqual(skippedNotes(r.skipped), [
    `${hostile.length + 1} lines skipped (not a violation record)`,
    "2 lines skipped (longer than 64 KiB)",
    "the last line is incomplete (still being written, or torn); skipped",
  ]);
});

test("null optional fields are absent; the typed event carries only known fields", () => {
  const e = toViolationEvent({ ...GOOD, role: null, database: null, query: null, errno: null, signal: null, decidedBy: null });
  assert.ok(e);
  assert.deepEqual(Object.keys(e).sort(), ["action", "args", "context", "nr", "pid", "process", "syscall", "time"]);
  assert.equal(parseViolationLine(Buffer.from([0xc3, 0x28])), undefined);
});

test("the line cap holds across chunk boundaries and does not buffer a long line", () => {
  const s = new LineSplitter(10);
  assert.deepEqual(s.push(Buffer.from("abc\n0123456")).map(String), ["abc"]);
  assert.deepEqual(s.push(Buffer.from("789")).map(String), []); // 10 bytes: still fits
  assert.deepEqual(s.push(Buffer.from("X")).map(String), []); // 11: over, dropped
  assert.deepEqual(s.push(Buffer.from("more\nok\n")).map(String), ["ok"]);
  assert.equal(s.tooLong, 1);
  assert.deepEqual(s.push(Buffer.from("0123456789\ntail")).map(String), ["0123456789"]);
  assert.equal(String(s.rest()), "tail");
});

test("a huge log is read with -n keeping only the last entries", () => {
  const p = file("");
  const lines: string[] = [];
  for (let i = 1; i <= 5000; i++) lines.push(good({ pid: i }));
  appendFileSync(p, lines.join("\n") + "\n");
  const r = readViolations(p, { last: 3 });
  assert.deepEqual(r.events.map((e) => e.pid), [4998, 4999, 5000]);
  assert.deepEqual(readViolations(p, { last: 0 }).events, []);
});

const NASTY = "a\x1b[2Jb\nc\rd\te\x00f\x7fg\x9bh\u202ei\u2066j\u2028k\u2029l";

test("escapeControl writes every control, C1 and bidi character as an escape", () => {
  assert.equal(escapeControl(NASTY), "a\\x1b[2Jb\\nc\\rd\\te\\x00f\\x7fg\\x9bh\\u202ei\\u2066j\\u2028k\\u2029l");
  for (let c = 0; c < 0x10000; c++) {
    const ch = String.fromCharCode(c);
    const unsafe = c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0x2028 || c === 0x2029;
    if (unsafe) assert.notEqual(escapeControl(ch), ch, `U+${c.toString(16)}`);
  }
  assert.equal(escapeControl("plain SELECT 'é' 日本"), "plain SELECT 'é' 日本");
});

test("table output of the log never contains a raw control character", () => {
  const e: ViolationEvent = { ...GOOD, role: "r\x1b]0;pwned\x07", database: "d\u202e", query: NASTY, process: NASTY, syscall: "x\x9b" };
  const out = formatViolations([e]);
  assert.doesNotMatch(out.replace(/\n/g, ""), /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
  assert.equal(out.split("\n").length, 5, out); // header, rule, one row, footer, final newline
  assert.match(out, /r\\x1b\]0;pwned\\x07/);
  const t = psqlTable(["a\x1b"], [{ "a\x1b": "\n" }]);
  assert.doesNotMatch(t.replace(/\n/g, ""), /[\x00-\x1f]/);
});

test("safeJson output has no raw control, C1, separator or bidi character and parses to the same value", () => {
  const v = { s: NASTY, k: [NASTY], n: 1, b: 2n };
  for (const space of [undefined, 2]) {
    const j = safeJson(v, space);
    assert.doesNotMatch(space ? j.replace(/\n/g, "") : j, /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
    assert.deepEqual(JSON.parse(j), { ...v, b: "2" });
  }
});

test("pg_seccomp log prints a hostile log escaped, with a note on skipped lines, as table and JSON", () => {
  const bin = new URL("../cli/main.js", import.meta.url).pathname;
  const p = file(good({ query: NASTY }) + "\n[1]\n\"x\"\n" + "[".repeat(60_000) + "\n" + good({ pid: 5, process: "p\u202e" }) + "\n");
  const table = spawnSync(process.execPath, [bin, "log", "--file", p], { encoding: "utf8" });
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stderr, /note: .*: 3 lines skipped \(not a violation record\)/);
  assert.doesNotMatch(table.stdout.replace(/\n/g, ""), /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
  assert.match(table.stdout, /\(2 rows\)/);
  const json = spawnSync(process.execPath, [bin, "log", "--file", p, "--jsonl", "-n", "1"], { encoding: "utf8" });
  assert.equal(json.status, 0, json.stderr);
  assert.equal(json.stdout.split("\n").length, 2);
  assert.doesNotMatch(json.stdout.replace(/\n$/, ""), /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
  assert.equal(JSON.parse(json.stdout).process, "p\u202e");
  // --json: one array, escaped the same way.
  const array = spawnSync(process.execPath, [bin, "log", "--file", p, "--json"], { encoding: "utf8" });
  assert.equal(array.status, 0, array.stderr);
  assert.doesNotMatch(array.stdout.replace(/\n/g, ""), /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
  assert.deepEqual((JSON.parse(array.stdout) as Array<{ pid: number }>).map((e) => e.pid), [4242, 5]);
  const bad = spawnSync(process.execPath, [bin, "log", "--file", p, "-n", "x"], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--lines: "x" is not a number/);
});

test("follow reads appended records, skips hostile ones, and starts over on a replaced file", async () => {
  const p = file(good() + "\n");
  const seen: number[] = [];
  let skipped = 0;
  const stop = followViolations(p, 0, (es, s) => {
    seen.push(...es.map((e) => e.pid));
    skipped += s.notRecord + s.tooLong;
  }, 20);
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    await wait(80);
    appendFileSync(p, "[]\n" + good({ pid: 11 }) + "\n" + good({ pid: 12 }).slice(0, 30));
    await wait(80);
    appendFileSync(p, good({ pid: 12 }).slice(30) + "\n" + "y".repeat(MAX_LINE_BYTES + 1) + "\n");
    await wait(80);
    writeFileSync(p + ".new", good({ pid: 13 }) + "\n");
    spawnSync("mv", [p + ".new", p]);
    await wait(80);
  } finally {
    stop();
  }
  assert.deepEqual(seen, [4242, 11, 12, 13]);
  assert.equal(skipped, 2);
});
