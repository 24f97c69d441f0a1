import { test } from "node:test";
import assert from "node:assert/strict";
import { parseNetTcp, parseNetUnix } from "./sockets.js";

test("/proc/net/unix rows: listening and accepted sockets carry the listener's path, client ends none", () => {
  const text = [
    "Num       RefCount Protocol Flags    Type St Inode Path",
    "0000000000000000: 00000002 00000000 00010000 0001 01 31337 /tmp/sock/.s.PGSQL.5432",
    "0000000000000000: 00000003 00000000 00000000 0001 03 31338 /tmp/sock/.s.PGSQL.5432",
    "0000000000000000: 00000003 00000000 00000000 0001 03 31339",
    "0000000000000000: 00000002 00000000 00010000 0001 01 40000 /run/my dir/with spaces",
  ].join("\n");
  const rows = parseNetUnix(text);
  assert.equal(rows.length, 4);
  assert.deepEqual(rows[0], { flags: 0x10000, type: 1, state: 1, inode: "31337", path: "/tmp/sock/.s.PGSQL.5432" });
  assert.equal(rows[1]!.state, 3);
  assert.equal(rows[2]!.path, "");
  assert.equal(rows[3]!.path, "/run/my dir/with spaces");
});

test("/proc/net/tcp rows: local port and state", () => {
  const text = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 5551 1 0000000000000000 100 0 0 10 0",
    "   1: 0100007F:1538 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   108        0 5552 1 0000000000000000 20 4 30 10 -1",
  ].join("\n");
  assert.deepEqual(parseNetTcp(text), [
    { localPort: 5432, state: 0x0a, inode: "5551" },
    { localPort: 5432, state: 1, inode: "5552" },
  ]);
});
