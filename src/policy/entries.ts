// The entries of a syscall list: `read`, `@mount`, `*`, `clone3:ENOSYS`,
// `socket(arg0 == 1)`, `clone(arg0 & 0x7e020000 != 0):EPERM`. Conditions on one entry are
// ANDed (`,` or `&&` between them); several entries for one syscall in one list are ORed.

import { PolicyError, type SourceLoc } from "./errors.js";
import { parseErrno } from "./actions.js";

export type CondOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "masked_eq" | "masked_ne";

/** A condition on one 64-bit (or, with width 32, the low 32 bits of one) syscall argument. */
export interface ArgCondition {
  arg: number; // 0..5
  op: CondOp;
  value: bigint; // unsigned, within the width
  mask?: bigint; // for masked_eq and masked_ne
  width: 32 | 64;
}

export interface ListEntry {
  /** The entry as written, for messages. */
  text: string;
  kind: "syscall" | "group" | "inherit";
  /** The syscall name, or the group name with its @. */
  name: string;
  errno?: number;
  conditions: ArgCondition[];
  loc: SourceLoc;
}

const OPS: Record<string, CondOp> = { "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge" };
export const OP_TEXT: Record<CondOp, string> = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=", masked_eq: "==", masked_ne: "!=" };

/**
 * Arguments the kernel declares as 32-bit (int, unsigned int, umode_t, pid_t): a condition on
 * them compares only the low 32 bits, because the upper half of the register is whatever the
 * caller left there (a negative int may arrive sign-extended or not). `argN:64` overrides.
 */
const INT_ARGS: Record<string, readonly number[]> = {
  socket: [0, 1, 2], socketpair: [0, 1, 2], setsockopt: [0, 1, 2, 4], getsockopt: [0, 1, 2],
  bind: [0, 2], connect: [0, 2], listen: [0, 1], accept4: [0, 3], shutdown: [0, 1],
  sendto: [0, 3, 5], recvfrom: [0, 3], sendmsg: [0, 2], recvmsg: [0, 2],
  kill: [0, 1], tkill: [0, 1], tgkill: [0, 1, 2], wait4: [0, 2], waitid: [0, 1, 3],
  ioctl: [0, 1], fcntl: [0, 1], prctl: [0], personality: [0],
  mmap: [2, 3, 4], mprotect: [2], madvise: [2], pkey_mprotect: [2, 3], mlock2: [2],
  open: [1, 2], openat: [0, 2, 3], creat: [1], close: [0], dup: [0], dup2: [0, 1], dup3: [0, 1, 2],
  chmod: [1], fchmod: [0, 1], fchmodat: [0, 2], mkdir: [1], mkdirat: [0, 2], mknod: [1, 2], mknodat: [0, 2, 3],
  setuid: [0], setgid: [0], setreuid: [0, 1], setregid: [0, 1], setresuid: [0, 1, 2], setresgid: [0, 1, 2],
  setfsuid: [0], setfsgid: [0], setns: [0, 1], umount2: [1], futex: [1, 2], bpf: [0, 2], keyctl: [0],
  shmget: [2], shmat: [0, 2], shmctl: [0, 1], semget: [1, 2], semctl: [0, 1, 2], msgget: [1],
  epoll_create1: [0], epoll_ctl: [0, 1, 2], eventfd2: [0, 1], pipe2: [1], inotify_init1: [0],
  memfd_create: [1], seccomp: [0, 1], getrandom: [2], fadvise64: [0, 3], fallocate: [0, 1],
  flock: [0, 1], fsync: [0], fdatasync: [0], ftruncate: [0], lseek: [0, 2], read: [0], write: [0],
  pread64: [0], pwrite64: [0], faccessat: [0, 2], faccessat2: [0, 2, 3], unlinkat: [0, 2], renameat2: [0, 2, 4],
  sched_setscheduler: [0, 1], setpriority: [0, 1, 2], getpriority: [0, 1], ptrace: [1], clock_gettime: [0],
};

export function argWidth(syscall: string, arg: number): 32 | 64 {
  return INT_ARGS[syscall]?.includes(arg) ? 32 : 64;
}

/** Splits a list at commas that are not inside parentheses; keeps each part's offset. */
/**
 * Caps that keep absurd input from costing minutes or the stack: far above any real policy (an
 * arch has about 460 syscalls; a program holds at most 4096 instructions, and every argument
 * condition takes at least one), so a policy past them could not be installed anyway.
 */
export const MAX_LIST_ENTRIES = 4096;
export const MAX_ENTRY_CONDITIONS = 64;

function splitTopLevel(text: string, loc: SourceLoc): Array<{ part: string; offset: number }> {
  const parts: Array<{ part: string; offset: number }> = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") {
      depth--;
      if (depth < 0) throw new PolicyError(shift(loc, i), `unbalanced ")"`, "remove it or add the matching (");
    } else if ((c === "," && depth === 0) || i === text.length) {
      if (i === text.length && depth > 0) throw new PolicyError(shift(loc, start), `missing ")"`, "close the argument conditions with )");
      if (parts.length === MAX_LIST_ENTRIES) {
        throw new PolicyError(
          shift(loc, start),
          `the list has more than ${MAX_LIST_ENTRIES} entries`,
          "a filter program holds at most 4096 instructions: name each syscall once, use @groups, and let the default action decide the rest",
        );
      }
      parts.push({ part: text.slice(start, i), offset: start });
      start = i + 1;
    }
  }
  return parts;
}

export function shift(loc: SourceLoc, by: number): SourceLoc {
  return { ...loc, column: loc.column + by };
}

const ENTRY_RE = /^(@?[A-Za-z_][A-Za-z0-9_-]*|\*)\s*(?:\((.*)\))?\s*(?::\s*([A-Za-z0-9_]+))?$/s;

/** Parses one list value; an empty or blank string is the empty list. */
export function parseList(value: string, loc: SourceLoc): ListEntry[] {
  if (value.trim() === "") return [];
  const entries: ListEntry[] = [];
  for (const { part, offset } of splitTopLevel(value, loc)) {
    const lead = part.length - part.trimStart().length;
    const text = part.trim();
    const at = shift(loc, offset + lead);
    if (text === "") {
      throw new PolicyError(at, "empty entry in the list (two commas in a row, or a trailing comma)", "remove the extra comma");
    }
    // A double-quoted syscall name, as PostgreSQL's SplitIdentifierString (pgseccomp's list
    // reader) reads it: the quotes go and the case stays ('"close"' is close, '"Close"' unknown).
    const quoted = /^"([A-Za-z0-9_]+)"$/.exec(text);
    if (quoted) {
      entries.push({ text, kind: "syscall", name: quoted[1]!, conditions: [], loc: at });
      continue;
    }
    const m = ENTRY_RE.exec(text);
    if (!m) {
      throw new PolicyError(at, `cannot read list entry "${text}"`, "entries are a syscall name, @group, or *, optionally with (argN == value) conditions and :ERRNO");
    }
    const [, name, condText, errnoText] = m;
    const kind = name === "*" ? "inherit" : name!.startsWith("@") ? "group" : "syscall";
    if (kind !== "syscall" && condText !== undefined) {
      throw new PolicyError(at, `argument conditions apply to a single syscall, not to "${name}"`, "name the syscall the condition is about");
    }
    if (kind === "inherit" && errnoText !== undefined) {
      throw new PolicyError(at, `"*" takes no errno`, "write '*' alone");
    }
    const entry: ListEntry = { text, kind, name: kind === "syscall" ? name!.toLowerCase() : name!, conditions: [], loc: at };
    if (errnoText !== undefined) entry.errno = parseErrno(errnoText, at);
    if (condText !== undefined) {
      const condOffset = offset + lead + text.indexOf("(") + 1;
      entry.conditions = parseConditions(entry.name, condText, shift(loc, condOffset));
    }
    entries.push(entry);
  }
  return entries;
}

const COND_RE = /^arg([0-9]+)(?::(32|64))?\s*(?:&\s*([^=!<>\s]+)\s*)?(==|!=|<=|>=|<|>)\s*(\S+)$/;

function parseConditions(syscall: string, text: string, loc: SourceLoc): ArgCondition[] {
  const conds: ArgCondition[] = [];
  let offset = 0;
  const raws = text.split(/,|&&/);
  if (raws.length > MAX_ENTRY_CONDITIONS) {
    throw new PolicyError(loc, `"${syscall}" has ${raws.length} argument conditions; at most ${MAX_ENTRY_CONDITIONS} are accepted in one entry`, "a syscall has six arguments: combine the tests on one argument (a range argN >= a, argN <= b, or argN & mask == value)");
  }
  for (const raw of raws) {
    const lead = raw.length - raw.trimStart().length;
    const c = raw.trim();
    const at = shift(loc, offset + lead);
    offset += raw.length + (text.slice(offset + raw.length, offset + raw.length + 2) === "&&" ? 2 : 1);
    const m = COND_RE.exec(c);
    if (!m) {
      throw new PolicyError(at, `cannot read argument condition "${c}"`, "write argN OP value (OP one of == != < <= > >=) or argN & mask == value, N from 0 to 5");
    }
    const [, argText, widthText, maskText, opText, valueText] = m;
    const arg = Number(argText);
    if (arg > 5) throw new PolicyError(at, `syscalls have arguments arg0 to arg5, not arg${arg}`, "use an argument index from 0 to 5");
    const width = widthText ? (Number(widthText) as 32 | 64) : argWidth(syscall, arg);
    const value = parseValue(valueText!, width, at);
    if (maskText !== undefined) {
      if (opText !== "==" && opText !== "!=") throw new PolicyError(at, `a masked condition compares with == or !=, not ${opText}`, "write argN & mask == value (or != value)");
      const mask = parseValue(maskText, width, at);
      if ((value & ~mask) !== 0n) {
        throw new PolicyError(at, `"${c}" is ${opText === "==" ? "never" : "always"} true: the value has bits outside the mask`, "make the value a subset of the mask");
      }
      conds.push({ arg, op: opText === "==" ? "masked_eq" : "masked_ne", value, mask, width });
    } else {
      conds.push({ arg, op: OPS[opText!]!, value, width });
    }
  }
  return conds;
}

/** Decimal, 0x hex, 0o octal or 0b binary; a negative number is two's complement in the width. */
export function parseValue(text: string, width: 32 | 64, loc: SourceLoc): bigint {
  const neg = text.startsWith("-");
  const body = neg ? text.slice(1) : text;
  if (!/^(0x[0-9a-f]+|0o[0-7]+|0b[01]+|[0-9]+)$/i.test(body)) {
    throw new PolicyError(loc, `"${text}" is not a number`, "write a decimal, 0x hex, 0o octal or 0b binary number");
  }
  let v = BigInt(body.toLowerCase());
  const limit = 1n << BigInt(width);
  if (neg) {
    if (v > limit / 2n) throw new PolicyError(loc, `${text} does not fit in a ${width}-bit argument`, "use a smaller value");
    v = (limit - v) % limit;
  }
  if (v >= limit) {
    throw new PolicyError(loc, `${text} does not fit in a ${width}-bit argument`, width === 32 ? "this argument is a 32-bit int in the kernel; write argN:64 to compare all 64 bits" : "use a value below 2^64");
  }
  return v;
}

export function formatCondition(c: ArgCondition): string {
  const hex = (v: bigint) => (v > 9n ? "0x" + v.toString(16) : v.toString());
  const arg = `arg${c.arg}`;
  return c.mask !== undefined ? `${arg} & ${hex(c.mask)} ${OP_TEXT[c.op]} ${hex(c.value)}` : `${arg} ${OP_TEXT[c.op]} ${hex(c.value)}`;
}
