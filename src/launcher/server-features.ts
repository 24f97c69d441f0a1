// Features of a server that need syscalls of their own, read from the server's own
// configuration (postgres -C, as the server's user: src/postgres/cluster.ts serverSetting) and
// set against the policy before anything starts: io_uring (PostgreSQL 18) and JIT.

import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { readConf } from "../policy/conf.js";
import { fileSystemSource } from "../policy/source.js";
import { isDataDirectory } from "../host/data-dir.js";
import { checkPolicyPermissions, type ServerIdentity } from "../host/permissions.js";
import { contextDecisions, decisionFor, sameDecision } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { serverSetting, type OsUser } from "../postgres/cluster.js";
import { compilePolicy } from "../compile/compile.js";
import { emulate } from "../bpf/emulator.js";
import { AUDIT_ARCH, retAction, SECCOMP_RET_ALLOW, SECCOMP_RET_LOG } from "../seccomp/index.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";
import { commandLineSetting, dataDirOf, LaunchError } from "./run.js";

/** What these checks need of a run request. */
export interface PolicyOfRun {
  policy: Policy;
  policyPath: string;
  arch: Arch;
}

export const IO_URING_CALLS = ["io_uring_setup", "io_uring_enter", "io_uring_register"] as const;

/** The server's io_method (PostgreSQL 18+; "worker" where it cannot be read, as is the default). */
export function serverIoMethod(postgres: string, major: number, dataDir: string | undefined, user: OsUser | undefined): string | undefined {
  if (major < 18 || !dataDir) return undefined;
  return serverSetting(postgres, dataDir, user, "io_method");
}

/**
 * io_method as only root's inputs give it, for choosing the default profile: postgres's command
 * line, else the configuration file of a configuration directory (Debian's /etc/postgresql/18/main,
 * or -c config_file=...) when neither it nor anything it includes can be changed by the server's
 * user. Never postgresql.auto.conf or anything else in the data directory: those are the
 * server's (ALTER SYSTEM writes them), and the server must not choose its own filter. Undefined:
 * the default (worker).
 */
export function rootIoMethod(args: readonly string[], server: ServerIdentity): string | undefined {
  const fromArgs = commandLineSetting(args, "io_method");
  if (fromArgs !== undefined) return fromArgs;
  const dir = dataDirOf(args, {});
  const configFile = commandLineSetting(args, "config_file") ?? (dir !== undefined && !isDataDirectory(resolve(dir)) ? join(resolve(dir), "postgresql.conf") : undefined);
  if (configFile === undefined || !existsSync(configFile)) return undefined;
  let conf;
  try {
    conf = readConf(resolve(configFile), fileSystemSource);
  } catch {
    return undefined; // not readable as a configuration file: postgres will say what is wrong
  }
  // Every file read, and the places an include could add one, must be beyond the server's user.
  if (checkPolicyPermissions(conf.files, server, dir !== undefined && isDataDirectory(resolve(dir)) ? resolve(dir) : undefined, conf.includePlaces).length > 0) return undefined;
  return conf.settings.filter((x) => x.name === "io_method").at(-1)?.value.trim();
}

/**
 * PostgreSQL 18's io_method = io_uring needs io_uring_setup/enter/register, and the reads,
 * writes and opens a ring carries are not syscalls any filter sees. The server's own setting
 * decides: without io_uring the policy should deny them (a loud warning when it does not); with
 * it, a policy that denies them would stop the server at start (refused here), and one that
 * allows them gets a loud note.
 */
export function ioUringNotes(req: PolicyOfRun, major: number, ioMethod: string | undefined): string[] {
  const global = contextDecisions(req.policy, req.arch, { context: "global" });
  const allowed = IO_URING_CALLS.filter((name) => {
    const nr = syscallNumber(req.arch, name);
    if (nr === undefined) return false;
    const d = decisionFor(global, nr);
    return d.kind !== "leaf" || d.action.kind === "allow" || d.action.kind === "log";
  });
  if (ioMethod === "io_uring") {
    if (allowed.length < IO_URING_CALLS.length) {
      throw new LaunchError(
        `the server uses io_method = io_uring (PostgreSQL ${major}), which needs ${IO_URING_CALLS.join(", ")}; ` +
          `${req.policyPath} does not allow ${IO_URING_CALLS.filter((c) => !allowed.includes(c)).join(", ")}, so the server would fail at start\n` +
          `hint: set io_method = worker (no io_uring), or allow them in the policy: global_syscall_allow = '..., ${IO_URING_CALLS.join(", ")}' ` +
          `(the bundled profiles have an -io_uring variant, chosen without --policy only when root asks for io_uring: -c io_method=io_uring on postgres's command line, ` +
          `or a postgresql.conf the server's user cannot change; never postgresql.auto.conf, which ALTER SYSTEM writes)`,
      );
    }
    return [
      `WARNING: io_method = io_uring: ${IO_URING_CALLS.join(", ")} are allowed. The reads, writes and other operations an io_uring ` +
        `carries are not syscalls: the filter does not see them, so for I/O this server is not filtered per call. Set io_method = worker to filter every call.`,
    ];
  }
  // A policy that logs what it does not name (a learning run, an audit-only policy) lets io_uring
  // through like everything else it logs: that is its purpose, not an allowance to remove.
  const loggedByDefault = (name: string) => {
    const d = decisionFor(global, syscallNumber(req.arch, name)!);
    return d.kind === "leaf" && d.action.kind === "log" && sameDecision(d, global.defaultDecision, true);
  };
  const named = allowed.filter((n) => !loggedByDefault(n));
  if (named.length > 0) {
    return [
      `WARNING: ${req.policyPath} allows ${named.join(", ")}, but the server does not use io_uring` +
        `${major >= 18 ? ` (io_method = ${ioMethod ?? "worker"})` : ` (PostgreSQL ${major} has no io_uring support)`}: ` +
        `io_uring operations bypass per-syscall filtering; remove them from the policy.`,
    ];
  }
  return [];
}

const PROT_READ = 1n;
const PROT_EXEC = 4n;

/**
 * JIT (`jit = on`, the default, with LLVM's llvmjit.so installed) compiles a session's
 * expressions into memory it then makes executable: mprotect(..., PROT_READ | PROT_EXEC). A policy
 * that keeps W^X (an argument condition on mprotect's PROT_EXEC, or mprotect denied) makes every
 * JIT compile fail with an error in the session; one that allows it lets sessions create code.
 * Said before the server starts, either way, when the server would JIT.
 */
export function jitNotes(req: PolicyOfRun, postgres: string, jit: string | undefined): string[] {
  // pkglibdir is ../lib (Debian: /usr/lib/postgresql/15/lib) next to bin/postgres.
  const llvmjit = join(dirname(dirname(postgres)), "lib", "llvmjit.so");
  if (jit !== "on" || !existsSync(llvmjit)) return [];
  const nr = syscallNumber(req.arch, "mprotect");
  if (nr === undefined) return [];
  const prog = compilePolicy(req.policy, req.arch, { context: "session" });
  const ret = retAction(emulate(prog, { nr, arch: AUDIT_ARCH[req.arch], instructionPointer: 0n, args: [0x10000n, 4096n, PROT_READ | PROT_EXEC, 0n, 0n, 0n] }).ret);
  if (ret === SECCOMP_RET_ALLOW || ret === SECCOMP_RET_LOG) {
    return [`note: jit = on and ${llvmjit} is installed: sessions may make memory executable (mprotect PROT_EXEC), as JIT needs; set jit = off and deny it to keep W^X`];
  }
  return [
    `WARNING: jit = on and ${llvmjit} is installed, but ${req.policyPath} denies sessions mprotect with PROT_EXEC (W^X): ` +
      `every JIT compile will fail with an error in its session. Set jit = off in postgresql.conf, or allow mprotect with PROT_EXEC to sessions.`,
  ];
}
