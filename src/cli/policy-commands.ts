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
import { archOption, contextOption, roleOption, databaseOption, loadPolicy, contextOf } from "./options.js";

/** show, compile, sim, check, groups, syscalls. */
export function registerPolicyCommands(program: Command): void {
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
}

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
