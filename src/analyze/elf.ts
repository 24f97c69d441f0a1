// A reader for 64-bit little-endian ELF files (x86_64 and aarch64): sections, symbols,
// relocations, the dynamic section and .eh_frame_hdr's function table. Pure: works on a Buffer.
// Every offset read from the file is bounds-checked; a malformed file raises ElfError.

import type { Arch } from "../syscalls/index.js";

export class ElfError extends Error {}

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

export const SHF_EXECINSTR = 0x4;
const SHT_SYMTAB = 2;
const SHT_RELA = 4;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;

export interface Section {
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly entsize: number;
}

export interface ElfSymbol {
  readonly name: string;
  readonly value: number;
  readonly size: number;
  readonly type: number;
  readonly bind: number;
  /** 0 = undefined (an import). */
  readonly shndx: number;
  readonly isFunc: boolean;
}

export interface Relocation {
  /** Address the relocation patches (r_offset). */
  readonly offset: number;
  readonly type: number;
  /** Symbol name (from the section's linked symbol table), "" for none. */
  readonly symbol: string;
  readonly addend: number;
}

export interface DynamicInfo {
  readonly needed: string[];
  readonly runpath: string[];
  readonly rpath: string[];
  readonly soname?: string;
}

export interface Elf {
  readonly buf: Buffer;
  readonly arch: Arch;
  readonly type: number;
  readonly entry: number;
  readonly sections: Section[];
}

function u16(b: Buffer, o: number): number {
  return b.readUInt16LE(o);
}
function u32(b: Buffer, o: number): number {
  return b.readUInt32LE(o);
}
/** 64-bit fields as numbers: addresses of user-space ELF files fit in 2^53. */
function u64(b: Buffer, o: number): number {
  return Number(b.readBigUInt64LE(o));
}
function i64(b: Buffer, o: number): number {
  return Number(b.readBigInt64LE(o));
}

function cstring(b: Buffer, o: number, end: number): string {
  if (o < 0 || o >= end) return "";
  let e = o;
  while (e < end && b[e] !== 0) e++;
  return b.toString("latin1", o, e);
}

export function archOfMachine(machine: number): Arch | undefined {
  return machine === EM_X86_64 ? "x86_64" : machine === EM_AARCH64 ? "aarch64" : undefined;
}

/** Reads the identification and header; returns undefined (with the reason) when not an ELF we handle. */
export function elfHeaderArch(buf: Buffer): { arch: Arch } | { error: string } {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) return { error: "not an ELF file" };
  if (buf[4] !== 2) return { error: "not a 64-bit ELF file" };
  if (buf[5] !== 1) return { error: "not a little-endian ELF file" };
  const arch = archOfMachine(u16(buf, 18));
  if (!arch) return { error: `ELF machine ${u16(buf, 18)} is neither x86_64 nor aarch64` };
  return { arch };
}

export function parseElf(buf: Buffer): Elf {
  const h = elfHeaderArch(buf);
  if ("error" in h) throw new ElfError(h.error);
  const type = u16(buf, 16);
  const entry = u64(buf, 24);
  const shoff = u64(buf, 40);
  const shentsize = u16(buf, 58);
  const shnum = u16(buf, 60);
  const shstrndx = u16(buf, 62);
  if (shnum === 0) throw new ElfError("no section headers (the file is stripped of them)");
  if (shentsize < 64 || shoff + shnum * shentsize > buf.length) throw new ElfError("section header table is out of the file");
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    raw.push({
      nameOff: u32(buf, o),
      type: u32(buf, o + 4),
      flags: u64(buf, o + 8),
      addr: u64(buf, o + 16),
      offset: u64(buf, o + 24),
      size: u64(buf, o + 32),
      link: u32(buf, o + 40),
      entsize: u64(buf, o + 56),
    });
  }
  const strtab = raw[shstrndx];
  const sections: Section[] = raw.map((s) => {
    const name = strtab ? cstring(buf, strtab.offset + s.nameOff, Math.min(buf.length, strtab.offset + strtab.size)) : "";
    // SHT_NOBITS (8) has no bytes in the file; others must lie inside it.
    if (s.type !== 8 && s.type !== 0 && s.offset + s.size > buf.length) throw new ElfError(`section ${name} is out of the file`);
    return { name, type: s.type, flags: s.flags, addr: s.addr, offset: s.offset, size: s.size, link: s.link, entsize: s.entsize };
  });
  return { buf, arch: h.arch, type, entry, sections };
}

export function section(elf: Elf, name: string): Section | undefined {
  return elf.sections.find((s) => s.name === name);
}

export function execSections(elf: Elf): Section[] {
  return elf.sections.filter((s) => (s.flags & SHF_EXECINSTR) !== 0 && s.type !== 8 && s.size > 0);
}

/** File offset of a virtual address, through the section that contains it. */
export function addrToOffset(elf: Elf, addr: number): number | undefined {
  for (const s of elf.sections) {
    if (s.type !== 8 && s.addr !== 0 && addr >= s.addr && addr < s.addr + s.size) return s.offset + (addr - s.addr);
  }
  return undefined;
}

function readSymbols(elf: Elf, sec: Section): ElfSymbol[] {
  const strs = elf.sections[sec.link];
  if (!strs) return [];
  const strEnd = strs.offset + strs.size;
  const out: ElfSymbol[] = [];
  const n = Math.floor(sec.size / 24);
  for (let i = 0; i < n; i++) {
    const o = sec.offset + i * 24;
    const info = elf.buf[o + 4]!;
    const type = info & 0xf;
    out.push({
      name: cstring(elf.buf, strs.offset + u32(elf.buf, o), strEnd),
      value: u64(elf.buf, o + 8),
      size: u64(elf.buf, o + 16),
      type,
      bind: info >> 4,
      shndx: u16(elf.buf, o + 6),
      isFunc: type === STT_FUNC || type === STT_GNU_IFUNC,
    });
  }
  return out;
}

export function dynamicSymbols(elf: Elf): ElfSymbol[] {
  const s = elf.sections.find((x) => x.type === SHT_DYNSYM);
  return s ? readSymbols(elf, s) : [];
}

export function staticSymbols(elf: Elf): ElfSymbol[] {
  const s = elf.sections.find((x) => x.type === SHT_SYMTAB);
  return s ? readSymbols(elf, s) : [];
}

/** Every RELA relocation of the file, with symbol names from the linked symbol table. */
export function relocations(elf: Elf): Relocation[] {
  const out: Relocation[] = [];
  const symCache = new Map<number, ElfSymbol[]>();
  for (const sec of elf.sections) {
    if (sec.type !== SHT_RELA) continue;
    let syms = symCache.get(sec.link);
    if (!syms) {
      const st = elf.sections[sec.link];
      syms = st && (st.type === SHT_DYNSYM || st.type === SHT_SYMTAB) ? readSymbols(elf, st) : [];
      symCache.set(sec.link, syms);
    }
    const n = Math.floor(sec.size / 24);
    for (let i = 0; i < n; i++) {
      const o = sec.offset + i * 24;
      const info = elf.buf.readBigUInt64LE(o + 8);
      const symIndex = Number(info >> 32n);
      out.push({ offset: u64(elf.buf, o), type: Number(info & 0xffffffffn), symbol: syms[symIndex]?.name ?? "", addend: i64(elf.buf, o + 16) });
    }
  }
  return out;
}

const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

export function dynamicInfo(elf: Elf): DynamicInfo {
  const dyn = section(elf, ".dynamic");
  const info: { needed: string[]; runpath: string[]; rpath: string[]; soname?: string } = { needed: [], runpath: [], rpath: [] };
  if (!dyn) return info;
  const entries: Array<[number, number]> = [];
  for (let o = dyn.offset; o + 16 <= dyn.offset + dyn.size; o += 16) {
    const tag = i64(elf.buf, o);
    if (tag === 0) break;
    entries.push([tag, u64(elf.buf, o + 8)]);
  }
  // Strings live in DT_STRTAB (an address); the section linked from .dynamic is the same table.
  const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
  const linked = elf.sections[dyn.link];
  const strOff = strtabAddr !== undefined ? addrToOffset(elf, strtabAddr) ?? linked?.offset : linked?.offset;
  if (strOff === undefined) return info;
  const str = (v: number) => cstring(elf.buf, strOff + v, elf.buf.length);
  for (const [tag, val] of entries) {
    if (tag === DT_NEEDED) info.needed.push(str(val));
    else if (tag === DT_RUNPATH) info.runpath.push(...str(val).split(":").filter((p) => p !== ""));
    else if (tag === DT_RPATH) info.rpath.push(...str(val).split(":").filter((p) => p !== ""));
    else if (tag === DT_SONAME) info.soname = str(val);
  }
  return info;
}

// DWARF pointer encodings used by .eh_frame_hdr.
const DW_EH_PE_omit = 0xff;

function readEncoded(buf: Buffer, o: number, enc: number, sectionAddr: number, sectionOff: number, hdrAddr: number): { value: number; size: number } {
  if (enc === DW_EH_PE_omit) return { value: 0, size: 0 };
  let value: number;
  let size: number;
  switch (enc & 0x0f) {
    case 0x03: value = u32(buf, o); size = 4; break; // udata4
    case 0x0b: value = buf.readInt32LE(o); size = 4; break; // sdata4
    case 0x04: value = u64(buf, o); size = 8; break; // udata8
    case 0x0c: value = i64(buf, o); size = 8; break; // sdata8
    case 0x02: value = u16(buf, o); size = 2; break;
    case 0x0a: value = buf.readInt16LE(o); size = 2; break;
    default: throw new ElfError(`unsupported .eh_frame_hdr pointer encoding 0x${enc.toString(16)}`);
  }
  switch (enc & 0x70) {
    case 0x00: break; // absptr
    case 0x10: value += sectionAddr + (o - sectionOff); break; // pcrel
    case 0x30: value += hdrAddr; break; // datarel: relative to .eh_frame_hdr
    default: throw new ElfError(`unsupported .eh_frame_hdr pointer application 0x${enc.toString(16)}`);
  }
  return { value, size };
}

/**
 * Function start addresses from .eh_frame_hdr's binary-search table: one entry per FDE, so every
 * function with unwind information, including static ones of stripped libraries.
 */
export function ehFrameFunctionStarts(elf: Elf): number[] {
  const hdr = section(elf, ".eh_frame_hdr");
  if (!hdr || hdr.size < 4) return [];
  const b = elf.buf;
  const o = hdr.offset;
  if (b[o] !== 1) return [];
  const ptrEnc = b[o + 1]!;
  const countEnc = b[o + 2]!;
  const tableEnc = b[o + 3]!;
  if (countEnc === DW_EH_PE_omit || tableEnc === DW_EH_PE_omit) return [];
  let p = o + 4;
  p += readEncoded(b, p, ptrEnc, hdr.addr, hdr.offset, hdr.addr).size;
  const count = readEncoded(b, p, countEnc, hdr.addr, hdr.offset, hdr.addr);
  p += count.size;
  const out: number[] = [];
  const end = hdr.offset + hdr.size;
  for (let i = 0; i < count.value && p < end; i++) {
    const loc = readEncoded(b, p, tableEnc, hdr.addr, hdr.offset, hdr.addr);
    p += loc.size;
    p += readEncoded(b, p, tableEnc, hdr.addr, hdr.offset, hdr.addr).size;
    out.push(loc.value);
  }
  return out;
}
