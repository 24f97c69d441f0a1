// Facts the kernel gives about a server process's sockets, for classification: whether it holds a
// client connection (a socket accepted on one of the postmaster's listen sockets). The server can
// change its titles, memory and shared memory, but not these. (Its parent and start time:
// proc.ts.)
//
// Everything here reads files the kernel generates under /proc (bounded, not the server's
// files), with plain reads that do not block.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ListenSockets {
  /** Paths of the postmaster's listening Unix sockets. */
  unixPaths: Set<string>;
  /** Ports of its listening TCP sockets (IPv4 and IPv6). */
  tcpPorts: Set<number>;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Socket inodes among a process's open files, with the descriptor holding each. */
export function socketInodes(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.set(m[1]!, Number(fd));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

export interface UnixSocketRow {
  flags: number;
  type: number;
  state: number;
  inode: string;
  path: string;
}

const SO_ACCEPTCON = 0x10000;
const SS_CONNECTED = 3;
const TCP_ESTABLISHED = 1;
const TCP_LISTEN = 0x0a;

/** /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path". */
export function parseNetUnix(text: string): UnixSocketRow[] {
  const rows: UnixSocketRow[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 7) continue;
    rows.push({ flags: parseInt(f[3]!, 16), type: parseInt(f[4]!, 16), state: parseInt(f[5]!, 16), inode: f[6]!, path: f.slice(7).join(" ") });
  }
  return rows;
}

export interface TcpSocketRow {
  localPort: number;
  state: number;
  inode: string;
}

/** /proc/net/tcp and tcp6: "sl local_address rem_address st ... uid timeout inode". */
export function parseNetTcp(text: string): TcpSocketRow[] {
  const rows: TcpSocketRow[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const port = parseInt(f[1]!.split(":")[1] ?? "", 16);
    rows.push({ localPort: port, state: parseInt(f[3]!, 16), inode: f[9]! });
  }
  return rows;
}

/** The postmaster's listening sockets (read once the server is up; they do not change). */
export function listenSockets(postmasterPid: number): ListenSockets {
  const inodes = socketInodes(postmasterPid);
  const unixPaths = new Set<string>();
  const tcpPorts = new Set<number>();
  for (const r of parseNetUnix(read(`/proc/${postmasterPid}/net/unix`))) {
    if (inodes.has(r.inode) && (r.flags & SO_ACCEPTCON) !== 0 && r.path) unixPaths.add(r.path);
  }
  for (const file of ["tcp", "tcp6"]) {
    for (const r of parseNetTcp(read(`/proc/${postmasterPid}/net/${file}`))) {
      if (inodes.has(r.inode) && r.state === TCP_LISTEN) tcpPorts.add(r.localPort);
    }
  }
  return { unixPaths, tcpPorts };
}

/**
 * True when the process holds a connection accepted on one of the server's listen sockets: an
 * accepted Unix socket carries its listener's path, an accepted TCP socket its listener's port.
 * Outgoing connections (libpq from a walreceiver, postgres_fdw) carry neither.
 */
export function hasClientConnection(pid: number, listen: ListenSockets, inodes = socketInodes(pid)): boolean {
  return clientConnection(pid, listen, inodes) !== undefined;
}

/** The accepted client connection a process holds: its descriptor, and whether it is a Unix socket. */
export function clientConnection(pid: number, listen: ListenSockets, inodes = socketInodes(pid)): { fd: number; unix: boolean } | undefined {
  if (inodes.size === 0) return undefined;
  // Only the tables the server listens in (a server without TCP listeners reads no TCP table).
  if (listen.unixPaths.size > 0) for (const r of parseNetUnix(read(`/proc/${pid}/net/unix`))) {
    if (inodes.has(r.inode) && r.state === SS_CONNECTED && (r.flags & SO_ACCEPTCON) === 0 && listen.unixPaths.has(r.path)) return { fd: inodes.get(r.inode)!, unix: true };
  }
  if (listen.tcpPorts.size > 0) for (const file of ["tcp", "tcp6"]) {
    for (const r of parseNetTcp(read(`/proc/${pid}/net/${file}`))) {
      if (inodes.has(r.inode) && r.state === TCP_ESTABLISHED && listen.tcpPorts.has(r.localPort)) return { fd: inodes.get(r.inode)!, unix: false };
    }
  }
  return undefined;
}
