// Public surface of the kernel layer. Importing this loads nothing native: koffi and libc are
// bound on first use, so a pure consumer can import types and constants on any platform.

export * from "../syscalls/errno.js";
export * from "./errors.js";
export * from "./arch.js";
export {
  addressOf,
  clearSignalMask,
  close,
  execve,
  exitGroup,
  getCloexec,
  ioctlFunction,
  ioctlRaw,
  lastErrno,
  libcAvailable,
  pidfdGetFd,
  pidfdOpen,
  prctl,
  prepareForExec,
  rawSyscall,
  resetSignalToDefault,
  setCloexec,
  setErrno,
  socketPeerPid,
  syscall6,
  u64,
  write,
  type ExecveOptions,
  type RawSyscall,
} from "./libc.js";
export * from "./seccomp.js";
export * from "./notify.js";
export * from "./signals.js";
export * from "./process.js";
export * from "./ptrace.js";
export { AT_FDCWD, AT_REMOVEDIR, O_CLOEXEC, mkdirat, openat, renameat, unlinkat } from "./fs.js";
export { openAuditReadLog, readAuditRecords, parseNetlinkMessages, closeAuditReadLog, type AuditNetlinkRecord } from "./audit-netlink.js";
export { openProcEvents, readForkEvents, parseForkEvents, closeProcEvents, type ForkEvent } from "./proc-events.js";
export { connectUnixStream, socketPeerCredentials } from "./unix-stream.js";
export * from "./features.js";
