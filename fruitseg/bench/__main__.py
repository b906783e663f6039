"""The command line: ``python -m fruitseg.bench [part] [--json FILE] [--markdown FILE] [--quick]``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

import fruitseg.bench
from fruitseg.bench.app import bench_app
from fruitseg.bench.classifier import bench_classifier
from fruitseg.bench.inputs import DEFAULT_BACKGROUNDS, DEFAULT_DATA
from fruitseg.bench.load import bench_load
from fruitseg.bench.loading import LOADED_WEIGHTS, ModelUnavailable
from fruitseg.bench.machine import machine_info, mib, peak_rss_bytes, reference_gflops
from fruitseg.bench.photo import bench_photo
from fruitseg.bench.report import PARTS, clean, to_markdown
from fruitseg.bench.segmenter import bench_segmenter
from fruitseg.provenance import provenance


def run(parts: Sequence[str], args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(args.device), "quick": args.quick}
    for part in parts:
        start = time.perf_counter()
        try:
            if part == "classifier":
                results[part] = bench_classifier(quick=args.quick, data=args.data, limit=args.limit, device=args.device, log=log)
            elif part == "photo":
                results[part] = bench_photo(quick=args.quick, device=args.device, log=log)
            elif part == "segmenter":
                results[part] = bench_segmenter(
                    quick=args.quick, data=args.data, backgrounds=args.backgrounds, device=args.device, scenes=args.scenes, log=log
                )
            elif part == "app":
                results[part] = bench_app(quick=args.quick, calls=args.calls, device=args.device, log=log)
            elif part == "load":
                results[part] = bench_load(quick=args.quick, clients=args.clients, requests=args.requests, log=log)
        except ModelUnavailable:
            raise  # no model, no figures: the whole run stops (main says why in one line)
        except Exception as error:
            if args.strict:
                raise
            log(f"{part}: FAILED: {type(error).__name__}: {error}")
            results[part] = {"error": f"{type(error).__name__}: {error}"}
        results.setdefault("seconds", {})[part] = round(time.perf_counter() - start, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    results["machine"]["reference_gflops_at_end"] = reference_gflops()
    results["machine"]["bench_peak_rss_mib"] = mib(peak_rss_bytes())
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fruitseg.bench", description=fruitseg.bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", default="all", choices=[*PARTS, "all"])
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number here")
    parser.add_argument("--markdown", default=None, metavar="FILE", help="write the markdown report here (it is printed either way)")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke test, not a measurement")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: as the app: FRUITSEG_DEVICE, else CUDA if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in this process (default: torch's choice; the app.py subprocesses keep theirs)")
    parser.add_argument("--data", default=None, help=f"Fruits-360 <Class>/*.jpg folder (default {DEFAULT_DATA}; fixtures if absent)")
    parser.add_argument("--backgrounds", default=None, help=f"background photos (default {DEFAULT_BACKGROUNDS})")
    parser.add_argument("--limit", type=int, default=None, help="classifier: at most this many held-out images for top-1 (0 = all; quick: 256)")
    parser.add_argument("--scenes", type=int, default=None, help="segmenter: scenes at 512x512 (default 32; quick 3)")
    parser.add_argument("--calls", type=int, default=None, help="app: calls per endpoint and path (default 40; quick 6)")
    parser.add_argument("--clients", type=int, default=None, help="load: concurrent clients (default 16; quick 4)")
    parser.add_argument("--requests", type=int, default=None, help="load: requests per client (default 25; quick 5)")
    parser.add_argument("--strict", action="store_true", help="stop at the first failing part instead of reporting it")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module="gradio")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    parts = PARTS if args.part == "all" else (args.part,)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the report only
        LOADED_WEIGHTS.clear()  # this run's models only
        try:
            results = run(parts, args, log)
        except ModelUnavailable as error:
            log(f"python -m fruitseg.bench: {error}")
            return 2
    markdown = to_markdown(results)
    if args.json:
        paths = {part: results[part]["inference_path"] for part in parts if "inference_path" in results.get(part, {})}
        # the commit, each measured model's path, and the weights of every model loaded
        results["provenance"] = provenance(paths or None, weights=dict(LOADED_WEIGHTS) or None)
        Path(args.json).write_text(json.dumps(clean(results), indent=1, allow_nan=False, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown)
    print(markdown)
    failed = [part for part in parts if "error" in results.get(part, {})]
    load_failed = "load" in results and not results["load"].get("passed", True)
    return 1 if failed or load_failed else 0


if __name__ == "__main__":
    sys.exit(main())
