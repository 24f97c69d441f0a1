// seccomp user notification (SECCOMP_RET_USER_NOTIF) on a listener fd returned by
// installFilter(prog, { newListener: true }). See seccomp_unotify(2).
//
// SECCOMP_IOCTL_NOTIF_RECV blocks until a notification is pending, even when no task uses the
// filter any more, so a supervisor on the Node event loop should wait with waitListener() first
// (epoll through libuv; no thread is blocked) and only then call notifRecv().

import type { SeccompData } from "../seccomp/index.js";
import { KernelError } from "./errors.js";
import { ffi, ioctlRaw, lastErrno, libcFunction, setErrno } from "./libc.js";

// ioctl numbers: _IOWR('!', 0, struct seccomp_notif) etc. ('!' = 0x21).
export const SECCOMP_IOCTL_NOTIF_RECV = 0xc0502100;
export const SECCOMP_IOCTL_NOTIF_SEND = 0xc0182101;
export const SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102;
export const SECCOMP_IOCTL_NOTIF_ADDFD = 0x40182103;
export const SECCOMP_IOCTL_NOTIF_SET_FLAGS = 0x40082104;

/** seccomp_notif_resp.flags: let the syscall run as if the filter had allowed it (val/error must be 0). */
export const SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;
/** seccomp_notif_addfd.flags */
export const SECCOMP_ADDFD_FLAG_SETFD = 1;
export const SECCOMP_ADDFD_FLAG_SEND = 2;

export const SECCOMP_NOTIF_SIZE = 80; // u64 id, u32 pid, u32 flags, struct seccomp_data (64)
export const SECCOMP_NOTIF_RESP_SIZE = 24; // u64 id, s64 val, s32 error, u32 flags
export const SECCOMP_NOTIF_ADDFD_SIZE = 24; // u64 id, u32 flags, u32 srcfd, u32 newfd, u32 newfd_flags

export interface SeccompNotification {
  /** Cookie to pass back in the response and to notifIdValid(). */
  id: bigint;
  /** Thread id of the target, in the listener's pid namespace (0 if not visible there). */
  pid: number;
  flags: number;
  data: SeccompData;
}

export interface SeccompNotificationResponse {
  id: bigint;
  /** The syscall's return value when error is 0. */
  val?: bigint;
  /** A positive errno to fail the syscall with (sent as -errno); 0 for success. */
  error?: number;
  /** SECCOMP_USER_NOTIF_FLAG_CONTINUE to let the syscall proceed. */
  flags?: number;
}

/** Decode a struct seccomp_notif. Pure. */
export function decodeNotification(buf: Uint8Array): SeccompNotification {
  if (buf.length < SECCOMP_NOTIF_SIZE) throw new RangeError(`seccomp_notif needs ${SECCOMP_NOTIF_SIZE} bytes`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const args: bigint[] = [];
  for (let i = 0; i < 6; i++) args.push(b.readBigUInt64LE(32 + 8 * i));
  return {
    id: b.readBigUInt64LE(0),
    pid: b.readUInt32LE(8),
    flags: b.readUInt32LE(12),
    data: {
      nr: b.readInt32LE(16),
      arch: b.readUInt32LE(20),
      instructionPointer: b.readBigUInt64LE(24),
      args,
    },
  };
}

/** Encode a struct seccomp_notif_resp. Pure. */
export function encodeResponse(resp: SeccompNotificationResponse, into: Buffer = Buffer.alloc(SECCOMP_NOTIF_RESP_SIZE)): Buffer {
  const error = resp.error ?? 0;
  if (!Number.isInteger(error) || error < 0 || error > 4095) throw new RangeError(`response errno ${error} out of range 0..4095`);
  into.fill(0, 0, SECCOMP_NOTIF_RESP_SIZE);
  into.writeBigUInt64LE(BigInt.asUintN(64, resp.id), 0);
  into.writeBigInt64LE(BigInt.asIntN(64, resp.val ?? 0n), 8);
  into.writeInt32LE(-error, 16);
  into.writeUInt32LE((resp.flags ?? 0) >>> 0, 20);
  return into;
}

/**
 * SECCOMP_IOCTL_NOTIF_RECV: the next pending notification. Blocks the calling thread while
 * none is pending (use waitListener() first on the event loop). Throws KernelError: ENOENT
 * when the target died or was interrupted between wake-up and receipt (just wait again).
 */
export function notifRecv(listener: number): SeccompNotification {
  const buf = Buffer.alloc(SECCOMP_NOTIF_SIZE); // the kernel insists on a zeroed struct
  const r = ioctlRaw(listener, SECCOMP_IOCTL_NOTIF_RECV, buf);
  if (r.ret === -1) throw new KernelError("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", r.errno);
  return decodeNotification(buf);
}

/**
 * SECCOMP_IOCTL_NOTIF_SEND. Throws KernelError: ENOENT when the target is gone or its syscall
 * was interrupted (the response is moot), EINPROGRESS if already answered, EINVAL for bad flags.
 */
export function notifSend(listener: number, resp: SeccompNotificationResponse): void {
  const r = ioctlRaw(listener, SECCOMP_IOCTL_NOTIF_SEND, encodeResponse(resp));
  if (r.ret === -1) throw new KernelError("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", r.errno);
}

/**
 * Whether the kernel knows SECCOMP_USER_NOTIF_FLAG_CONTINUE (5.5), asked on a real listener: a
 * response with that flag to an id no notification has (ids start at a random u64) is ENOENT on
 * a kernel that knows the flag and EINVAL on one that does not (5.0-5.4 refuse any flag).
 */
export function notifContinueKnown(listener: number): boolean {
  const r = ioctlRaw(listener, SECCOMP_IOCTL_NOTIF_SEND, encodeResponse({ id: 0xfffffffffffffff1n, val: 0n, error: 0, flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE }));
  if (r.ret === 0 || r.errno === 2 /* ENOENT */) return true;
  if (r.errno === 22 /* EINVAL */) return false;
  throw new KernelError("ioctl(SECCOMP_IOCTL_NOTIF_SEND) (the CONTINUE probe)", r.errno);
}

/**
 * SECCOMP_IOCTL_NOTIF_ID_VALID: whether notification `id` is still pending, i.e. the target is
 * still blocked in that syscall. Check it after reading target memory (/proc/<pid>/mem) and
 * before acting on what was read (TOCTOU).
 */
export function notifIdValid(listener: number, id: bigint): boolean {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, id), 0);
  const r = ioctlRaw(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, buf);
  if (r.ret === 0) return true;
  if (r.errno === 2 /* ENOENT */) return false;
  throw new KernelError("ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID)", r.errno);
}

/**
 * SECCOMP_IOCTL_NOTIF_ADDFD: install a copy of our `srcfd` in the target (5.9+). Returns the fd
 * number in the target. With SECCOMP_ADDFD_FLAG_SEND (5.14+) this also answers the notification
 * with that number as the syscall's return value.
 */
export function notifAddFd(
  listener: number,
  req: { id: bigint; srcfd: number; newfd?: number; flags?: number; newfdFlags?: number },
): number {
  const buf = Buffer.alloc(SECCOMP_NOTIF_ADDFD_SIZE);
  buf.writeBigUInt64LE(BigInt.asUintN(64, req.id), 0);
  buf.writeUInt32LE((req.flags ?? 0) >>> 0, 8);
  buf.writeUInt32LE(req.srcfd >>> 0, 12);
  buf.writeUInt32LE((req.newfd ?? 0) >>> 0, 16);
  buf.writeUInt32LE((req.newfdFlags ?? 0) >>> 0, 20);
  const r = ioctlRaw(listener, SECCOMP_IOCTL_NOTIF_ADDFD, buf);
  if (r.ret === -1) throw new KernelError("ioctl(SECCOMP_IOCTL_NOTIF_ADDFD)", r.errno);
  return r.ret;
}

const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;

export type ListenerState = "pending" | "hangup" | "idle";

/**
 * poll(2) the listener once, synchronously, for up to timeoutMs (0: just look). "pending": a
 * notification can be received without blocking; "hangup": no task uses the filter any more
 * and none is pending; "idle": nothing yet.
 */
export function pollListener(listener: number, timeoutMs = 0): ListenerState {
  const f = libcFunction("poll", "int poll(void *fds, unsigned long nfds, int timeout)");
  const pfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  pfd.writeInt32LE(listener, 0);
  pfd.writeInt16LE(POLLIN, 4);
  {
    setErrno(0);
    const r = f(pfd, 1, timeoutMs) as number;
    if (r === -1) {
      const e = lastErrno();
      // Interrupted: report "idle" rather than poll again with the whole timeout, so that a
      // steady stream of signals (a profiler's SIGPROF, say) cannot keep the caller in here.
      if (e === 4 /* EINTR */) return "idle";
      throw new KernelError("poll(listener)", e);
    }
    if (r === 0) return "idle";
    const rev = pfd.readInt16LE(6);
    if (rev & POLLIN) return "pending";
    if (rev & (POLLHUP | POLLERR)) return "hangup";
    return "idle";
  }
}

/**
 * Wait on the event loop (libuv epoll via koffi.node.poll; no thread blocks) until the listener
 * has a pending notification or hangs up, or until timeoutMs passes.
 */
export function waitListener(listener: number, timeoutMs?: number): Promise<ListenerState> {
  const now = pollListener(listener, 0);
  if (now !== "idle") return Promise.resolve(now);
  const k = ffi();
  return new Promise<ListenerState>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let handle: ReturnType<Koffi["node"]["poll"]> | undefined;
    const finish = (v: ListenerState | Error): void => {
      if (timer) clearTimeout(timer);
      handle?.close();
      handle = undefined;
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    try {
      // koffi calls back with (status, events) although its typings say (events).
      handle = k.node.poll(listener, { readable: true }, ((...cb: unknown[]) => {
        const status = typeof cb[0] === "number" ? cb[0] : 0;
        if (status < 0) {
          finish(new Error(`libuv poll on listener ${listener} failed with status ${status}`));
          return;
        }
        try {
          const state = pollListener(listener, 0);
          if (state !== "idle") finish(state);
        } catch (e) {
          finish(e as Error);
        }
      }) as never);
    } catch (e) {
      finish(e as Error);
      return;
    }
    if (timeoutMs !== undefined) timer = setTimeout(() => finish("idle"), timeoutMs);
  });
}

type Koffi = ReturnType<typeof ffi>;
