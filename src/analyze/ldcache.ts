// /etc/ld.so.cache, the table the dynamic loader consults for a DT_NEEDED name before the
// standard directories. Pure parser of glibc's "glibc-ld.so.cache1.1" format (also when it
// follows the old "ld.so-1.7.0" table, as caches written by older ldconfig do).

import type { Arch } from "../syscalls/index.js";

export interface LdCacheEntry {
  readonly name: string;
  readonly path: string;
  readonly arch: Arch | "other";
}

const OLD_MAGIC = "ld.so-1.7.0";
const NEW_MAGIC = "glibc-ld.so.cache1.1";
const FLAG_ELF_LIBC6 = 0x0003;
const FLAG_X8664_LIB64 = 0x0300;
const FLAG_AARCH64_LIB64 = 0x0a00;

export class LdCacheError extends Error {}

export function parseLdCache(buf: Buffer): LdCacheEntry[] {
  let base = 0;
  if (buf.toString("latin1", 0, OLD_MAGIC.length) === OLD_MAGIC) {
    // Old header: magic[11] + pad to 12, nlibs u32; entries of 3 × i32. The new table follows, 8-aligned.
    const nOld = buf.readUInt32LE(12);
    base = 16 + nOld * 12;
    base = (base + 7) & ~7;
  }
  if (buf.length < base + 48 || buf.toString("latin1", base, base + NEW_MAGIC.length) !== NEW_MAGIC) {
    throw new LdCacheError(`not a ${NEW_MAGIC} file`);
  }
  const nlibs = buf.readUInt32LE(base + 20);
  const entriesStart = base + 48;
  if (entriesStart + nlibs * 24 > buf.length) throw new LdCacheError("truncated entry table");
  const str = (off: number) => {
    // String offsets of the new format are relative to the start of the new header.
    const o = base + off;
    if (o < 0 || o >= buf.length) return "";
    const e = buf.indexOf(0, o);
    return buf.toString("latin1", o, e < 0 ? buf.length : e);
  };
  const out: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const o = entriesStart + i * 24;
    const flags = buf.readInt32LE(o);
    if ((flags & 0xff) !== FLAG_ELF_LIBC6) continue;
    const archFlag = flags & 0xff00;
    const arch = archFlag === FLAG_X8664_LIB64 ? "x86_64" : archFlag === FLAG_AARCH64_LIB64 ? "aarch64" : "other";
    out.push({ name: str(buf.readUInt32LE(o + 4)), path: str(buf.readUInt32LE(o + 8)), arch });
  }
  return out;
}

/** The lines of `ldconfig -p` ("\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1"). */
export function parseLdconfigP(text: string): LdCacheEntry[] {
  const out: LdCacheEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s+(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    const tags = m[2]!;
    const arch = tags.includes("x86-64") ? "x86_64" : tags.includes("AArch64") ? "aarch64" : "other";
    out.push({ name: m[1]!, path: m[3]!, arch });
  }
  return out;
}
