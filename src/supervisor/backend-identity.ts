// The row cross-check's reader (src/host/backend-identity.ts says why): where `MyProcPort` and
// `am_walsender` are in
// the server's processes, from the postgres executable's dynamic symbols (the server exports its
// globals for extensions) and its load address in the postmaster (the kernel's AT_ENTRY less the
// ELF entry point), which every child shares (fork, no exec). Built once per launcher; the postgres executable is root's input (the command line),
// never a path the server names.

import { dynamicSymbols, parseElf } from "../analyze/elf.js";
import { BACKEND_TYPES, executableBase, PORT_NAME_OFFSETS, readExecutable, readOwnBackendType, readStartupNames, type MappedFile, type NameDecoder, type StartupNames } from "../host/backend-identity.js";

const ET_DYN = 3;

export interface BackendIdentityReader {
  /** The startup names in `pid`'s Port, or undefined when they cannot be read. */
  read(pid: number, decode?: NameDecoder): StartupNames | undefined;
  /**
   * The backend type `pid` keeps in its own memory (`MyBackendType`), named as the row names
   * types ("background worker" for any background worker); undefined when it cannot be read.
   */
  backendType(pid: number): string | undefined;
  /**
   * What the supervisor's worker needs to find any server process's own MyBackendType (the exec
   * gate's exception, supervisor-worker.ts serverCodeMapping): known before the postmaster runs,
   * so the worker resolves it itself when it first needs it, never waiting on this thread.
   */
  readonly backendTypeLayout: BackendTypeLayout;
}

/** Where MyBackendType is in every process of one server, before its load address is known (structured-clone safe). */
export interface BackendTypeLayout {
  postmasterPid: number;
  file: MappedFile;
  /** The executable's ELF entry point and MyBackendType's symbol value (relative to the load address when pie). */
  entry: bigint;
  offset: bigint;
  pie: boolean;
  /** The major's type names, by enum value. */
  types: readonly string[];
}

/**
 * MyBackendType's address in the server's processes (all share the postmaster's executable base:
 * fork, no exec), or undefined while the postmaster does not run the executable yet.
 */
export function backendTypeAddress(l: BackendTypeLayout): bigint | undefined {
  const base = l.pie ? executableBase(l.postmasterPid, l.file, l.entry) : 0n;
  return base === undefined ? undefined : base + l.offset;
}

/**
 * A reader for the server `postgresPath` of major `major` whose postmaster is `postmasterPid`, or
 * why there is none (a major without known offsets, a binary without the symbol): then the row
 * alone decides, as before the cross-check, and the launcher says so at start.
 */
export function backendIdentityReader(postgresPath: string, postmasterPid: number, major: number | undefined): BackendIdentityReader | { unavailable: string } {
  const offsets = major !== undefined ? PORT_NAME_OFFSETS[major] : undefined;
  if (!offsets) return { unavailable: `the layout of PostgreSQL ${major ?? "(unknown major)"}'s Port is not known to this pg_seccomp (known: ${Object.keys(PORT_NAME_OFFSETS).join(", ")})` };
  const types = major !== undefined ? BACKEND_TYPES[major] : undefined;
  if (!types) return { unavailable: `PostgreSQL ${major ?? "(unknown major)"}'s backend types are not known to this pg_seccomp` };
  let value: number;
  let walsenderValue: number;
  let backendTypeValue: number;
  let pie: boolean;
  let entry: bigint;
  let exe: string;
  let file: MappedFile;
  try {
    const read = readExecutable(postgresPath);
    exe = read.real;
    file = read.file;
    const elf = parseElf(read.bytes);
    const symbols = dynamicSymbols(elf);
    const sym = symbols.find((s) => s.name === "MyProcPort" && s.shndx !== 0);
    if (!sym) return { unavailable: `${exe} exports no MyProcPort` };
    const walsender = symbols.find((s) => s.name === "am_walsender" && s.shndx !== 0);
    if (!walsender) return { unavailable: `${exe} exports no am_walsender` };
    const backendType = symbols.find((s) => s.name === "MyBackendType" && s.shndx !== 0);
    if (!backendType) return { unavailable: `${exe} exports no MyBackendType` };
    value = sym.value;
    walsenderValue = walsender.value;
    backendTypeValue = backendType.value;
    pie = elf.type === ET_DYN;
    entry = BigInt(elf.entry);
  } catch (e) {
    return { unavailable: `${postgresPath} cannot be read as an ELF executable (${(e as Error).message})` };
  }
  let addresses: { myProcPort: bigint; amWalsender: bigint; myBackendType: bigint } | undefined;
  const resolve = () => {
    if (addresses === undefined) {
      const base = pie ? executableBase(postmasterPid, file, entry) : 0n;
      if (base === undefined) return undefined;
      addresses = { myProcPort: base + BigInt(value), amWalsender: base + BigInt(walsenderValue), myBackendType: base + BigInt(backendTypeValue) };
    }
    return addresses;
  };
  return {
    read(pid, decode) {
      const a = resolve();
      return a && readStartupNames(pid, a, offsets, decode);
    },
    backendType(pid) {
      const a = resolve();
      return a && readOwnBackendType(pid, a.myBackendType, types);
    },
    backendTypeLayout: { postmasterPid, file, entry, offset: BigInt(backendTypeValue), pie, types },
  };
}
