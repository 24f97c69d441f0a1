// The permission check on real directories, links and ownership (as root; postgres is the
// server's user), the violation log's own checks, and the strict spool request parser.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicyFile } from "../policy/policy.js";
import { libcAvailable } from "../kernel/index.js";
import { checkLogPath, checkPolicyPermissions, type ServerIdentity } from "./permissions.js";
import { ViolationLog } from "../supervisor/violation-log.js";
import { describeRequestError, parseClientFilterRequest } from "../supervisor/client-filter.js";
import type { ViolationEvent } from "./violation-event.js";

const skip = process.getuid?.() !== 0 ? "needs root (files owned by the postgres user)" : false;
const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }));
const server: ServerIdentity = skip ? { uid: -1, gids: [], name: "postgres" } : { uid: id("-u"), gids: [id("-g")], name: "postgres" };
const pgGid = server.gids[0]!;

const root = mkdtempSync(join(tmpdir(), "pg_seccomp-perm-"));
chmodSync(root, 0o755);
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function dir(mode = 0o755, owner = 0): string {
  const d = join(root, `d${++n}`);
  mkdirSync(d);
  chmodSync(d, mode);
  chownSync(d, owner, owner === 0 ? 0 : pgGid);
  return d;
}
function policyFile(d: string, name = "p.conf", text = "global_syscall_default = 'allow'\n"): string {
  writeFileSync(join(d, name), text, { mode: 0o644 });
  return join(d, name);
}
const problemsOf = (path: string) => checkPolicyPermissions([path], server, undefined).map((p) => `${p.path}: ${p.problem}`).join("\n");

test("a policy in root's directories passes; owned by the server's user or writable does not", { skip }, () => {
  const good = policyFile(dir());
  assert.equal(problemsOf(good), "");
  const owned = policyFile(dir());
  chownSync(owned, server.uid, pgGid);
  assert.match(problemsOf(owned), /file is owned by the server's user postgres/);
  assert.match(problemsOf(policyFile(dir(0o755, server.uid))), /directory is owned by the server's user/);
  const grp = dir(0o775);
  chownSync(grp, 0, pgGid);
  assert.match(problemsOf(policyFile(grp)), /group-writable by a group of the server's user/);
});

test("a directory symlink owned by the server's user, or in a directory it can write, is refused", { skip }, () => {
  const real = dir();
  const p = policyFile(real);
  const links = dir();
  symlinkSync(real, join(links, "via"));
  assert.equal(problemsOf(join(links, "via", "p.conf")), "", "root's link in root's directory is fine");
  lchownSync(join(links, "via"), server.uid, pgGid);
  assert.match(problemsOf(join(links, "via", "p.conf")), /via: symbolic link is owned by the server's user/);
  // A relative link whose target is in a directory the server's user owns: that directory is checked.
  const theirs = dir(0o755, server.uid);
  writeFileSync(join(theirs, "q.conf"), "global_syscall_default = 'allow'\n");
  const links2 = dir();
  symlinkSync(`../${theirs.split("/").pop()}/q.conf`, join(links2, "q.conf"));
  assert.match(problemsOf(join(links2, "q.conf")), new RegExp(`${theirs}: directory is owned by the server's user`));
  assert.ok(existsSync(p));
});

test("a final symlink in a sticky world-writable directory is refused, whoever owns it", { skip }, () => {
  const real = policyFile(dir());
  const sticky = dir(0o1777);
  symlinkSync(real, join(sticky, "p.conf"));
  assert.match(problemsOf(join(sticky, "p.conf")), /world-writable \(the sticky bit.*holds the symbolic link p.conf/);
  // A root-owned regular file in a sticky directory cannot be replaced by the server's user.
  assert.equal(problemsOf(policyFile(sticky, "plain.conf")), "");
});

test("include_if_exists of a missing file and include_dir in a directory the server's user can write are refused", { skip }, () => {
  const theirs = dir(0o755, server.uid);
  const sticky = dir(0o1777);
  const mine = dir();
  const main = policyFile(mine, "main.conf", `global_syscall_default = 'allow'\ninclude_if_exists '${theirs}/later.conf'\ninclude_if_exists '${sticky}/later.conf'\ninclude_if_exists '${mine}/absent.conf'\ninclude_dir '${sticky}'\n`);
  const policy = loadPolicyFile(main);
  const problems = checkPolicyPermissions(policy.files, server, undefined, policy.includePlaces).map((p) => `${p.path}: ${p.problem}`).join("\n");
  assert.match(problems, new RegExp(`${theirs}: directory is owned by the server's user postgres, who could change it, so the server's user could create later.conf there`));
  assert.match(problems, new RegExp(`${sticky}: directory is world-writable \\(the sticky bit[^\\n]*could create later.conf there`));
  assert.match(problems, new RegExp(`${sticky}: directory is world-writable \\(the sticky bit[^\\n]*\\)$`, "m"), "include_dir into a sticky directory");
  assert.doesNotMatch(problems, /absent.conf/, "a missing include in root's directory is fine");
});

test("a policy inside the data directory is refused, also through a link", { skip }, () => {
  const data = dir(0o700, server.uid);
  const p = policyFile(data);
  const links = dir();
  symlinkSync(p, join(links, "p.conf"));
  assert.match(checkPolicyPermissions([join(links, "p.conf")], server, data).map((x) => x.problem).join("\n"), /inside the data directory/);
});

test("checkLogPath: a root-only directory passes; /tmp-like, the server's, links and non-files do not", { skip }, () => {
  const mine = dir();
  assert.deepEqual(checkLogPath(join(mine, "v.jsonl"), server), []);
  assert.match(checkLogPath(join(dir(0o1777), "v.jsonl"), server)[0]!.problem, /world-writable \(the sticky bit/);
  assert.match(checkLogPath(join(dir(0o755, server.uid), "v.jsonl"), server)[0]!.problem, /owned by the server's user/);
  symlinkSync("/etc/passwd", join(mine, "l.jsonl"));
  assert.match(checkLogPath(join(mine, "l.jsonl"), server)[0]!.problem, /symbolic link/);
  execFileSync("mkfifo", [join(mine, "f.jsonl")]);
  assert.match(checkLogPath(join(mine, "f.jsonl"), server)[0]!.problem, /not a regular file/);
  // The directory reached through a link the server's user owns.
  const links = dir();
  symlinkSync(mine, join(links, "logs"));
  lchownSync(join(links, "logs"), server.uid, pgGid);
  assert.match(checkLogPath(join(links, "logs", "v.jsonl"), server).map((p) => p.problem).join("\n"), /symbolic link is owned by the server's user/);
});

const event = (i: number) => ({ pid: i, syscall: "execve", action: "error" }) as unknown as ViolationEvent;

test("ViolationLog: writes by descriptor, hands the file to the reader group, rotates within its directory", { skip: skip || (!libcAvailable().ok && "no libc") }, () => {
  const d = dir();
  const log = new ViolationLog(join(d, "v.jsonl"), 200, pgGid, 50, server);
  for (let i = 0; i < 3; i++) log.record(event(i));
  log.flush();
  assert.equal(log.lastError, undefined);
  assert.equal(lstatSync(join(d, "v.jsonl")).gid, pgGid);
  for (let i = 3; i < 8; i++) {
    log.record(event(i));
    log.flush();
  }
  log.close();
  assert.ok(existsSync(join(d, "v.jsonl.1")), "rotated");
  const lines = (readFileSync(join(d, "v.jsonl.1"), "utf8") + readFileSync(join(d, "v.jsonl"), "utf8")).trim().split("\n");
  assert.ok(lines.length >= 3 && lines.every((l) => JSON.parse(l).syscall === "execve"));
});

test("ViolationLog: never writes through a link, nor in a directory the server's user can write", { skip: skip || (!libcAvailable().ok && "no libc") }, () => {
  const victim = join(dir(), "victim");
  writeFileSync(victim, "precious\n");
  const d = dir();
  symlinkSync(victim, join(d, "v.jsonl"));
  const viaLink = new ViolationLog(join(d, "v.jsonl"), 1 << 20, pgGid, 50, server);
  viaLink.record(event(1));
  viaLink.close();
  assert.match(viaLink.lastError ?? "", /symbolic link/);
  assert.equal(readFileSync(victim, "utf8"), "precious\n");
  assert.equal(lstatSync(victim).gid, 0);
  const theirs = dir(0o755, server.uid);
  const inTheirs = new ViolationLog(join(theirs, "v.jsonl"), 1 << 20, pgGid, 50, server);
  inTheirs.record(event(1));
  inTheirs.close();
  assert.match(inTheirs.lastError ?? "", /owned by uid/);
  assert.equal(existsSync(join(theirs, "v.jsonl")), false);
});

test("set_client_filter requests: exactly five keys of strings or null, bounded; errors never quote the request", () => {
  const ok = { default: null, allow: null, log: null, error: "execve", kill: null };
  assert.deepEqual(parseClientFilterRequest(Buffer.from(JSON.stringify(ok))), ok);
  const bad: Array<[string, RegExp]> = [
    ["TOP-SECRET-not-json", /not valid JSON/],
    ["[1,2]", /not a JSON object/],
    [JSON.stringify({ ...ok, extra: "TOP-SECRET" }), /exactly the keys/],
    [JSON.stringify({ default: null, allow: null, log: null, error: null }), /exactly the keys/],
    [JSON.stringify({ ...ok, allow: ["TOP-SECRET"] }), /allow is neither a string nor null/],
    [JSON.stringify({ ...ok, error: "x".repeat(1025) }), /longer than 1024/],
    [JSON.stringify({ ...ok, error: "execve'\nglobal_syscall_allow = 'TOP-SECRET" }), /printable ASCII/],
  ];
  for (const [text, why] of bad) {
    let msg = "";
    try {
      parseClientFilterRequest(Buffer.from(text));
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.match(msg, why, text);
    assert.doesNotMatch(msg, /TOP-SECRET/);
  }
  assert.equal(describeRequestError(new Error('x:5:25: cannot read list entry "TOP-SECRET \u001b[31m"\nhint')), 'x:5:25: cannot read list entry "(not shown)"');
  assert.equal(describeRequestError(new Error('unknown syscall "execve2"')), 'unknown syscall "execve2"');
});
