"""``python -m fruitseg.federated run ...``: FedAvg vs FedNTD vs FedLMD in Flower's simulation engine.

    python -m fruitseg.federated run --algorithms fedavg fedntd fedlmd --alpha 0.1 --clients 10 \\
        --rounds 50 --seeds 0 1 2 --json results.json
    python -m fruitseg.federated run --quick                # a tiny run, under 2 minutes on 2 cores
    python -m fruitseg.federated report results.json --plot accuracy.png   # table (+ plot)

Every (setting, seed, algorithm) is one run of Flower's FedAvg loop with its own strategy; all
runs of one command share one simulation (one set of virtual SuperNodes), which saves starting
the Ray workers again for every run. ``--alpha`` takes several values and ``--shards N`` adds
the N-classes-per-client setting. The JSON is rewritten after every finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from fruitseg.federated import report
from fruitseg.federated.algorithms import ALGORITHMS

DEFAULT_DATA = "../shared/data/fruits360/Training"
QUICK = dict(classes=10, per_class=20, val_per_class=10, clients=4, fraction=0.5, rounds=3, local_epochs=1, seeds=[0])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fruitseg.federated", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the comparison in Flower's simulation engine")
    run.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    run.add_argument("--alpha", nargs="*", type=float, default=None, help="Dirichlet label-skew settings (default 0.1)")
    run.add_argument("--shards", type=int, default=None, metavar="N", help="also run the N-classes-per-client shard setting")
    run.add_argument("--clients", type=int, default=20)
    run.add_argument("--fraction", type=float, default=0.25, help="fraction of the clients trained per round")
    run.add_argument("--rounds", type=int, default=30)
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run.add_argument("--local-epochs", type=int, default=2)
    run.add_argument("--batch-size", type=int, default=50)
    run.add_argument("--lr", type=float, default=0.01)
    run.add_argument("--tau", type=float, default=1.0, help="distillation temperature (FedNTD, FedLMD)")
    run.add_argument("--beta", type=float, default=1.0, help="distillation weight (FedNTD, FedLMD)")
    run.add_argument("--width", type=int, default=16, help="channels of the CNN's first block (then x2, x4)")
    run.add_argument("--data", default=DEFAULT_DATA, help="Fruits-360 Training folder, or 'synthetic'")
    run.add_argument("--size", type=int, default=32, help="image side after downscaling")
    run.add_argument("--classes", type=int, default=40, help="classes, evenly spaced over the 131 (0 = all)")
    run.add_argument("--per-class", type=int, default=60, help="training frames per class, evenly spaced (0 = all)")
    run.add_argument("--val-per-class", type=int, default=20, help="validation frames per class (0 = all)")
    run.add_argument("--cache-dir", default=None, help="where the downscaled arrays are cached")
    run.add_argument("--workers", type=int, default=2, help="clients trained at once (Ray actors, 1 thread each)")
    run.add_argument("--json", type=Path, default=None, help="write the results here")
    run.add_argument("--plot", type=Path, default=None, help="write the accuracy plot here (PNG)")
    run.add_argument("--quick", action="store_true", help="tiny: 4 clients, 3 rounds, 10 classes, 1 seed")
    run.add_argument("--verbose", action="store_true", help="Flower's INFO log")
    rep = commands.add_parser("report", help="print the markdown table of a results JSON")
    rep.add_argument("json", type=Path)
    rep.add_argument("--plot", type=Path, default=None)
    return parser


def _runs(args: argparse.Namespace):
    from fruitseg.federated.apps import RunSettings

    shared = dict(
        clients=args.clients, fraction=args.fraction, rounds=args.rounds, local_epochs=args.local_epochs,
        batch_size=args.batch_size, lr=args.lr, tau=args.tau, beta=args.beta, width=args.width, data=args.data,
        size=args.size, classes=args.classes, per_class=args.per_class, val_per_class=args.val_per_class,
    )  # fmt: skip
    if args.cache_dir:
        shared["cache_dir"] = str(Path(args.cache_dir).resolve())
    settings = [dict(partition="dirichlet", alpha=a) for a in (args.alpha if args.alpha is not None else [0.1])]
    if args.shards:
        settings.append(dict(partition="shards", classes_per_client=args.shards))
    if not settings:
        raise SystemExit("nothing to run: give --alpha values and/or --shards")
    base = RunSettings(**shared)
    runs = [
        dataclasses.replace(base, algorithm=algorithm, seed=seed, **setting)
        for setting in settings
        for seed in args.seeds
        for algorithm in args.algorithms
    ]
    return base, runs


def run(args: argparse.Namespace) -> dict:
    from flwr.simulation import run_simulation

    from fruitseg.federated import data as fdata
    from fruitseg.federated.apps import client_app, make_server_app, results_header

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key.replace("-", "_"), value)
        if args.data != fdata.SYNTHETIC and not Path(args.data).is_dir():
            print(f"--quick: {args.data} not found, using synthetic data", file=sys.stderr)
            args.data = fdata.SYNTHETIC
    if not args.verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if args.data != fdata.SYNTHETIC:
        args.data = str(Path(args.data).resolve())
    base, runs = _runs(args)
    fdata.load(base.data_spec())  # decode and cache once, before the Ray workers read it
    shared = {k: v for k, v in dataclasses.asdict(base).items() if k not in ("algorithm", "seed", "partition", "alpha", "classes_per_client", "cache_dir")}
    results = {
        **results_header(),
        "setting": {
            **shared,
            "data": args.data if args.data == fdata.SYNTHETIC else os.path.relpath(args.data),
            "algorithms": args.algorithms,
            "seeds": args.seeds,
            "settings": sorted({report.setting_label(dataclasses.asdict(r)) for r in runs}),
            "model": f"SmallFruitsCNN: 3 x [conv5x5, ReLU, maxpool2] with {base.width}/{2 * base.width}/{4 * base.width} channels, Linear",
            "workers": args.workers,
            "command": "python -m fruitseg.federated " + shlex.join(sys.argv[1:]),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        },
        "runs": [],
    }
    started = time.perf_counter()

    def finished(record: dict) -> None:
        results["runs"].append(record)
        results["wall_seconds"] = round(time.perf_counter() - started, 1)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1) + "\n")

    run_simulation(
        make_server_app(runs, on_finish=finished),
        client_app,
        num_supernodes=base.clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": args.workers}},
    )
    if len(results["runs"]) != len(runs):
        raise SystemExit(f"only {len(results['runs'])} of {len(runs)} runs finished (see the log above)")
    print(report.markdown_table(results))
    print(f"{len(runs)} runs in {results['wall_seconds'] / 60:.1f} min")
    if args.plot:
        print(f"plot: {report.plot(results, args.plot)}")
    return results


def main(argv: list[str] | None = None) -> None:
    from fruitseg.federated.data import SYNTHETIC

    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run" and not args.quick and args.data != SYNTHETIC and not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder (the shared data lives in ../shared/data beside the project; "
                     "--data synthetic or --quick run without it)")  # fmt: skip
    if args.command == "run":
        run(args)
    else:
        results = report.read(args.json)
        print(report.markdown_table(results))
        if args.plot:
            print(f"plot: {report.plot(results, args.plot)}")


if __name__ == "__main__":
    main()
