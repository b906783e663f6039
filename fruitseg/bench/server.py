"""The real app for the app and load benchmarks: ``python app.py`` in a subprocess, clients, endpoints."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from fruitseg.bench.inputs import ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LMD_ARGS = dict(
    student_logits=[2.0, 0.5, -1.0, 0.3, 1.2], teacher_logits=[1.5, 1.0, -0.5, 0.1, 0.8],
    target=0, T=3.0, beta=1.0, major_labels=[1, 4], counts=None,
)


def endpoint_calls(models, image: Path) -> dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]]:
    """For each API endpoint: (call through a client, the same function called directly)."""
    from gradio_client import handle_file

    from fruitseg.ui.classify import classify_api
    from fruitseg.ui.lmd import lmd_api
    from fruitseg.ui.segment import segment_api

    path = str(image)
    return {
        "/classify": (lambda c: c.predict(handle_file(path), api_name="/classify"), lambda: classify_api(models, path)),
        "/segment": (lambda c: c.predict(handle_file(path), 0.5, 0.5, api_name="/segment"), lambda: segment_api(models, path, 0.5, 0.5)),
        "/lmd": (lambda c: c.predict(**LMD_ARGS, api_name="/lmd"), lambda: lmd_api(**LMD_ARGS)),
    }


def make_client(url: str, downloads: str | Path):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=str(downloads), analytics_enabled=False)


class AppServer:
    """``python app.py`` in a subprocess on a free port (``with AppServer() as server:``).

    ``started`` is the perf_counter time of the spawn; :meth:`wait_ready` polls until a
    client can connect. The server's output goes to a log file (its tail is kept for errors).
    """

    def __init__(self, env: dict[str, str] | None = None, timeout: float = 300.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.timeout = timeout
        self.env = {
            **os.environ,
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log = tempfile.NamedTemporaryFile(prefix="fruitseg-bench-server-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def __enter__(self) -> "AppServer":
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        return ""

    def wait_ready(self, downloads: str | Path):
        """A connected ``gradio_client.Client``; raises RuntimeError if the server dies or times out."""
        deadline = time.perf_counter() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with code {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(Exception):
                return make_client(self.url, downloads)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"app.py did not answer within {self.timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)
