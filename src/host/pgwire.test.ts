// The protocol client's framing, without a server: bounded messages, the startup message, error fields.

import { test } from "node:test";
import assert from "node:assert/strict";
import { bindExecuteSync, MessageReader, PgWireError, parseErrorFields, parseMessage, queryMessage, startupMessage } from "./pgwire.js";

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

test("messages are split across reads and joined", () => {
  const r = new MessageReader(1024);
  const all = Buffer.concat([msg("Z", Buffer.from("I")), msg("C", Buffer.from("SELECT 1\0"))]);
  assert.deepEqual(r.push(all.subarray(0, 3)), []);
  const got = [...r.push(all.subarray(3, 8)), ...r.push(all.subarray(8))];
  assert.deepEqual(got.map((m) => [m.type, m.body.toString()]), [["Z", "I"], ["C", "SELECT 1\0"]]);
});

test("an oversized or malformed length is refused before its body is read", () => {
  const big = Buffer.alloc(5);
  big.write("D", 0, "latin1");
  big.writeInt32BE(1025, 1);
  assert.throws(() => new MessageReader(1024).push(big), PgWireError);
  const tiny = Buffer.alloc(5);
  tiny.write("D", 0, "latin1");
  tiny.writeInt32BE(3, 1);
  assert.throws(() => new MessageReader(1024).push(tiny), /message of 3 bytes/);
  const negative = Buffer.from([0x44, 0xff, 0xff, 0xff, 0xff]);
  assert.throws(() => new MessageReader(1024).push(negative), PgWireError);
});

test("the startup and query messages; NUL bytes refused", () => {
  const s = startupMessage({ user: "postgres", database: "postgres" });
  assert.equal(s.readInt32BE(0), s.length);
  assert.equal(s.readInt32BE(4), 196608);
  assert.equal(s.subarray(8).toString(), "user\0postgres\0database\0postgres\0\0");
  assert.throws(() => startupMessage({ user: "a\0b" }), PgWireError);
  const q = queryMessage("select 1");
  assert.equal(q.toString("latin1", 0, 1), "Q");
  assert.equal(q.readInt32BE(1), q.length - 1);
  assert.throws(() => queryMessage("select '\0'"), PgWireError);
});

test("error fields", () => {
  assert.deepEqual(parseErrorFields(Buffer.from("SFATAL\0C57P01\0Mterminating connection\0\0")), { S: "FATAL", C: "57P01", M: "terminating connection" });
});

test("the extended protocol's Parse, and Bind + Execute + Sync in one buffer, as PostgreSQL's protocol spells them", () => {
  const p = new MessageReader().push(parseMessage({ name: "st", sql: "select $1", paramTypes: [23] }));
  assert.equal(p.length, 1);
  assert.equal(p[0]!.type, "P");
  assert.deepEqual([...p[0]!.body], [...Buffer.from("st\0select $1\0"), 0, 1, 0, 0, 0, 23]);
  const [b, e, sync] = new MessageReader().push(bindExecuteSync("st", ["42", null]));
  assert.deepEqual([b!.type, e!.type, sync!.type], ["B", "E", "S"]);
  // portal "", statement "st", 0 parameter formats, 2 parameters ("42", NULL), 0 result formats
  assert.deepEqual([...b!.body], [0, ...Buffer.from("st\0"), 0, 0, 0, 2, 0, 0, 0, 2, ...Buffer.from("42"), 0xff, 0xff, 0xff, 0xff, 0, 0]);
  assert.deepEqual([...e!.body], [0, 0, 0, 0, 0]); // portal "", no row limit
  assert.equal(sync!.body.length, 0);
  assert.throws(() => parseMessage({ name: "a\0", sql: "select 1", paramTypes: [] }), PgWireError);
});
