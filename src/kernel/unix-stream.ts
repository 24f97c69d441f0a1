// A Unix stream connection made with given credentials, for the launcher's monitoring client
// (src/host/pgwire.ts): PostgreSQL's peer authentication maps the credentials the kernel records
// at connect() time (SO_PEERCRED) to a role, so a root launcher connects as the server's user.
//
// Node can only switch the ids of every thread at once (glibc's setxid broadcast), which would
// take root from the supervisor's worker thread for that moment. The raw setresgid/setresuid
// syscalls change the calling thread's ids only: the main thread takes the server's effective
// ids for one socket() + connect(), synchronously, and takes root's back before any other
// JavaScript runs. Real and saved ids stay 0, so the permitted capabilities are kept and the
// switch back is allowed. The socket is non-blocking: connect() to a Unix stream socket whose
// backlog is full fails with EAGAIN instead of waiting on the server.

import { syscallNumber } from "../syscalls/index.js";
import { hostKernelArch } from "./arch.js";
import { KernelError } from "./errors.js";
import { close, lastErrno, libcFunction, setErrno, syscall6 } from "./libc.js";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SUN_PATH_MAX = 108;
const KEEP = -1n; // setres[ug]id: leave this id as it is

/** struct sockaddr_un; a leading "@" names an abstract socket (as /proc/net/unix writes it). */
function sockaddrUn(path: string): { addr: Buffer; len: number } {
  const abstract = path.startsWith("@");
  const p = abstract ? Buffer.concat([Buffer.from([0]), Buffer.from(path.slice(1), "utf8")]) : Buffer.from(path, "utf8");
  if (p.length <= (abstract ? 1 : 0) || p.length >= SUN_PATH_MAX || (!abstract && p.includes(0))) {
    throw new KernelError(`socket path ${JSON.stringify(path)}`, 36 /* ENAMETOOLONG */);
  }
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  p.copy(addr, 2);
  return { addr, len: 2 + p.length + (abstract ? 0 : 1) };
}

/** setresgid/setresuid of the calling thread only (raw syscalls, not glibc's all-thread wrappers). */
function threadIds(egid: bigint, euid: bigint): void {
  const arch = hostKernelArch().name;
  // Order matters: the gid while still root, the uid last (and back: the uid first).
  const steps: Array<[string, bigint]> = euid === 0n ? [["setresuid", euid], ["setresgid", egid]] : [["setresgid", egid], ["setresuid", euid]];
  for (const [name, id] of steps) {
    const r = syscall6(syscallNumber(arch, name)!, [KEEP, id, KEEP]);
    if (r.ret !== 0n) throw new KernelError(`${name}(-1, ${id}, -1)`, r.errno);
  }
}

/**
 * A connected, non-blocking, close-on-exec Unix stream socket to `path`. With `as`, connect()
 * runs with that effective uid and gid on this thread (the caller must be root), which is what
 * the peer sees in SO_PEERCRED. Throws KernelError (EAGAIN when the listener's backlog is full,
 * ENOENT, ECONNREFUSED, EACCES).
 */
export function connectUnixStream(path: string, as?: { uid: number; gid: number }): number {
  const { addr, len } = sockaddrUn(path);
  const socket = libcFunction("socket", "int socket(int domain, int type, int protocol)");
  const connect = libcFunction("connect", "int connect(int fd, const void *addr, uint32_t addrlen)");
  const switching = as !== undefined && process.geteuid?.() === 0 && as.uid !== 0;
  if (switching) threadIds(BigInt(as.gid), BigInt(as.uid));
  let fd = -1;
  let errno = 0;
  let what = "socket(AF_UNIX, SOCK_STREAM)";
  try {
    setErrno(0);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) errno = lastErrno();
    else {
      setErrno(0);
      what = `connect(${JSON.stringify(path)})`;
      if ((connect(fd, addr, len) as number) < 0) errno = lastErrno();
    }
  } finally {
    // Root again before anything else runs on this thread; if that fails the process must not go on.
    if (switching) {
      try {
        threadIds(0n, 0n);
      } catch (e) {
        process.stderr.write(`pg_seccomp: error: cannot switch back to root after connecting: ${(e as Error).message}\n`);
        process.abort();
      }
    }
  }
  if (errno !== 0) {
    if (fd >= 0) close(fd);
    throw new KernelError(what, errno);
  }
  return fd;
}

/** The pid, uid and gid the kernel recorded for the other end of a Unix socket (SO_PEERCRED). */
export function socketPeerCredentials(fd: number): { pid: number; uid: number; gid: number } {
  const f = libcFunction("getsockopt", "int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)");
  const cred = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  setErrno(0);
  if ((f(fd, SOL_SOCKET, SO_PEERCRED, cred, [12]) as number) < 0) throw new KernelError("getsockopt(SO_PEERCRED)", lastErrno());
  return { pid: cred.readInt32LE(0), uid: cred.readUInt32LE(4), gid: cred.readUInt32LE(8) };
}
