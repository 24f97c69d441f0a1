// The OCI runtime-spec `linux.seccomp` object (config-linux.md, "Seccomp"): what runc, crun,
// Docker (`--security-opt seccomp=FILE`), Podman, containerd and Kubernetes `Localhost` profiles
// read. Also the Security Profiles Operator's SeccompProfile, which carries the same fields.
//
// Each syscall's decision tree is cut into disjoint regions of its arguments (regions.ts), one
// rule per cube product, so that no two rules of one syscall overlap with different actions:
// how a runtime resolves overlapping rules is not specified, and we never depend on it. A
// region whose action is the profile's default needs no rule.

import { ExportError, commonRemarks, exportDecisions, sameAction, type ExportOptions } from "./common.js";
import { decisionRegions, U64, type Region } from "./regions.js";
import type { Action } from "../policy/actions.js";
import type { Policy } from "../policy/policy.js";
import type { Arch } from "../syscalls/index.js";

export interface OciArg {
  index: number;
  value: bigint;
  valueTwo?: bigint;
  op: "SCMP_CMP_NE" | "SCMP_CMP_LT" | "SCMP_CMP_LE" | "SCMP_CMP_EQ" | "SCMP_CMP_GE" | "SCMP_CMP_GT" | "SCMP_CMP_MASKED_EQ";
}

export interface OciSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciArg[];
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  flags?: string[];
  syscalls: OciSyscall[];
}

export const OCI_ARCH: Record<Arch, string> = { x86_64: "SCMP_ARCH_X86_64", aarch64: "SCMP_ARCH_AARCH64" };

/** A runaway expansion (thousands of rules for one syscall) is refused rather than written. */
const MAX_RULES_PER_SYSCALL = 2000;

export function ociAction(a: Action): { action: string; errnoRet?: number } {
  switch (a.kind) {
    case "allow": return { action: "SCMP_ACT_ALLOW" };
    case "log": return { action: "SCMP_ACT_LOG" };
    case "error":
    case "terminate": return { action: "SCMP_ACT_ERRNO", errnoRet: a.errno! };
    case "trap": return { action: "SCMP_ACT_TRAP" };
    case "kill": return { action: "SCMP_ACT_KILL_PROCESS" };
  }
}

export interface OciExport {
  seccomp: OciSeccomp;
  /** What the profile does not carry, or carries differently (header lines / stderr). */
  remarks: string[];
  warnings: string[];
}

/** Every rule (one cube per constrained argument) of a region. */
function regionRules(region: Region): OciArg[][] {
  const rules: OciArg[][] = [];
  for (const box of region) {
    let partial: OciArg[][] = [[]];
    for (const [index, cubes] of [...box].sort((a, b) => a[0] - b[0])) {
      const next: OciArg[][] = [];
      for (const p of partial) {
        for (const c of cubes) {
          if (c.mask === 0n) next.push(p);
          else if (c.mask === U64) next.push([...p, { index, value: c.value, op: "SCMP_CMP_EQ" }]);
          else next.push([...p, { index, value: c.mask, valueTwo: c.value, op: "SCMP_CMP_MASKED_EQ" }]);
        }
      }
      partial = next;
    }
    rules.push(...partial);
  }
  return rules;
}

export function exportOci(policy: Policy, opts: ExportOptions): OciExport {
  const cd = exportDecisions(policy, opts);
  const def = cd.defaultDecision.action;
  const warnings: string[] = [];
  const remarks = commonRemarks(policy, cd);
  if (!sameAction(cd.unknownDecision.action, def)) {
    remarks.push(
      `syscall numbers newer than pg_seccomp's table get the default (${ociAction(def).action}) instead of ${ociAction(cd.unknownDecision.action).action} ` +
        `${cd.unknownDecision.action.errno ? `errno ${cd.unknownDecision.action.errno}` : ""}; runc answers unknown newer syscalls with ENOSYS itself`,
    );
  }
  const plain = new Map<string, OciSyscall>(); // unconditional rules, grouped by action
  const withArgs: OciSyscall[] = [];
  for (const [, { name, decision }] of cd.named) {
    const parts = decisionRegions(decision).filter((p) => !sameAction(p.leaf.action, def));
    const rules = parts.flatMap((p) => regionRules(p.region).map((args) => ({ args, action: p.leaf.action })));
    if (rules.length > MAX_RULES_PER_SYSCALL) {
      throw new ExportError(`${name}: its argument conditions need ${rules.length} OCI rules (over ${MAX_RULES_PER_SYSCALL}); simplify the conditions on ${name}, or export --format bpf`);
    }
    for (const r of rules) {
      const act = ociAction(r.action);
      if (r.args.length === 0) {
        const key = `${act.action}/${act.errnoRet ?? ""}`;
        const entry = plain.get(key) ?? { names: [], ...act };
        entry.names.push(name);
        plain.set(key, entry);
      } else {
        withArgs.push({ names: [name], ...act, args: r.args });
      }
    }
  }
  const d = ociAction(def);
  const seccomp: OciSeccomp = {
    defaultAction: d.action,
    ...(d.errnoRet !== undefined ? { defaultErrnoRet: d.errnoRet } : {}),
    architectures: [OCI_ARCH[cd.arch]],
    syscalls: [...plain.values(), ...withArgs],
  };
  if (cd.defaultDecision.action.kind === "log") warnings.push("the default action is log: every call not named is written to the kernel's audit log");
  return { seccomp, remarks, warnings };
}

/** JSON with bigints written as exact integer literals (Go's decoder reads uint64 literals exactly). */
export function jsonText(value: unknown, indent = 2): string {
  const marks: string[] = [];
  const text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `\u0000big${marks.push(v.toString()) - 1}\u0000` : v), indent);
  return text.replace(/"\\u0000big(\d+)\\u0000"/g, (_m, i: string) => marks[Number(i)]!) + "\n";
}

/** A DNS-1123 subdomain from a policy file name: postgresql-15-x86_64.conf -> postgresql-15-x86-64. */
export function kubernetesName(file: string): string {
  const base = file.replace(/^.*\//, "").replace(/\.[^.]*$/, "");
  const name = base.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "").slice(0, 253);
  return name || "pg-seccomp";
}

/**
 * The Security Profiles Operator's SeccompProfile. `security-profiles-operator.x-k8s.io/v1` is
 * the operator's storage version (api/seccompprofile/v1, marked +kubebuilder:storageversion;
 * v1beta1 is converted to it) and is cluster-scoped: the operator writes it to
 * /var/lib/kubelet/seccomp/operator/NAME.json, which pods name as `operator/NAME.json`. Its
 * `value`/`valueTwo` are int64 with minimum 0, so values of 2^63 and up cannot be written.
 */
export function seccompProfileResource(seccomp: OciSeccomp, name: string): Record<string, unknown> {
  for (const s of seccomp.syscalls) {
    for (const a of s.args ?? []) {
      if (a.value >= 1n << 63n || (a.valueTwo ?? 0n) >= 1n << 63n) {
        throw new ExportError(`${s.names[0]}: an argument value of 2^63 or more (0x${a.value.toString(16)}) cannot be written in a SeccompProfile (int64, minimum 0); export --format oci and install it as a Localhost profile instead`);
      }
    }
  }
  return {
    apiVersion: "security-profiles-operator.x-k8s.io/v1",
    kind: "SeccompProfile",
    metadata: { name, labels: { "app.kubernetes.io/managed-by": "pg_seccomp" } },
    spec: seccomp,
  };
}

/** Block-style YAML for the plain data above (objects, arrays, strings, numbers, bigints). */
export function yamlText(value: unknown, indent = 0): string {
  const pad = " ".repeat(indent);
  const scalar = (v: unknown): string => {
    if (typeof v === "bigint" || typeof v === "number" || typeof v === "boolean") return String(v);
    const s = String(v);
    return /^[A-Za-z_][A-Za-z0-9_./-]*$/.test(s) && !/^(true|false|yes|no|on|off|null|y|n)$/i.test(s) ? s : JSON.stringify(s);
  };
  if (Array.isArray(value)) {
    if (value.length === 0) return " []\n";
    return "\n" + value.map((v) => {
      if (v !== null && typeof v === "object") {
        const body = yamlText(v, indent + 2).replace(/^\n/, "");
        return `${pad}- ${body.slice(indent + 2)}`;
      }
      return `${pad}- ${scalar(v)}\n`;
    }).join("");
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return " {}\n";
    return (indent === 0 ? "" : "\n") + entries.map(([k, v]) => {
      if (v !== null && typeof v === "object") return `${pad}${k}:${yamlText(v, indent + 2)}`;
      return `${pad}${k}: ${scalar(v)}\n`;
    }).join("");
  }
  return ` ${scalar(value)}\n`;
}
