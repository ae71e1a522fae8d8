"""The docker backend's own behaviour: warm-container reuse, limits per container, errors, cleanup.

Runs against a real Docker Engine (`bash scripts/sandbox-engine.sh` starts one; see
tests/sandbox/engine.py) and skips with the reason when none answers. The shared behaviour and attack
suites run against this backend too (`-k docker`).
"""

from __future__ import annotations

import sys

import pytest

from palaestra.sandbox import Limits, SandboxError, SandboxUnavailableError
from tests.sandbox.engine import SANDBOX_IMAGE, docker_engine_or_skip_reason

LIMITS = Limits(wall_time_s=8.0, cpu_time_s=3.0, memory_mb=192, max_processes=16, disk_mb=16)


@pytest.fixture(scope="module")
def engine_url() -> str:
    url_or_reason = docker_engine_or_skip_reason()
    if not url_or_reason.startswith(("unix://", "tcp://")):
        pytest.skip(f"docker backend: {url_or_reason}")
    return url_or_reason


@pytest.fixture(scope="module")
def client(engine_url):
    import docker

    client = docker.DockerClient(base_url=engine_url, version="auto")
    yield client
    client.close()


def _sandbox(engine_url: str, **kwargs):
    from palaestra.sandbox.docker import ContainerSandbox

    kwargs.setdefault("limits", LIMITS)
    kwargs.setdefault("image", SANDBOX_IMAGE)
    return ContainerSandbox(engine_url=engine_url, **kwargs)


@pytest.fixture(scope="module")
def box(engine_url):
    """One slot, so every execution reuses the same warm container."""
    sandbox = _sandbox(engine_url, max_concurrency=1)
    yield sandbox
    sandbox.close()


def _containers(client, sandbox) -> list:
    run = sandbox.labels["palaestra.sandbox.run"]
    return client.containers.list(all=True, filters={"label": f"palaestra.sandbox.run={run}"})


def test_warm_container_is_reused_without_leaking_files_or_processes(box, client):
    leave_behind = (
        "import ctypes, os, subprocess, sys\n"
        "for d in ('.', 'sub', '/tmp', '/dev/shm'):\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    open(os.path.join(d, 'secret'), 'w').write('from the first run')\n"
        "os.chmod('sub', 0)\n"  # a directory its owner cannot enter: the wipe must still remove it
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.shmget(0x5eed, 4096, 0o1666) >= 0, 'shmget failed'\n"  # IPC_CREAT | 0666
        "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    while True:\n        pass\n"
        "print('planted')"
    )
    first = box.run_python(leave_behind)
    assert first.ok and first.stdout == "planted\n", first
    (container,) = _containers(client, box)
    probe = (
        "import os\n"
        "procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "shm = open('/proc/sysvipc/shm').read().splitlines()[1:]\n"
        "print(sorted(os.listdir('.')), os.listdir('/tmp'), os.listdir('/dev/shm'), len(procs), len(shm))"
    )
    second = box.run_python(probe)
    assert second.stdout == "['main.py'] [] [] 2 0\n", second  # the agent and the probe itself
    assert [c.id for c in _containers(client, box)] == [container.id], "the warm container was replaced"


def test_programs_run_unprivileged_with_the_execution_limits(box):
    result = box.run(
        ["/bin/sh", "-c", "id -u; ulimit -t; ulimit -n; ulimit -p; grep CapEff /proc/self/status"]
    )
    uid, cpu, nofile, nproc, caps = result.stdout.splitlines()
    assert int(uid) >= 1_000_000
    assert (cpu, nofile, nproc) == ("3", "256", "16")
    assert caps.split()[1] == "0000000000000000"


def test_agent_is_out_of_the_programs_reach(box):
    code = (
        "import os\nfor path in ('/proc/1/environ', '/proc/1/mem', '/proc/1/fd/0'):\n"
        "    try:\n        open(path, 'rb').read(1)\n        print('read', path)\n"
        "    except OSError as e:\n        print('denied', type(e).__name__)\n"
        "try:\n    os.kill(1, 9)\nexcept OSError as e:\n    print('kill', type(e).__name__)"
    )
    result = box.run_python(code)
    assert "read" not in result.stdout, result
    assert "kill PermissionError" in result.stdout
    assert box.run_python("print('still here')").stdout == "still here\n"


def test_wall_time_kill_keeps_the_container(box, client):
    before = [c.id for c in _containers(client, box)]
    result = box.run(
        ["/bin/sh", "-c", "sleep 100 & sleep 100"], limits=LIMITS.model_copy(update={"wall_time_s": 1})
    )
    assert result.limit == "wall_time" and result.duration_s < 3, result
    assert box.run_python("print(1 + 1)").stdout == "2\n"
    assert [c.id for c in _containers(client, box)] == before


def test_changed_limits_are_honoured(box, client):
    read_limits = (
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip(),"
        " open('/sys/fs/cgroup/pids/pids.max').read().strip())"
    )
    if not box.run_python(
        "import os\nprint(os.path.exists('/sys/fs/cgroup/memory/memory.limit_in_bytes'))"
    ).stdout.startswith("True"):
        pytest.skip("cgroup v2 engine: the v1 files this test reads are absent")
    (before,) = _containers(client, box)
    small = LIMITS.model_copy(update={"memory_mb": 64, "max_processes": 8})
    memory, pids = box.run_python(read_limits, limits=small).stdout.split()
    assert int(memory) < 128 * 1024 * 1024 and int(pids) < 16
    hog = "b = []\nwhile True:\n    b.append(bytearray(8 << 20))"
    assert box.run_python(hog, limits=small).limit == "memory"
    forks = "import os\nfor _ in range(10):\n    os.fork()"
    assert box.run_python(forks, limits=small).limit == "processes"
    (after,) = _containers(client, box)
    assert after.id == before.id or box.is_podman, "memory and pids limits change in place (docker)"
    bigger_disk = LIMITS.model_copy(update={"disk_mb": 24})
    df = "import os\ns = os.statvfs('/work')\nprint(s.f_blocks * s.f_frsize // (1 << 20))"
    assert box.run_python(df, limits=bigger_disk).stdout == "24\n"
    (recreated,) = _containers(client, box)
    assert recreated.id != after.id, "a new disk size needs a new container"


def test_files_larger_than_the_disk_fail_setup_and_the_slot_recovers(box):
    with pytest.raises(SandboxError, match="failed to start"):
        box.run_python("print(1)", files={"big.bin": b"x" * (LIMITS.disk_mb + 1) * 1024 * 1024})
    assert box.run_python("import os\nprint(os.listdir('.'))").stdout == "['main.py']\n"


def test_one_container_per_slot_and_close_removes_them(engine_url, client):
    import concurrent.futures

    sandbox = _sandbox(engine_url, max_concurrency=2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: sandbox.run_python("import time\ntime.sleep(0.3)"), range(4)))
    assert all(r.ok for r in results), results
    assert len(_containers(client, sandbox)) == 2
    sandbox.close()
    sandbox.close()  # idempotent
    assert _containers(client, sandbox) == []
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run_python("print(1)")


def test_missing_image_is_a_clear_error(engine_url):
    with pytest.raises(SandboxUnavailableError, match=r"no-such-sandbox:latest.*build it: docker build"):
        _sandbox(engine_url, image="no-such-sandbox:latest")


def test_missing_python_in_the_image_is_a_clear_error(engine_url):
    sandbox = _sandbox(engine_url, python="/opt/no/python3")
    try:
        with pytest.raises(SandboxUnavailableError, match="/opt/no/python3"):
            sandbox.run_python("print(1)")
    finally:
        sandbox.close()


@pytest.mark.parametrize("url", ["unix:///nonexistent/palaestra-docker.sock", "tcp://127.0.0.1:9"])
def test_unreachable_engine_names_the_url(url):
    pytest.importorskip("docker")
    from palaestra.sandbox.docker import ContainerSandbox

    with pytest.raises(SandboxUnavailableError, match=f"no docker engine answers at {url}"):
        ContainerSandbox(engine_url=url, image=SANDBOX_IMAGE)


def test_missing_sdk_says_how_to_install_it(monkeypatch):
    from palaestra.sandbox.docker import ContainerSandbox

    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(SandboxUnavailableError, match=r"pip install 'palaestra\[sandbox-docker\]'"):
        ContainerSandbox(image=SANDBOX_IMAGE)
