// OCI runtime-spec and Docker seccomp profiles -> a policy (postgresql.conf syntax), for one
// stated target: an arch, a capability set and a kernel version, against which Docker's
// `includes`/`excludes` are resolved (a note for each). Lossless where the policy language can say
// the same: OCI compares all 64 bits, so conditions are written `argN:64`; masked comparisons are
// `argN:64 & mask == value`. Every rule with no equivalent is named in a warning, and is
// imported on the safe side (a denial) or not at all when it could only loosen.

import { ExportError } from "./common.js";
import { OCI_ARCH } from "./oci.js";
import type { Action } from "../policy/actions.js";
import type { ArgCondition, CondOp } from "../policy/entries.js";
import { contextDecisions } from "../policy/decision.js";
import { parsePolicyText } from "../policy/policy.js";
import { entryText, writePolicyText, type PolicySettingDraft } from "../policy/write.js";
import { errnoName } from "../syscalls/errno.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";

export interface ImportTarget {
  arch: Arch;
  /** Capabilities of the container (CAP_SYS_ADMIN, ...), for Docker's includes/excludes.caps. */
  caps: string[];
  /** Kernel version (e.g. "6.1"), for Docker's includes.minKernel. */
  kernel: string;
}

export interface ImportResult {
  text: string;
  notes: string[];
  warnings: string[];
  /** How many OCI rules became entries, and how many syscall names were skipped. */
  stats: { rules: number; entries: number; skippedNames: number };
}

/** Docker's arch names (Go's runtime.GOARCH) for includes/excludes.arches. */
const DOCKER_ARCH: Record<Arch, string[]> = { x86_64: ["amd64", "x86_64"], aarch64: ["arm64", "aarch64"] };

const OPS: Record<string, CondOp> = {
  SCMP_CMP_NE: "ne", SCMP_CMP_LT: "lt", SCMP_CMP_LE: "le", SCMP_CMP_EQ: "eq", SCMP_CMP_GE: "ge", SCMP_CMP_GT: "gt", SCMP_CMP_MASKED_EQ: "masked_eq",
};

class ProfileError extends ExportError {}

/** JSON.parse, with integer literals of 16 digits or more kept exact (as strings). */
function parseJson(text: string, file: string): unknown {
  const safe = text.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"');
  try {
    return JSON.parse(safe);
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    const at = m ? ` (line ${text.slice(0, Number(m[1])).split("\n").length})` : "";
    throw new ProfileError(`${file}${at}: not valid JSON: ${(e as Error).message}\nhint: give a seccomp profile (OCI runtime-spec linux.seccomp, or Docker's format)`);
  }
}

function kernelAtLeast(have: string, want: string): boolean {
  const p = (v: string) => v.split(/[.-]/).slice(0, 3).map((x) => Number.parseInt(x, 10) || 0);
  const [a, b] = [p(have), p(want)];
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

export function importProfile(text: string, file: string, target: ImportTarget): ImportResult {
  const notes: string[] = [];
  const warnings: string[] = [];
  const root = parseJson(text, file) as Record<string, unknown>;
  const fail = (path: string, what: string, hint: string): never => {
    throw new ProfileError(`${file}: ${path}: ${what}\nhint: ${hint}`);
  };
  if (root === null || typeof root !== "object" || Array.isArray(root)) fail("$", "the top level is not an object", "give a seccomp profile object");
  // A whole config.json, or a SeccompProfile resource, holds the profile one level down.
  let prof = root;
  let base = "";
  const linux = root["linux"] as Record<string, unknown> | undefined;
  if (linux && typeof linux === "object" && linux["seccomp"]) {
    prof = linux["seccomp"] as Record<string, unknown>;
    base = "linux.seccomp.";
    notes.push("read linux.seccomp of an OCI config.json");
  } else if (root["kind"] === "SeccompProfile" && root["spec"]) {
    prof = root["spec"] as Record<string, unknown>;
    base = "spec.";
    notes.push("read spec of a SeccompProfile resource");
  }
  const action = (value: unknown, errnoRet: unknown, path: string): { action: Action; warning?: string } => {
    const errno = errnoRet === undefined || errnoRet === 0 ? 1 : typeof errnoRet === "number" && errnoRet > 0 && errnoRet < 4096 ? errnoRet : fail(`${path.replace(/action$/, "errnoRet")}`, `errnoRet ${JSON.stringify(errnoRet)} is not an errno`, "use a number from 1 to 4095");
    switch (value) {
      case "SCMP_ACT_ALLOW": return { action: { kind: "allow" } };
      case "SCMP_ACT_LOG": return { action: { kind: "log" } };
      case "SCMP_ACT_ERRNO": return { action: { kind: "error", errno } };
      case "SCMP_ACT_TRAP": return { action: { kind: "trap" } };
      case "SCMP_ACT_KILL_PROCESS": return { action: { kind: "kill" } };
      case "SCMP_ACT_KILL":
      case "SCMP_ACT_KILL_THREAD":
        return { action: { kind: "kill" }, warning: `${value} kills one thread; imported as kill (the whole process): stricter` };
      case "SCMP_ACT_TRACE":
        return { action: { kind: "error", errno: 38 }, warning: "SCMP_ACT_TRACE has no equivalent (no tracer here); imported as error:ENOSYS, what the kernel returns when no tracer is attached" };
      case "SCMP_ACT_NOTIFY":
        return { action: { kind: "error", errno: 1 }, warning: "SCMP_ACT_NOTIFY (an agent decides) has no equivalent; imported as error:EPERM, a denial" };
      default:
        return fail(path, `unknown action ${JSON.stringify(value)}`, "use SCMP_ACT_ALLOW, _ERRNO, _LOG, _TRAP, _KILL_PROCESS, _KILL_THREAD, _TRACE or _NOTIFY");
    }
  };

  const def = action(prof["defaultAction"], prof["defaultErrnoRet"], `${base}defaultAction`);
  if (prof["defaultAction"] === undefined) fail(`${base}defaultAction`, "missing", "a seccomp profile needs a defaultAction");
  if (def.warning) warnings.push(`${base}defaultAction: ${def.warning}`);

  // Architectures: the profile's list (OCI) or archMap (Docker); the policy is for one arch.
  const archNames = [
    ...((prof["architectures"] as string[] | undefined) ?? []),
    ...(((prof["archMap"] as Array<{ architecture: string; subArchitectures?: string[] }> | undefined) ?? []).map((a) => a.architecture)),
  ];
  if (archNames.length && !archNames.includes(OCI_ARCH[target.arch])) {
    warnings.push(`${base}architectures: ${archNames.join(", ")} does not include ${OCI_ARCH[target.arch]}; imported for ${target.arch} anyway`);
  }
  if (archNames.length) notes.push(`architectures ${[...new Set(archNames)].join(", ")}: the policy is for ${target.arch} (other ABIs, i386 and x32 included, are killed by every pg_seccomp program)`);
  for (const f of (prof["flags"] as string[] | undefined) ?? []) {
    notes.push(`${base}flags: ${f} is not part of a policy${f === "SECCOMP_FILTER_FLAG_SPEC_ALLOW" ? " (run --spec-allow does this)" : ""}`);
  }
  for (const k of ["listenerPath", "listenerMetadata"]) if (prof[k]) warnings.push(`${base}${k}: a notification agent has no equivalent; ignored`);

  const lists = new Map<string, string[]>(); // action text -> entries
  const unconditional = new Map<string, { action: Action; path: string }>();
  const listKey = (a: Action) => (a.kind === "error" ? "error" : a.kind);
  let rules = 0;
  let entries = 0;
  let skippedNames = 0;
  const syscalls = (prof["syscalls"] as unknown[] | undefined) ?? [];
  if (!Array.isArray(syscalls)) fail(`${base}syscalls`, "not an array", "syscalls is a list of {names, action, args} objects");
  syscalls.forEach((raw, i) => {
    const path = `${base}syscalls[${i}]`;
    const rule = raw as Record<string, unknown>;
    if (rule === null || typeof rule !== "object") fail(path, "not an object", "each rule is {names, action, errnoRet, args}");
    const names = (rule["names"] as string[] | undefined) ?? (typeof rule["name"] === "string" ? [rule["name"] as string] : undefined);
    if (!Array.isArray(names) || names.length === 0) fail(`${path}.names`, "missing or empty", "give the syscalls' names");
    const label = `${path} (${names!.slice(0, 3).join(", ")}${names!.length > 3 ? ", ..." : ""})`;
    // Docker's conditions on the container, resolved for the stated target.
    const inc = (rule["includes"] as Record<string, unknown> | undefined) ?? {};
    const exc = (rule["excludes"] as Record<string, unknown> | undefined) ?? {};
    const why: string[] = [];
    let applies = true;
    const incCaps = (inc["caps"] as string[] | undefined) ?? [];
    if (incCaps.length) {
      const missing = incCaps.filter((c) => !target.caps.includes(c));
      why.push(`includes.caps ${incCaps.join(" ")}: ${missing.length ? `not all given (--caps lacks ${missing.join(" ")})` : "given"}`);
      if (missing.length) applies = false;
    }
    const excCaps = (exc["caps"] as string[] | undefined) ?? [];
    if (excCaps.length) {
      const present = excCaps.filter((c) => target.caps.includes(c));
      why.push(`excludes.caps ${excCaps.join(" ")}: ${present.length ? `${present.join(" ")} given` : "none given"}`);
      if (present.length) applies = false;
    }
    const incArches = (inc["arches"] as string[] | undefined) ?? [];
    if (incArches.length) {
      const ok = incArches.some((a) => DOCKER_ARCH[target.arch].includes(a));
      why.push(`includes.arches ${incArches.join(" ")}: ${ok ? "" : "not "}${target.arch}`);
      if (!ok) applies = false;
    }
    const excArches = (exc["arches"] as string[] | undefined) ?? [];
    if (excArches.length) {
      const hit = excArches.some((a) => DOCKER_ARCH[target.arch].includes(a));
      why.push(`excludes.arches ${excArches.join(" ")}: ${hit ? "" : "not "}${target.arch}`);
      if (hit) applies = false;
    }
    const minKernel = inc["minKernel"] as string | undefined;
    if (minKernel) {
      const ok = kernelAtLeast(target.kernel, minKernel);
      why.push(`includes.minKernel ${minKernel}: kernel ${target.kernel} ${ok ? "is" : "is not"} that new`);
      if (!ok) applies = false;
    }
    if (why.length) notes.push(`${label}: ${applies ? "imported" : "skipped"}: ${why.join("; ")}`);
    if (!applies) return;
    rules++;

    const act = action(rule["action"], rule["errnoRet"], `${path}.action`);
    if (act.warning) warnings.push(`${label}: ${act.warning}`);
    // Arguments: comparisons of one index are ORed by runc, different indexes ANDed.
    const byIndex = new Map<number, ArgCondition[]>();
    const args = (rule["args"] as unknown[] | undefined) ?? [];
    let never = false;
    args.forEach((rawArg, j) => {
      const ap = `${path}.args[${j}]`;
      const a = rawArg as Record<string, unknown>;
      const index = a["index"];
      if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 5) fail(`${ap}.index`, `${JSON.stringify(index)} is not an argument index`, "use 0 to 5");
      const op = OPS[String(a["op"])];
      if (!op) fail(`${ap}.op`, `unknown operator ${JSON.stringify(a["op"])}`, `use one of ${Object.keys(OPS).join(", ")}`);
      const num = (v: unknown, p: string): bigint => {
        if (v === undefined) return 0n;
        if ((typeof v === "number" && Number.isInteger(v) && v >= 0) || (typeof v === "string" && /^\d+$/.test(v))) {
          const b = BigInt(v);
          if (b < 1n << 64n) return b;
        }
        return fail(p, `${JSON.stringify(v)} is not an unsigned 64-bit integer`, "write a non-negative integer below 2^64");
      };
      const value = num(a["value"], `${ap}.value`);
      const valueTwo = num(a["valueTwo"], `${ap}.valueTwo`);
      let cond: ArgCondition;
      if (op === "masked_eq") {
        if ((valueTwo & ~value) !== 0n) {
          warnings.push(`${label}: args[${j}] (arg & 0x${value.toString(16)}) == 0x${valueTwo.toString(16)} can never hold; the rule is left out (it matches no call)`);
          never = true;
          return;
        }
        cond = { arg: index as number, op, mask: value, value: valueTwo, width: 64 };
      } else {
        cond = { arg: index as number, op: op!, value, width: 64 };
      }
      byIndex.set(index as number, [...(byIndex.get(index as number) ?? []), cond]);
    });
    if (never && byIndex.size === 0) return;
    let alternatives: ArgCondition[][] = [[]];
    for (const [idx, cs] of byIndex) {
      if (cs.length > 1) warnings.push(`${label}: ${cs.length} comparisons of argument ${idx}: runtimes differ on this (runc ORs them); imported as alternatives, as runc does`);
      alternatives = alternatives.flatMap((alt) => cs.map((c) => [...alt, c]));
    }
    if (never) return;
    for (const name of names!) {
      if (typeof name !== "string" || syscallNumber(target.arch, name) === undefined) {
        skippedNames++;
        continue;
      }
      for (const conds of alternatives) {
        if (conds.length === 0) {
          const prev = unconditional.get(name);
          if (prev && prev.action.kind !== act.action.kind) {
            const keep = ["allow", "log", "error", "trap", "kill"].indexOf(prev.action.kind) >= ["allow", "log", "error", "trap", "kill"].indexOf(act.action.kind) ? prev : { action: act.action, path };
            warnings.push(`${name}: unconditional in ${prev.path} (${prev.action.kind}) and ${path} (${act.action.kind}); the stricter, ${keep.action.kind}, is kept`);
            if (keep === prev) continue;
            const list = lists.get(listKey(prev.action))!;
            list.splice(list.findIndex((e) => e === name || e.startsWith(`${name}:`)), 1);
            entries--;
          }
          unconditional.set(name, { action: act.action, path });
        }
        const text = entryText(name, conds, act.action.kind === "error" && act.action.errno !== 1 ? act.action.errno : undefined);
        const list = lists.get(listKey(act.action)) ?? [];
        if (!list.includes(text)) {
          list.push(text);
          entries++;
        }
        lists.set(listKey(act.action), list);
      }
    }
  });
  if (skippedNames) notes.push(`${skippedNames} syscall name${skippedNames === 1 ? "" : "s"} not on ${target.arch} skipped (libseccomp skips them too)`);

  const defText = def.action.kind === "error" ? `error${def.action.errno !== 1 ? `:${errnoName(def.action.errno!)}` : ""}` : def.action.kind;
  const settings: PolicySettingDraft[] = [
    { name: "syscall_error_errno", value: "EPERM", comment: ["OCI's errno when a rule names none"] },
    { name: "global_syscall_default", value: defText },
  ];
  for (const k of ["allow", "log", "error", "trap", "kill"]) {
    const l = lists.get(k);
    if (l?.length) settings.push({ name: `global_syscall_${k}`, value: l.join(", ") });
  }
  const out = writePolicyText({
    header: [
      // check and the other commands read this line: the names below are this arch's.
      `arch: ${target.arch}`,
      `Imported by pg_seccomp import from ${file.replace(/^.*\//, "")}`,
      `for ${target.arch}, capabilities ${target.caps.length ? target.caps.join(" ") : "(none)"}, kernel ${target.kernel}.`,
      ...notes.map((n) => `note: ${n}`),
      ...warnings.map((w) => `warning: ${w}`),
    ],
    settings,
  });
  // What was written must read back: a profile the policy cannot hold is an error here, not at run.
  const policy = parsePolicyText(out, "imported.conf");
  contextDecisions(policy, target.arch, { context: "global" });
  return { text: out, notes, warnings, stats: { rules, entries, skippedNames } };
}
