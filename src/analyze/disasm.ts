// Instruction decoding through Capstone (the @alexaltea/capstone-js build of Capstone 5,
// WebAssembly), for x86_64 and aarch64. Only the text form is used (mnemonic, operands): the
// data-flow rules in dataflow.ts read Intel syntax / ARM assembly as Capstone prints it.

import { createRequire } from "node:module";
import type { Arch } from "../syscalls/index.js";

export interface Insn {
  readonly address: number;
  readonly size: number;
  readonly mnemonic: string;
  readonly opStr: string;
}

export interface Disassembler {
  /**
   * Linear sweep of `bytes` located at `address`. Stops early (complete = false) at the first
   * byte sequence Capstone cannot decode: what follows it has no known instruction boundary.
   */
  decode(arch: Arch, bytes: Uint8Array, address: number): { insns: Insn[]; complete: boolean };
}

interface CsInstruction {
  address: bigint;
  size: number;
  mnemonic: string;
  op_str: string;
}
interface CsHandle {
  disasm(buffer: Uint8Array, addr: number | bigint, max?: number): CsInstruction[];
  close(): void;
}
interface CsModule {
  ARCH_X86: number;
  ARCH_ARM64: number;
  MODE_64: number;
  MODE_ARM: number;
  Capstone: new (arch: number, mode: number) => CsHandle;
}

let loaded: Promise<Disassembler> | undefined;

export function loadDisassembler(): Promise<Disassembler> {
  loaded ??= (async () => {
    const require = createRequire(import.meta.url);
    const factory = require("@alexaltea/capstone-js") as () => Promise<CsModule>;
    const cs = await factory();
    const handles: Record<Arch, CsHandle> = {
      x86_64: new cs.Capstone(cs.ARCH_X86, cs.MODE_64),
      aarch64: new cs.Capstone(cs.ARCH_ARM64, cs.MODE_ARM),
    };
    // Capstone copies the input into WebAssembly memory per call; chunks keep that bounded.
    const CHUNK = 64 * 1024;
    return {
      decode(arch, bytes, address) {
        const h = handles[arch];
        const insns: Insn[] = [];
        let off = 0;
        while (off < bytes.length) {
          const end = Math.min(bytes.length, off + CHUNK);
          let got: CsInstruction[];
          try {
            got = h.disasm(bytes.subarray(off, end), BigInt(address + off));
          } catch {
            got = []; // capstone-js throws when not even one instruction decodes
          }
          if (got.length === 0) return { insns, complete: false };
          let consumed = 0;
          for (const g of got) {
            insns.push({ address: Number(g.address), size: g.size, mnemonic: g.mnemonic, opStr: g.op_str });
            consumed += g.size;
          }
          // A short read means an undecodable sequence, unless only an instruction cut by the
          // chunk boundary is missing (then the next chunk starts at it).
          if (off + consumed < end && end === bytes.length) return { insns, complete: false };
          if (off + consumed < end - 16) return { insns, complete: false };
          off += consumed;
        }
        return { insns, complete: true };
      },
    };
  })();
  return loaded;
}
