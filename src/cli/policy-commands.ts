// The commands that read a policy and print or compile it (show, compile, sim, check, groups,
// syscalls), and the bpf tools (disasm, asm).

import { Command, Option } from "commander";
import { readFileSync, writeFileSync } from "node:fs";
import { CONTEXT_KINDS, contextKey, policyContexts, type ContextSpec } from "../policy/decision.js";
import { compilePolicy } from "../compile/compile.js";
import { disassemble } from "../bpf/disasm.js";
import { assemble } from "../bpf/asm.js";
import { decodeProgram, encodeProgram } from "../bpf/insn.js";
import { validateProgram } from "../bpf/validate.js";
import { effectiveFilterRows, FILTER_COLUMNS } from "../render/effective-table.js";
import { csvTable, psqlTable } from "../render/format.js";
import { simulate, syscallArg } from "../inspect/simulate.js";
import { ARCHES, allSyscalls, isArch, type Arch } from "../syscalls/index.js";
import { basename } from "node:path";
import { expandGroup, groupInfo, groupNames, resolveGroup } from "../syscalls/groups.js";
import { parseValue } from "../policy/entries.js";
import { formatRisk, policyRisks } from "../policy/risks.js";
import { UsageError, writeJson } from "./output.js";
import { archOption, contextOption, roleOption, databaseOption, loadPolicy, loadPolicyText, readPolicyText, contextOf, safeHostArch } from "./options.js";
import { entrySources, filterTableText, rowSources } from "../render/effective-table.js";

/** show, compile, sim, check, groups, syscalls. */
export function registerPolicyCommands(program: Command): void {
  program
    .command("show")
    .description("print the effective filter as pg_get_seccomp_filter() does: syscall, syscallnum, filter_action, context")
    .argument("<policy>", "policy file (postgresql.conf syntax)")
    .addOption(new Option("--format <format>", "output format").choices(["table", "csv", "json"]).default("table"))
    .option("--json", "same as --format json")
    .option("--sources", "add a column: the file:line each row's entries (or default) were written at")
    .addOption(archOption())
    .addOption(new Option("--context <context>", "contexts to show: all = global and session, as the seed's table").choices(["all", ...CONTEXT_KINDS]).default("all"))
    .addOption(roleOption())
    .addOption(databaseOption())
    .action((path: string, opts: { format: string; json?: boolean; sources?: boolean; arch: Arch; context: string; role?: string; database?: string }) => {
      const policy = loadPolicy(path);
      const contexts: ContextSpec[] =
        opts.context === "all"
          ? [{ context: "global" }, contextOf({ ...opts, context: "session" }, policy)]
          : [contextOf(opts, policy)];
      const plain = effectiveFilterRows(policy, opts.arch, contexts);
      const sources = opts.sources ? rowSources(policy, opts.arch, contexts, plain) : undefined;
      const rows = sources ? plain.map((r, i) => ({ ...r, source: sources[i]! })) : plain;
      const columns = sources ? [...FILTER_COLUMNS, "source"] : FILTER_COLUMNS;
      const format = opts.json ? "json" : opts.format;
      if (format === "json") writeJson(rows);
      else if (format === "csv") process.stdout.write(csvTable(columns, rows as never));
      else {
        process.stdout.write(filterTableText(columns, rows));
      }
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
    .description("validate a policy for its arch and every context; print notes and warnings about risky allowances; exit 1 on the first error")
    .argument("<policy>", "policy file (postgresql.conf syntax), or - for standard input")
    .addOption(new Option("--arch <arch>", "the architecture to check: all for every one (default: the policy's own, from its file name or an \"# arch:\" line, else this machine's)").choices(["all", ...ARCHES]))
    .option("--strict", "exit 1 when there are warnings")
    .option("--json", "print the result as JSON (arches checked, programs, warnings, where each entry came from)")
    .option("--sources", "also list every entry with the file:line it was written at (an included file's, for what a '*' kept)")
    .action((path: string, opts: { arch?: Arch | "all"; strict?: boolean; json?: boolean; sources?: boolean }) => {
      const stdin = path === "-" ? readPolicyText(path) : undefined;
      const policy = stdin !== undefined ? loadPolicyText(stdin, "<stdin>") : loadPolicy(path);
      const text = stdin ?? readPolicyText(path);
      const contexts = policyContexts(policy);
      // A profile names one arch's syscalls (x86_64's stat, pipe or access do not exist on
      // aarch64): only the arches the policy can be for are checked. --arch, else its file name
      // (postgresql-18-aarch64.conf) or a "# arch: NAME" line in its text, else this machine's.
      const declared = opts.arch ? undefined : policyFileArch(path, text);
      const arches: Arch[] = opts.arch === "all" ? [...ARCHES] : opts.arch ? [opts.arch] : declared ? [declared.arch] : [safeHostArch()];
      const archFrom = opts.arch === "all" ? "--arch all" : opts.arch ? "--arch" : declared ? declared.from : "this machine's; --arch all checks every one";
      const programs: Array<{ arch: Arch; context: string; instructions: number }> = [];
      for (const arch of arches) {
        for (const c of contexts) {
          const prog = compilePolicy(policy, arch, c);
          const problems = validateProgram(prog);
          if (problems.length) throw new Error(`compiled program for ${arch}/${c.context} fails validation: ${problems[0]}`);
          programs.push({ arch, context: contextKey(c), instructions: prog.length });
        }
      }
      const risks = policyRisks(policy, arches);
      if (opts.strict && risks.length) process.exitCode = 1;
      const name = path === "-" ? "<stdin>" : path;
      if (opts.json) {
        writeJson({
          policy: name, ok: !(opts.strict && risks.length), files: policy.files, arches, archFrom, programs,
          warnings: risks.map((r) => ({ id: r.id, message: formatRisk(r) })), notes: policy.notes.map((n) => ({ ...n.loc, message: n.message })),
          entries: entrySources(policy),
        });
        return;
      }
      for (const p of programs) process.stdout.write(`${p.arch} ${p.context}: ${p.instructions} instructions\n`);
      if (opts.sources) process.stdout.write(psqlTable(["filter", "action", "entry", "from"], entrySources(policy) as never));
      for (const r of risks) process.stderr.write(`pg_seccomp: warning: ${formatRisk(r)}\n`);
      const warned = risks.length ? `, ${risks.length} warning${risks.length === 1 ? "" : "s"}` : "";
      process.stdout.write(`${name}: ok for ${arches.join(", ")} (${archFrom}; ${policy.files.length} file${policy.files.length === 1 ? "" : "s"}${warned})\n`);
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
}

/** bpf disasm, bpf asm. */
export function registerBpfCommands(program: Command): void {
  const bpf = program.command("bpf").description("assemble, disassemble and validate classic BPF programs");
  bpf
    .command("disasm")
    .description("disassemble a raw program (8-byte struct sock_filter records)")
    .argument("<file>", "raw program, as written by compile -o")
    .option("--raw", "also print the raw code, jt, jf and k fields")
    .action((file: string, opts: { raw?: boolean }) => {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      process.stdout.write(disassemble(decodeProgram(bytes), { raw: opts.raw ?? false }));
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
}

/** The arch a policy is for, from its file name (postgresql-<major>-<arch>[-variant].conf) or a "# arch: NAME" line of its text. */
function policyFileArch(path: string, text: string): { arch: Arch; from: string } | undefined {
  const m = /-(x86_64|aarch64)(?:-[A-Za-z0-9_]+)?\.conf$/.exec(basename(path));
  if (m && isArch(m[1]!)) return { arch: m[1], from: "its file name" };
  const a = /^#\s*arch:\s*(\S+)\s*$/m.exec(text)?.[1];
  return a && isArch(a) ? { arch: a, from: "its # arch: line" } : undefined;
}
