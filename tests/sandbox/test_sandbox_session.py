"""`Sandbox.session()`: executions that share one work dir, on every backend that has sessions.

The unshare fallback has none (it says so); bubblewrap and docker must keep files across a session's
executions, kill what each execution leaves running, enforce the limits per execution, and leave
nothing for the next session.
"""

from __future__ import annotations

import pytest

from palaestra.sandbox import Limits, SandboxError, SandboxUnavailableError

FAST = Limits(
    wall_time_s=2.0, cpu_time_s=2.0, memory_mb=256, max_processes=16, disk_mb=32, max_output_bytes=1024
)


@pytest.fixture
def session(sandbox, sandbox_config):
    if sandbox_config.isolation == "unshare" and sandbox_config.backend == "local":
        with pytest.raises(SandboxUnavailableError, match="bubblewrap"):
            sandbox.session()
        pytest.skip("the unshare fallback has no sessions")
    with sandbox.session(files={"seed.txt": "seed\n", "sub/dir/x.txt": "x"}, limits=FAST) as opened:
        yield opened


def test_files_persist_across_executions(session):
    assert session.run(["cat", "seed.txt", "sub/dir/x.txt"]).stdout == "seed\nx"
    assert session.run(["sh", "-c", "echo one > a.txt && mkdir -p d && echo two > /tmp/t.txt"]).ok
    result = session.run(["sh", "-c", "cat a.txt /tmp/t.txt && test -d d && pwd"])
    assert result.ok and result.stdout == "one\ntwo\n/work\n"


def test_each_execution_starts_clean_apart_from_files(session):
    assert session.run(["sh", "-c", "cd d 2>/dev/null; export X=1; sleep 60 & echo started"]).ok
    # a fresh process in /work with the cleared environment; the background sleeper was killed
    result = session.run(
        ["sh", "-c", 'pwd; echo "X=${X:-unset}"; ps -e -o comm= 2>/dev/null | grep -c sleep']
    )
    assert result.stdout.splitlines()[:2] == ["/work", "X=unset"]
    assert result.stdout.splitlines()[2:] in (["0"], [])


def test_limits_stop_one_execution_and_the_session_goes_on(session):
    slow = session.run(["sleep", "30"])
    assert slow.limit == "wall_time" and slow.duration_s < 10
    loud = session.run(["sh", "-c", "yes"])
    assert loud.limit == "output" and loud.stdout_truncated
    per_call = session.run(["sleep", "3"], limits=FAST.model_copy(update={"wall_time_s": 0.5}))
    assert per_call.limit == "wall_time"
    assert session.run(["cat", "seed.txt"]).stdout == "seed\n"
    with pytest.raises(ValueError, match="fixed when it starts"):
        session.run(["true"], limits=FAST.model_copy(update={"memory_mb": 512}))


def test_disk_limit_holds_for_the_session(session):
    # 10 MB files (under the file-size limit), in several executions, into a 32 MB work dir
    for i in range(4):
        result = session.run(["sh", "-c", f"head -c 10000000 /dev/zero > f{i}"])
    assert "No space left" in result.stderr
    assert int(session.run(["du", "-sk", "."]).stdout.split()[0]) <= 32 * 1024


def test_nothing_leaks_into_the_next_session(sandbox, session):
    assert session.run(["sh", "-c", "echo secret > leak.txt; echo secret > /tmp/leak.txt"]).ok
    session.close()
    with pytest.raises(SandboxError, match="closed"):
        session.run(["true"])
    with sandbox.session(limits=FAST) as fresh:
        assert fresh.run(["sh", "-c", "ls -A /work /tmp"]).stdout.split() == ["/tmp:", "/work:"]
    # plain executions do not see a session's files either, and the slot works for them again
    assert sandbox.run(["ls", "-A"], limits=FAST).stdout == ""


def test_a_program_cannot_take_the_session_down(session):
    session.run(["sh", "-c", "kill -9 1; kill -9 -1; kill -STOP 1"])
    hijack = session.run(["sh", "-c", "cat /proc/1/environ || ls /proc/1/fd || echo denied"])
    assert "denied" in hijack.stdout
    assert session.run(["cat", "seed.txt"]).stdout == "seed\n"


def test_memory_and_process_limits_hold_for_every_execution(session):
    hog = session.run(["python3", "-c", "x = bytearray(400 * 1024 * 1024)"])
    assert hog.limit == "memory"
    forks = session.run(["sh", "-c", "for i in $(seq 40); do sleep 5 & done; wait"])
    assert forks.limit in ("processes", "wall_time") and "fork" in forks.stderr.lower()
    assert session.run(["cat", "seed.txt"]).stdout == "seed\n"


def test_a_session_that_finds_every_slot_busy_fails_with_the_fix(sandbox, sandbox_config, monkeypatch):
    if sandbox_config.isolation == "unshare" and sandbox_config.backend == "local":
        pytest.skip("the unshare fallback has no sessions")
    for module in ("api", "local", "docker"):  # the backends read the wait where they import it
        monkeypatch.setattr(f"palaestra.sandbox.{module}.SESSION_SLOT_WAIT_S", 0.2)
    held = [sandbox.session(limits=FAST) for _ in range(sandbox.max_concurrency)]
    try:
        with pytest.raises(
            SandboxError, match=r"no free sandbox slot within 0 s: all 2 are busy.*max_concurrency"
        ):
            sandbox.session(limits=FAST)
    finally:
        for opened in held:
            opened.close()
    with sandbox.session(limits=FAST) as again:  # a closed session's slot is free again
        assert again.run(["echo", "ok"]).stdout == "ok\n"
