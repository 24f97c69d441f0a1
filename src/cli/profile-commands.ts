// The commands that make or convert profiles: analyze (from binaries), export, import, audit2allow.

import { Command, Option } from "commander";
import { readFileSync, writeFileSync } from "node:fs";
import { audit2allow, DEFAULT_AUDIT_LOG, type Audit2allowOptions } from "./audit2allow.js";
import { readChunks } from "./read-chunks.js";
import { CONTEXT_KINDS } from "../policy/decision.js";
import { ARCHES, type Arch } from "../syscalls/index.js";
import { UsageError, writeJson } from "./output.js";
import { exportOci, jsonText, kubernetesName, seccompProfileResource, yamlText } from "../export/oci.js";
import { exportSystemd } from "../export/systemd.js";
import { exportBpf, exportPfc } from "../export/pfc.js";
import { importProfile } from "../export/import.js";
import { release } from "node:os";
import { analyze as analyzeBinaries, DEFAULT_POSTGRES, defaultCacheDir } from "../analyze/analyze.js";
import { renderPolicy as renderAnalysisPolicy, renderTable as renderAnalysisTable } from "../analyze/render.js";
import { archOption, roleOption, databaseOption, loadPolicy, contextOf, writeOutput, collect } from "./options.js";

/** analyze. */
export function registerAnalyzeCommand(program: Command): void {
  program
    .command("analyze")
    .description("static analysis: the syscalls a postgres binary, every library it loads and named extension modules can make, from the ELF files (see docs/analyze.md)")
    .option("--postgres <path>", "the server binary", DEFAULT_POSTGRES)
    .option("--extension <name|path...>", "extension modules: NAME (pkglibdir/NAME.so) or a path; repeatable")
    .option("--program <name|path...>", "programs the server runs (the executables of archive_command, restore_command, COPY ... PROGRAM): a path or a name in PATH; repeatable")
    .addOption(new Option("--arch <arch>", "expected architecture (the binary's own is used; a mismatch is an error)").choices(ARCHES as string[]))
    .addOption(new Option("--format <format>", "output format").choices(["json", "policy", "table"]).default("table"))
    .option("-o, --output <file>", "write the result to FILE instead of standard output")
    .option("--sysroot <dir>", "the target system's root for library lookup (default: / for the host's arch, /usr/aarch64-linux-gnu for an aarch64 binary on x86_64 when installed)")
    .option("--no-cache", "analyze every file again (the cache is PG_SECCOMP_CACHE_DIR, else $XDG_CACHE_HOME/pg_seccomp or ~/.cache/pg_seccomp)")
    .action(async (opts: { postgres: string; extension?: string[]; program?: string[]; arch?: Arch; format: string; output?: string; cache: boolean; sysroot?: string }) => {
      const tty = process.stderr.isTTY;
      let r;
      try {
        r = await analyzeBinaries({
          postgres: opts.postgres,
          extensions: opts.extension ?? [],
          programs: opts.program ?? [],
          ...(opts.sysroot ? { sysroot: opts.sysroot } : {}),
          ...(opts.arch ? { arch: opts.arch } : {}),
          ...(opts.cache ? { cacheDir: defaultCacheDir() } : {}),
          ...(tty ? { progress: (m: string) => void process.stderr.write(`\r\x1b[K${m}`) } : {}),
        });
      } finally {
        if (tty) process.stderr.write("\r\x1b[K");
      }
      for (const n of r.notes) process.stderr.write(`pg_seccomp: note: ${n}\n`);
      const text =
        opts.format === "json"
          ? JSON.stringify(r, null, 2) + "\n"
          : opts.format === "policy"
            ? renderAnalysisPolicy(r, { command: `pg_seccomp analyze --postgres ${opts.postgres}${(opts.extension ?? []).map((e) => ` --extension ${e}`).join("")}${(opts.program ?? []).map((e) => ` --program ${e}`).join("")}` })
            : renderAnalysisTable(r);
      if (opts.output) {
        writeFileSync(opts.output, text);
        process.stderr.write(`pg_seccomp: wrote ${r.syscalls.length} syscalls from ${r.binaries.length} files to ${opts.output} (${r.stats.seconds} s)\n`);
      } else process.stdout.write(text);
    });
}

/** export, import, audit2allow. */
export function registerProfileCommands(program: Command): void {
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
    .addOption(new Option("--kernel <version>", "the kernel version to resolve Docker's includes.minKernel for").default(release().replace(/[^0-9.].*$/, ""), "this machine's"))
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
}
