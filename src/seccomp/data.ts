// `struct seccomp_data` (linux/seccomp.h): what a filter reads. Pure data; imports nothing.

/** `struct seccomp_data` as the emulator and the reference evaluator see it. */
export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer: bigint;
  args: readonly bigint[]; // six unsigned 64-bit values
}

/** Offsets into `struct seccomp_data` (nr, arch, instruction_pointer, args[6]); little-endian. */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_IP = 8;
export const SECCOMP_DATA_ARGS = 16;
export const SECCOMP_DATA_SIZE = 64;

/** Offset of the low (or high) 32-bit half of argument `i` on a little-endian machine. */
export function argOffset(i: number, half: "lo" | "hi"): number {
  return SECCOMP_DATA_ARGS + 8 * i + (half === "hi" ? 4 : 0);
}

/**
 * Name of the 32-bit word of struct seccomp_data at byte `offset` (little-endian layout):
 * nr, arch, ip.lo, ip.hi, args[i].lo, args[i].hi. Undefined for anything else.
 */
export function dataFieldName(offset: number): string | undefined {
  if (!Number.isInteger(offset) || offset < 0 || offset >= SECCOMP_DATA_SIZE || offset % 4 !== 0) return undefined;
  if (offset === SECCOMP_DATA_NR) return "nr";
  if (offset === SECCOMP_DATA_ARCH) return "arch";
  if (offset === SECCOMP_DATA_IP) return "ip.lo";
  if (offset === SECCOMP_DATA_IP + 4) return "ip.hi";
  const rel = offset - SECCOMP_DATA_ARGS;
  return `args[${rel >> 3}].${rel & 4 ? "hi" : "lo"}`;
}
