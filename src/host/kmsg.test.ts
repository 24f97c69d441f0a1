import { test } from "node:test";
import assert from "node:assert/strict";
import { parseNetlinkMessages } from "../kernel/audit-netlink.js";
import { openSeccompRecordSource } from "./kmsg.js";

/** One nlmsghdr-framed message as the kernel multicasts an audit record. */
function nlmsg(type: number, text: string): Buffer {
  const body = Buffer.from(text);
  const len = 16 + body.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  body.copy(b, 16);
  return b;
}

test("audit netlink messages: type and text of each, a truncated one ends the list", () => {
  const rec = 'audit(1796649258.544:47): auid=4294967295 uid=101 gid=104 ses=4294967295 pid=6671 comm="postgres" exe="/usr/lib/postgresql/15/bin/postgres" sig=31 arch=c000003e syscall=165 compat=0 ip=0x7f1a58d1f829 code=0x80000000';
  const two = Buffer.concat([nlmsg(1326, rec), nlmsg(1300, "audit(1.2:3): x=1")]);
  assert.deepEqual(parseNetlinkMessages(two).map((m) => [m.type, m.text]), [[1326, rec], [1300, "audit(1.2:3): x=1"]]);
  assert.deepEqual(parseNetlinkMessages(two.subarray(0, two.length - 4)).map((m) => m.type), [1326]);
  assert.deepEqual(parseNetlinkMessages(Buffer.alloc(8)), []);
});

test("the record source: the netlink read group as root, else /dev/kmsg with a note, else a note", () => {
  const { source, note } = openSeccompRecordSource("x86_64");
  try {
    if (source?.kind === "audit-netlink") assert.equal(note, undefined);
    else assert.match(note ?? "", /audit netlink read group/);
    assert.deepEqual(source?.take().filter((r) => r.pid === -1) ?? [], []);
  } finally {
    source?.close();
  }
});
