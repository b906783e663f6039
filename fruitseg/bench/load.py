"""``python -m fruitseg.bench load``: concurrent clients against ``python app.py``: errors, latency, RSS growth."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from fruitseg.bench.inputs import FIXTURE_FRUITS
from fruitseg.bench.machine import mib, tree_rss_bytes
from fruitseg.bench.server import LMD_ARGS, AppServer, make_client
from fruitseg.bench.timing import summarize


def check_app_models() -> None:
    """Load, here, each model ``python app.py`` serves (the same weights, on the same device:
    ``FRUITSEG_*`` or checkpoints/), so that a missing or broken one stops the bench with
    :class:`~fruitseg.bench.loading.ModelUnavailable` before a server is started."""
    from fruitseg.bench.classifier import load_classifier
    from fruitseg.bench.photo import load_photo_classifier
    from fruitseg.bench.segmenter import load_segmenter

    for load in (load_segmenter, load_classifier, load_photo_classifier):
        load(None)


def bench_load(
    *,
    quick: bool = False,
    clients: int | None = None,
    requests: int | None = None,
    endpoints: Sequence[str] = ("/classify", "/lmd"),
    max_growth_pct: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``clients`` threads (one Client each) x ``requests`` requests per endpoint against an
    ``app.py`` subprocess: errors, latency, throughput, server RSS at ~1/4 and at the end.
    A model the app cannot load raises :class:`~fruitseg.bench.loading.ModelUnavailable`."""
    from gradio_client import handle_file

    clients = clients or (4 if quick else 16)
    requests = requests or (5 if quick else 25)
    total = clients * requests
    marks = (max(1, round(total / 4)), total)
    check_app_models()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fruitseg-bench-") as tmp, AppServer() as server:
        tmp = Path(tmp)
        image = str(FIXTURE_FRUITS / "Apple_Braeburn_116.jpg")
        calls = {
            "/classify": lambda c: c.predict(handle_file(image), api_name="/classify"),
            "/segment": lambda c: c.predict(handle_file(image), 0.5, 0.5, api_name="/segment"),
            "/lmd": lambda c: c.predict(**LMD_ARGS, api_name="/lmd"),
        }
        log(f"load: starting app.py on port {server.port}")
        warm = server.wait_ready(tmp / "downloads")
        for name in endpoints:  # the first call of each endpoint is not part of the run
            calls[name](warm)
        warm.close()
        for name in endpoints:
            log(f"load: {clients} clients x {requests} requests on {name}")
            pool = [make_client(server.url, tmp / f"downloads{i}") for i in range(clients)]
            latencies: list[float] = []
            errors: list[str] = []
            done = 0
            rss: dict[int, int | None] = {}
            lock = threading.Lock()
            barrier = threading.Barrier(clients + 1)

            def worker(client) -> None:
                nonlocal done
                barrier.wait()
                for _ in range(requests):
                    start = time.perf_counter()
                    try:
                        calls[name](client)
                        ok, message = True, ""
                    except Exception as error:  # counted, reported
                        ok, message = False, f"{type(error).__name__}: {str(error)[:200]}"
                    elapsed = time.perf_counter() - start
                    with lock:
                        done += 1
                        if ok:
                            latencies.append(elapsed)
                        else:
                            errors.append(message)
                        for mark in marks:
                            if done == mark:
                                rss[mark] = tree_rss_bytes(server.pid)

            rss_before = tree_rss_bytes(server.pid)
            threads = [threading.Thread(target=worker, args=(client,), daemon=True) for client in pool]
            for thread in threads:
                thread.start()
            barrier.wait()
            start = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            for client in pool:
                with contextlib.suppress(Exception):
                    client.close()
            early, late = rss.get(marks[0]), rss.get(marks[1])
            stats = summarize(latencies) if latencies else {"p50_ms": None, "p95_ms": None}
            results[name] = {
                "requests": total,
                "errors": len(errors),
                "error_examples": sorted(set(errors))[:5],
                "p50_ms": stats["p50_ms"],
                "p95_ms": stats["p95_ms"],
                "throughput_per_s": round(len(latencies) / wall, 3) if wall > 0 else None,
                "wall_s": round(wall, 2),
                "rss_before_mib": mib(rss_before),
                "rss_early_mib": mib(early),
                "rss_late_mib": mib(late),
                "rss_growth_pct": round(100 * (late - early) / early, 2) if early and late else None,
            }
        alive = server.process.poll() is None
    passed = alive and all(
        e["errors"] == 0 and e["rss_growth_pct"] is not None and e["rss_growth_pct"] < max_growth_pct for e in results.values()
    )
    return {
        "clients": clients,
        "requests_per_client": requests,
        "rss_marks": list(marks),
        "max_growth_pct": max_growth_pct,
        "input": "/classify: tests/fixtures/fruits/Apple_Braeburn_116.jpg (100x100); /lmd: 5 classes",
        "server_alive_after": alive,
        "endpoints": results,
        "passed": passed,
    }
