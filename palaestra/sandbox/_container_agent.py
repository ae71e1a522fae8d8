"""The container backend's agent: PID 1 of every sandbox container (see palaestra.sandbox.docker).

Runs INSIDE the container, standard library only (python3-minimal lacks json, resource and ctypes,
so rlimits are set by /bin/sh's `ulimit` and SysV IPC is removed by `ipcrm`). The host sends this
source over the attach stream; it is never imported on the host.

The local backend's sessions run it too, as PID 1 of a long-lived bubblewrap sandbox, unprivileged:
there it already runs as the program's uid (so it drops nothing), it is protected from the program by
being its pid namespace's init (which ignores SIGKILL from inside) and by not being dumpable (no
ptrace, no /proc/1/fd), and the host gives it no files to wipe (the session's tmpfs ends with it).
"""

import contextlib
import marshal
import os
import select
import signal
import struct
import sys
import time

UID = int(sys.argv[1])
HDR = struct.Struct(">cI")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
# RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard limit one second later (see local_argv.launcher_script)
LAUNCH = (
    "ulimit -c 0 && ulimit -S -t %d && ulimit -H -t %d && ulimit -f %d && ulimit -n %d && ulimit -p %d "
    '&& exec "$@"'
)
SCRATCH = ("/work", "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
reaped: dict[int, int] = {}  # pid -> wait status


def hard_limits():
    found = {"nofile": 1 << 30, "nproc": 1 << 30}
    with open("/proc/self/limits") as f:
        for line in f:
            for key, label in (("nofile", "Max open files"), ("nproc", "Max processes")):
                if line.startswith(label) and line.split()[-2].isdigit():
                    found[key] = int(line.split()[-2])
    return found


HARD = hard_limits()


def send(kind, data=b""):
    view = memoryview(HDR.pack(kind, len(data)) + data)
    while view:
        view = view[os.write(1, view) :]


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            kill_all()
            os._exit(0)
        buf += chunk
    return buf


def read_frame():
    kind, n = HDR.unpack(read_exact(HDR.size))
    return kind, read_exact(n)


def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reaped[pid] = status


def kill_all(timeout=4.0):
    end = time.monotonic() + timeout
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            reap()
            return True
        reap()
        if time.monotonic() > end:
            return False
        time.sleep(0.0005)


def counter(paths, key):
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == key:
                        return int(v)
        except (OSError, ValueError):
            pass
    return 0


def counters():
    oom = counter(("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"), "oom_kill")
    pids = counter(("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events"), "max")
    t = os.times()
    return oom, pids, t.children_user + t.children_system


def drop_privileges():
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    local = os.getuid() == UID  # a local session: unprivileged, already the program's uid
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        if not local:  # bwrap's user namespace may refuse it; the slot's cgroup bounds memory there
            raise
    if not local:
        os.setgroups([])
        os.setresgid(UID, UID, UID)
        os.setresuid(UID, UID, UID)
    os.umask(0o022)


def wipe_dir(path):
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)
            wipe_dir(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def sysv_objects():
    return sum(open("/proc/sysvipc/" + n).read().count("\n") - 1 for n in ("shm", "msg", "sem"))


def wipe():
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            drop_privileges()
            for d in SCRATCH:
                if os.path.isdir(d):
                    wipe_dir(d)
            if sysv_objects() > 0:
                os.spawnv(os.P_WAIT, "/usr/bin/ipcrm", ["ipcrm", "--all"])
            left = [n for d in SCRATCH if os.path.isdir(d) for n in os.listdir(d)]
            code = 0 if not left and sysv_objects() == 0 else 2
        except BaseException:
            pass
        os._exit(code)
    with contextlib.suppress(ChildProcessError):
        reaped[pid] = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(reaped.pop(pid, 256)) == 0 and kill_all()


def start(req):
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            drop_privileges()
            for name, data in req["files"]:
                path = "/work/" + name
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.close(fd)
            os.chdir("/work")
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            cpu, fsize, nofile, nproc = (int(x) for x in req["rlimits"])
            launch = LAUNCH % (cpu, cpu + 1, fsize, min(nofile, HARD["nofile"]), min(nproc, HARD["nproc"]))
            os.execve("/bin/sh", ["sh", "-c", launch, "sh", *req["argv"]], ENV)
        except BaseException as exc:
            try:
                os.write(st_w, (f"{type(exc).__name__}: {exc}").encode()[:4000])
            finally:
                os._exit(125)
    for fd in (in_r, out_w, err_w, st_w):
        os.close(fd)
    failure = b""
    while True:
        chunk = os.read(st_r, 4096)
        if not chunk:
            break
        failure += chunk
    os.close(st_r)
    return pid, in_w, out_r, err_r, failure


def execute(req, wake_r):
    reaped.clear()  # orphans of the last execution
    oom0, pids0, cpu0 = counters()
    t0 = time.monotonic()
    pid, in_w, out_r, err_r, failure = start(req)
    streams = {out_r: b"1", err_r: b"2"}
    pending = memoryview(req["stdin"])
    if failure or not pending:
        os.close(in_w)
        in_w = -1
    for fd in (out_r, err_r, in_w):
        if fd >= 0:
            os.set_blocking(fd, False)
    status = None
    while streams or status is None:
        rl = [0, wake_r, *streams]
        r, w, _ = select.select(rl, [in_w] if in_w >= 0 else [], [], 0.5)
        if wake_r in r:
            while True:
                try:
                    if not os.read(wake_r, 4096):
                        break
                except BlockingIOError:
                    break
        if 0 in r:
            kind, _ = read_frame()
            if kind == b"K":
                kill_all()
        for fd in [fd for fd in r if fd in streams]:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if chunk:
                send(streams[fd], chunk)
            else:
                os.close(fd)
                del streams[fd]
        if w:
            try:
                pending = pending[os.write(in_w, pending[:65536]) :]
            except BlockingIOError:
                pass
            except OSError:
                pending = pending[:0]
            if not pending:
                os.close(in_w)
                in_w = -1
        if status is None:
            reap()
            if pid in reaped:
                status = reaped.pop(pid)
                kill_all()
    if in_w >= 0:
        os.close(in_w)
    duration = time.monotonic() - t0
    oom1, pids1, cpu1 = counters()
    clean = kill_all() if req.get("keep") else wipe()
    head = f"{status} {duration:.6f} {cpu1 - cpu0:.6f} {oom1 - oom0} {pids1 - pids0} {clean:d}\n"
    send(b"X", head.encode() + failure)


def undumpable():
    """Keep programs of the same uid (a local session) from ptracing the agent or opening /proc/1/fd."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (ImportError, OSError, AttributeError):
        pass


def main():
    if os.getuid() == UID:
        undumpable()
    if os.stat("/work").st_uid == 0:  # podman ignores the tmpfs mode: open it to the program uid
        os.chmod("/work", 0o1777)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    send(b"R", f"{os.getpid()} {UID}".encode())
    while True:
        kind, body = read_frame()
        if kind == b"E":
            execute(marshal.loads(body), wake_r)


main()
