// Hardening presets: `syscall_harden = 'all'` (or a list of preset names) adds systemd-style
// restrictions (RestrictNamespaces, RestrictAddressFamilies, LockPersonality,
// RestrictSUIDSGID, and a TIOCSTI/TIOCLINUX block) to any policy in one line.
//
// Each preset is written in the policy language itself (an error list with argument
// conditions) and becomes a filter of its own, stacked on top of every context's filters with
// a default of allow. So a preset can only ever make a call more restricted, never less: the
// effective action is the most restrictive of the preset's and the policy's, exactly as for
// any other stacked filter, and `show`, `check`, the compiler and the supervisor see presets
// through the same contextFilters() path as the policy's own lists.

import { PolicyError, type SourceLoc } from "./errors.js";
import { parseList } from "./entries.js";
import type { FilterSpec, Policy, PolicyEntry } from "./model.js";
import { suggestNames } from "../syscalls/index.js";
import { errnoNumber } from "../syscalls/errno.js";

export const PRESET_NAMES = ["namespaces", "address_families", "personality", "suid_sgid", "tiocsti"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

// Constants, identical on x86_64 and aarch64 (asm-generic values; x86_64 uses the same).
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
// Only clone3 and unshare can ask for a time namespace: in clone()'s flags this bit is part of
// the exit-signal byte (CSIGNAL), where no valid signal sets it, so refusing it costs nothing.
const CLONE_NEWTIME = 0x00000080;
const CLONE_PARENT = 0x00008000;
const O_CREAT = 0o100;
const O_TMPFILE_BIT = 0o20000000; // __O_TMPFILE (O_TMPFILE is this | O_DIRECTORY)
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

const NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME;

const hex = (n: number) => "0x" + (n >>> 0).toString(16);
const bitSet = (arg: string, bit: number) => `${arg} & ${hex(bit)} == ${hex(bit)}`;
/** `name(extra, argN & 0xc00 != 0):EPERM`: a set-user-ID or set-group-ID bit in the mode. */
const setIdEntry = (name: string, modeArg: string, extra = "") => `${name}(${extra}${modeArg} & ${hex(S_ISUID | S_ISGID)} != 0):EPERM`;

export interface PresetInfo {
  name: PresetName;
  /** What systemd calls it. */
  systemd: string;
  description: string;
  /** The preset's error list, in the policy language. */
  rules: readonly string[];
  /** Entries whose denial is expected and harmless, so it is not written to the violation log. */
  quiet?: readonly string[];
}

export const PRESETS: Readonly<Record<PresetName, PresetInfo>> = {
  namespaces: {
    name: "namespaces",
    systemd: "RestrictNamespaces=yes",
    description: "no new namespaces: clone without namespace flags or CLONE_PARENT, clone3 ENOSYS (glibc falls back to clone), unshare and setns EPERM",
    rules: [
      `clone(arg0 & ${hex(NAMESPACE_FLAGS | CLONE_PARENT)} != 0):EPERM`,
      "clone3:ENOSYS",
      "unshare:EPERM",
      "setns:EPERM",
    ],
    // glibc tries clone3 first for every thread and posix_spawn (popen, system): its ENOSYS is
    // the designed path, not a violation worth a log line each time.
    quiet: ["clone3:ENOSYS"],
  },
  address_families: {
    name: "address_families",
    systemd: "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    description: "socket only for AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK with NETLINK_ROUTE; other families EAFNOSUPPORT, other netlink protocols EPROTONOSUPPORT",
    rules: [
      "socket(arg0 != 1, arg0 != 2, arg0 != 10, arg0 != 16):EAFNOSUPPORT",
      "socket(arg0 == 16, arg2 != 0):EPROTONOSUPPORT",
    ],
  },
  personality: {
    name: "personality",
    systemd: "LockPersonality=yes",
    description: "personality only queried (0xffffffff) or set to PER_LINUX (0); anything else EPERM",
    rules: ["personality(arg0 != 0, arg0 != 0xffffffff):EPERM"],
  },
  suid_sgid: {
    name: "suid_sgid",
    systemd: "RestrictSUIDSGID=yes",
    description: "no setuid/setgid files: chmod family, and file creation with S_ISUID or S_ISGID in the mode, EPERM; openat2 ENOSYS",
    rules: [
      setIdEntry("chmod", "arg1"),
      setIdEntry("fchmod", "arg1"),
      setIdEntry("fchmodat", "arg2"),
      setIdEntry("fchmodat2", "arg2:32"),
      setIdEntry("creat", "arg1"),
      setIdEntry("mkdir", "arg1"),
      setIdEntry("mkdirat", "arg2"),
      setIdEntry("mknod", "arg1"),
      setIdEntry("mknodat", "arg2"),
      // The mode counts only when a file is created (O_CREAT, or O_TMPFILE's __O_TMPFILE bit).
      ...[O_CREAT, O_TMPFILE_BIT].map((flag) => setIdEntry("open", "arg2", bitSet("arg1", flag) + ", ")),
      ...[O_CREAT, O_TMPFILE_BIT].map((flag) => setIdEntry("openat", "arg3", bitSet("arg2", flag) + ", ")),
      // openat2 keeps its mode in a struct the filter cannot read; glibc does not use it.
      "openat2:ENOSYS",
    ],
  },
  tiocsti: {
    name: "tiocsti",
    systemd: "(systemd-nspawn's ioctl filter)",
    description: "ioctl TIOCSTI (0x5412) and TIOCLINUX (0x541c), which push input into a terminal, EPERM",
    rules: ["ioctl(arg1 == 0x5412):EPERM", "ioctl(arg1 == 0x541c):EPERM"],
  },
};

export interface Hardening {
  /** The presets in effect, in PRESET_NAMES order. */
  presets: PresetName[];
  /** Where syscall_harden was set. */
  loc: SourceLoc;
  /** One filter per preset, named "harden:<preset>". */
  filters: FilterSpec[];
}

/**
 * Parses `syscall_harden`: preset names separated by commas, `all` for every preset, `!name`
 * to leave one out of what came before (`all, !address_families`), and '' or `none` for none.
 */
export function parseHardening(value: string, valueLoc: SourceLoc, settingLoc: SourceLoc): Hardening {
  const chosen = new Set<PresetName>();
  let offset = 0;
  for (const raw of value.split(",")) {
    const at: SourceLoc = { ...valueLoc, column: valueLoc.column + offset + (raw.length - raw.trimStart().length) };
    offset += raw.length + 1;
    const word = raw.trim().toLowerCase();
    if (word === "" && value.trim() === "") break;
    if (word === "") throw new PolicyError(at, "empty entry in syscall_harden (two commas in a row, or a trailing comma)", "remove the extra comma");
    const negate = word.startsWith("!");
    const name = negate ? word.slice(1).trim() : word;
    if (name === "none" && !negate) continue;
    const names: readonly PresetName[] = name === "all" ? PRESET_NAMES : (PRESET_NAMES as readonly string[]).includes(name) ? [name as PresetName] : [];
    if (names.length === 0) {
      const maybe = suggestNames([...PRESET_NAMES, "all"], name);
      throw new PolicyError(
        at,
        `unknown hardening preset "${name}"`,
        maybe.length ? `did you mean "${maybe[0]}"?` : `the presets are ${PRESET_NAMES.join(", ")}, or all; write !name to leave one out`,
      );
    }
    for (const n of names) negate ? chosen.delete(n) : chosen.add(n);
  }
  const presets = PRESET_NAMES.filter((n) => chosen.has(n));
  return { presets, loc: settingLoc, filters: presets.map((p) => presetFilter(p, settingLoc)) };
}

/** A preset as a filter: its error list, a default of allow (it only restricts). */
export function presetFilter(name: PresetName, loc: SourceLoc): FilterSpec {
  const info = PRESETS[name];
  const quiet = new Set(info.quiet ?? []);
  const entries: PolicyEntry[] = [];
  for (const text of info.rules) {
    for (const e of parseList(text, loc)) {
      entries.push({ ...e, loc, action: { kind: "error", errno: e.errno ?? errnoNumber("EPERM")! }, preset: name, ...(quiet.has(text) ? { quiet: true } : {}) });
    }
  }
  return { name: `harden:${name}`, defaultAction: { kind: "allow" }, entries };
}

/** The setting's value for a set of presets, as a policy file would say it. */
export function hardeningValue(presets: readonly PresetName[]): string {
  if (presets.length === PRESET_NAMES.length) return "all";
  if (presets.length === 0) return "";
  if (presets.length >= 3) return ["all", ...PRESET_NAMES.filter((p) => !presets.includes(p)).map((p) => `!${p}`)].join(", ");
  return presets.join(", ");
}

/** The policy's own lists, without its presets (what learning rewrites; presets are kept aside). */
export function withoutPresets(p: Policy): Policy {
  const { hardening: _presets, ...lists } = p;
  return lists;
}
