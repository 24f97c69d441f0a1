import { test } from "node:test";
import assert from "node:assert/strict";
import { journalDatagram, parseLogTargets, syslogDatagram } from "./log-sinks.js";
import type { ViolationEvent } from "../host/violation-event.js";

const event: ViolationEvent = {
  time: "2026-11-28T12:00:00.000Z", pid: 4242, process: "postgres: alice db [local] COPY", context: "session",
  role: "alice", database: "db", query: "copy (select 1)\nto program 'x] \"y\"'", syscall: "execve", nr: 59, args: ["0x1"], action: "error", errno: 1,
};

/** Parses the journal's native protocol (both forms), as journald does. */
function parseJournal(b: Buffer): Map<string, string> {
  const m = new Map<string, string>();
  let i = 0;
  while (i < b.length) {
    const nl = b.indexOf(0x0a, i);
    const line = b.subarray(i, nl).toString();
    const eq = line.indexOf("=");
    if (eq >= 0) {
      m.set(line.slice(0, eq), line.slice(eq + 1));
      i = nl + 1;
    } else {
      const len = Number(b.readBigUInt64LE(nl + 1));
      m.set(line, b.subarray(nl + 9, nl + 9 + len).toString());
      assert.equal(b[nl + 9 + len], 0x0a);
      i = nl + 10 + len;
    }
  }
  return m;
}

test("journal datagram: structured fields, a multi-line value in the length-prefixed form", () => {
  const m = parseJournal(journalDatagram(event));
  assert.equal(m.get("SYSCALL"), "execve");
  assert.equal(m.get("CONTEXT"), "session");
  assert.equal(m.get("ROLE"), "alice");
  assert.equal(m.get("DATABASE"), "db");
  assert.equal(m.get("PID"), "4242");
  assert.equal(m.get("ACTION"), "error");
  assert.equal(m.get("ERRNO"), "EPERM");
  assert.equal(m.get("QUERY"), event.query, "the newline survives, in the binary-safe form");
  assert.equal(m.get("SYSLOG_IDENTIFIER"), "pg_seccomp");
  assert.equal(m.get("PRIORITY"), "4");
  assert.match(m.get("MESSAGE")!, /^execve \(error EPERM\) in pid 4242 \(session, role alice, database db\)/);
  for (const k of m.keys()) assert.match(k, /^[A-Z][A-Z0-9_]*$/, "journal field names");
});

test("syslog datagram: RFC 5424 header, structured data escaped, one line", () => {
  const text = syslogDatagram(event, "host1", "77").toString();
  assert.match(text, /^<28>1 2026-11-28T12:00:00.000Z host1 pg_seccomp 77 violation \[pg_seccomp@32473 /);
  assert.ok(text.includes(`query="copy (select 1)\nto program 'x\\] \\"y\\"'"`), text);
  const msg = text.slice(text.lastIndexOf("] ") + 2);
  assert.doesNotMatch(msg, /\n/);
  assert.match(text, /syscall="execve" syscall_nr="59" context="session" action="error" pid="4242"/);
  assert.match(syslogDatagram({ ...event, action: "log" }).toString(), /^<29>1 /, "a logged call is a notice");
});

test("--log-to takes a comma-separated list of known targets", () => {
  assert.deepEqual(parseLogTargets("journald,file"), ["journald", "file"]);
  assert.deepEqual(parseLogTargets("syslog, syslog"), ["syslog"]);
  assert.match(parseLogTargets("kafka") as string, /"kafka" is not one of file, journald, syslog/);
});
