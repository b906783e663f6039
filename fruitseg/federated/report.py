"""The federated results JSON -> summary rows, a markdown table, curves and a plot.

No Flower import here: the app's LMD explorer tab reads ``checkpoints/federated/results.json``
through this module.

The JSON (written by ``python -m fruitseg.federated run --json FILE``)::

    {"framework": "flwr 1.42.0", "setting": {...shared settings...}, "wall_seconds": ...,
     "runs": [{"algorithm", "seed", "partition", "alpha", "classes_per_client",
               "initial_accuracy", "accuracy": [top-1 after each round],
               "minority_accuracy": [...], "train_loss": [...], "clients_per_round": [...],
               "seconds"}, ...]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ALGORITHM_NAMES = {"fedavg": "FedAvg", "fedntd": "FedNTD", "fedlmd": "FedLMD"}
ALGORITHM_COLOURS = {"fedavg": "#64748b", "fedntd": "#2563eb", "fedlmd": "#f97316"}
SUMMARY_COLUMNS = ["setting", "algorithm", "seeds", "final top-1 (%)", "last-5-round top-1 (%)", "local minority acc., final (%)", "minutes per run"]


def read(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def setting_label(run: dict[str, Any]) -> str:
    if run.get("partition") == "shards":
        return f"shards, {run['classes_per_client']} classes/client"
    return f"Dirichlet α = {run['alpha']:g}"


def _groups(results: dict[str, Any]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in results["runs"]:
        groups.setdefault((setting_label(run), run["algorithm"]), []).append(run)
    return groups


def _pct(values: list[float]) -> str:
    array = 100 * np.asarray(values, dtype=float)
    return f"{array.mean():.1f} ± {array.std(ddof=1) if array.size > 1 else 0.0:.1f}"


def summary_rows(results: dict[str, Any]) -> list[list[Any]]:
    """One row per (setting, algorithm): mean ± std over seeds (sample std)."""
    rows = []
    for (setting, algorithm), runs in _groups(results).items():
        rows.append([
            setting,
            ALGORITHM_NAMES.get(algorithm, algorithm),
            len(runs),
            _pct([r["accuracy"][-1] for r in runs]),
            _pct([float(np.mean(r["accuracy"][-5:])) for r in runs]),
            _pct([r["minority_accuracy"][-1] for r in runs]),
            f"{np.mean([r['seconds'] for r in runs]) / 60:.1f}",
        ])  # fmt: skip
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * 2 + "---:|" * (len(SUMMARY_COLUMNS) - 2)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in summary_rows(results)]
    return "\n".join(lines)


def curves(results: dict[str, Any], key: str = "accuracy") -> list[dict[str, Any]]:
    """Long-format rows (setting, algorithm, round, mean, std, low, high) of ``key`` per round, over seeds."""
    rows = []
    for (setting, algorithm), runs in _groups(results).items():
        values = np.array([r[key] for r in runs], dtype=float)
        if key == "accuracy":
            values = np.column_stack([[r["initial_accuracy"] for r in runs], values])
        mean, std = values.mean(0), values.std(0, ddof=1) if len(runs) > 1 else np.zeros(values.shape[1])
        start = 0 if key == "accuracy" else 1
        for i, (m, s) in enumerate(zip(mean, std)):
            rows.append({
                "setting": setting, "algorithm": ALGORITHM_NAMES.get(algorithm, algorithm), "round": start + i,
                "mean": float(m), "std": float(s), "low": float(m - s), "high": float(m + s),
            })  # fmt: skip
    return rows


def plot(results: dict[str, Any], path: str | Path) -> Path:
    """Global top-1 per round, one panel per setting: mean over seeds and a ±1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(results)
    settings = list(dict.fromkeys(setting for setting, _ in groups))
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.8), squeeze=False, sharey=True)
    for ax, setting in zip(axes[0], settings):
        for (group_setting, algorithm), runs in groups.items():
            if group_setting != setting:
                continue
            values = 100 * np.array([[r["initial_accuracy"], *r["accuracy"]] for r in runs])
            mean = values.mean(0)
            std = values.std(0, ddof=1) if len(runs) > 1 else np.zeros_like(mean)
            rounds = np.arange(values.shape[1])
            colour = ALGORITHM_COLOURS.get(algorithm)
            ax.plot(rounds, mean, color=colour, label=f"{ALGORITHM_NAMES.get(algorithm, algorithm)} ({len(runs)} seeds)")
            ax.fill_between(rounds, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        ax.set_title(setting)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("global top-1 on held-out frames (%)")
    axes[0][-1].legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
