// Classic BPF as seccomp uses it: the instruction record and the opcodes. The seccomp ABI (return
// values, AUDIT_ARCH, seccomp_data) is in src/seccomp. Pure data; nothing here touches the kernel.

import { PgSeccompError } from "../errors.js";

/** One `struct sock_filter`: 16-bit code, 8-bit jt/jf, 32-bit k (unsigned). */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Instruction classes and fields (linux/bpf_common.h).
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_MISC = 0x07;

export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;

export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MEM = 0x60;
export const BPF_LEN = 0x80;
export const BPF_MSH = 0xa0;

export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;

export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;

export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_A = 0x10;

export const BPF_TAX = 0x00;
export const BPF_TXA = 0x80;

/** Scratch memory slots (M[0..15]). */
export const BPF_MEMWORDS = 16;
/** The kernel's limit on a filter's length (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

export function stmt(code: number, k: number): Insn {
  return { code, jt: 0, jf: 0, k: k >>> 0 };
}

export function jump(code: number, k: number, jt: number, jf: number): Insn {
  return { code, jt, jf, k: k >>> 0 };
}

/** The 8-byte little-endian `struct sock_filter` encoding of a program. */
export function encodeProgram(prog: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((ins, i) => {
    buf.writeUInt16LE(ins.code, i * 8);
    buf.writeUInt8(ins.jt, i * 8 + 2);
    buf.writeUInt8(ins.jf, i * 8 + 3);
    buf.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return buf;
}

/** Inverse of encodeProgram; throws on a length that is not a multiple of 8. */
export function decodeProgram(buf: Uint8Array): Insn[] {
  if (buf.length % 8 !== 0) {
    throw new PgSeccompError("input", `a BPF program is a sequence of 8-byte records; got ${buf.length} bytes, which is not a multiple of 8`);
  }
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const prog: Insn[] = [];
  for (let off = 0; off < view.length; off += 8) {
    prog.push({
      code: view.readUInt16LE(off),
      jt: view.readUInt8(off + 2),
      jf: view.readUInt8(off + 3),
      k: view.readUInt32LE(off + 4),
    });
  }
  return prog;
}
