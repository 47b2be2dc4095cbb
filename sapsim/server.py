"""Running the simulator on a real port: ``run()`` in the foreground, ``SimServer`` in a thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from sapsim.app import create_sim_app, sim_state
from sapsim.config import SimConfig
from sapsim.state import SimState


def run(
    host: str = "127.0.0.1",
    port: int = 8600,
    config: SimConfig | None = None,
    log_level: str = "info",
) -> None:
    """Serve a new simulator with uvicorn until interrupted."""
    # the gate writes SAP's Date header itself (`clock_offset_s`)
    uvicorn.run(
        create_sim_app(config), host=host, port=port, log_level=log_level, date_header=False
    )


class SimServer:
    """A simulator served by uvicorn in a background thread (port 0 = any free port).

    >>> with SimServer() as sim:          # doctest: +SKIP
    ...     httpx.get(f"{sim.url}/sim/health")
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.app: FastAPI = create_sim_app(config)
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        server_config = uvicorn.Config(
            self.app, log_level=log_level, lifespan="off", date_header=False
        )
        self._server = uvicorn.Server(server_config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the SAP "API host")."""
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> SimState:
        return sim_state(self.app)

    def start(self, timeout: float = 10.0) -> SimServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("SAP simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
