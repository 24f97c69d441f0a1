// Attack on the exec gate's identity of a mapped file (src/host/server-code.ts,
// parseFdinfoIdentity): the exception for plpgsql.so matches /proc/PID/fdinfo/N's `mnt_id:` and
// `ino:` lines, multiline-anchored. Some descriptors' fdinfo carries lines of their own after the
// kernel's common ones (an eventfd's counters, an inotify descriptor's "inotify wd:... ino:..."
// per watch, an epoll descriptor's "tfd:" lines): could one of them be taken for the file's
// `ino:` or `mnt_id:`? They come after the common lines (the kernel prints pos, flags, mnt_id and
// ino first), none starts a line with either name, and the first match is taken. This reads the
// fdinfo of every descriptor of this process, with an inotify watch, an epoll set and eventfds
// (libuv's) among them, and checks the identity read is the descriptor's own inode (fstat).

import { test } from "node:test";
import assert from "node:assert/strict";
import { fstatSync, readdirSync, readFileSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { parseFdinfoIdentity } from "../../src/host/server-code.js";

test("fdinfo of descriptors with lines of their own (inotify, eventfd, epoll): the identity is the descriptor's own inode", () => {
  const watcher = watch(tmpdir());
  try {
    const kinds = new Set<string>();
    let checked = 0;
    for (const name of readdirSync("/proc/self/fd")) {
      const fd = Number(name);
      let text: string;
      let ino: bigint;
      try {
        text = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
        ino = fstatSync(fd, { bigint: true }).ino;
      } catch {
        continue; // the directory's own descriptor, closed since
      }
      const id = parseFdinfoIdentity(text);
      if (!/^ino:/m.test(text)) continue; // a kernel without fdinfo's ino: line (no exception there)
      assert.ok(id, `fd ${fd}: ${JSON.stringify(text)}`);
      assert.equal(id.ino, ino.toString(), `fd ${fd}'s identity is its own inode: ${JSON.stringify(text)}`);
      assert.equal(id.mnt, /^mnt_id:\t(\d+)$/m.exec(text)?.[1]);
      for (const k of ["inotify wd:", "eventfd-count:", "tfd:"]) if (text.includes(k)) kinds.add(k);
      checked++;
    }
    assert.ok(checked > 0, "descriptors read");
    if (readFileSync("/proc/self/fdinfo/0", "utf8").includes("ino:")) assert.ok(kinds.has("inotify wd:"), `an inotify descriptor with a watch was among them (${[...kinds].join(", ")})`);
  } finally {
    watcher.close();
  }
});
