// Readable pseudo-code in the manner of libseccomp's PFC output (seccomp_export_pfc): one
// `if ($syscall == N)` block per named syscall, argument checks as nested if/else, then the
// default. `bpf` is the same decisions compiled (what bwrap --seccomp and prctl take).

import { commonRemarks, exportDecisions, type ExportOptions } from "./common.js";
import { compileDecisions } from "../compile/compile.js";
import { encodeProgram } from "../bpf/insn.js";
import type { Action } from "../policy/actions.js";
import type { Decision } from "../policy/decision.js";
import type { ArgCondition } from "../policy/entries.js";
import type { Policy } from "../policy/policy.js";
import { AUDIT_ARCH } from "../seccomp/index.js";

function pfcAction(a: Action): string {
  switch (a.kind) {
    case "allow": return "ALLOW";
    case "log": return "LOG";
    case "error":
    case "terminate": return `ERRNO(${a.errno})`;
    case "trap": return "TRAP";
    case "kill": return "KILL_PROCESS";
  }
}

const hex = (v: bigint) => "0x" + v.toString(16);

function pfcCondition(c: ArgCondition): string {
  const arg = c.width === 32 ? `$a${c.arg}.lo32` : `$a${c.arg}`;
  switch (c.op) {
    case "masked_eq": return `(${arg} & ${hex(c.mask!)}) == ${hex(c.value)}`;
    case "masked_ne": return `(${arg} & ${hex(c.mask!)}) != ${hex(c.value)}`;
    default: return `${arg} ${{ eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" }[c.op]} ${hex(c.value)}`;
  }
}

function pfcDecision(d: Decision, pad: string): string[] {
  if (d.kind === "leaf") return [`${pad}action ${pfcAction(d.action)};  # ${d.source}`];
  return [
    `${pad}if (${d.conds.map(pfcCondition).join(" && ")})`,
    ...pfcDecision(d.then, pad + "  "),
    `${pad}else`,
    ...pfcDecision(d.else, pad + "  "),
  ];
}

export function exportPfc(policy: Policy, opts: ExportOptions): string {
  const cd = exportDecisions(policy, opts);
  const archValue = AUDIT_ARCH[cd.arch] >>> 0;
  const lines = [
    "#",
    "# pseudo filter code start (pg_seccomp export --format pfc)",
    ...commonRemarks(policy, cd).map((l) => `# ${l}`),
    "# $aN is argument N (64 bits); $aN.lo32 its low 32 bits (an int argument: the upper half is ignored)",
    "#",
    `# filter for arch ${cd.arch} (${archValue})`,
    `if ($arch == ${archValue})`,
  ];
  if (cd.arch === "x86_64") lines.push("  if ($syscall >= 0x40000000)  # x32 ABI", "    action KILL_PROCESS;");
  for (const [nr, { name, decision }] of cd.named) {
    lines.push(`  # filter for syscall "${name}" (${nr})`, `  if ($syscall == ${nr})`, ...pfcDecision(decision, "    "));
  }
  lines.push("  # numbers pg_seccomp's table does not know", `  action ${pfcAction(cd.unknownDecision.action)} if $syscall is unknown;`);
  lines.push("  # default action", `  action ${pfcAction(cd.defaultDecision.action)};`, "# invalid architecture action", "action KILL_PROCESS;", "#", "# pseudo filter code end", "#", "");
  return lines.join("\n");
}

/** The raw program: 8-byte little-endian struct sock_filter records. */
export function exportBpf(policy: Policy, opts: ExportOptions): { bytes: Buffer; instructions: number; remarks: string[] } {
  const cd = exportDecisions(policy, opts);
  const prog = compileDecisions(cd);
  return { bytes: encodeProgram(prog), instructions: prog.length, remarks: commonRemarks(policy, cd) };
}
