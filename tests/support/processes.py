"""The bridge as a real OS process (`bridge serve`), for replica and crash tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.platform.settings import Settings

BRIDGE = str(Path(sys.executable).parent / "bridge")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables a replica reads."""
    values = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        values[str(alias)] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


class Replica:
    """One `bridge serve` process on a loopback port; stop() or kill() it."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **environment(settings)}
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [BRIDGE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=self._log,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"replica exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError("replica did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases stay taken."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
