#!/usr/bin/env node
// The pg_seccomp command: parses arguments and prints. All logic lives in the layers below.

import { Command, Option, CommanderError } from "commander";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { audit2allow, DEFAULT_AUDIT_LOG, type Audit2allowOptions } from "../learn/audit.js";
import { readChunks } from "./read-chunks.js";
import { loadPolicyFile, type Policy } from "../policy/policy.js";
import { CONTEXT_KINDS, contextKey, policyContexts, type ContextKind, type ContextSpec } from "../policy/decision.js";
import { compilePolicy } from "../bpf/compile.js";
import { disassemble } from "../bpf/disasm.js";
import { assemble } from "../bpf/asm.js";
import { decodeProgram, encodeProgram } from "../bpf/insn.js";
import { validateProgram } from "../bpf/validate.js";
import { effectiveFilterRows, FILTER_COLUMNS } from "../inspect/effective-table.js";
import { csvTable, escapeControl, psqlTable, safeJson } from "../inspect/format.js";
import { simulate, syscallArg } from "../inspect/simulate.js";
import { ARCHES, allSyscalls, hostArch, isArch, type Arch } from "../syscalls/index.js";
import { expandGroup, groupInfo, groupNames, resolveGroup } from "../syscalls/groups.js";
import { parseValue } from "../policy/entries.js";
import { formatRisk, policyRisks } from "../policy/risks.js";
import { printNotes, reportError, UsageError, writeJson } from "./output.js";
import { runDemo } from "../launcher/demo.js";
import { learn, LearnFailed } from "../learn/learn.js";
import { verify } from "../learn/verify.js";
import { DEFAULT_TIMER_WAIT_S } from "../learn/procedure.js";
import { statusCommand, StatusError } from "../inspect/status.js";
import { applySql, installSql, type PsqlAs } from "../sql/install.js";
import { findServerRecord } from "../launcher/state.js";
import { findPgBinDir, lookupUser } from "../postgres/cluster.js";
import { basename, join } from "node:path";
import { findViolationLog, followViolations, formatViolations, readViolations, skippedNotes, type SkippedLines } from "../inspect/violations.js";
import { parseLogTargets } from "../launcher/log-sinks.js";
import { dataDirForLookup, findDebianCluster, majorOf, serverSocket, userNameOf } from "../launcher/data-dir.js";
import type { ViolationEvent } from "../launcher/supervisor.js";
import { exportOci, jsonText, kubernetesName, seccompProfileResource, yamlText } from "../export/oci.js";
import { exportSystemd } from "../export/systemd.js";
import { exportBpf, exportPfc } from "../export/pfc.js";
import { importProfile } from "../export/import.js";
import { release } from "node:os";
import { describePreflight, explainExit, preflight, runInPlace, runServer, starterProfile, type RunRequest } from "../launcher/run.js";
import { analyze as analyzeBinaries, AnalyzeError, DEFAULT_POSTGRES, defaultCacheDir } from "../analyze/analyze.js";
import { renderPolicy as renderAnalysisPolicy, renderTable as renderAnalysisTable } from "../analyze/render.js";

// `pg_seccomp show ... | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

/** The version in the package's package.json (beside dist/ in a checkout and in an installed package). */
function packageVersion(): string {
  try {
    const v = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown }).version;
    return typeof v === "string" ? v : "unknown";
  } catch {
    return "unknown";
  }
}

const program = new Command("pg_seccomp")
  .description("seccomp-bpf syscall filtering for PostgreSQL, enforced from outside the server")
  .version(packageVersion(), "-V, --version", "print pg_seccomp's version (package.json)")
  .showHelpAfterError("(run with --help for usage)")
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  .exitOverride();

const archOption = () =>
  new Option("--arch <arch>", "target architecture").choices(ARCHES as string[]).default(safeHostArch(), "this machine's");
const contextOption = () =>
  new Option("--context <context>", "process context: global (every process), session (client backends), postmaster, a backend type, or unclassified")
    .choices(CONTEXT_KINDS as string[])
    .default("session");
const roleOption = () => new Option("--role <role>", "a role with per-role session settings (session_syscall_*.<role>)");
const databaseOption = () => new Option("--database <db>", "a database with settings of its own (database_syscall_*.<db>)");

function safeHostArch(): Arch {
  try {
    return hostArch();
  } catch {
    return "x86_64";
  }
}

/** -D DIR (a data or configuration directory) or --cluster VERSION/NAME: the data directory. */
function dataDirOption(opts: { pgdata?: string; cluster?: string }): string | undefined {
  if (opts.pgdata !== undefined && opts.cluster !== undefined) throw new UsageError("give -D or --cluster, not both");
  if (opts.cluster !== undefined) return findDebianCluster(opts.cluster).dataDir;
  return opts.pgdata === undefined ? undefined : dataDirForLookup(opts.pgdata);
}

function loadPolicy(path: string): Policy {
  const p = loadPolicyFile(path);
  printNotes(p.notes);
  if (!p.enabled) process.stderr.write(`pg_seccomp: note: ${path} sets seccomp = off: run would install no filter\n`);
  return p;
}

function contextOf(opts: { context: string; role?: string; database?: string }, policy: Policy): ContextSpec {
  const c: ContextSpec = { context: opts.context as ContextKind };
  if (opts.role !== undefined || opts.database !== undefined) {
    if (c.context !== "session" && c.context !== "parallel_worker") {
      throw new UsageError("--role and --database apply to the session (or parallel_worker) context");
    }
    if (opts.role !== undefined) {
      if (!policy.roles.has(opts.role)) process.stderr.write(`pg_seccomp: note: role "${opts.role}" has no settings of its own; it gets the session filter\n`);
      c.role = opts.role;
    }
    if (opts.database !== undefined) {
      if (!policy.databases.has(opts.database)) process.stderr.write(`pg_seccomp: note: database "${opts.database}" has no settings of its own\n`);
      c.database = opts.database;
    }
  }
  return c;
}

program
  .command("show")
  .description("print the effective filter as pg_get_seccomp_filter() does: syscall, syscallnum, filter_action, context")
  .argument("<policy>", "policy file (postgresql.conf syntax)")
  .addOption(new Option("--format <format>", "output format").choices(["table", "csv", "json"]).default("table"))
  .option("--json", "same as --format json")
  .addOption(archOption())
  .addOption(new Option("--context <context>", "contexts to show: all = global and session, as the seed's table").choices(["all", ...CONTEXT_KINDS]).default("all"))
  .addOption(roleOption())
  .addOption(databaseOption())
  .action((path: string, opts: { format: string; json?: boolean; arch: Arch; context: string; role?: string; database?: string }) => {
    const policy = loadPolicy(path);
    const contexts: ContextSpec[] =
      opts.context === "all"
        ? [{ context: "global" }, contextOf({ ...opts, context: "session" }, policy)]
        : [contextOf(opts, policy)];
    const rows = effectiveFilterRows(policy, opts.arch, contexts);
    const format = opts.json ? "json" : opts.format;
    if (format === "json") writeJson(rows);
    else if (format === "csv") process.stdout.write(csvTable(FILTER_COLUMNS, rows as never));
    else process.stdout.write(psqlTable(FILTER_COLUMNS, rows as never));
  });

program
  .command("compile")
  .description("compile a policy to a classic BPF program: raw sock_filter records with -o, else the disassembly")
  .argument("<policy>", "policy file (postgresql.conf syntax)")
  .addOption(archOption())
  .addOption(contextOption())
  .addOption(roleOption())
  .addOption(databaseOption())
  .option("-o, --output <file>", "write the raw program (8-byte little-endian struct sock_filter records) to FILE")
  .action((path: string, opts: { arch: Arch; context: string; role?: string; database?: string; output?: string }) => {
    const policy = loadPolicy(path);
    const prog = compilePolicy(policy, opts.arch, contextOf(opts, policy));
    if (opts.output) {
      writeFileSync(opts.output, encodeProgram(prog));
      process.stderr.write(`pg_seccomp: wrote ${prog.length} instructions (${prog.length * 8} bytes) to ${opts.output}\n`);
    } else {
      process.stdout.write(disassemble(prog));
    }
  });

program
  .command("sim")
  .description("run one syscall through the compiled filter in the BPF emulator and print the action")
  .argument("<policy>", "policy file (postgresql.conf syntax)")
  .requiredOption("--syscall <name|number>", "the syscall, by name or number")
  .option("--arg0 <value>", "argument 0 (decimal, 0x hex, negative = two's complement)")
  .option("--arg1 <value>", "argument 1")
  .option("--arg2 <value>", "argument 2")
  .option("--arg3 <value>", "argument 3")
  .option("--arg4 <value>", "argument 4")
  .option("--arg5 <value>", "argument 5")
  .addOption(archOption())
  .addOption(contextOption())
  .addOption(roleOption())
  .addOption(databaseOption())
  .option("--json", "print JSON")
  .action((path: string, opts: Record<string, string | boolean | undefined> & { arch: Arch; context: string; role?: string; database?: string }) => {
    const policy = loadPolicy(path);
    const nr = syscallArg(opts.arch, String(opts.syscall));
    const args = [0, 1, 2, 3, 4, 5].map((i) => {
      const v = opts[`arg${i}`];
      return v === undefined ? 0n : parseValue(String(v), 64, { file: "--arg" + i, line: 1, column: 1 });
    });
    const r = simulate(policy, opts.arch, contextOf(opts, policy), nr, args);
    if (opts.json) return writeJson(r);
    process.stdout.write(
      `${r.syscall ?? "<unknown>"} (${r.nr}) on ${r.arch}, context ${r.context}: ${r.action}\n` +
        `policy: ${r.policyDecision}\n` +
        `executed ${r.executed} of ${r.programLength} BPF instructions\n`,
    );
  });

program
  .command("check")
  .description("validate a policy for every arch and context; print notes and warnings about risky allowances; exit 1 on the first error")
  .argument("<policy>", "policy file (postgresql.conf syntax)")
  .addOption(new Option("--arch <arch>", "only this architecture").choices(ARCHES as string[]))
  .option("--strict", "exit 1 when there are warnings")
  .action((path: string, opts: { arch?: Arch; strict?: boolean }) => {
    const policy = loadPolicy(path);
    const contexts = policyContexts(policy);
    // A profile names one arch's syscalls (x86_64's stat, pipe or access do not exist on
    // aarch64): its arch comes from --arch, else its file name (postgresql-18-aarch64.conf) or a
    // "# arch: NAME" line, else every arch is checked.
    const fileArch = opts.arch ? undefined : policyFileArch(path);
    if (fileArch) process.stdout.write(`${path}: ${fileArch.arch} only (${fileArch.from}; --arch to choose)\n`);
    const arches = opts.arch ? [opts.arch] : fileArch ? [fileArch.arch] : ARCHES;
    for (const arch of arches) {
      for (const c of contexts) {
        const prog = compilePolicy(policy, arch, c);
        const problems = validateProgram(prog);
        if (problems.length) throw new Error(`compiled program for ${arch}/${c.context} fails validation: ${problems[0]}`);
        process.stdout.write(`${arch} ${contextKey(c)}: ${prog.length} instructions\n`);
      }
    }
    const risks = policyRisks(policy, arches);
    for (const r of risks) process.stderr.write(`pg_seccomp: warning: ${formatRisk(r)}\n`);
    const warned = risks.length ? `, ${risks.length} warning${risks.length === 1 ? "" : "s"}` : "";
    process.stdout.write(`${path}: ok (${policy.files.length} file${policy.files.length === 1 ? "" : "s"}${warned})\n`);
    if (opts.strict && risks.length) process.exitCode = 1;
  });

program
  .command("groups")
  .description("list the systemd-compatible syscall groups, or the members of one")
  .argument("[name]", "a group, e.g. @mount")
  .addOption(archOption())
  .option("--json", "print JSON")
  .action((name: string | undefined, opts: { arch: Arch; json?: boolean }) => {
    if (name === undefined) {
      const rows = groupNames().map((g) => ({ group: g, syscalls: expandGroup(g, opts.arch).syscalls.length, description: groupInfo(g)!.description }));
      if (opts.json) return writeJson(rows);
      process.stdout.write(psqlTable(["group", "syscalls", "description"], rows));
      return;
    }
    const r = resolveGroup(name.startsWith("@") ? name : `@${name}`);
    if (!r.ok) throw new UsageError(r.message);
    const g = r.info;
    const { syscalls, missing } = expandGroup(g.name, opts.arch);
    if (opts.json) return writeJson({ group: g.name, description: g.description, arch: opts.arch, members: g.members, syscalls, missing });
    process.stdout.write(`${g.name}: ${g.description}\nmembers as written: ${g.members.join(" ")}\n${syscalls.length} syscalls on ${opts.arch}: ${syscalls.join(" ")}\n`);
    if (missing.length) process.stdout.write(`not on ${opts.arch} (skipped): ${missing.join(" ")}\n`);
  });

program
  .command("syscalls")
  .description("list the syscalls this version knows for an arch, with their numbers")
  .addOption(archOption())
  .option("--json", "print JSON")
  .action((opts: { arch: Arch; json?: boolean }) => {
    const rows = allSyscalls(opts.arch).map((s) => ({ syscall: s.name, syscallnum: s.nr }));
    if (opts.json) return writeJson(rows);
    process.stdout.write(psqlTable(["syscall", "syscallnum"], rows));
  });

program
  .command("run")
  .description("start PostgreSQL under a policy: the filter is installed before postgres runs, and this process stays as its supervisor")
  .argument("<postgres...>", "after --: the postgres executable and its arguments, e.g. -- /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main")
  .option("--policy <file>", "policy file (default: the bundled starter profile for the server's version and arch)")
  .option("--user <name>", "the server's OS user, when started as root", undefined)
  .option("--check", "validate and print what would be installed; start nothing")
  .option("--in-place", "exec postgres in this process (it keeps the pid pg_ctl -w, pg_ctlcluster or systemd started); the supervisor runs as a separate process")
  .option("--log <file>", "violation log (JSON lines; default: in the run-state directory)")
  .option("--log-to <targets>", "where violation records go, comma-separated: file (the --log file, which log and seccomp.violations read), journald (structured fields SYSCALL, CONTEXT, ROLE, DATABASE, PID, ACTION), syslog (RFC 5424 to /dev/log)", "file")
  .option("--spec-allow", "do not force the speculative-store-bypass mitigation that seccomp turns on (faster on some CPUs, less safe)")
  .option("--insecure-policy-permissions", "FOR TESTS ONLY: accept a policy the server's user could change")
  .action(async (command: string[], opts: { policy?: string; user?: string; check?: boolean; inPlace?: boolean; log?: string; logTo: string; specAllow?: boolean; insecurePolicyPermissions?: boolean }) => {
    const logTo = parseLogTargets(opts.logTo);
    if (typeof logTo === "string") throw new UsageError(logTo);
    const arch = safeHostArch();
    const policyPath = opts.policy ?? starterProfile(command[0]!, arch, { args: command.slice(1), user: opts.user });
    const policy = loadPolicy(policyPath);
    const req: RunRequest = {
      policy, policyPath, arch, command, user: opts.user, specAllow: opts.specAllow ?? false,
      insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, logPath: opts.log, checkOnly: opts.check ?? false, logTo,
      say: (line) => process.stderr.write(line + "\n"),
    };
    const pre = preflight(req);
    if (opts.check) {
      process.stdout.write(describePreflight(req, pre));
      return;
    }
    if (opts.inPlace) await runInPlace(req, pre); // returns only by throwing
    const result = await runServer(req, pre);
    if (result.code !== 0 || result.signal) {
      for (const line of explainExit(result, result.pid, arch)) process.stderr.write(`pg_seccomp: ${line}\n`);
    }
    if (result.signal) {
      process.kill(process.pid, result.signal);
      return;
    }
    process.exitCode = result.code ?? 1;
  });

program
  .command("status")
  .description(
    "what the kernel enforces on a running server, process by process, compared with the policy; " +
      "as root it reads each process's filters through ptrace, which pauses each process for well under a millisecond",
  )
  .option("-D, --pgdata <datadir>", "the server's data directory (or its configuration directory, e.g. /etc/postgresql/15/main)")
  .option("--cluster <version/name>", "a Debian/Ubuntu cluster (pg_lsclusters), e.g. 15/main: its data directory")
  .option("--pid <pid>", "the postmaster's pid (a backend's pid leads to its postmaster)")
  .option("--policy <file>", "the policy to compare with (default: the one pg_seccomp run started the server with)")
  .option("--syscalls", "also print the postmaster's effective filter, syscall by syscall: kernel_action next to policy_action")
  .option("--json", "print everything as JSON")
  .action((opts: { pgdata?: string; cluster?: string; pid?: string; policy?: string; syscalls?: boolean; json?: boolean }) => {
    if (opts.pid !== undefined && !/^[1-9]\d*$/.test(opts.pid)) throw new UsageError(`--pid: "${opts.pid}" is not a process id`);
    const dataDir = dataDirOption(opts);
    if (dataDir === undefined && opts.pid === undefined) throw new UsageError("give -D DATADIR, --cluster VERSION/NAME or --pid PID");
    let r: { output: string; exitCode: number };
    try {
      r = statusCommand({
        dataDir,
        pid: opts.pid === undefined ? undefined : Number(opts.pid),
        policy: opts.policy,
        syscalls: opts.syscalls ?? false,
        json: opts.json ?? false,
      });
    } catch (e) {
      if (e instanceof StatusError) throw new UsageError(e.message);
      throw e;
    }
    process.stdout.write(r.output);
    process.exitCode = r.exitCode;
  });

program
  .command("log")
  .description("show the violation log of a server started with run: calls the policy denied or logged, with process, role, database and statement")
  .option("-D, --pgdata <dir>", "the server's data directory (or its configuration directory, e.g. /etc/postgresql/15/main)")
  .option("--cluster <version/name>", "a Debian/Ubuntu cluster (pg_lsclusters), e.g. 15/main: its data directory")
  .option("--pid <pid>", "the postmaster's pid")
  .option("--file <file>", "a log file (run --log FILE)")
  .option("-n, --lines <n>", "only the last N entries")
  .option("-f, --follow", "keep printing new entries as they come")
  .option("--json", "print the records as JSON lines (control characters escaped)")
  .action(async (opts: { pgdata?: string; cluster?: string; pid?: string; file?: string; lines?: string; follow?: boolean; json?: boolean }) => {
    if (opts.lines !== undefined && !/^\d+$/.test(opts.lines)) throw new UsageError(`--lines: "${opts.lines}" is not a number`);
    const found = findViolationLog({ dataDir: dataDirOption(opts), pid: opts.pid ? Number(opts.pid) : undefined, file: opts.file });
    const path = found.path;
    const owners = found.owners ? { owners: found.owners } : {};
    const { events, skipped } = readViolations(path, { ...(opts.lines !== undefined ? { last: Number(opts.lines) } : {}), ...owners });
    const note = (s: SkippedLines) => {
      for (const n of skippedNotes(s)) process.stderr.write(`pg_seccomp: note: ${escapeControl(path)}: ${n}\n`);
    };
    // JSON lines re-written from the validated records (safeJson: no raw control characters).
    const print = (es: ViolationEvent[]) => {
      process.stdout.write(opts.json ? es.map((e) => safeJson(e) + "\n").join("") : es.length ? formatViolations(es) : "");
    };
    note(skipped);
    if (!opts.follow) {
      if (!opts.json && events.length === 0) process.stderr.write(`pg_seccomp: ${escapeControl(path)}: no entries${existsSync(path) ? "" : " (the file does not exist yet: nothing was logged)"} (${found.how})\n`);
      print(events);
      return;
    }
    print(events);
    const size = existsSync(path) ? statSync(path).size : 0;
    await new Promise<void>((resolveStop) => {
      const stopFollow = followViolations(path, size, (es, s) => {
        note(s);
        print(es);
      }, 500, found.owners);
      process.once("SIGINT", () => {
        stopFollow();
        resolveStop();
      });
    });
  });

const sql = program.command("sql").description("SQL objects in a database: pg_get_seccomp_filter() and the violations view (no C extension)");
sql
  .command("install")
  .description("install pg_get_seccomp_filter(), set_client_filter() and seccomp.violations into a database")
  .requiredOption("-d, --dbname <conninfo>", "connection string or database name, as psql's -d")
  .option("-D, --pgdata <dir>", "a server started with run (running or not): use its policy and violation log, and its Unix socket")
  .option("--cluster <version/name>", "a Debian/Ubuntu cluster (pg_lsclusters), e.g. 15/main, instead of -D")
  .option("--policy <file>", "the policy (when not taken from the server's record)")
  .option("--schema <name>", "schema for the objects (names beginning pg_ are reserved by PostgreSQL)", "seccomp")
  .option("--os-user <name>", "as root: run psql as this OS user (default: the data directory's owner, else postgres), for peer authentication")
  .addOption(archOption())
  .option("--print", "print the SQL instead of running it")
  .action((opts: { dbname: string; pgdata?: string; cluster?: string; policy?: string; schema: string; osUser?: string; arch: Arch; print?: boolean }) => {
    const dataDir = dataDirOption(opts);
    const owner = dataDir !== undefined && existsSync(dataDir) ? statSync(dataDir).uid : undefined;
    const record = dataDir !== undefined ? findServerRecord(dataDir, owner) : undefined;
    if (dataDir !== undefined && !record && !opts.policy) {
      throw new UsageError(`pg_seccomp run has no record of a server for ${dataDir} (running or not); give --policy FILE`);
    }
    const policyPath = opts.policy ?? record?.policyPath;
    if (!policyPath) throw new UsageError("give -D DATADIR (or --cluster) of a server started with run, or --policy FILE");
    const policy = loadPolicy(policyPath);
    const logPath = record?.logPath;
    if (!logPath) {
      process.stderr.write(
        `pg_seccomp: warning: no violation log is known${dataDir ? ` for ${dataDir}` : ""}: ${opts.schema}.violations will show no rows\n` +
          `hint: give -D DATADIR (or --cluster) of a server started with pg_seccomp run\n`,
      );
    }
    const serverDataDir = dataDir;
    const text = installSql(policy, opts.arch, { schema: opts.schema, policyPath, ...(logPath ? { logPath } : {}), ...(serverDataDir ? { dataDir: serverDataDir } : {}) });
    if (opts.print) {
      process.stdout.write(text);
      return;
    }
    // As root, psql runs as the server's OS user: peer authentication over the Unix socket maps
    // it to the role of that name, as `sudo -u postgres psql` would.
    let as: PsqlAs = {};
    if (process.getuid?.() === 0) {
      const name = opts.osUser ?? (owner !== undefined && owner !== 0 ? userNameOf(owner) : "postgres");
      as = { user: lookupUser(name) };
    } else if (opts.osUser) {
      throw new UsageError("--os-user: only root runs psql as another user");
    }
    const socket = dataDir !== undefined ? serverSocket(dataDir) : undefined;
    if (socket) as.env = { ...(process.env.PGHOST ? {} : { PGHOST: socket.host }), ...(process.env.PGPORT ? {} : { PGPORT: String(socket.port) }) };
    const major = dataDir !== undefined ? majorOf(dataDir) : undefined;
    const r = applySql(join(findPgBinDir(major), "psql"), opts.dbname, text, as);
    if (!r.ok) throw new UsageError(`installing into ${opts.dbname}${as.user ? ` (psql as ${as.user.name})` : ""} failed:\n${r.stderr.trim()}`);
    process.stderr.write(`pg_seccomp: installed seccomp_filter(), pg_get_seccomp_filter(), set_client_filter() (EXECUTE revoked from PUBLIC, as pgseccomp does) and ${opts.schema}.violations (policy ${policyPath}${logPath ? `, log ${logPath}` : ""})\n`);
  });

program
  .command("learn")
  .description("learn a policy: run PostgreSQL with the calls the base does not allow let through and reported per process context, through the workload, its periodic timers and a crash recovery, then write a policy allowing what each context used (with --verify: check a policy the same way with default kill)")
  .argument("<postgres...>", "after --: the postgres executable and its arguments, e.g. -- /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main")
  .option("-o, --output <file>", "where to write the learned policy (written only when the round succeeded)")
  .option("--base <policy>", "what stays allowed in the kernel, unreported: a policy file, starter (the bundled starter profile), or none (default: the floor plus the hot-path calls, profiles/learn-hot.conf: per-context learning at near-unfiltered speed)")
  .option("--merge <previous>", "fold in an earlier learn output (a missing file means a first round)")
  .option("--force", "allow -o to be the --merge input (it is replaced)")
  .option("--workload <command>", "sh -c COMMAND as the server's OS user once the server accepts connections (PGHOST, PGPORT, PGUSER set, the server's bin directory first in PATH); it must succeed; without it, run until SIGINT or SIGTERM (incomplete: no timer or crash round)")
  .option("--user <name>", "the server's OS user, when started as root", undefined)
  .option("--per-role", "learn sessions per role: session_syscall_*.<role> for each role seen")
  .option("--all-contexts", "also write an overlay for every context in which nothing was recorded (the base's allow list only)")
  .option("--no-timers", "do not shorten the periodic timers nor wait for them (the result is then reported incomplete)")
  .option("--no-crash-round", "skip the immediate stop, restart and crash recovery (the result is then reported incomplete)")
  .option("--timer-wait <seconds>", "wait at most this long from the server's start for a timed checkpoint and an autovacuum worker", String(DEFAULT_TIMER_WAIT_S))
  .option("--verify <policy>", "instead of learning: run the server under POLICY with default kill through the workload, the timers and a crash recovery; fail unless nothing is denied")
  .option("--log <file>", "violation log (every learned call is written to it too; default: in the run-state directory)")
  .option("--insecure-policy-permissions", "FOR TESTS ONLY: accept a base policy the server's user could change")
  .action(async (command: string[], opts: {
    output?: string; base?: string; merge?: string; force?: boolean; workload?: string; user?: string; perRole?: boolean; allContexts?: boolean;
    timers: boolean; crashRound: boolean; timerWait: string; verify?: string; log?: string; insecurePolicyPermissions?: boolean;
  }) => {
    const timerWaitS = Number(opts.timerWait);
    if (!Number.isFinite(timerWaitS) || timerWaitS < 0) throw new UsageError(`--timer-wait ${opts.timerWait}: give a number of seconds`);
    const say = (line: string) => void process.stderr.write(line + "\n");
    if (opts.verify !== undefined) {
      if (opts.output !== undefined || opts.merge !== undefined) throw new UsageError("--verify checks a policy: it takes no -o or --merge");
      const r = await verify({
        policyPath: opts.verify, command, workload: opts.workload, user: opts.user, logPath: opts.log, arch: safeHostArch(),
        insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, timerWaitS, say,
      });
      for (const l of r.logged) say(`logged (not denied): ${l}`);
      if (r.passed) process.stdout.write(`verify: passed: nothing denied, no process killed, the server came back from both crashes (${opts.verify})\n`);
      else process.stdout.write(`verify: FAILED (${opts.verify}):\n${r.problems.map((p) => `  ${p}`).join("\n")}\n`);
      process.exitCode = r.passed ? 0 : 1;
      return;
    }
    if (opts.output === undefined) throw new UsageError("learn needs -o FILE (or --verify POLICY)");
    const r = await learn({
      command, out: opts.output, base: opts.base, merge: opts.merge, force: opts.force ?? false, workload: opts.workload, user: opts.user,
      perRole: opts.perRole ?? false, allContexts: opts.allContexts ?? false, logPath: opts.log, arch: safeHostArch(),
      insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, timers: opts.timers, crash: opts.crashRound, timerWaitS, say,
      ...(process.stderr.isTTY ? { tty: { write: (s: string) => void process.stderr.write(s) } } : {}),
    }).catch((e: unknown) => {
      if (!(e instanceof LearnFailed)) throw e;
      say(`pg_seccomp: error: ${e.message}`);
      return undefined;
    });
    if (!r) {
      process.exitCode = 1;
      return;
    }
    process.stdout.write(r.summary + "\n");
    // 2: written, but the run did not cover what a production server does (see the coverage report).
    process.exitCode = r.complete ? 0 : 2;
  });

program
  .command("analyze")
  .description("static analysis: the syscalls a postgres binary, every library it loads and named extension modules can make, from the ELF files (see docs/analyze.md)")
  .option("--postgres <path>", "the server binary", DEFAULT_POSTGRES)
  .option("--extension <name|path...>", "extension modules: NAME (pkglibdir/NAME.so) or a path; repeatable")
  .addOption(new Option("--arch <arch>", "expected architecture (the binary's own is used; a mismatch is an error)").choices(ARCHES as string[]))
  .addOption(new Option("--format <format>", "output format").choices(["json", "policy", "table"]).default("table"))
  .option("-o, --output <file>", "write the result to FILE instead of standard output")
  .option("--sysroot <dir>", "the target system's root for library lookup (default: / for the host's arch, /usr/aarch64-linux-gnu for an aarch64 binary on x86_64 when installed)")
  .option("--no-cache", "analyze every file again (the cache is PG_SECCOMP_CACHE_DIR, else $XDG_CACHE_HOME/pg_seccomp or ~/.cache/pg_seccomp)")
  .action(async (opts: { postgres: string; extension?: string[]; arch?: Arch; format: string; output?: string; cache: boolean; sysroot?: string }) => {
    const tty = process.stderr.isTTY;
    let r;
    try {
      r = await analyzeBinaries({
        postgres: opts.postgres,
        extensions: opts.extension ?? [],
        ...(opts.arch ? { arch: opts.arch } : {}),
        ...(opts.sysroot ? { sysroot: opts.sysroot } : {}),
        ...(opts.cache ? { cacheDir: defaultCacheDir() } : {}),
        ...(tty ? { progress: (m: string) => void process.stderr.write(`\r\x1b[K${m}`) } : {}),
      });
    } catch (e) {
      if (e instanceof AnalyzeError) throw new UsageError(e.message);
      throw e;
    } finally {
      if (tty) process.stderr.write("\r\x1b[K");
    }
    for (const n of r.notes) process.stderr.write(`pg_seccomp: note: ${n}\n`);
    const text =
      opts.format === "json"
        ? JSON.stringify(r, null, 2) + "\n"
        : opts.format === "policy"
          ? renderAnalysisPolicy(r, { command: `pg_seccomp analyze --postgres ${opts.postgres}${(opts.extension ?? []).map((e) => ` --extension ${e}`).join("")}` })
          : renderAnalysisTable(r);
    if (opts.output) {
      writeFileSync(opts.output, text);
      process.stderr.write(`pg_seccomp: wrote ${r.syscalls.length} syscalls from ${r.binaries.length} files to ${opts.output} (${r.stats.seconds} s)\n`);
    } else process.stdout.write(text);
  });

program
  .command("demo")
  .description("start a throwaway PostgreSQL under the bundled starter profile, run a workload, show the filter and the live status, stop and clean up")
  .option("--seconds <n>", "how long the pgbench part runs", "5")
  .action(async (opts: { seconds: string }) => {
    process.exitCode = await runDemo({
      say: (l) => process.stderr.write(l + "\n"),
      print: (t) => process.stdout.write(t),
      status: (pid) => statusCommand({ pid }).output,
      seconds: Number(opts.seconds),
    });
  });


/** The arch a policy file is for, from its name (postgresql-<major>-<arch>[-variant].conf) or a "# arch: NAME" line. */
function policyFileArch(path: string): { arch: Arch; from: string } | undefined {
  const m = /-(x86_64|aarch64)(?:-[A-Za-z0-9_]+)?\.conf$/.exec(basename(path));
  if (m && isArch(m[1]!)) return { arch: m[1], from: "its file name" };
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const a = /^#\s*arch:\s*(\S+)\s*$/m.exec(text)?.[1];
  return a && isArch(a) ? { arch: a, from: "its # arch: line" } : undefined;
}

function writeOutput(output: string | undefined, data: string | Buffer, what: string): void {
  if (output === undefined || output === "-") {
    process.stdout.write(data);
    return;
  }
  try {
    writeFileSync(output, data);
  } catch (e) {
    throw new UsageError(`cannot write ${output}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check that its directory exists and is writable`);
  }
  process.stderr.write(`pg_seccomp: wrote ${what} to ${output}\n`);
}

program
  .command("export")
  .description("write a policy's filter for systemd (drop-in), OCI runtimes (linux.seccomp JSON: Docker, Podman, containerd, Kubernetes Localhost), the Security Profiles Operator (SeccompProfile), bwrap/prctl (raw BPF) or people (PFC pseudo-code)")
  .argument("<policy>", "policy file (postgresql.conf syntax)")
  .addOption(new Option("--format <format>", "what to write").choices(["systemd", "oci", "k8s", "bpf", "pfc"]).makeOptionMandatory())
  .addOption(new Option("--context <context>", "the context to export: global is what every process of the server gets (per-context rules need run)").choices(CONTEXT_KINDS as string[]).default("global"))
  .addOption(roleOption())
  .addOption(databaseOption())
  .addOption(archOption())
  .option("-o, --output <file>", "write to FILE (default: standard output; required for bpf)")
  .option("--name <name>", "k8s: metadata.name of the SeccompProfile (default: from the policy file's name)")
  .option("--accept-weaker", "systemd: export even rules systemd can only express less strictly (each is named in the header)")
  .option("--json", "print what was exported and every remark as JSON on standard output (the export itself goes to -o)")
  .action((path: string, opts: { format: string; context: string; role?: string; database?: string; arch: Arch; output?: string; name?: string; acceptWeaker?: boolean; json?: boolean }) => {
    const policy = loadPolicy(path);
    const ctx = { arch: opts.arch, context: contextOf(opts, policy) };
    if (opts.json && (opts.output === undefined || opts.output === "-")) throw new UsageError("--json prints a report on standard output: give -o FILE for the export itself");
    const say = (lines: string[], kind: string) => { if (!opts.json) for (const l of lines) process.stderr.write(`pg_seccomp: ${kind}: ${l}\n`); };
    let report: Record<string, unknown>;
    switch (opts.format) {
      case "systemd": {
        const r = exportSystemd(policy, { ...ctx, acceptWeaker: opts.acceptWeaker ?? false, policyName: path });
        say(r.warnings, "warning");
        say(r.weaker.map((w) => `exported less strictly: ${w}`), "warning");
        writeOutput(opts.output, r.text, "a systemd drop-in");
        report = { format: "systemd", directives: Object.fromEntries(r.directives), warnings: r.warnings, weaker: r.weaker };
        break;
      }
      case "oci":
      case "k8s": {
        const r = exportOci(policy, ctx);
        say(r.remarks, "note");
        say(r.warnings, "warning");
        const name = opts.name ?? kubernetesName(path);
        const text = opts.format === "oci" ? jsonText(r.seccomp) : yamlText(seccompProfileResource(r.seccomp, name));
        const rules = r.seccomp.syscalls.length;
        writeOutput(opts.output, opts.format === "oci" ? text : `# pg_seccomp export --format k8s of ${path}\n${r.remarks.map((l) => `# ${l}\n`).join("")}# pods use it as seccompProfile: {type: Localhost, localhostProfile: operator/${name}.json}\n${text}`, opts.format === "oci" ? `an OCI seccomp profile (${rules} rules)` : `SeccompProfile ${name} (${rules} rules)`);
        report = { format: opts.format, rules, defaultAction: r.seccomp.defaultAction, remarks: r.remarks, warnings: r.warnings, ...(opts.format === "k8s" ? { name, localhostProfile: `operator/${name}.json` } : {}) };
        break;
      }
      case "bpf": {
        if (opts.output === undefined || opts.output === "-") {
          if (process.stdout.isTTY) throw new UsageError("the bpf format is binary: give -o FILE (or redirect standard output)");
        }
        const r = exportBpf(policy, ctx);
        say(r.remarks, "note");
        writeOutput(opts.output, r.bytes, `${r.instructions} BPF instructions (${r.bytes.length} bytes)`);
        report = { format: "bpf", instructions: r.instructions, remarks: r.remarks };
        break;
      }
      default: {
        writeOutput(opts.output, exportPfc(policy, ctx), "PFC pseudo-code");
        report = { format: "pfc" };
      }
    }
    if (opts.json) writeJson(report);
  });

program
  .command("import")
  .description("turn an OCI or Docker seccomp profile (JSON) into a policy; Docker's includes/excludes are resolved for the target given by --arch, --caps and --kernel")
  .argument("<file>", "profile: OCI linux.seccomp, a whole config.json, Docker's format (archMap, includes/excludes), or a SeccompProfile as JSON")
  .option("-o, --output <policy>", "write the policy to FILE (default: standard output)")
  .addOption(archOption())
  .option("--caps <caps>", "the container's capabilities, comma-separated (e.g. CAP_SYS_ADMIN,CAP_SYS_PTRACE), for Docker's includes/excludes.caps", "")
  .option("--kernel <version>", "the kernel version to resolve Docker's includes.minKernel for", release().replace(/[^0-9.].*$/, ""))
  .option("--json", "print notes, warnings and counts as JSON (the policy goes to -o)")
  .action((file: string, opts: { output?: string; arch: Arch; caps: string; kernel: string; json?: boolean }) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!/^\d+(\.\d+){0,2}$/.test(opts.kernel)) throw new UsageError(`--kernel: "${opts.kernel}" is not a version such as 6.1`);
    const caps = opts.caps.split(",").map((c) => c.trim().toUpperCase()).filter(Boolean).map((c) => (c.startsWith("CAP_") ? c : `CAP_${c}`));
    const r = importProfile(text, file, { arch: opts.arch, caps, kernel: opts.kernel });
    if (opts.json && (opts.output === undefined || opts.output === "-")) throw new UsageError("--json prints a report on standard output: give -o FILE for the policy");
    if (!opts.json) {
      for (const n of r.notes) process.stderr.write(`pg_seccomp: note: ${n}\n`);
      for (const w of r.warnings) process.stderr.write(`pg_seccomp: warning: ${w}\n`);
    }
    writeOutput(opts.output, r.text, `a policy (${r.stats.entries} entries from ${r.stats.rules} rules)`);
    if (opts.json) writeJson({ ...r.stats, notes: r.notes, warnings: r.warnings, output: opts.output });
  });

const collect = (value: string, previous: string[] = []) => [...previous, value];

program
  .command("audit2allow")
  .description("turn SECCOMP audit records (audit.log, ausearch, dmesg, journalctl) into an allow list, as the seed's get_syscalls.sh did")
  .argument("[file]", `audit.log, ausearch output, a kernel log or journalctl output; - for standard input (default: ${DEFAULT_AUDIT_LOG})`)
  .addOption(new Option("--format <format>", "list: one comma-separated line; policy: a global_syscall_allow snippet with a comment header").choices(["list", "policy"]).default("list"))
  .option("--stats", "print counts per syscall and per process instead")
  .option("--comm <name>", "keep the records of processes with this command name instead of postgres's (repeatable)", collect)
  .option("--exe <path>", "keep the records of processes running this executable, a path or a file name (repeatable)", collect)
  .option("--all", "keep the records of every process")
  .addOption(new Option("--arch <arch>", "keep the records of this architecture only").choices(ARCHES as string[]))
  .option("--json", "print the report as JSON")
  .action((file: string | undefined, opts: Audit2allowOptions) => {
    const r = audit2allow(file, opts, { read: readChunks });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.exitCode;
  });

const bpf = program.command("bpf").description("assemble, disassemble and validate classic BPF programs");
bpf
  .command("disasm")
  .description("disassemble a raw program (8-byte struct sock_filter records)")
  .argument("<file>", "raw program, as written by compile -o")
  .option("--raw", "also print the raw code, jt, jf and k fields")
  .action((file: string, opts: { raw?: boolean }) => {
    process.stdout.write(disassemble(decodeProgram(readFileSync(file)), { raw: opts.raw ?? false }));
  });
bpf
  .command("asm")
  .description("assemble text (the disassembler's form, or hand-written with labels) into a raw program")
  .argument("<file>", "assembly text, or - for standard input")
  .requiredOption("-o, --output <file>", "where to write the raw program")
  .action((file: string, opts: { output: string }) => {
    const text = readFileSync(file === "-" ? 0 : file, "utf8");
    const prog = assemble(text);
    const problems = validateProgram(prog);
    if (problems.length) throw new UsageError(`the program would be refused by the kernel: ${problems.join("; ")}`);
    writeFileSync(opts.output, encodeProgram(prog));
    process.stderr.write(`pg_seccomp: wrote ${prog.length} instructions to ${opts.output}\n`);
  });

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    return reportError(e);
  }
}

process.exitCode = await main();
