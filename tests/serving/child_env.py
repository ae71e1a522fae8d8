"""`test/Child-v0`: an env that owns a child process (a `sleep`) from reset until close, like an env
holding a sandbox or a browser does. Importing this module registers it; `python tests/serving/child_env.py
serve ...` runs `palaestra serve` with it registered (the reliability tests' server)."""

from __future__ import annotations

import subprocess
import sys

import palaestra
from palaestra import StepOutcome, TextEnv


class ChildEnv(TextEnv):
    """Echo env whose episode holds a `sleep` subprocess (killed and reaped by `close`)."""

    def __init__(self) -> None:
        super().__init__(max_turns=1000)
        self.child: subprocess.Popen[bytes] | None = None

    def _reset(self, options):
        self._stop_child()
        self.child = subprocess.Popen(["sleep", "600"])
        return f"child {self.child.pid}", {"task_id": "child", "pid": self.child.pid}

    def _step(self, action: str) -> StepOutcome:
        return StepOutcome(action, reward=1.0)

    def _stop_child(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            self.child = None

    def close(self) -> None:
        self._stop_child()
        super().close()


palaestra.register_env("test/Child-v0", ChildEnv, max_turns=1000, override=True)

if __name__ == "__main__":
    from palaestra.cli import main

    sys.argv[0] = "palaestra"
    main()
