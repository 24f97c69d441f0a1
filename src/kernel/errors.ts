// The Error type every failing call in src/kernel throws. Pure: no FFI.

import { errnoMessage, errnoName } from "../syscalls/errno.js";
import { PgSeccompError } from "../errors.js";

/** A system call (or libc wrapper) failed with `errno`. `code` is the errno name ("EINVAL"). */
export class KernelError extends PgSeccompError {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;

  constructor(syscall: string, errno: number, detail?: string) {
    const name = errnoName(errno);
    super("runtime", `${syscall} failed: ${name} (${errnoMessage(errno)})${detail ? `: ${detail}` : ""}`);
    this.name = "KernelError";
    this.errno = errno;
    this.code = name;
    this.syscall = syscall;
  }
}

/** Thrown when the FFI layer or a libc symbol is missing on this machine. */
export class KernelUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KernelUnavailableError";
  }
}
