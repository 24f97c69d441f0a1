// AUDIT_ARCH_* values (linux/audit.h): what seccomp_data.arch holds, and the architecture tokens
// pg_seccomp's syscall tables use. Pure data; imports nothing.

export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
export const AUDIT_ARCH_AARCH64 = 0xc00000b7;
export const AUDIT_ARCH_ARM = 0x40000028;
/** x32 syscalls arrive with AUDIT_ARCH_X86_64 and this bit set in nr. */
export const X32_SYSCALL_BIT = 0x40000000;

/** The architectures pg_seccomp has syscall tables for, by token (src/syscalls' `Arch`). */
export type SeccompArch = "x86_64" | "aarch64";

/** The AUDIT_ARCH_* value of native syscalls of each supported architecture. */
export const AUDIT_ARCH: Readonly<Record<SeccompArch, number>> = { x86_64: AUDIT_ARCH_X86_64, aarch64: AUDIT_ARCH_AARCH64 };

/** AUDIT_ARCH_* values by name, supported or not (for messages and comments). */
export const AUDIT_ARCH_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [AUDIT_ARCH_X86_64, "x86_64"],
  [AUDIT_ARCH_I386, "i386"],
  [AUDIT_ARCH_AARCH64, "aarch64"],
  [AUDIT_ARCH_ARM, "arm"],
  [0x80000015, "ppc64"],
  [0xc0000015, "ppc64le"],
  [0x80000016, "s390x"],
  [0x00000016, "s390"],
  [0xc00000f3, "riscv64"],
  [0x00000008, "mips"],
  [0x40000008, "mipsel"],
  [0x80000008, "mips64"],
  [0xc0000008, "mips64el"],
  [0xc0000102, "loongarch64"],
]);
