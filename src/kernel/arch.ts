// The host architecture as seccomp sees it: the AUDIT_ARCH_* value a filter must check and the
// handful of syscall numbers this folder and its tests need. Pure data, no FFI.

import { AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64 } from "../bpf/insn.js";

export type KernelArchName = "x86_64" | "aarch64";

/** Syscall numbers used by src/kernel and the kernel probes (not a general table). */
export interface KernelSyscallNumbers {
  read: number;
  write: number;
  close: number;
  ioctl: number;
  getpid: number;
  getppid: number;
  getuid: number;
  gettid: number;
  kill: number;
  tgkill: number;
  prctl: number;
  seccomp: number;
  execve: number;
  exit: number;
  exit_group: number;
  rt_sigreturn: number;
  futex: number;
  mmap: number;
  munmap: number;
  madvise: number;
  mprotect: number;
  pidfd_open: number;
  pidfd_getfd: number;
}

export interface KernelArch {
  name: KernelArchName;
  /** AUDIT_ARCH_* value seccomp_data.arch carries for native syscalls. */
  auditArch: number;
  nr: Readonly<KernelSyscallNumbers>;
}

const X86_64: KernelArch = Object.freeze({
  name: "x86_64",
  auditArch: AUDIT_ARCH_X86_64,
  nr: Object.freeze({
    read: 0,
    write: 1,
    close: 3,
    mmap: 9,
    mprotect: 10,
    munmap: 11,
    rt_sigreturn: 15,
    ioctl: 16,
    madvise: 28,
    getpid: 39,
    execve: 59,
    exit: 60,
    kill: 62,
    getuid: 102,
    getppid: 110,
    prctl: 157,
    gettid: 186,
    futex: 202,
    exit_group: 231,
    tgkill: 234,
    seccomp: 317,
    pidfd_open: 434,
    pidfd_getfd: 438,
  }),
});

const AARCH64: KernelArch = Object.freeze({
  name: "aarch64",
  auditArch: AUDIT_ARCH_AARCH64,
  nr: Object.freeze({
    ioctl: 29,
    close: 57,
    read: 63,
    write: 64,
    exit: 93,
    exit_group: 94,
    futex: 98,
    kill: 129,
    tgkill: 131,
    rt_sigreturn: 139,
    prctl: 167,
    getpid: 172,
    getppid: 173,
    getuid: 174,
    gettid: 178,
    munmap: 215,
    execve: 221,
    mmap: 222,
    mprotect: 226,
    madvise: 233,
    seccomp: 277,
    pidfd_open: 434,
    pidfd_getfd: 438,
  }),
});

/** The KernelArch for a Node `process.arch` value, or undefined when unsupported. */
export function kernelArchFor(nodeArch: string): KernelArch | undefined {
  if (nodeArch === "x64") return X86_64;
  if (nodeArch === "arm64") return AARCH64;
  return undefined;
}

/** The running machine's KernelArch; throws on an architecture this project does not support. */
export function hostArch(): KernelArch {
  const a = kernelArchFor(process.arch);
  if (!a) {
    throw new Error(`unsupported architecture ${process.arch}: seccomp support covers x86_64 and aarch64 only`);
  }
  return a;
}
