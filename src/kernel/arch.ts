// The host architecture as seccomp sees it: the AUDIT_ARCH_* value a filter must check and the
// syscall numbers this folder and its tests call directly, looked up in src/syscalls' tables.

import { AUDIT_ARCH } from "../seccomp/index.js";
import { hostArch as hostArchName, syscallNumber, type Arch } from "../syscalls/index.js";

export type KernelArchName = Arch;

const NEEDED = [
  "read", "write", "close", "ioctl", "getpid", "getppid", "getuid", "gettid", "kill", "tgkill", "prctl",
  "seccomp", "execve", "exit", "exit_group", "rt_sigreturn", "futex", "mmap", "munmap", "madvise", "mprotect",
  "pidfd_open", "pidfd_getfd",
] as const;

/** Syscall numbers used by src/kernel and the kernel probes. */
export type KernelSyscallNumbers = Record<(typeof NEEDED)[number], number>;

export interface KernelArch {
  name: KernelArchName;
  /** AUDIT_ARCH_* value seccomp_data.arch carries for native syscalls. */
  auditArch: number;
  nr: Readonly<KernelSyscallNumbers>;
}

function build(name: Arch): KernelArch {
  const nr = Object.fromEntries(NEEDED.map((n) => [n, syscallNumber(name, n)!])) as KernelSyscallNumbers;
  return Object.freeze({ name, auditArch: AUDIT_ARCH[name], nr: Object.freeze(nr) });
}

const cache = new Map<Arch, KernelArch>();

/** The KernelArch for a Node `process.arch` value, or undefined when unsupported. */
export function kernelArchFor(nodeArch: string): KernelArch | undefined {
  let name: Arch;
  try {
    name = hostArchName(nodeArch);
  } catch {
    return undefined;
  }
  if (!cache.has(name)) cache.set(name, build(name));
  return cache.get(name);
}

/** The running machine's KernelArch; throws on an architecture this project does not support. */
export function hostKernelArch(): KernelArch {
  const a = kernelArchFor(process.arch);
  if (!a) throw new Error(`unsupported architecture ${process.arch}: seccomp support covers x86_64 and aarch64 only`);
  return a;
}
