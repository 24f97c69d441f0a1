/*
 * Times loops of single syscalls, optionally under a seccomp filter (bench/syscall-bench.ts).
 *
 *   syscall-bench FILTER|- ITERATIONS CALL...
 *
 * FILTER is a file of struct sock_filter (what pg_seccomp's encodeProgram writes), installed as
 * `run` installs it: no_new_privs, then seccomp(SECCOMP_SET_MODE_FILTER) with no flags (so the
 * speculative-store-bypass mitigation is forced, as run does by default). "-" installs nothing.
 * CALL is getppid, lseek, read or fcntl, on /dev/null; each is made through syscall(2) so that
 * no libc caching is measured. Time is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so time
 * spent preempted by other processes is not counted. Prints "CALL NS_PER_CALL" per call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int fd;
static char buf[1];

static long call(const char *name) {
  if (strcmp(name, "getppid") == 0) return syscall(SYS_getppid);
  if (strcmp(name, "lseek") == 0) return syscall(SYS_lseek, fd, 0L, SEEK_CUR);
  if (strcmp(name, "read") == 0) return syscall(SYS_read, fd, buf, 1);
  if (strcmp(name, "fcntl") == 0) return syscall(SYS_fcntl, fd, F_GETFD);
  fprintf(stderr, "unknown call %s\n", name);
  exit(2);
}

/* The loop body per call: a switch outside the loop keeps the loop itself the same for each. */
static double loop(const char *name, long n) {
  volatile long sink = 0;
  double t0, t1;
  if (strcmp(name, "getppid") == 0) {
    t0 = now_ns();
    for (long i = 0; i < n; i++) sink += syscall(SYS_getppid);
    t1 = now_ns();
  } else if (strcmp(name, "lseek") == 0) {
    t0 = now_ns();
    for (long i = 0; i < n; i++) sink += syscall(SYS_lseek, fd, 0L, SEEK_CUR);
    t1 = now_ns();
  } else if (strcmp(name, "read") == 0) {
    t0 = now_ns();
    for (long i = 0; i < n; i++) sink += syscall(SYS_read, fd, buf, 1);
    t1 = now_ns();
  } else {
    t0 = now_ns();
    for (long i = 0; i < n; i++) sink += syscall(SYS_fcntl, fd, F_GETFD);
    t1 = now_ns();
  }
  (void)sink;
  return (t1 - t0) / (double)n;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s FILTER|- ITERATIONS CALL...\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  fd = open("/dev/null", O_RDONLY);
  if (fd < 0) { perror("/dev/null"); return 1; }
  if (strcmp(argv[1], "-") != 0) {
    int f = open(argv[1], O_RDONLY);
    struct stat st;
    if (f < 0 || fstat(f, &st) != 0 || st.st_size == 0 || st.st_size % sizeof(struct sock_filter) != 0) {
      fprintf(stderr, "%s: not a file of struct sock_filter\n", argv[1]);
      return 1;
    }
    struct sock_filter *insns = malloc(st.st_size);
    if (read(f, insns, st.st_size) != st.st_size) { perror(argv[1]); return 1; }
    close(f);
    struct sock_fprog prog = { .len = (unsigned short)(st.st_size / sizeof(struct sock_filter)), .filter = insns };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("PR_SET_NO_NEW_PRIVS"); return 1; }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) { perror("seccomp"); return 1; }
  }
  for (int i = 3; i < argc; i++) {
    errno = 0;
    /* Each call must succeed under the filter: a denied or notified call (ENOSYS without a
       listener) would time an error path, not the filter. */
    if (call(argv[i]) < 0) { fprintf(stderr, "%s failed: %s\n", argv[i], strerror(errno)); return 1; }
    loop(argv[i], n / 10 + 1); /* warm-up */
    printf("%s %.3f\n", argv[i], loop(argv[i], n));
  }
  return 0;
}
