#!/usr/bin/env python3
"""A FUSE passthrough filesystem for the slow- and odd-filesystem tests.

    python3 scripts/slowfs.py BACKING MOUNTPOINT [--ino=pass|path] [--rename-flags=ok|refuse]
                              [--delay-ms=N]

It mirrors the directory BACKING at MOUNTPOINT through libfuse 3's high-level API (the Python
`mfusepy` bindings), the way sshfs, rclone and many cloud-drive mounts are built, and can
behave like the mounts lock files meet in the field:

  --ino=pass      inode numbers are the backing files' (libfuse's `use_ino`), stable across
                  hard links and renames like a local disk;
  --ino=path      inode numbers are made up per name by libfuse (its default, and what sshfs
                  and similar mounts give): a hard link or a second name of one file reports a
                  different inode number;
  --rename-flags=refuse
                  rename(2) with RENAME_EXCHANGE or RENAME_NOREPLACE is refused (the kernel then
                  answers EINVAL, as on many FUSE and network filesystems);
  --delay-ms=N    every operation waits N ms first.

Commands on stdin, one per line, each answered on stdout with `ok <command>` once in force:
  delay <ms>      set the per-operation delay;
  hang            operations wait (without end) before doing anything;
  unhang          operations go on, and waiting ones proceed.
A waiting operation that the kernel interrupts (its caller got a fatal signal, e.g. the process
is exiting) fails with EINTR, like a killable NFS mount: the caller's process can then end.
When stdin closes, the filesystem unmounts itself and exits. `READY` is printed once mounted.
Every file operation has no kernel attribute or name cache (timeouts 0), so each system call on
the mount reaches this process and pays the delay.
"""

import ctypes
import errno
import functools
import os
import subprocess
import sys
import threading
import time

import mfusepy as fuse

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
AT_FDCWD = -100


class Gate:
    """The per-operation delay and the hang switch."""

    def __init__(self, delay_ms):
        self.cond = threading.Condition()
        self.delay = delay_ms / 1000.0
        self.hung = False

    def set(self, delay=None, hung=None):
        with self.cond:
            if delay is not None:
                self.delay = delay
            if hung is not None:
                self.hung = hung
            self.cond.notify_all()

    def passage(self):
        with self.cond:
            while self.hung:
                self.cond.wait(0.05)
                # Set by libfuse when the kernel sends FUSE_INTERRUPT for this request.
                if fuse._libfuse.fuse_interrupted():
                    raise fuse.FuseOSError(errno.EINTR)
            delay = self.delay
        if delay > 0:
            time.sleep(delay)


def gated(method):
    # `wraps` keeps the signature visible: mfusepy decides how to call some operations by it.
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        self.gate.passage()
        return method(self, *args, **kwargs)

    return wrapper


class SlowFS(fuse.Operations):
    use_ns = True

    def __init__(self, backing, gate, pass_ino, refuse_rename_flags):
        self.root = os.path.realpath(backing)
        self.gate = gate
        self.pass_ino = pass_ino
        self.refuse_rename_flags = refuse_rename_flags
        self.ready = threading.Event()

    def real(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def init_with_config(self, conn_info, config):
        if config is not None:
            config.use_ino = 1 if self.pass_ino else 0
            config.attr_timeout = 0.0
            config.entry_timeout = 0.0
            config.negative_timeout = 0.0
        self.ready.set()

    @staticmethod
    def attrs(st):
        keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev",
                "st_blksize", "st_blocks")
        out = {k: getattr(st, k) for k in keys}
        out["st_atime"] = st.st_atime_ns
        out["st_mtime"] = st.st_mtime_ns
        out["st_ctime"] = st.st_ctime_ns
        return out

    @gated
    def getattr(self, path, fh=None):
        if fh is not None:
            return self.attrs(os.fstat(fh))
        return self.attrs(os.lstat(self.real(path)))

    @gated
    def access(self, path, amode):
        if not os.access(self.real(path), amode, follow_symlinks=False):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    @gated
    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    @gated
    def readlink(self, path):
        return os.readlink(self.real(path))

    @gated
    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)
        return 0

    @gated
    def rmdir(self, path):
        os.rmdir(self.real(path))
        return 0

    @gated
    def mknod(self, path, mode, dev):
        os.mknod(self.real(path), mode, dev)
        return 0

    @gated
    def symlink(self, target, source):
        os.symlink(source, self.real(target))
        return 0

    @gated
    def link(self, target, source):
        os.link(self.real(source), self.real(target), follow_symlinks=False)
        return 0

    @gated
    def unlink(self, path):
        os.unlink(self.real(path))
        return 0

    @gated
    def rename(self, old, new, flags=0):
        if flags:
            if self.refuse_rename_flags or _renameat2 is None:
                # The kernel turns ENOSYS into EINVAL for the caller and stops asking.
                raise fuse.FuseOSError(errno.ENOSYS)
            rc = _renameat2(AT_FDCWD, self.real(old).encode(), AT_FDCWD, self.real(new).encode(),
                            ctypes.c_uint(flags))
            if rc != 0:
                raise fuse.FuseOSError(ctypes.get_errno())
            return 0
        os.rename(self.real(old), self.real(new))
        return 0

    @gated
    def chmod(self, path, mode):
        os.chmod(self.real(path), mode, follow_symlinks=False)
        return 0

    @gated
    def chown(self, path, uid, gid):
        os.lchown(self.real(path), uid, gid)
        return 0

    @gated
    def utimens(self, path, times=None):
        if path is None:
            return 0
        if times is None:
            os.utime(self.real(path), follow_symlinks=False)
        else:
            os.utime(self.real(path), ns=tuple(times), follow_symlinks=False)
        return 0

    @gated
    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self.real(path), length)
        return 0

    @gated
    def open(self, path, flags):
        return os.open(self.real(path), flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC))

    @gated
    def create(self, path, mode, flags):
        return os.open(self.real(path), flags | os.O_CREAT, mode)

    @gated
    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    @gated
    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    @gated
    def flush(self, path, fh):
        return 0

    @gated
    def fsync(self, path, datasync, fh):
        os.fsync(fh)
        return 0

    def release(self, path, fh):
        # Not delayed: the kernel sends it after close(2) has already returned.
        os.close(fh)
        return 0

    @gated
    def statfs(self, path):
        st = os.statvfs(self.root)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                "f_favail", "f_flag", "f_namemax")
        return {k: getattr(st, k) for k in keys}


class Mount(fuse.FUSE):
    """mfusepy drops rename(2)'s flags (it would turn an exchange into a plain rename that
    overwrites); hand them to the filesystem instead."""

    def rename_fuse_3(self, old, new, flags):
        return self.operations.rename(old.decode(self.encoding, self.errors),
                                      new.decode(self.encoding, self.errors), flags)


def unmount(mountpoint):
    for cmd in (["fusermount3", "-u", "-z", mountpoint], ["umount", "-l", mountpoint]):
        try:
            if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode == 0:
                return
        except FileNotFoundError:
            pass


def commands(ops, gate, mountpoint):
    ops.ready.wait()
    print("READY", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "delay" and len(words) == 2:
            gate.set(delay=float(words[1]) / 1000.0)
        elif words[0] == "hang":
            gate.set(hung=True)
        elif words[0] == "unhang":
            gate.set(hung=False)
        else:
            print(f"error unknown command {line.strip()}", flush=True)
            continue
        print(f"ok {line.strip()}", flush=True)
    gate.set(delay=0, hung=False)
    unmount(mountpoint)


def main(argv):
    opts = {"ino": "pass", "rename-flags": "ok", "delay-ms": "0"}
    positional = []
    for a in argv:
        if a.startswith("--") and "=" in a:
            key, value = a[2:].split("=", 1)
            if key not in opts:
                sys.exit(f"slowfs: unknown option {a}")
            opts[key] = value
        else:
            positional.append(a)
    if len(positional) != 2 or opts["ino"] not in ("pass", "path") or \
            opts["rename-flags"] not in ("ok", "refuse"):
        sys.exit(__doc__)
    backing, mountpoint = positional
    gate = Gate(float(opts["delay-ms"]))
    ops = SlowFS(backing, gate, opts["ino"] == "pass", opts["rename-flags"] == "refuse")
    threading.Thread(target=commands, args=(ops, gate, mountpoint), daemon=True).start()
    Mount(ops, mountpoint, foreground=True, fsname="slowfs", subtype="slowfs")


if __name__ == "__main__":
    main(sys.argv[1:])
