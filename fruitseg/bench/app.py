"""``python -m fruitseg.bench app``: each endpoint through ``gradio_client`` against the direct call, and cold start."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from fruitseg.bench.classifier import load_classifier
from fruitseg.bench.inputs import bench_scene_file
from fruitseg.bench.machine import RssSampler, mib, peak_rss_bytes
from fruitseg.bench.segmenter import load_segmenter
from fruitseg.bench.server import AppServer, endpoint_calls, free_port, make_client
from fruitseg.bench.timing import interleaved, ratio, summarize


def bench_models(device: str | None = None, log: Callable[[str], None] = print):
    """The app's ``Models`` with the shipped weights, or :class:`~fruitseg.bench.loading.ModelUnavailable`."""
    from fruitseg.ui.state import Models

    return Models(load_classifier(device), load_segmenter(device, log))


def cold_start(image: Path, downloads: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Seconds from spawning ``python app.py`` to its first successful /classify answer."""
    from gradio_client import handle_file

    log("app: cold start of python app.py")
    with AppServer() as server, RssSampler(server.pid) as sampler:
        try:
            client = server.wait_ready(downloads)
            up = time.perf_counter() - server.started
            t0 = time.perf_counter()
            client.predict(handle_file(str(image)), api_name="/classify")
            done = time.perf_counter()
        except Exception as error:
            return {"error": f"{type(error).__name__}: {str(error)[-500:]}"}
        return {
            "seconds": round(done - server.started, 2),
            "server_up_s": round(up, 2),
            "first_request_s": round(done - t0, 3),
            "server_peak_rss_mib": mib(sampler.peak),
            "rss_samples": sampler.samples,
        }


def bench_app(
    *, quick: bool = False, calls: int | None = None, device: str | None = None, cold: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Each endpoint through ``gradio_client`` vs the same function called directly (same run)."""
    from fruitseg.ui import build_demo, launch

    calls = calls or (6 if quick else 40)
    models = bench_models(device, log)
    with tempfile.TemporaryDirectory(prefix="fruitseg-bench-") as tmp:
        tmp = Path(tmp)
        image = bench_scene_file(tmp)
        demo = build_demo(models)
        port = free_port()
        log(f"app: launching in-process on port {port}")
        launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        endpoints: dict[str, Any] = {}
        try:
            client = make_client(f"http://127.0.0.1:{port}/", tmp / "downloads")
            for name, (remote, direct) in endpoint_calls(models, image).items():
                rounds = max(2, calls // (3 if quick else 5))
                log(f"app: {name} ({calls} client calls, {calls} direct calls)")
                samples = interleaved({"server": lambda: remote(client), "direct": direct}, rounds, max(1, calls // rounds), warmup=1)
                server, plain = summarize(samples["server"]), summarize(samples["direct"])
                endpoints[name] = {
                    "server": server,
                    "direct": plain,
                    "overhead_ratio": ratio(server["p50_ms"], plain["p50_ms"]),
                    "overhead_ms": round(server["p50_ms"] - plain["p50_ms"], 2),
                }
            client.close()
        finally:
            demo.close()
        result: dict[str, Any] = {
            "calls": calls,
            "input": f"{image.name} (a 512x512 composite scene of the fixture fruits); /lmd: 5 classes",
            "endpoints": endpoints,
        }
        if cold:
            result["cold_start"] = cold_start(image, tmp / "downloads", log)
    result["bench_peak_rss_mib"] = mib(peak_rss_bytes())
    return result
