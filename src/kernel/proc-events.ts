// The kernel's process events (the proc connector: NETLINK_CONNECTOR, CN_IDX_PROC), for the
// attribution of the kernel's seccomp records (src/supervisor/client-denials.ts). A record names
// a pid, never a start time: once a known server process is gone, its pid may name a process of
// the server's user that made a record and died before the launcher read it. Every new process
// is announced here (PROC_EVENT_FORK, with its parent) before it can run, so a pid handed out
// again is seen. Needs CAP_NET_ADMIN in the initial user namespace and CONFIG_PROC_EVENTS.
// Non-blocking and close-on-exec; a read never waits.

import { KernelError } from "./errors.js";
import { close, lastErrno, libcFunction, setErrno } from "./libc.js";

const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_CONNECTOR = 11;
/** include/uapi/linux/connector.h: CN_IDX_PROC, CN_VAL_PROC. */
const CN_IDX_PROC = 1;
const CN_VAL_PROC = 1;
/** include/uapi/linux/cn_proc.h: enum proc_cn_mcast_op. */
const PROC_CN_MCAST_LISTEN = 1;
const PROC_EVENT_FORK = 0x00000001;
const NLMSG_DONE = 3;
const NLMSG_HDRLEN = 16;
/** struct cn_msg: cb_id { idx, val }, seq, ack, len (u16), flags (u16). */
const CN_MSG_LEN = 20;
const MSG_DONTWAIT = 0x40;
const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const ENOBUFS = 105;

/** A new process or thread: its parent's thread group and its own (tgid) and thread id. */
export interface ForkEvent {
  parentTgid: number;
  childPid: number;
  childTgid: number;
}

/** Opens the proc connector and subscribes to its events; throws KernelError (EPERM without CAP_NET_ADMIN). */
export function openProcEvents(): number {
  const socket = libcFunction("socket", "int socket(int domain, int type, int protocol)");
  setErrno(0);
  const fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR) as number;
  if (fd < 0) throw new KernelError("socket(AF_NETLINK, NETLINK_CONNECTOR)", lastErrno());
  try {
    // A fork flood between two reads must not overflow the queue easily (a loss is still seen: ENOBUFS).
    const setsockopt = libcFunction("setsockopt", "int setsockopt(int fd, int level, int name, const void *val, uint32_t len)");
    const size = Buffer.alloc(4);
    size.writeInt32LE(8 << 20);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4);
    const addr = Buffer.alloc(12);
    addr.writeUInt16LE(AF_NETLINK, 0);
    addr.writeUInt32LE(0, 4);
    addr.writeUInt32LE(CN_IDX_PROC, 8);
    const bind = libcFunction("bind", "int bind(int fd, const void *addr, uint32_t addrlen)");
    setErrno(0);
    if ((bind(fd, addr, 12) as number) < 0) throw new KernelError("bind(NETLINK_CONNECTOR, CN_IDX_PROC)", lastErrno());
    const msg = Buffer.alloc(NLMSG_HDRLEN + CN_MSG_LEN + 4);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(NLMSG_DONE, 4);
    msg.writeUInt32LE(CN_IDX_PROC, NLMSG_HDRLEN);
    msg.writeUInt32LE(CN_VAL_PROC, NLMSG_HDRLEN + 4);
    msg.writeUInt16LE(4, NLMSG_HDRLEN + 16);
    msg.writeUInt32LE(PROC_CN_MCAST_LISTEN, NLMSG_HDRLEN + CN_MSG_LEN);
    const send = libcFunction("send", "long send(int fd, const void *buf, size_t len, int flags)");
    setErrno(0);
    if (Number(send(fd, msg, msg.length, 0)) < 0) throw new KernelError("send(PROC_CN_MCAST_LISTEN)", lastErrno());
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

/**
 * The fork events queued, without waiting. `lost` is true when the kernel dropped events (the
 * queue overflowed): a pid may then have been handed out again unseen.
 */
export function readForkEvents(fd: number, max = 100_000, buf = Buffer.alloc(65536)): { forks: ForkEvent[]; lost: boolean } {
  const recv = libcFunction("recv", "long recv(int fd, void *buf, size_t len, int flags)");
  const forks: ForkEvent[] = [];
  let lost = false;
  for (let reads = 0; reads < max; reads++) {
    setErrno(0);
    const n = Number(recv(fd, buf, buf.length, MSG_DONTWAIT));
    if (n < 0) {
      const e = lastErrno();
      if (e === ENOBUFS) {
        lost = true;
        continue;
      }
      if (e === 11 /* EAGAIN */ || e === 4 /* EINTR */) return { forks, lost };
      throw new KernelError("recv(NETLINK_CONNECTOR)", e);
    }
    if (n === 0) break;
    forks.push(...parseForkEvents(buf.subarray(0, n)));
  }
  // Stopped before the queue was empty: what is left may hide a fork.
  return { forks, lost: true };
}

/**
 * The PROC_EVENT_FORK events of one datagram (nlmsghdr, cn_msg, struct proc_event: what, cpu,
 * timestamp_ns, then fork_proc_event { parent_pid, parent_tgid, child_pid, child_tgid }).
 */
export function parseForkEvents(data: Buffer): ForkEvent[] {
  const out: ForkEvent[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= data.length) {
    const len = data.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > data.length) break;
    const ev = off + NLMSG_HDRLEN + CN_MSG_LEN;
    if (ev + 32 <= off + len && data.readUInt32LE(ev) === PROC_EVENT_FORK) {
      out.push({ parentTgid: data.readInt32LE(ev + 20), childPid: data.readInt32LE(ev + 24), childTgid: data.readInt32LE(ev + 28) });
    }
    off += (len + 3) & ~3;
  }
  return out;
}

export { close as closeProcEvents };
