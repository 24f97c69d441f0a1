// Unix datagram sockets, which Node does not offer: what the violation log needs to hand records
// to journald (its native socket) and to syslog (/dev/log). Non-blocking, close-on-exec; a send
// that would block fails with EAGAIN rather than stall the launcher.

import { KernelError } from "./errors.js";
import { lastErrno, libcFunction, setErrno } from "./libc.js";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sun_path) on Linux. */
const SUN_PATH_MAX = 108;

/** struct sockaddr_un for `path`, and its length as bind/sendto take it. */
function sockaddrUn(path: string): { addr: Buffer; len: number } {
  const p = Buffer.from(path, "utf8");
  if (p.length === 0 || p.length >= SUN_PATH_MAX || p.includes(0)) throw new KernelError(`socket path ${JSON.stringify(path)}`, 36 /* ENAMETOOLONG */);
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  p.copy(addr, 2);
  return { addr, len: 2 + p.length + 1 };
}

/** socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0). */
export function unixDatagramSocket(): number {
  const f = libcFunction("socket", "int socket(int domain, int type, int protocol)");
  setErrno(0);
  const fd = f(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new KernelError("socket(AF_UNIX, SOCK_DGRAM)", lastErrno());
  return fd;
}

/** sendto(2) of one datagram to the socket at `path`; returns the bytes sent. Never blocks. */
export function sendDatagram(fd: number, path: string, data: Uint8Array): number {
  const { addr, len } = sockaddrUn(path);
  const f = libcFunction("sendto", "long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)");
  setErrno(0);
  const n = Number(f(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, len));
  if (n < 0) throw new KernelError(`sendto(${JSON.stringify(path)})`, lastErrno());
  return n;
}

/** bind(2) a datagram socket to `path` (a receiver: the tests' stand-in for journald or syslog). */
export function bindDatagram(fd: number, path: string): void {
  const { addr, len } = sockaddrUn(path);
  const f = libcFunction("bind", "int bind(int fd, const void *addr, uint32_t addrlen)");
  setErrno(0);
  if ((f(fd, addr, len) as number) < 0) throw new KernelError(`bind(${JSON.stringify(path)})`, lastErrno());
}

/** recv(2) of one datagram, without waiting: undefined when none is queued. */
export function receiveDatagram(fd: number, max = 1 << 20): Buffer | undefined {
  const buf = Buffer.alloc(max);
  const f = libcFunction("recv", "long recv(int fd, void *buf, size_t len, int flags)");
  setErrno(0);
  const n = Number(f(fd, buf, max, MSG_DONTWAIT));
  if (n < 0) {
    const e = lastErrno();
    if (e === 11 /* EAGAIN */) return undefined;
    throw new KernelError("recv", e);
  }
  return buf.subarray(0, n);
}
