// `pg_seccomp run`: start PostgreSQL under a policy, the way a DBA, a systemd unit or a
// container entrypoint would. The launcher (this process) stays as the supervisor and as the
// postmaster's parent: it forwards signals, answers the notifications the filter sends it,
// writes the violation log, and exits as the postmaster exits.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { accessSync, closeSync, existsSync, constants as fsc } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { makeDirectoryAt, openDirectoryNoFollow } from "../host/safe-fs.js";
import { encodeProgram } from "../bpf/insn.js";
import { describeKernel, kernelRefusal, kernelRelease, kernelShortfalls, probeKernel, programActions, setDumpable } from "../kernel/index.js";
import type { Policy } from "../policy/policy.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";
import { errnoName } from "../syscalls/errno.js";
import { lookupUser, postgresMajorVersion, serverSetting, type OsUser } from "../postgres/cluster.js";
import { kindsAbsentIn } from "../policy/policy.js";
import { formatRisk, sqlKindsOpened } from "../policy/risks.js";
import { checkLogPath, checkPolicyPermissions, type ServerIdentity } from "../host/permissions.js";
import { compose, type Composition } from "../compile/compose.js";
import { execUnderFilter, type StageInstructions } from "./stage.js";
import type { SuperviseInstructions } from "./supervise-main.js";
import { superviseServer, SupervisionError, TIME_SCALE, type Supervision } from "../supervisor/supervision.js";
import { parseKmsgKills, readKmsg } from "../host/kmsg.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { ensureRunStateDir, runStateNotes } from "../host/run-state.js";
import { ioUringNotes, jitNotes, serverIoMethod } from "./server-features.js";
import { defaultLogPath } from "../supervisor/violation-log.js";
import { dataDirForRun } from "../host/data-dir.js";
import { JOURNAL_SOCKET, SYSLOG_SOCKET, type LogTarget } from "../supervisor/log-sinks.js";
import { UsageProblem } from "../errors.js";
import { parseProcStatus, PROC } from "../host/proc.js";

/** "(path)" or "(path: not there, records will be dropped)". */
function socketNote(path: string): string {
  return existsSync(path) ? `(${path})` : `(${path}: not there; records will be dropped until it is)`;
}

export { SUPERVISOR_STALL_MS } from "../supervisor/supervision.js";

export class LaunchError extends UsageProblem {
  override name = "UsageError";
}

export interface RunRequest {
  policy: Policy;
  policyPath: string;
  arch: Arch;
  /** postgres and its arguments. */
  command: string[];
  /** The server's OS user when started as root. */
  user?: string;
  specAllow: boolean;
  insecurePolicyPermissions: boolean;
  /** `run --check`: validate only; change nothing on disk. */
  checkOnly?: boolean;
  logPath?: string;
  logMaxBytes?: number;
  /** run --log-to: the file (default), journald, syslog. */
  logTo?: LogTarget[];
  /** Called with every call the supervisor decided other than simply allowing it. */
  onEvent?: (e: ViolationEvent) => void;
  /** Called once the postmaster has been exec'd (its pid). */
  onStarted?: (pid: number) => void;
  /** Where the launcher's own messages go. */
  say: (line: string) => void;
}

/** The data directory from postgres's arguments (-D DIR, -DDIR, --pgdata=DIR) or PGDATA. */
export function dataDirOf(args: readonly string[], env = process.env): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-D") return args[i + 1];
    if (a.startsWith("-D")) return a.slice(2);
    if (a.startsWith("--pgdata=")) return a.slice("--pgdata=".length);
    if (a === "--pgdata") return args[i + 1];
  }
  return env.PGDATA;
}

/**
 * The policy's pinned server settings as postgres command-line options, after the DBA's own:
 * `-c name=value` (PGC_S_ARGV) outranks postgresql.conf and postgresql.auto.conf, so neither
 * ALTER SYSTEM nor an edited file changes them; the last -c of a name wins, so these do.
 */
export function pinnedSettingArgs(policy: Policy, major?: number): string[] {
  const pinned = policy.serverSettings ?? new Map<string, { value: string }>();
  const args = [...pinned].flatMap(([name, { value }]) => ["-c", `${name}=${value}`]);
  // From PostgreSQL 15 on, a non-empty archive_library replaces archive_command (15 ignores the
  // command; 16 and later refuse both): pinning the command alone would leave ALTER SYSTEM SET
  // archive_library to load a library of the superuser's choosing in the archiver. So pinning
  // archive_command pins archive_library empty too (14 has no such setting and would refuse it).
  if (pinned.has("archive_command") && !pinned.has("archive_library") && major !== undefined && major >= 15) args.push("-c", "archive_library=");
  return args;
}

/**
 * A setting's value as postgres's command line gives it (`-c name=value`, `-cname=value`,
 * `--name=value`; the last one wins), or undefined. PostgreSQL folds names to lower case and
 * reads `-` in them as `_`.
 */
export function commandLineSetting(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  const take = (kv: string) => {
    const eq = kv.indexOf("=");
    if (eq > 0 && kv.slice(0, eq).toLowerCase().replace(/-/g, "_") === name) value = kv.slice(eq + 1);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-c" && i + 1 < args.length) take(args[++i]!);
    else if (a.startsWith("-c") && a.length > 2) take(a.slice(2));
    else if (a.startsWith("--")) take(a.slice(2));
  }
  return value;
}

/** The PATH a server started as another user gets (what runuser -u and su - give). */
export const SERVER_PATH = "/usr/local/bin:/usr/bin:/bin";

/**
 * Variables of the launcher's environment that reach a server started as another user. Each
 * chooses how the server (or a library it loads) behaves, and none names a file of the caller's:
 * the locale and time zone; PostgreSQL's own (PGDATA, PGPORT: defaults of postgres itself;
 * PGSYSCONFDIR, PGLOCALEDIR; PG_OOM_ADJUST_FILE and PG_OOM_ADJUST_VALUE, which postmaster
 * children apply); Kerberos configuration and the server's keytab (KRB5_CONFIG, KRB5_KTNAME:
 * GSSAPI authentication and libpq inside the server); NOTIFY_SOCKET (systemd's Type=notify).
 * Everything else (HOME, USER, PATH, XDG_*, SUDO_*, the caller's credential caches such as
 * KRB5CCNAME and PGPASSFILE...) is the caller's and is not passed: HOME, USER, LOGNAME, SHELL
 * and PATH come from the server user's passwd entry, as runuser -u and su - set them
 * (docs/deploy.md, "The server's environment").
 */
const KEPT_FOR_SERVER = /^(LANG|LANGUAGE|LC_[A-Z_]+|TZ|TZDIR|PGDATA|PGPORT|PGSYSCONFDIR|PGLOCALEDIR|PG_OOM_ADJUST_FILE|PG_OOM_ADJUST_VALUE|KRB5_CONFIG|KRB5_KTNAME|NOTIFY_SOCKET)$/;

/**
 * The server's environment: the launcher's own when it runs as the server's user; when root
 * starts it as `user`, that user's HOME, USER, LOGNAME, SHELL and a plain PATH, plus the kept
 * variables above. Node's own variables (NODE_*) never pass.
 */
export function serverEnvironment(env: NodeJS.ProcessEnv, user: OsUser | undefined): string[] {
  const entries = Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith("NODE_"));
  if (!user) return entries.map(([k, v]) => `${k}=${v}`);
  const kept = entries.filter(([k]) => KEPT_FOR_SERVER.test(k));
  const own: Array<[string, string]> = [
    ["HOME", user.home ?? "/"], ["USER", user.name], ["LOGNAME", user.name], ["SHELL", user.shell ?? "/bin/sh"], ["PATH", SERVER_PATH],
  ];
  return [...own, ...kept].map(([k, v]) => `${k}=${v}`);
}

/** Who the server will run as. */
export function serverUser(requested: string | undefined): OsUser | undefined {
  const root = process.getuid?.() === 0;
  if (!root) {
    if (requested && lookupUser(requested).uid !== process.getuid?.()) {
      throw new LaunchError(`--user ${requested}: only root can start the server as another user`);
    }
    return undefined;
  }
  const user = lookupUser(requested ?? "postgres");
  if (user.uid === 0) throw new LaunchError(`--user ${user.name}: PostgreSQL refuses to run as root (uid 0); give the server's own OS user, e.g. --user postgres`);
  return user;
}

/**
 * What `run` and `run --check` check of the command before anything else: the first word is an
 * executable PostgreSQL server (its --version says so, which also gives its major). Without
 * this, --check said "ok" for /bin/true.
 */
export function checkServerBinary(command: readonly string[]): number {
  const postgres = command[0];
  if (postgres === undefined) throw new LaunchError("give the postgres command after --, e.g. -- /usr/lib/postgresql/15/bin/postgres -D DATADIR");
  try {
    accessSync(postgres, fsc.X_OK);
  } catch (e) {
    throw new LaunchError(`${postgres}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "not executable"}; give the path of the postgres binary, e.g. /usr/lib/postgresql/15/bin/postgres`);
  }
  return postgresMajorVersion(resolve(postgres));
}

/**
 * After the policy and its permissions are checked (those refusals come first): the data
 * directory given with -D (or PGDATA) exists, so that --check does not say "ok" for a server
 * that cannot start.
 */
export function checkDataDir(command: readonly string[], env = process.env): void {
  const dataDir = dataDirOf(command.slice(1), env);
  if (dataDir === undefined) throw new LaunchError(`no data directory: give -D DATADIR after ${command[0]} (or set PGDATA)`);
  if (!existsSync(dataDir)) throw new LaunchError(`the data directory ${dataDir} does not exist; create it with initdb (or pg_createcluster), or give the right -D`);
}

/** The user's groups, as `id -G` lists them (primary and supplementary). */
export function groupsOf(user: OsUser): number[] {
  try {
    return execFileSync("id", ["-G", user.name], { encoding: "utf8" }).trim().split(/\s+/).map(Number);
  } catch {
    return [user.gid];
  }
}

/** Capabilities (bit numbers) a root launcher needs, and why. */
const NEEDED_CAPS: ReadonlyArray<readonly [number, string, string]> = [
  [6, "CAP_SETGID", "to switch to the server's group"],
  [7, "CAP_SETUID", "to switch to the server's user"],
  [5, "CAP_KILL", "to forward signals to the postmaster, which runs as another user"],
  [19, "CAP_SYS_PTRACE", "to take the filter's listener from the stage (pidfd_getfd)"],
];

/** Missing capabilities of this process, from /proc/self/status. */
export function missingCapabilities(needSupervisor: boolean, status = PROC.status("self") ?? ""): string[] {
  const eff = effectiveCaps(status);
  return NEEDED_CAPS.filter(([bit, name]) => (name !== "CAP_SYS_PTRACE" || needSupervisor) && (eff & (1n << BigInt(bit))) === 0n).map(
    ([, name, why]) => `${name} (${why})`,
  );
}

function effectiveCaps(status: string): bigint {
  return parseProcStatus(status).capEff ?? 0n;
}

/**
 * Capabilities a root launcher can do without, and the feature each one's absence turns off
 * (docs/deploy.md, "Capabilities"). The server's data directory belongs to the server's user,
 * mode 0700: root needs CAP_DAC_OVERRIDE to create set_client_filter's spool in it, and
 * CAP_CHOWN to hand the spool to that user and the violation log to that user's group.
 */
const FEATURE_CAPS: ReadonlyArray<readonly [number, string, string]> = [
  [1, "CAP_DAC_OVERRIDE", "set_client_filter() will not work: run cannot create its spool in the data directory, which belongs to the server's user"],
  [0, "CAP_CHOWN", "set_client_filter() will not work (the spool cannot be handed to the server's user), and seccomp.violations cannot read the log (it cannot be given to the server's group)"],
  [34, "CAP_SYSLOG", "when the filter kills the postmaster, the syscall cannot be named from the kernel log"],
  [37, "CAP_AUDIT_READ", "calls the kernel kills (and set_client_filter() denials) are read from /dev/kmsg, which rate-limits them, not from the audit netlink read group: some may be missing from the violation log"],
  [12, "CAP_NET_ADMIN", "the kernel's fork events cannot be read: a kill recorded by the kernel in a server process that is gone when the record is read is dropped and counted (its pid could name another process by then)"],
];

/** One line per missing optional capability, naming the feature that will not work. */
export function capabilityWarnings(needSupervisor: boolean, status = PROC.status("self") ?? "", clientFilter = true): string[] {
  const eff = effectiveCaps(status);
  const needed = (name: string) => name === "CAP_SYSLOG" || (needSupervisor && (clientFilter || name !== "CAP_DAC_OVERRIDE"));
  return FEATURE_CAPS.filter(([bit, name]) => needed(name) && (eff & (1n << BigInt(bit))) === 0n).map(([, name, what]) => `without ${name}: ${what}`);
}

/**
 * A root launcher appends to, fchowns and rotates the violation log: its directory must be one
 * the server's user cannot create, replace or link names in (permissions.ts), checked before
 * anything starts. ViolationLog checks again (without following links) whenever it opens.
 */
function checkLogLocation(logPath: string, server: ServerIdentity, req: RunRequest): void {
  let problems = checkLogPath(logPath, server);
  // A missing log directory (a fresh machine; systemd's LogsDirectory= not applied, as under
  // `run --check`) is created by root, with mkdirat in its verified parent, when that parent
  // itself would be a safe place.
  const logDir = dirname(resolve(logPath));
  if (problems.length === 1 && problems[0]!.path === logDir && /does not exist/.test(problems[0]!.problem) &&
      checkLogPath(join(dirname(logDir), "pg_seccomp-probe"), server).length === 0) {
    if (req.checkOnly) {
      req.say(`note: the log directory ${logDir} does not exist; run will create it (root, mode 0755)`);
      return;
    }
    const parent = openDirectoryNoFollow(dirname(logDir));
    try {
      makeDirectoryAt(parent, basename(logDir), 0o755);
    } finally {
      closeSync(parent);
    }
    problems = checkLogPath(logPath, server);
  }
  if (problems.length === 0) return;
  throw new LaunchError(
    `refusing the violation log ${logPath}: the server's user (${server.name}) could redirect it\n` +
      problems.map((p) => `  ${p.path}: ${p.problem}`).join("\n") +
      `\nhint: put the log in a directory only root can write, e.g. --log /var/log/pg_seccomp/violations.jsonl (mkdir -m 755 /var/log/pg_seccomp), or leave --log out`,
  );
}

/** The run-state directory must be writable before anything starts. */
function checkStateDir(say: (line: string) => void): void {
  // Created and checked (run-state.ts): its own, never a directory another user made first.
  ensureRunStateDir();
  for (const n of runStateNotes.splice(0)) say(n);
}

export interface Preflight {
  programs: Composition;
  user?: OsUser;
  dataDir?: string;
  /** -D named this configuration directory; dataDir is the data_directory it sets. */
  configDir?: string;
  /** The server's major, when its --version says it. */
  major?: number;
  /** What the kernel was found to offer (run --check prints it); absent when no filter is installed. */
  kernel?: string;
}

/** Who the server runs as, for the permission checks (this process's identity without --user as non-root). */
export function serverIdentity(user: OsUser | undefined): ServerIdentity {
  if (!user) return { uid: process.getuid?.() ?? 0, name: process.env.USER ?? "you", gids: process.getgroups?.() ?? [] };
  return { uid: user.uid, name: user.name, gids: [user.gid, ...groupsOf(user)] };
}

/** Everything `run` checks before it starts anything (also what `run --check` prints). */
export function preflight(req: RunRequest): Preflight {
  const user = serverUser(req.user);
  // -D may be a configuration directory (Debian's /etc/postgresql/15/main): the run state, the
  // log and the spool are keyed by the data directory postgres will really use.
  const givenDataDir = dataDirOf(req.command.slice(1));
  const resolved = givenDataDir !== undefined && req.command[0] ? dataDirForRun(givenDataDir, resolve(req.command[0]), req.command.slice(1), user) : undefined;
  const dataDir = resolved?.dataDir ?? givenDataDir;
  const server = serverIdentity(user);
  const problems = checkPolicyPermissions(req.policy.files, server, dataDir, req.policy.includePlaces);
  if (problems.length > 0) {
    const list = problems.map((p) => `  ${p.path}: ${p.problem}`).join("\n");
    if (!req.insecurePolicyPermissions) {
      throw new LaunchError(
        `refusing the policy: the server's user (${server.name}) could change it\n${list}\n` +
          `hint: keep the policy outside the data directory, owned by root, mode 0644, in directories only root can write`,
      );
    }
    req.say(`WARNING: --insecure-policy-permissions: using a policy the server's user could change (for tests only):\n${list}`);
  }
  // A policy file given to run means "filter": one that is off only by pgseccomp's default
  // (pgseccomp.* settings without pgseccomp.enabled) would start the server unfiltered unnoticed.
  if (req.policy.offByDefault) {
    throw new LaunchError(
      `refusing the policy: ${req.policyPath} would install no filter: it has pgseccomp settings but does not set pgseccomp.enabled, which pgseccomp reads as off\n` +
        `hint: add "pgseccomp.enabled = on" to filter; to run the server unfiltered, say so with "pgseccomp.enabled = off"`,
    );
  }
  if (!req.policy.enabled) req.say(`note: ${req.policyPath} sets seccomp = off: the server runs without a filter`);
  // A kind that runs SQL given more than sessions: said at every start, not only by `check`.
  else for (const r of sqlKindsOpened(req.policy, [req.arch])) req.say(`pg_seccomp: warning: ${formatRisk(r)}`);
  // seccomp = off: compose() gives no program and no supervisor.
  const programs = compose(req.policy, req.arch);
  const kernel = req.policy.enabled ? checkKernel(programs, req.specAllow) : undefined;
  if (user) {
    const missing = missingCapabilities(programs.usesSupervisor);
    if (missing.length) {
      throw new LaunchError(`running as root without the capabilities run needs: ${missing.join(", ")}\nhint: in a container, add them (e.g. --cap-add SYS_PTRACE); under systemd, list them in CapabilityBoundingSet=`);
    }
    for (const w of capabilityWarnings(programs.usesSupervisor && dataDir !== undefined, undefined, req.policy.clientFilter === true)) req.say(`pg_seccomp: warning: ${w}`);
  }
  // What this server is: its major (process kinds it lacks are notes) and whether it uses io_uring.
  const postgres = req.command[0];
  let major: number | undefined;
  try {
    major = postgres ? postgresMajorVersion(resolve(postgres)) : undefined;
  } catch {
    major = undefined; // not a PostgreSQL server we can ask; starting it will say why
  }
  if (major !== undefined) {
    for (const n of kindsAbsentIn(req.policy, major)) req.say(`note: ${n}`);
    // What the server will use: a pinned value or the command line's outranks its files.
    const io = major < 18 ? undefined
      : req.policy.serverSettings?.get("io_method")?.value ?? commandLineSetting(req.command.slice(1), "io_method") ?? serverIoMethod(resolve(postgres!), major, dataDir ? resolve(dataDir) : undefined, user);
    for (const n of ioUringNotes(req, major, io)) req.say(n);
    const jit = dataDir ? serverSetting(resolve(postgres!), resolve(dataDir), user, "jit") : undefined;
    for (const n of jitNotes(req, resolve(postgres!), jit)) req.say(n);
  }
  checkStateDir(req.say);
  if (user) checkLogLocation(req.logPath ?? defaultLogPath(dataDir ? resolve(dataDir) : "pid"), server, req);
  return { programs, user, dataDir, ...(resolved?.configDir ? { configDir: resolved.configDir } : {}), ...(major !== undefined ? { major } : {}), ...(kernel ? { kernel } : {}) };
}

/**
 * Refuses, before anything starts, a kernel that lacks what this policy's run needs (the kernel
 * is asked: src/kernel/features.ts); returns the line run --check prints about it.
 */
function checkKernel(programs: Composition, specAllow: boolean): string {
  const answers = probeKernel();
  const missing = kernelShortfalls(answers, { supervisor: programs.usesSupervisor, injects: programs.perProcess.length > 0, actions: programActions(programs.installed), specAllow });
  if (missing.length > 0) throw new LaunchError(kernelRefusal(missing, kernelRelease()));
  return describeKernel(answers, kernelRelease());
}

const PARENT_DEATH_SIGNAL = 3; // SIGQUIT: the postmaster's immediate shutdown

/** Reads the kernel's audit record of a seccomp kill of `pid` from /dev/kmsg (root only). */
export function killedSyscallFromKmsg(pid: number, arch: Arch): string | undefined {
  return parseKmsgKills(readKmsg(), arch, -1).filter((k) => k.pid === pid).at(-1)?.syscall;
}

export interface RunResult {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  events: ViolationEvent[];
}

/**
 * Starts the tracer (undumpable.ts) on the stage and resolves once it holds it, with a promise
 * of its outcome ("ok", or what went wrong). Rejects when it cannot hold the stage.
 */
function startUndumpableTracer(stagePid: number): Promise<{ outcome: Promise<string> }> {
  const tracer = spawn(process.execPath, [new URL("./undumpable.js", import.meta.url).pathname, String(stagePid)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  let readyDone = false;
  return new Promise((resolveReady, rejectReady) => {
    let settle: (s: string) => void = () => {};
    const outcome = new Promise<string>((res) => (settle = res));
    const timer = setTimeout(() => {
      if (readyDone) return;
      readyDone = true;
      tracer.kill("SIGKILL");
      rejectReady(new Error(`the tracer did not start within ${30 * TIME_SCALE} s`));
    }, 30_000 * TIME_SCALE);
    tracer.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const lines = out.split("\n");
      if (!readyDone && lines.includes("ready")) {
        readyDone = true;
        clearTimeout(timer);
        resolveReady({ outcome });
      }
      const last = lines.find((l) => l === "ok" || l.startsWith("error: "));
      if (last && !readyDone) {
        readyDone = true;
        clearTimeout(timer);
        rejectReady(new Error(last.slice("error: ".length)));
      }
      if (last) settle(last === "ok" ? "ok" : last.slice("error: ".length));
    });
    tracer.on("exit", (code, signal) => {
      const why = `the tracer exited (${signal ?? `code ${code}`})`;
      if (!readyDone) {
        readyDone = true;
        clearTimeout(timer);
        rejectReady(new Error(why));
      }
      settle(why);
    });
  });
}

export async function runServer(req: RunRequest, pre: Preflight = preflight(req)): Promise<RunResult> {
  const { programs, user } = pre;
  const [path, ...args] = req.command;
  if (!path) throw new LaunchError("give the postgres command after --, e.g. -- /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main");
  const absPath = resolve(path);
  const instructions: StageInstructions = {
    parentPid: process.pid,
    program: encodeProgram(programs.installed).toString("base64"),
    newListener: programs.usesSupervisor,
    specAllow: req.specAllow,
    ...(req.policy.enabled ? {} : { unfiltered: true }),
    parentDeathSignal: PARENT_DEATH_SIGNAL,
    path: absPath,
    argv: [path, ...args, ...pinnedSettingArgs(req.policy, pre.major)],
    env: serverEnvironment(process.env, user),
    ...(user ? { user: { name: user.name, uid: user.uid, gid: user.gid } } : {}),
  };
  // The launcher is not filtered: the server's user (which it may share) must not be able to
  // ptrace it or write its memory through /proc/PID/mem. Non-dumpable makes both need
  // CAP_SYS_PTRACE. (The stage and postgres are unaffected: execve resets it.)
  setDumpable(false);
  const stage: ChildProcess = spawn(process.execPath, [new URL("./stage.js", import.meta.url).pathname], {
    stdio: ["inherit", "inherit", "inherit", "pipe"],
  });
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    stage.on("exit", (code, signal) => {
      exited = true;
      res({ code, signal });
    }),
  );
  const pid = stage.pid!;
  // Non-dumpable from postgres's first instruction (docs/deploy.md, "Core dumps"): a tracer
  // seizes the stage now, before it reads its instructions and execs.
  let undumpable: Promise<string> | undefined;
  if (!req.policy.serverDumpable) {
    try {
      undumpable = (await startUndumpableTracer(pid)).outcome;
    } catch (e) {
      stage.kill("SIGKILL");
      await exit;
      throw new LaunchError(`the server cannot be made non-dumpable: ${(e as Error).message}\nhint: run needs CAP_SYS_PTRACE over the stage (root); a policy can leave the server dumpable with server_dumpable = on`);
    }
  }
  (stage.stdio[3] as NodeJS.WritableStream).end(JSON.stringify(instructions) + "\n");
  void undumpable?.then((outcome) => {
    if (outcome === "ok" || exited) return;
    // Fail closed: the server must not run dumpable when the policy did not ask for it.
    req.say(`pg_seccomp: error: the server could not be made non-dumpable (${outcome}); stopping it (fail closed)`);
    stage.kill("SIGKILL");
  });

  // Forward the signals a service manager or pg_ctl sends, so that the postmaster sees them.
  const forwarded: NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"];
  let supervision: Supervision | undefined;
  const forward = (sig: NodeJS.Signals) => {
    if (exited) return;
    // The monitoring session is a client: a smart shutdown would wait for it for ever.
    if (sig === "SIGTERM" || sig === "SIGINT" || sig === "SIGQUIT") supervision?.closeMonitor();
    try {
      stage.kill(sig);
    } catch (e) {
      req.say(`pg_seccomp: error: could not forward ${sig} to the postmaster: ${(e as Error).message}`);
    }
  };
  for (const s of forwarded) process.on(s, forward);

  try {
    supervision = await superviseServer({
      postmasterPid: pid, policy: req.policy, policyPath: req.policyPath, arch: req.arch,
      ...(user ? { user, userGids: [user.gid, ...groupsOf(user)] } : {}),
      ...(pre.dataDir ? { dataDir: pre.dataDir } : {}),
      postgresPath: absPath,
      ...(req.logPath ? { logPath: req.logPath } : {}),
      ...(req.logMaxBytes ? { logMaxBytes: req.logMaxBytes } : {}),
      ...(req.logTo ? { logTo: req.logTo } : {}),
      usesSupervisor: programs.usesSupervisor,
      installed: programs,
      guardLauncherDeath: false, // the parent-death signal does that
      say: req.say,
      ...(req.onEvent ? { onEvent: req.onEvent } : {}),
      alive: () => !exited,
      signal: forward,
    });
  } catch (e) {
    forward("SIGKILL");
    await exit;
    for (const sig of forwarded) process.off(sig, forward);
    throw e instanceof SupervisionError ? new LaunchError(e.message) : e;
  }
  req.onStarted?.(pid);

  const result = await exit;
  for (const s of forwarded) process.off(s, forward);
  await supervision.finish();
  const events = supervision.events;
  const failure = supervision.failure();
  if (failure) return { ...result, pid, code: result.code ?? 1, events };
  return { ...result, pid, events };
}

/**
 * Why `run --in-place` as the server's own user refuses a policy whose contexts differ. Its
 * supervisor would be a process of that user, which any backend (COPY TO PROGRAM where a context
 * allows it, code loaded into a backend) can SIGKILL, with its watchdog, leaving the server
 * serving with nothing to classify new processes, or SIGSTOP, leaving routed calls waiting.
 * A policy with global lists only keeps every decision in the kernel or fails it: with the
 * supervisor gone the kernel fails routed calls with ENOSYS (docs/deploy.md).
 */
export function perContextRefusal(perProcessCalls: number): string {
  return (
    `this policy has per-context rules (${perProcessCalls} syscall${perProcessCalls === 1 ? "" : "s"} decided differently by role, database or process kind), ` +
    `and run --in-place as the server's own user (pg_ctl, pg_ctlcluster, Patroni) would leave their supervisor to that user, who can kill or stop it\n` +
    `hint: start the server as root with --user (the systemd unit, or the container image: docs/deploy.md, "Root launcher, or the server's own user"), or keep only global lists in this policy`
  );
}

/** Throws what `run --in-place` refuses before anything starts (`run --check --in-place` says it too). */
export function checkInPlace(pre: Preflight): void {
  const { programs } = pre;
  const contextsDiffer = programs.perProcess.length > 0 || programs.unknownRouted;
  if (contextsDiffer && process.getuid?.() !== 0) throw new LaunchError(perContextRefusal(programs.perProcess.length));
}

/**
 * `run --in-place`: postgres gets this process's pid (what pg_ctl -w, pg_ctlcluster, systemd and
 * Patroni wait for). A supervisor process is started first (supervise-main.ts, in its own
 * session); then this process becomes the server's user, installs the filter and execs postgres.
 * There is no parent-death signal: the supervisor's watchdog stops the server if the supervisor
 * disappears, and calls it would have answered fail with ENOSYS meanwhile.
 */
export async function runInPlace(req: RunRequest, pre: Preflight): Promise<never> {
  const { programs, user } = pre;
  const [path, ...args] = req.command;
  if (!path) throw new LaunchError("give the postgres command after --, e.g. -- /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main");
  const absPath = resolve(path);
  checkInPlace(pre);
  if (programs.usesSupervisor) {
    const ins: SuperviseInstructions = {
      postmasterPid: process.pid, policyPath: resolve(req.policyPath), arch: req.arch, postgresPath: absPath,
      ...(user ? { user, userGids: [user.gid, ...groupsOf(user)] } : {}),
      ...(pre.dataDir ? { dataDir: resolve(pre.dataDir) } : {}),
      ...(req.logPath ? { logPath: resolve(req.logPath) } : {}),
      ...(req.logMaxBytes ? { logMaxBytes: req.logMaxBytes } : {}),
      ...(req.logTo ? { logTo: req.logTo } : {}),
    };
    const first = spawn(process.execPath, [new URL("./supervise-main.js", import.meta.url).pathname, "--detach"], {
      stdio: ["ignore", "inherit", "inherit", "pipe"],
    });
    (first.stdio[3] as NodeJS.WritableStream).end(JSON.stringify(ins) + "\n");
    const code = await new Promise<number | null>((res) => first.on("exit", (c) => res(c)));
    if (code !== 0) throw new LaunchError("the supervisor process did not start (its message is above); nothing was started");
  }
  execUnderFilter({
    parentPid: process.pid,
    program: encodeProgram(programs.installed).toString("base64"),
    newListener: programs.usesSupervisor,
    specAllow: req.specAllow,
    ...(req.policy.enabled ? {} : { unfiltered: true }),
    parentDeathSignal: 0,
    path: absPath,
    argv: [path, ...args, ...pinnedSettingArgs(req.policy, pre.major)],
    env: serverEnvironment(process.env, user),
    ...(user ? { user: { name: user.name, uid: user.uid, gid: user.gid } } : {}),
  });
}

/** What went wrong, for a server that exited with an error: the calls the policy refused. */
export function explainExit(r: RunResult, postmasterPid: number, arch: Arch): string[] {
  const lines: string[] = [];
  if (r.signal === "SIGSYS") {
    const which = killedSyscallFromKmsg(postmasterPid, arch);
    lines.push(
      `the postmaster was killed by the seccomp filter (SIGSYS): it made a syscall the policy kills` +
        (which ? `: ${which}` : " (run as root to have the syscall named from the kernel log)"),
    );
  }
  const denied = r.events.filter((e) => e.action === "error" || e.action === "terminate" || e.action === "kill" || e.action === "trap");
  if (denied.length > 0) {
    const counts = new Map<string, number>();
    for (const e of denied) {
      const key = `${e.syscall} (${e.action}${e.errno ? ` ${errnoName(e.errno)}` : ""}) in ${e.pid === postmasterPid ? "the postmaster" : `pid ${e.pid} ${e.process}`}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    lines.push("the policy denied:", ...[...counts].map(([k, n]) => `  ${k}${n > 1 ? ` ×${n}` : ""}`));
  }
  return lines;
}

/** What `run --check` prints. */
export function describePreflight(req: RunRequest, pre: Preflight): string {
  const p = pre.programs;
  return [
    `policy:        ${resolve(req.policyPath)}${req.policy.files.length > 1 ? ` (+${req.policy.files.length - 1} included)` : ""}`,
    `server:        ${req.command.join(" ")}`,
    `data dir:      ${pre.dataDir ?? "(not given: -D or PGDATA)"}${pre.configDir ? ` (data_directory of ${pre.configDir}/postgresql.conf)` : ""}`,
    `server user:   ${pre.user ? `${pre.user.name} (uid ${pre.user.uid})` : `${process.env.USER ?? "this user"} (uid ${process.getuid?.()})`}`,
    `arch:          ${req.arch}`,
    ...(pre.kernel ? [`kernel:        ${pre.kernel}`] : []),
    !req.policy.enabled ? "filter:        none (the policy sets seccomp = off)" : `filter:        ${p.installed.length} BPF instructions, no_new_privs, ${req.specAllow ? "SPEC_ALLOW (no forced SSBD mitigation)" : "speculative-store-bypass mitigation forced (default)"}`,
    `supervisor:    ${p.usesSupervisor ? "yes: error and log decisions, and execve, are answered by this process and logged" : "no: every decision is made in the kernel"}`,
    `client filter: ${p.clientFilterKnock ? "on: set_client_filter() works (lseek's offset is checked: lseek is not in the kernel's cache)" : "off (set_client_filter = on in the policy turns it on)"}`,
    `pinned:        ${req.policy.serverSettings ? [...req.policy.serverSettings.keys()].join(", ") + " (on postgres's command line: ALTER SYSTEM cannot change them)" : "no server settings (server_setting.<name> in the policy pins one)"}`,
    `permissions:   ok${req.insecurePolicyPermissions ? " (--insecure-policy-permissions)" : ""}`,
    `log to:        ${(req.logTo ?? ["file"]).map((t) => (t === "file" ? `file ${req.logPath ?? "(default, in the run-state directory)"}` : `${t} ${socketNote(t === "journald" ? JOURNAL_SOCKET : SYSLOG_SOCKET)}`)).join(", ")}`,
    "nothing started (--check)",
    "",
  ].join("\n");
}

