"""The pluggable operator hook: run the PitWall operator as a subprocess against a sandbox."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO


def default_command() -> list[str] | None:
    """`python -m pitwall_operator --all-namespaces` once the operator package can run; else None."""
    if importlib.util.find_spec("pitwall_operator.__main__") is None or importlib.util.find_spec(
            "pitwall_operator.handlers") is None or importlib.util.find_spec("kopf") is None:
        return None
    return [sys.executable, "-m", "pitwall_operator", "--all-namespaces"]


class OperatorProcess:
    """The operator in its own process group, logging to a file; `stop()` leaves nothing behind."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command, self.env, self.log_path = command, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command, env={**os.environ, **self.env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()
