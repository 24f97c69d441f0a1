// The commands that start, inspect or learn from a running server: run, status, log, sql install,
// learn, demo.

import { Command } from "commander";
import { existsSync, statSync } from "node:fs";
import { escapeControl, safeJson } from "../render/format.js";
import { type Arch } from "../syscalls/index.js";
import { UsageError, writeJson } from "./output.js";
import { runDemo } from "../launcher/demo.js";
import { learn, LearnFailed } from "../learn/learn.js";
import { verify } from "../learn/verify.js";
import { DEFAULT_TIMER_WAIT_S } from "../learn/procedure.js";
import { statusCommand } from "../inspect/status.js";
import { applySql, describeInstallFailure, installSql, type PsqlAs } from "../sql/install.js";
import { findServerRecord } from "../host/run-state.js";
import { findPgBinDir, lookupUser } from "../postgres/cluster.js";
import { join, resolve } from "node:path";
import { findViolationLog, followViolations, formatViolationLines, formatViolations, readViolations, skippedNotes, type SkippedLines } from "../inspect/violations.js";
import { parseLogTargets } from "../supervisor/log-sinks.js";
import { findDebianCluster, majorOf, serverSocket, userNameOf } from "../host/data-dir.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { checkDataDir, checkInPlace, checkServerBinary, describePreflight, explainExit, preflight, runInPlace, runServer, type RunRequest } from "../launcher/run.js";
import { starterProfile } from "../launcher/profile-choice.js";
import { archOption, safeHostArch, dataDirOption, loadPolicy } from "./options.js";

/** A line from the launcher for stderr: its "hint: ..." lines in PostgreSQL's client style. */
function sayLine(line: string): void {
  process.stderr.write(line.replace(/^hint: /gm, "pg_seccomp: hint: ") + "\n");
}

/** run, status, log, sql install, learn. */
export function registerServerCommands(program: Command): void {
  program
    .command("run")
    .description("start PostgreSQL under a policy: the filter is installed before postgres runs, and this process stays as its supervisor")
    .argument("<postgres...>", "after --: the postgres executable and its arguments, e.g. -- /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main")
    .option("--policy <file>", "policy file (default: the bundled starter profile for the server's version and arch)")
    .option("--user <name>", "the server's OS user, when started as root", undefined)
    .option("--check", "validate and print what would be installed; start nothing")
    .option("--json", "with --check: print it as JSON")
    .option("--in-place", "exec postgres in this process (it keeps the pid pg_ctl -w, pg_ctlcluster or systemd started); the supervisor runs as a separate process")
    .option("--log <file>", "violation log (JSON lines; default: in the run-state directory)")
    .option("--log-to <targets>", "where violation records go, comma-separated: file (the --log file, which log and seccomp.violations read), journald (structured fields SYSCALL, CONTEXT, ROLE, DATABASE, PID, ACTION), syslog (RFC 5424 to /dev/log)", "file")
    .option("--spec-allow", "do not force the speculative-store-bypass mitigation that seccomp turns on (faster on some CPUs, less safe)")
    .option("--insecure-policy-permissions", "FOR TESTS ONLY: accept a policy the server's user could change")
    .action(async (command: string[], opts: { json?: boolean; policy?: string; user?: string; check?: boolean; inPlace?: boolean; log?: string; logTo: string; specAllow?: boolean; insecurePolicyPermissions?: boolean }) => {
      if (opts.json && !opts.check) throw new UsageError("--json reports what --check found: give --check too");
      const logTo = parseLogTargets(opts.logTo);
      if (typeof logTo === "string") throw new UsageError(logTo);
      const arch = safeHostArch();
      checkServerBinary(command);
      const policyPath = opts.policy ?? starterProfile(command[0]!, arch, { args: command.slice(1), user: opts.user });
      const policy = loadPolicy(policyPath);
      const req: RunRequest = {
        policy, policyPath, arch, command, user: opts.user, specAllow: opts.specAllow ?? false,
        insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, logPath: opts.log, checkOnly: opts.check ?? false, logTo,
        say: sayLine,
      };
      const pre = preflight(req);
      checkDataDir(command);
      if (opts.inPlace) checkInPlace(pre);
      if (opts.check) {
        if (!opts.json) return void process.stdout.write(describePreflight(req, pre));
        const p = pre.programs;
        writeJson({
          ok: true, policy: resolve(policyPath), files: policy.files, server: command, dataDir: pre.dataDir ?? null, configDir: pre.configDir ?? null,
          user: pre.user ? { name: pre.user.name, uid: pre.user.uid } : null, arch, enabled: policy.enabled,
          instructions: p.installed.length, supervisor: p.usesSupervisor, routed: p.routed.map((r) => r.name), clientFilter: p.clientFilterKnock,
          specAllow: req.specAllow, logTo, log: opts.log ?? null,
        });
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
      // A StatusError (no such server, ...) is a usage error: exit 2.
      const r = statusCommand({
        dataDir,
        pid: opts.pid === undefined ? undefined : Number(opts.pid),
        policy: opts.policy,
        syscalls: opts.syscalls ?? false,
        json: opts.json ?? false,
      });
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
    .option("--json", "print the records as one JSON array (control characters escaped)")
    .option("--jsonl", "print the records as JSON lines, one record a line (with -f: as they come)")
    .action(async (opts: { pgdata?: string; cluster?: string; pid?: string; file?: string; lines?: string; follow?: boolean; json?: boolean; jsonl?: boolean }) => {
      if (opts.json && opts.follow) throw new UsageError("--json prints one array, which -f would never close: use --jsonl with -f");
      if (opts.json && opts.jsonl) throw new UsageError("give --json or --jsonl, not both");
      if (opts.lines !== undefined && !/^\d+$/.test(opts.lines)) throw new UsageError(`--lines: "${opts.lines}" is not a number`);
      if (opts.file !== undefined && !existsSync(opts.file)) throw new UsageError(`--file ${opts.file}: no such file; give the log pg_seccomp run --log wrote, or -D DATADIR for a server's own`);
      const found = findViolationLog({ dataDir: dataDirOption(opts), pid: opts.pid ? Number(opts.pid) : undefined, file: opts.file });
      const path = found.path;
      const owners = found.owners ? { owners: found.owners } : {};
      const { events, skipped } = readViolations(path, { ...(opts.lines !== undefined ? { last: Number(opts.lines) } : {}), ...owners });
      const note = (s: SkippedLines) => {
        for (const n of skippedNotes(s)) process.stderr.write(`pg_seccomp: note: ${escapeControl(path)}: ${n}\n`);
      };
      // JSON re-written from the validated records (safeJson: no raw control characters).
      // Followed records come one line each: a table would print its header for every batch.
      const print = (es: ViolationEvent[], following: boolean) => {
        if (opts.jsonl) process.stdout.write(es.map((e) => safeJson(e) + "\n").join(""));
        else if (following) process.stdout.write(formatViolationLines(es));
        else if (es.length) process.stdout.write(formatViolations(es));
      };
      note(skipped);
      if (!opts.follow) {
        if (opts.json) return writeJson(events);
        if (!opts.jsonl && events.length === 0) process.stderr.write(`pg_seccomp: ${escapeControl(path)}: no entries${existsSync(path) ? "" : " (the file does not exist yet: nothing was logged)"} (${found.how})\n`);
        print(events, false);
        return;
      }
      print(events, true);
      const size = existsSync(path) ? statSync(path).size : 0;
      await new Promise<void>((resolveStop) => {
        const stopFollow = followViolations(path, size, (es, s) => {
          note(s);
          print(es, true);
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
    .description("install seccomp_filter(), pg_get_seccomp_filter(), set_client_filter() and the violations view into a schema of their own (seccomp), as a superuser; refuses when the schema or a look-alike belongs to another role")
    .requiredOption("-d, --dbname <conninfo>", "connection string or database name, as psql's -d")
    .option("-D, --pgdata <dir>", "a server started with run (running or not): use its policy and violation log, and its Unix socket")
    .option("--cluster <version/name>", "a Debian/Ubuntu cluster (pg_lsclusters), e.g. 15/main, instead of -D")
    .option("--policy <file>", "the policy (when not taken from the server's record)")
    .option("--schema <name>", "schema for the objects (names beginning pg_ are reserved by PostgreSQL)", "seccomp")
    .option("--os-user <name>", "as root: run psql as this OS user (default: the data directory's owner, else postgres), for peer authentication")
    .addOption(archOption())
    .option("--print", "print the SQL instead of running it")
    .option("--json", "report what was installed as JSON")
    .action((opts: { dbname: string; pgdata?: string; cluster?: string; policy?: string; schema: string; osUser?: string; arch: Arch; print?: boolean; json?: boolean }) => {
      if (opts.json && opts.print) throw new UsageError("--print writes the SQL on standard output: give --json or --print");
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
            `pg_seccomp: hint: give -D DATADIR (or --cluster) of a server started with pg_seccomp run\n`,
        );
      }
      const serverDataDir = dataDir;
      const text = installSql(policy, opts.arch, {
        schema: opts.schema, policyPath, ...(logPath ? { logPath } : {}), ...(serverDataDir ? { dataDir: serverDataDir } : {}),
        ...(record ? { stateDir: record.stateDir } : {}), ...(owner !== undefined ? { serverUid: owner } : {}),
      });
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
      if (!r.ok) throw new UsageError(`sql install into ${opts.dbname}${as.user ? ` (psql as ${as.user.name})` : ""}: nothing was installed: ${describeInstallFailure(r.stderr)}`);
      // The server's notices (a look-alike the bootstrap superuser owns, an earlier install's
      // wrappers dropped from public), as they came.
      if (r.stderr.trim()) process.stderr.write(r.stderr.trim() + "\n");
      const q = opts.schema;
      if (opts.json) {
        writeJson({
          installed: [`${q}.seccomp_filter()`, `${q}.pg_get_seccomp_filter()`, `${q}.set_client_filter()`, `${q}.violations`], database: opts.dbname, schema: q,
          policy: policyPath, log: logPath ?? null, clientFilter: policy.clientFilter === true, psqlAs: as.user?.name ?? null,
        });
      } else process.stderr.write(`pg_seccomp: installed ${q}.seccomp_filter(), ${q}.pg_get_seccomp_filter(), ${q}.set_client_filter() (EXECUTE revoked from PUBLIC, as pgseccomp does) and ${q}.violations, owned by the bootstrap superuser (policy ${policyPath}${logPath ? `, log ${logPath}` : ""})\n`);
      if (!policy.clientFilter) process.stderr.write(`pg_seccomp: note: ${policyPath} does not set set_client_filter = on: set_client_filter() raises an error saying so\n`);
    });

  program
    .command("learn")
    .description("learn a policy: run PostgreSQL with the calls the base does not allow let through and reported per process context, through the workload, its periodic timers and a crash recovery, then write a policy allowing what each context used (with --verify: check a policy the same way with default kill)")
    .argument("[postgres...]", "after --: the postgres executable and its arguments, e.g. -- /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main (-D may be a Debian configuration directory, /etc/postgresql/15/main)")
    .option("--cluster <version/name>", "a Debian/Ubuntu cluster (pg_lsclusters), e.g. 15/main, instead of the postgres command: its postgres with -D its configuration directory")
    .option("-o, --output <file>", "where to write the learned policy (written only when the round succeeded; a directory only root can write)")
    .option("--deny-per-context <names>", "comma-separated syscalls to deny in each context that ran while learning and did not use them (nothing else narrows a context below the global lists)")
    .option("--base <policy>", "what stays allowed in the kernel, unreported: a policy file, starter (the bundled starter profile), or none (default: the floor plus the hot-path calls, profiles/learn-hot.conf: per-context learning at near-unfiltered speed)")
    .option("--merge <previous>", "fold in an earlier learn output (a missing file means a first round)")
    .option("--force", "allow -o to be the --merge input (it is replaced)")
    .option("--workload <command>", "sh -c COMMAND as the server's OS user once the server accepts connections (PGHOST, PGPORT, PGUSER set, the server's bin directory first in PATH); it must succeed; without it, run until SIGINT or SIGTERM (incomplete: no timer or crash round)")
    .option("--user <name>", "the server's OS user, when started as root", undefined)
    .option("--per-role", "record sessions per role; with --deny-per-context, sessions are narrowed per role (session_syscall_*.<role> for each role seen)")
    .option("--all-contexts", "write an overlay for every context (each allows what the global lists allow: a place for rules of your own)")
    .option("--no-timers", "do not shorten the periodic timers nor wait for them (the result is then reported incomplete)")
    .option("--no-crash-round", "skip the immediate stop, restart and crash recovery (the result is then reported incomplete)")
    .option("--timer-wait <seconds>", "wait at most this long from the server's start for a timed checkpoint and an autovacuum worker", String(DEFAULT_TIMER_WAIT_S))
    .option("--verify <policy>", "instead of learning: run the server under POLICY with default kill through the workload, the standard set (WAL burst, CREATE DATABASE, temp files, base backup, archiver round), the timers and a crash recovery; fail unless nothing is denied")
    .option("--no-standard-set", "with --verify: skip the standard set (the workload, timers and crash round only)")
    .option("--log <file>", "violation log (every learned call is written to it too; default: in the run-state directory)")
    .option("--insecure-policy-permissions", "FOR TESTS ONLY: accept a base policy the server's user could change")
    .action(async (given: string[], opts: {
      output?: string; base?: string; merge?: string; force?: boolean; workload?: string; user?: string; perRole?: boolean; allContexts?: boolean;
      timers: boolean; crashRound: boolean; timerWait: string; verify?: string; log?: string; insecurePolicyPermissions?: boolean;
      cluster?: string; denyPerContext?: string; standardSet: boolean;
    }) => {
      let command = given;
      if (opts.cluster !== undefined) {
        if (given.length > 0) throw new UsageError("give --cluster or the postgres command after --, not both");
        const c = findDebianCluster(opts.cluster);
        command = [join(`/usr/lib/postgresql/${c.version}/bin`, "postgres"), "-D", c.configDir];
      } else if (given.length === 0) {
        throw new UsageError("give the postgres command after -- (e.g. -- /usr/lib/postgresql/15/bin/postgres -D /etc/postgresql/15/main), or --cluster VERSION/NAME");
      }
      const denyPerContext = opts.denyPerContext?.split(",").map((n) => n.trim()).filter(Boolean);
      const timerWaitS = Number(opts.timerWait);
      if (!Number.isFinite(timerWaitS) || timerWaitS < 0) throw new UsageError(`--timer-wait ${opts.timerWait}: give a number of seconds`);
      const say = sayLine;
      if (opts.verify !== undefined) {
        if (opts.output !== undefined || opts.merge !== undefined) throw new UsageError("--verify checks a policy: it takes no -o or --merge");
        const r = await verify({
          policyPath: opts.verify, command, workload: opts.workload, user: opts.user, logPath: opts.log, arch: safeHostArch(),
          insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, timerWaitS, standard: opts.standardSet, say,
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
        ...(denyPerContext ? { denyPerContext } : {}),
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
}

/** demo. */
export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("start a throwaway PostgreSQL under the bundled starter profile, run a workload, show the filter and the live status, stop and clean up")
    .option("--seconds <n>", "how long the pgbench part runs", "5")
    .action(async (opts: { seconds: string }) => {
      const seconds = Number(opts.seconds);
      if (!/^\d+(\.\d+)?$/.test(opts.seconds.trim()) || !(seconds > 0) || seconds > 3600) throw new UsageError(`--seconds: "${opts.seconds}" is not a number of seconds from 1 to 3600`);
      process.exitCode = await runDemo({
        say: sayLine,
        print: (t) => process.stdout.write(t),
        status: (pid) => statusCommand({ pid }).output,
        seconds,
      });
    });
}
