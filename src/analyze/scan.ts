// One ELF file on its own: its functions, direct call edges, PLT imports, syscall sites and the
// numbers that reach them. The result depends only on the file's bytes (it is cached by hash).
//
// Method (see docs/analyze.md):
// - Function boundaries: .eh_frame_hdr (one entry per function with unwind info, also in stripped
//   libraries) ∪ FUNC symbols of .dynsym/.symtab ∪ executable section starts.
// - Candidate syscall sites: the byte patterns of the trap instruction (x86_64 `0f 05` anywhere;
//   aarch64 `svc #0` = d4000001 at 4-byte alignment). Each x86 candidate is confirmed by decoding
//   its function from the start with Capstone: bytes that are not an instruction boundary are
//   not a site. A function that does not decode cleanly up to a candidate makes it unresolved.
// - Direct edges: rel32 call/jmp/jcc encodings (x86) and BL/B (aarch64) whose target is a
//   function start or a PLT entry; `call/jmp [rip+disp]` through a GOT slot with a relocation.
//   Found by pattern, so an edge may be spurious (never a real one missed); edges are used for
//   provenance and wrapper callers, whose sites are confirmed by decoding.
// - Numbers: backward data flow (dataflow.ts) at each site; a function whose number arrives as an
//   argument is a wrapper, and its direct callers are followed (up to WRAPPER_LEVELS levels).

import type { Arch } from "../syscalls/index.js";
import {
  addrToOffset,
  dynamicInfo,
  dynamicSymbols,
  ehFrameFunctionStarts,
  execSections,
  parseElf,
  relocations,
  staticSymbols,
  type Elf,
  type Section,
} from "./elf.js";
import { ARG_REGS, NUMBER_REG, controlFlow, indexFunction, valuesAt, type ExternalSources, type FunctionCode, type Outcome } from "./dataflow.js";
import type { Disassembler } from "./disasm.js";

/** Bumped whenever the analysis of a file changes: old cache entries are then ignored. */
export const SCAN_VERSION = 1;

/** Imported functions known to take the syscall number as an argument: name → argument index. */
export const IMPORT_WRAPPERS: Readonly<Record<string, number>> = { syscall: 0 };

export const WRAPPER_LEVELS = 3;

export interface Site {
  /** Address of the trap instruction, or of the call that passes the number to a wrapper. */
  readonly addr: number;
  /** Start of the function containing it. */
  readonly fn: number;
  readonly kind: "trap" | "wrapper-call";
  /** For wrapper calls: the callee (a function name, or "fn@0x..."), and whether it is imported. */
  readonly callee?: string;
  readonly imported?: boolean;
  readonly numbers: number[];
  readonly unknown: string[];
}

export interface WrapperInfo {
  readonly fn: number;
  readonly arg: number;
  readonly name?: string;
  readonly exported: boolean;
  /** Direct callers found (sites of kind wrapper-call) in this file. */
  readonly callers: number;
}

export interface FileAnalysis {
  readonly version: number;
  readonly arch: Arch;
  readonly soname?: string;
  readonly needed: string[];
  readonly runpath: string[];
  readonly rpath: string[];
  readonly functions: number[];
  readonly names: Array<[number, string]>;
  readonly exports: Array<[string, number]>;
  /** Direct edges inside the file: [caller function, callee function]. */
  readonly localEdges: Array<[number, number]>;
  /** Calls to imported functions: [caller function, imported name]. */
  readonly importEdges: Array<[number, string]>;
  readonly sites: Site[];
  readonly wrappers: WrapperInfo[];
  readonly stats: { codeBytes: number; decodedBytes: number; candidates: number };
}

function preferName(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  const score = (n: string) => (n.startsWith("__") ? 2 : n.startsWith("_") ? 1 : 0) * 1000 + n.length;
  return score(b) < score(a) ? b : a;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function analyzeElf(buf: Buffer, dis: Disassembler): FileAnalysis {
  const elf = parseElf(buf);
  const arch = elf.arch;
  const dyn = dynamicInfo(elf);
  const execs = execSections(elf);
  const inExec = (a: number) => execs.find((s) => a >= s.addr && a < s.addr + s.size);

  // Functions and names.
  const dsyms = dynamicSymbols(elf);
  const ssyms = staticSymbols(elf);
  const starts = new Set<number>();
  const names = new Map<number, string>();
  const exports = new Map<string, number>();
  for (const a of ehFrameFunctionStarts(elf)) if (inExec(a)) starts.add(a);
  for (const s of execs) starts.add(s.addr);
  for (const [list, dynamic] of [[dsyms, true], [ssyms, false]] as const) {
    for (const s of list) {
      if (!s.isFunc || s.shndx === 0 || s.value === 0 || !inExec(s.value)) continue;
      starts.add(s.value);
      if (s.name) names.set(s.value, preferName(names.get(s.value), s.name));
      if (dynamic && (s.bind === 1 || s.bind === 2) && s.name) exports.set(s.name.split("@")[0]!, s.value);
    }
  }
  const functions = [...starts].sort((a, b) => a - b);
  const fnIndex = (a: number): number => {
    let lo = 0;
    let hi = functions.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (functions[mid]! <= a) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  };
  const fnOf = (a: number) => functions[fnIndex(a)] ?? a;
  const fnEnd = (start: number) => {
    const sec = inExec(start);
    const next = functions[fnIndex(start) + 1];
    const secEnd = sec ? sec.addr + sec.size : start;
    return next !== undefined && next < secEnd ? next : secEnd;
  };

  // PLT entries and GOT slots → imported names.
  const relocByAddr = new Map<number, string>();
  for (const r of relocations(elf)) if (r.symbol) relocByAddr.set(r.offset, r.symbol.split("@")[0]!);
  const pltNames = new Map<number, string>();
  for (const sec of elf.sections) {
    if (!/^\.plt(\.sec|\.got)?$/.test(sec.name) || sec.type === 8) continue;
    if (arch === "x86_64") {
      const step = sec.entsize >= 8 ? sec.entsize : 16;
      for (let o = 0; o + step <= sec.size; o += step) {
        for (let k = 0; k + 6 <= step; k++) {
          const p = sec.offset + o + k;
          if (buf[p] === 0xff && buf[p + 1] === 0x25) {
            const got = sec.addr + o + k + 6 + buf.readInt32LE(p + 2);
            const name = relocByAddr.get(got);
            if (name) pltNames.set(sec.addr + o, name);
            break;
          }
        }
      }
    } else {
      // aarch64 PLT entry: adrp x16, page; ldr x17, [x16, #off]; add; br x17 (after a 32-byte header).
      for (let o = 32; o + 16 <= sec.size; o += 16) {
        const adrp = buf.readUInt32LE(sec.offset + o);
        const ldr = buf.readUInt32LE(sec.offset + o + 4);
        if ((adrp & 0x9f000000) >>> 0 !== 0x90000000 || (ldr & 0xffc00000) >>> 0 !== 0xf9400000) continue;
        const immlo = (adrp >>> 29) & 3;
        const immhi = (adrp >>> 5) & 0x7ffff;
        let imm = (immhi << 2) | immlo;
        if (imm & 0x100000) imm -= 0x200000;
        const page = Math.floor((sec.addr + o) / 4096) * 4096 + imm * 4096;
        const got = page + ((ldr >>> 10) & 0xfff) * 8;
        const name = relocByAddr.get(got);
        if (name) pltNames.set(sec.addr + o, name);
      }
    }
  }
  const startSet = new Set(functions);
  const isPlt = (a: number) => pltNames.has(a);

  // Pattern scan: candidate trap sites and direct edges.
  const candidates: number[] = [];
  const localEdges = new Set<string>();
  const importEdges = new Set<string>();
  let codeBytes = 0;
  for (const sec of execs) {
    if (/^\.plt/.test(sec.name)) continue;
    codeBytes += sec.size;
    const base = sec.offset;
    const end = sec.offset + sec.size;
    if (arch === "x86_64") {
      for (let p = base; p < end - 1; p++) {
        const b0 = buf[p]!;
        if (b0 === 0x0f) {
          const b1 = buf[p + 1]!;
          if (b1 === 0x05) candidates.push(sec.addr + (p - base));
          else if (b1 >= 0x80 && b1 <= 0x8f && p + 6 <= end) {
            const a = sec.addr + (p - base);
            const t = a + 6 + buf.readInt32LE(p + 2);
            if (startSet.has(t) && t !== fnOf(a)) localEdges.add(`${fnOf(a)},${t}`);
          }
        } else if ((b0 === 0xe8 || b0 === 0xe9) && p + 5 <= end) {
          const a = sec.addr + (p - base);
          const t = a + 5 + buf.readInt32LE(p + 1);
          if (isPlt(t)) importEdges.add(`${fnOf(a)},${pltNames.get(t)}`);
          else if (startSet.has(t) && t !== fnOf(a)) localEdges.add(`${fnOf(a)},${t}`);
        } else if (b0 === 0xff && (buf[p + 1] === 0x15 || buf[p + 1] === 0x25) && p + 6 <= end) {
          const a = sec.addr + (p - base);
          const name = relocByAddr.get(a + 6 + buf.readInt32LE(p + 2));
          if (name) importEdges.add(`${fnOf(a)},${name}`);
        }
      }
    } else {
      for (let p = base + ((4 - (sec.addr % 4)) % 4); p + 4 <= end; p += 4) {
        const w = buf.readUInt32LE(p);
        if (w === 0xd4000001) candidates.push(sec.addr + (p - base));
        else if ((w & 0x7c000000) === 0x14000000) {
          // B (0x14) and BL (0x94): imm26 words.
          const a = sec.addr + (p - base);
          let imm = w & 0x3ffffff;
          if (imm & 0x2000000) imm -= 0x4000000;
          const t = a + imm * 4;
          if (isPlt(t)) importEdges.add(`${fnOf(a)},${pltNames.get(t)}`);
          else if (startSet.has(t) && t !== fnOf(a)) localEdges.add(`${fnOf(a)},${t}`);
        }
      }
    }
  }

  // Decoding, one function at a time, on demand.
  let decodedBytes = 0;
  const decoded = new Map<number, { fn: FunctionCode; complete: boolean } | null>();
  const decodeFn = (start: number) => {
    if (decoded.has(start)) return decoded.get(start)!;
    const end = fnEnd(start);
    const off = addrToOffset(elf, start);
    let r: { fn: FunctionCode; complete: boolean } | null = null;
    if (off !== undefined && end > start) {
      const d = dis.decode(arch, buf.subarray(off, off + (end - start)), start);
      decodedBytes += end - start;
      r = { fn: indexFunction(arch, d.insns), complete: d.complete };
    }
    decoded.set(start, r);
    return r;
  };
  // Jumps into a block from another function (a .cold part jumping back, a shared tail).
  const externalCache = new Map<number, Array<{ fn: FunctionCode; index: number }>>();
  const external: ExternalSources = (address) => {
    let r = externalCache.get(address);
    if (r) return r;
    r = [];
    const own = fnOf(address);
    for (const src of findJumpsTo(buf, execs, arch, address)) {
      const f = fnOf(src);
      if (f === own) continue;
      const d = decodeFn(f);
      const idx = d?.fn.indexOf.get(src);
      if (!d || idx === undefined) continue;
      const cf = controlFlow(arch, d.fn.insns[idx]!);
      if ((cf.flow === "jump" || cf.flow === "cond") && cf.target === address) r.push({ fn: d.fn, index: idx });
    }
    externalCache.set(address, r);
    return r;
  };
  const nameOf = (fn: number) => names.get(fn) ?? `fn@${hex(fn)}`;

  const sites: Site[] = [];
  const wrappers = new Map<number, WrapperInfo & { level: number }>();
  const collect = (outs: Outcome[]) => {
    const numbers = new Set<number>();
    const unknown = new Set<string>();
    const args = new Set<number>();
    for (const o of outs) {
      if (o.kind === "const") numbers.add(o.value);
      else if (o.kind === "arg") args.add(o.index);
      else unknown.add(o.reason);
    }
    return { numbers: [...numbers].sort((a, b) => a - b), unknown: [...unknown], args: [...args] };
  };
  const addWrapper = (fn: number, args: number[], level: number, unknown: string[]) => {
    for (const arg of args) {
      if (wrappers.has(fn)) {
        if (wrappers.get(fn)!.arg !== arg) unknown.push(`number arrives in argument ${arg + 1} and another argument as well`);
        continue;
      }
      const name = names.get(fn);
      wrappers.set(fn, { fn, arg, ...(name ? { name } : {}), exported: name !== undefined && exports.get(name) === fn, callers: 0, level });
    }
  };

  for (const addr of candidates) {
    const fn = fnOf(addr);
    const d = decodeFn(fn);
    const idx = d?.fn.indexOf.get(addr);
    if (d && idx === undefined) {
      // Not an instruction boundary in a complete decode: the bytes belong to another instruction.
      if (d.complete || (d.fn.insns.length > 0 && d.fn.insns[d.fn.insns.length - 1]!.address > addr)) continue;
      sites.push({ addr, fn, kind: "trap", numbers: [], unknown: ["function does not decode up to this address"] });
      continue;
    }
    if (!d || idx === undefined) {
      sites.push({ addr, fn, kind: "trap", numbers: [], unknown: ["not inside a decodable function"] });
      continue;
    }
    const ins = d.fn.insns[idx]!;
    if (arch === "x86_64" ? ins.mnemonic !== "syscall" : !(ins.mnemonic === "svc" && /^#0(x0)?$/.test(ins.opStr))) continue;
    let c = collect(valuesAt(d.fn, idx, NUMBER_REG[arch], external));
    if (c.unknown.some((u) => u.endsWith("at function entry"))) {
      // glibc starts __restore_rt's unwind entry one byte early (so unwinders find the signal
      // frame); decoding from that byte runs through the number's setup. Retry from the
      // function before, and keep that answer when it resolves the site.
      const prev = functions[fnIndex(fn) - 1];
      const off = prev !== undefined ? addrToOffset(elf, prev) : undefined;
      if (prev !== undefined && off !== undefined && addr - prev < 65536) {
        const r = dis.decode(arch, buf.subarray(off, off + (addr + 16 - prev)), prev);
        decodedBytes += addr + 16 - prev;
        const f2 = indexFunction(arch, r.insns);
        const i2 = f2.indexOf.get(addr);
        if (i2 !== undefined) {
          const c2 = collect(valuesAt(f2, i2, NUMBER_REG[arch], external));
          if (c2.unknown.length === 0 && c2.args.length === 0) c = c2;
        }
      }
    }
    addWrapper(fn, c.args, 0, c.unknown);
    sites.push({ addr, fn, kind: "trap", numbers: c.numbers, unknown: c.unknown });
  }

  // Callers of wrappers: local wrappers by address, imported ones by PLT entry; then one level up.
  const importedWrapperPlt = new Map<number, { name: string; arg: number }>();
  for (const [a, name] of pltNames) if (IMPORT_WRAPPERS[name] !== undefined) importedWrapperPlt.set(a, { name, arg: IMPORT_WRAPPERS[name]! });
  let frontier = new Map<number, { name: string; arg: number; imported: boolean }>();
  for (const [a, w] of importedWrapperPlt) frontier.set(a, { ...w, imported: true });
  for (const w of wrappers.values()) frontier.set(w.fn, { name: nameOf(w.fn), arg: w.arg, imported: false });
  for (let level = 1; level <= WRAPPER_LEVELS && frontier.size > 0; level++) {
    const next = new Map<number, { name: string; arg: number; imported: boolean }>();
    for (const callSite of findDirectBranchesTo(buf, execs, arch, frontier)) {
      const target = frontier.get(callSite.target)!;
      const fn = fnOf(callSite.addr);
      if (fn === callSite.target) continue;
      const d = decodeFn(fn);
      const idx = d?.fn.indexOf.get(callSite.addr);
      if (!d || idx === undefined) continue; // not an instruction boundary: not a call
      const cf = controlFlow(arch, d.fn.insns[idx]!);
      if (cf.target !== callSite.target || (cf.flow !== "call" && cf.flow !== "jump" && cf.flow !== "cond")) continue;
      const c = collect(valuesAt(d.fn, idx, ARG_REGS[arch][target.arg]!, external));
      if (!target.imported) {
        const w = wrappers.get(callSite.target);
        if (w) wrappers.set(w.fn, { ...w, callers: w.callers + 1 });
      }
      if (c.args.length > 0 && !wrappers.has(fn)) {
        addWrapper(fn, c.args, level, c.unknown);
        const w = wrappers.get(fn);
        if (w) next.set(fn, { name: nameOf(fn), arg: w.arg, imported: false });
      }
      if (c.args.length > 0 && level === WRAPPER_LEVELS) c.unknown.push(`wrapper of a wrapper deeper than ${WRAPPER_LEVELS} levels`);
      sites.push({ addr: callSite.addr, fn, kind: "wrapper-call", callee: target.name, imported: target.imported, numbers: c.numbers, unknown: c.unknown });
    }
    frontier = next;
  }

  return {
    version: SCAN_VERSION,
    arch,
    ...(dyn.soname ? { soname: dyn.soname } : {}),
    needed: dyn.needed,
    runpath: dyn.runpath,
    rpath: dyn.rpath,
    functions,
    names: [...names],
    exports: [...exports],
    localEdges: [...localEdges].map((e) => e.split(",").map(Number) as [number, number]),
    importEdges: [...importEdges].map((e) => {
      const i = e.indexOf(",");
      return [Number(e.slice(0, i)), e.slice(i + 1)] as [number, string];
    }),
    sites,
    wrappers: [...wrappers.values()].map(({ level: _l, ...w }) => w),
    stats: { codeBytes, decodedBytes, candidates: candidates.length },
  };
}

/** Direct call/jump encodings (rel32 call/jmp/jcc; BL/B) whose target is one of `targets`. */
function findDirectBranchesTo(buf: Buffer, execs: Section[], arch: Arch, targets: ReadonlyMap<number, unknown>): Array<{ addr: number; target: number }> {
  const out: Array<{ addr: number; target: number }> = [];
  for (const sec of execs) {
    if (/^\.plt/.test(sec.name)) continue;
    const base = sec.offset;
    const end = sec.offset + sec.size;
    if (arch === "x86_64") {
      for (let p = base; p + 5 <= end; p++) {
        const b0 = buf[p]!;
        if (b0 === 0xe8 || b0 === 0xe9) {
          const a = sec.addr + (p - base);
          const t = a + 5 + buf.readInt32LE(p + 1);
          if (targets.has(t)) out.push({ addr: a, target: t });
        } else if (b0 === 0x0f && p + 6 <= end && buf[p + 1]! >= 0x80 && buf[p + 1]! <= 0x8f) {
          const a = sec.addr + (p - base);
          const t = a + 6 + buf.readInt32LE(p + 2);
          if (targets.has(t)) out.push({ addr: a, target: t });
        }
      }
    } else {
      for (let p = base + ((4 - (sec.addr % 4)) % 4); p + 4 <= end; p += 4) {
        const w = buf.readUInt32LE(p);
        if ((w & 0x7c000000) !== 0x14000000) continue;
        const a = sec.addr + (p - base);
        let imm = w & 0x3ffffff;
        if (imm & 0x2000000) imm -= 0x4000000;
        const t = a + imm * 4;
        if (targets.has(t)) out.push({ addr: a, target: t });
      }
    }
  }
  return out;
}

/** Addresses of direct jumps (not calls) whose target is `target`: rel8/rel32 jmp and jcc; B, B.cond, CBZ/CBNZ, TBZ/TBNZ. */
export function findJumpsTo(buf: Buffer, execs: Section[], arch: Arch, target: number): number[] {
  const out: number[] = [];
  for (const sec of execs) {
    if (/^\.plt/.test(sec.name)) continue;
    const base = sec.offset;
    const end = sec.offset + sec.size;
    if (arch === "x86_64") {
      for (let p = base; p + 2 <= end; p++) {
        const a = sec.addr + (p - base);
        const b0 = buf[p]!;
        if (b0 === 0xe9 && p + 5 <= end && a + 5 + buf.readInt32LE(p + 1) === target) out.push(a);
        else if (b0 === 0x0f && p + 6 <= end && buf[p + 1]! >= 0x80 && buf[p + 1]! <= 0x8f && a + 6 + buf.readInt32LE(p + 2) === target) out.push(a);
        else if ((b0 === 0xeb || (b0 >= 0x70 && b0 <= 0x7f)) && a + 2 + buf.readInt8(p + 1) === target) out.push(a);
      }
    } else {
      for (let p = base + ((4 - (sec.addr % 4)) % 4); p + 4 <= end; p += 4) {
        const w = buf.readUInt32LE(p);
        const a = sec.addr + (p - base);
        let off: number | undefined;
        if ((w & 0xfc000000) === 0x14000000) off = ((w & 0x3ffffff) << 6) >> 6; // B
        else if ((w & 0xff000010) === 0x54000000 || (w & 0x7e000000) === 0x34000000) off = ((w >>> 5) & 0x7ffff) << 13 >> 13; // B.cond, CBZ/CBNZ
        else if ((w & 0x7e000000) === 0x36000000) off = ((w >>> 5) & 0x3fff) << 18 >> 18; // TBZ/TBNZ
        if (off !== undefined && a + off * 4 === target) out.push(a);
      }
    }
  }
  return out;
}

export type { Elf };
