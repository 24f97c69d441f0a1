// The run-state directory's checks, as the writer and every reader apply them (run-state.ts).
// Root makes directories and files of other uids here to stand for another local user's.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findRunState, readStateFile, stateDirProblem, writeStateFile } from "./run-state.js";

const root = process.getuid?.() === 0;
const OTHER = 54_321;

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), "pg_seccomp-rs-"));
  chmodSync(d, 0o700);
  return d;
}

test("stateDirProblem: a user's must be its own and 0700; root's its own and not writable by others", () => {
  const d = scratch();
  try {
    const st = lstatSync(d);
    assert.equal(stateDirProblem(st, st.uid), undefined);
    assert.match(stateDirProblem(st, st.uid + 1)!, /is owned by uid/);
    chmodSync(d, 0o750);
    if (st.uid !== 0) assert.match(stateDirProblem(lstatSync(d), st.uid)!, /not 0700/);
    chmodSync(d, 0o777);
    assert.match(stateDirProblem(lstatSync(d), st.uid)!, /mode 0777/);
    const link = `${d}-link`;
    symlinkSync(d, link);
    assert.match(stateDirProblem(lstatSync(link), st.uid)!, /not a directory/);
    rmSync(link);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("writeStateFile: never through a link planted under the name, nor in a directory that is not ours", { skip: !root && "needs root (chown)" }, () => {
  const d = scratch();
  try {
    const victim = join(d, "victim");
    writeFileSync(victim, "precious\n");
    symlinkSync(victim, join(d, "123.json"));
    writeStateFile(d, "123.json", "{}\n");
    assert.equal(readFileSync(victim, "utf8"), "precious\n", "the link's target is intact");
    assert.ok(lstatSync(join(d, "123.json")).isFile(), "the link was replaced by a file");
    // Another user's directory (made first, or opened up): refused, nothing written.
    const theirs = join(d, "theirs");
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, OTHER, OTHER);
    assert.throws(() => writeStateFile(theirs, "x.json", "{}"), /is owned by uid 54321/);
    chmodSync(d, 0o777);
    assert.throws(() => writeStateFile(d, "y.json", "{}"), /writable by others|not 0700/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("readers: only regular files of the directory's owner, in a directory that passes the writer's checks", { skip: !root && "needs root (chown)" }, () => {
  const d = scratch();
  try {
    chownSync(d, OTHER, OTHER);
    const state = { launcherPid: 1, postmasterPid: process.pid, dataDir: "/srv/x", policyPath: "/p", arch: "x86_64", logPath: "/l", startedAt: "2026-01-01T00:00:00Z" };
    writeFileSync(join(d, `${process.pid}.json`), JSON.stringify(state));
    chownSync(join(d, `${process.pid}.json`), OTHER, OTHER);
    assert.equal(findRunState({ dataDir: "/srv/x" }, d, OTHER)?.postmasterPid, process.pid);
    assert.equal(findRunState({ dataDir: "/srv/x" }, d, 0), undefined, "not root's directory");
    // A file root owns in that user's directory, or a link, is not that user's record.
    chownSync(join(d, `${process.pid}.json`), 0, 0);
    assert.equal(readStateFile(d, `${process.pid}.json`, OTHER), undefined);
    rmSync(join(d, `${process.pid}.json`));
    symlinkSync("/etc/hostname", join(d, `${process.pid}.json`));
    assert.equal(readStateFile(d, `${process.pid}.json`, OTHER), undefined);
    // The directory opened up to others: nothing in it is read.
    rmSync(join(d, `${process.pid}.json`));
    writeFileSync(join(d, `${process.pid}.json`), JSON.stringify(state));
    chownSync(join(d, `${process.pid}.json`), OTHER, OTHER);
    chmodSync(d, 0o755);
    assert.equal(findRunState({ dataDir: "/srv/x" }, d, OTHER), undefined);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("findRunState: of two records for one data directory, the newest", { skip: !root && "needs root" }, () => {
  const d = scratch();
  try {
    const base = { launcherPid: 1, dataDir: "/srv/y", policyPath: "/p", arch: "x86_64", logPath: "/old" };
    writeStateFile(d, `${process.pid}.json`, JSON.stringify({ ...base, postmasterPid: process.pid, startedAt: "2026-01-01T00:00:00.000Z" }));
    writeStateFile(d, `${process.ppid}.json`, JSON.stringify({ ...base, postmasterPid: process.ppid, logPath: "/new", startedAt: "2026-06-01T00:00:00.000Z" }));
    assert.equal(findRunState({ dataDir: "/srv/y" }, d)?.logPath, "/new");
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
