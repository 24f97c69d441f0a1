import { test } from "node:test";
import assert from "node:assert/strict";
import { nameDecoder } from "./backend-identity.js";

test("nameDecoder reads a name's bytes as the server's encoding converts them for a UTF8 client", () => {
  const jurgen = Buffer.from([0x6a, 0xfc, 0x72, 0x67, 0x65, 0x6e]); // "jürgen" in LATIN1
  assert.equal(nameDecoder("LATIN1")(jurgen), "jürgen");
  assert.equal(nameDecoder("UTF8")(Buffer.from("jürgen", "utf8")), "jürgen");
  assert.equal(nameDecoder("UTF8")(jurgen), undefined, "invalid UTF-8 cannot be compared");
  // LATIN1 is ISO 8859-1 (0x80-0x9f are C1 controls), not windows-1252 (WHATWG's "latin1").
  assert.equal(nameDecoder("LATIN1")(Buffer.from([0x80])), "\u0080");
  assert.equal(nameDecoder("WIN1251")(Buffer.from([0xc0])), "А");
  assert.equal(nameDecoder("WIN1252")(Buffer.from([0x80])), undefined, "not decoded here (Node's windows-1252 is ISO 8859-1): ASCII only");
  assert.equal(nameDecoder("KOI8R")(Buffer.from([0xc1])), "а");
  // SQL_ASCII converts nothing: read as the monitor's client reads it.
  assert.equal(nameDecoder("SQL_ASCII")(jurgen), jurgen.toString("utf8"));
  // An encoding not known here: ASCII names only.
  assert.equal(nameDecoder("MULE_INTERNAL")(Buffer.from("alice")), "alice");
  assert.equal(nameDecoder("MULE_INTERNAL")(jurgen), undefined);
  assert.equal(nameDecoder(undefined)(Buffer.from("alice")), "alice");
});
