"""The local backend's own behaviour: warm slots, set-up errors, the weak fallback, leak detection."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from palaestra.sandbox import Limits, SandboxError, SandboxUnavailableError
from palaestra.sandbox.local import LocalSandbox, WeakIsolationWarning

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install bubblewrap (make sysdeps)"
)

PROGRAMS = [
    ("print(sum(range(10)))", ""),
    ("import sys\nprint(sys.argv, __name__, __file__)\nprint(input())", "typed\n"),
    ("def f():\n    raise ValueError('boom')\nf()", ""),
    ("import sys\nsys.exit(4)", ""),
    ("import os\nprint(sorted(os.environ), os.getcwd())", ""),
]


def test_warm_and_cold_slots_give_identical_results():
    with LocalSandbox(max_concurrency=1) as warm, LocalSandbox(max_concurrency=1, warm=False) as cold:
        for code, stdin in PROGRAMS * 2:  # the second round runs on standby sandboxes
            a, b = warm.run_python(code, stdin=stdin), cold.run_python(code, stdin=stdin)
            assert (a.stdout, a.stderr, a.exit_code, a.signal) == (b.stdout, b.stderr, b.exit_code, b.signal)
        tb = warm.run_python(PROGRAMS[2][0]).stderr
        assert tb.splitlines()[1].startswith('  File "/work/main.py"'), (
            "the loader's frame leaked into the traceback"
        )


def test_a_call_with_other_limits_does_not_use_the_standby():
    with LocalSandbox(max_concurrency=1) as box:
        box.run_python("print(1)")
        time.sleep(0.3)  # the standby (default limits) is up
        tight = box.run_python("x = bytearray(300 * 1024 * 1024)", limits=Limits(memory_mb=64))
        assert tight.limit == "memory"
        assert box.run_python("x = bytearray(100 * 1024 * 1024)\nprint('ok')").stdout == "ok\n"


@pytest.mark.skipif(
    os.geteuid() != 0, reason="slot uids exist only when running as root: run the tests as root"
)
def test_leftover_processes_finds_a_process_of_a_slot_uid():
    with LocalSandbox(max_concurrency=1) as box:
        box.run_python("print(1)")
        time.sleep(0.3)
        assert box.leftover_processes() == []
        uid = box.slot_pool.slots[0].uid
        stray = subprocess.Popen(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "30"]
        )
        try:
            deadline = time.monotonic() + 2
            while stray.pid not in box.leftover_processes() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert stray.pid in box.leftover_processes()
        finally:
            stray.kill()
            stray.wait()


def test_missing_bubblewrap_is_a_clear_error(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        LocalSandbox(isolation="bubblewrap")
    with pytest.raises(SandboxUnavailableError, match="allow_weak_isolation"):
        LocalSandbox()  # auto falls back to unshare, which must be opted into
    with pytest.warns(WeakIsolationWarning, match="WITHOUT bubblewrap"):
        LocalSandbox(allow_weak_isolation=True).close()


def test_interpreter_the_sandbox_uid_cannot_reach_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the check applies to the root caller's uid drop: run the tests as root")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    python = private / "python3"
    python.symlink_to("/usr/bin/python3")
    os.chmod(private, 0o700)
    os.chmod(tmp_path, 0o700)
    with pytest.raises(SandboxUnavailableError, match="cannot enter"):
        LocalSandbox(python=str(python))


def test_a_sandbox_that_cannot_start_raises_instead_of_returning_a_result():
    with LocalSandbox(max_concurrency=1, warm=False) as box:
        box.command_line.system_binds = [*box.command_line.system_binds, "--ro-bind", "/does/not/exist", "/x"]
        with pytest.raises(SandboxError, match="failed to start"):
            box.run_python("print(1)")


@pytest.mark.skipif(
    os.geteuid() != 0, reason="slot uids exist only when running as root: run the tests as root"
)
def test_no_zombies_are_left_for_the_hosts_init_to_reap():
    """Zombies count against the slot uid's process limit; a container init may never reap them."""
    with LocalSandbox(max_concurrency=1) as box:
        for _ in range(4):
            box.run_python("print(1)")
            box.run_python("import time\ntime.sleep(9)", limits=Limits(wall_time_s=0.3))
            box.run_python("print('x' * 10**6)", limits=Limits(max_output_bytes=1000))
        uid = box.slot_pool.slots[0].uid
        zombies = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/status") as f:
                        status = dict(line.split(":", 1) for line in f)
                except OSError:
                    continue
                if int(status["Uid"].split()[0]) == uid and status["State"].split()[0] == "Z":
                    zombies.append(entry.name)
        assert not zombies
