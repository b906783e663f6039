"""A static section under the LMD explorer: what the loss does in a federation.

Built once from ``checkpoints/federated/results.json`` (``python -m fruitseg.federated run``,
Flower's simulation engine): the global model's accuracy per round for FedAvg, FedNTD and
FedLMD (native line charts of the mean over seeds, and the shipped plot with the spread), the
table of final accuracy, and what the one-sample view above means for the federation. No event
handlers and no API endpoint; the app never trains and never imports Flower.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from fruitseg.federated import report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "checkpoints" / "federated" / "results.json"
PLOT = ROOT / "checkpoints" / "federated" / "accuracy.png"

MEANING = (
    "**What the one-sample view means for the federation.** Each client's local data is skewed, so its *major* "
    "classes are the ones the counts rule picks above. On every sample the LMD term makes the client's model "
    "match the global model (the teacher it received this round) on the classes it rarely sees, and penalises "
    "probability on its own major classes, where plain cross-entropy (FedAvg) lets the local model forget the "
    "rest. Averaged over a round's clients, that should keep the global model from being pulled towards "
    "whichever clients trained last. It can only differ from NTD when a client has several major classes and a "
    "tail of minority ones (Dirichlet skew); with 2 classes per client both are major and LMD is nearly NTD."
)


def accuracy_frame(results: dict, setting: str) -> pd.DataFrame:
    """Round, mean top-1 (%) over seeds and algorithm, for one setting's line chart."""
    rows = [row for row in report.curves(results) if row["setting"] == setting]
    return pd.DataFrame(
        {"round": [r["round"] for r in rows], "top-1 (%)": [round(100 * r["mean"], 2) for r in rows],
         "algorithm": [r["algorithm"] for r in rows]}
    )  # fmt: skip


def build(results_path: str | Path = RESULTS, plot_path: str | Path = PLOT) -> None:
    """The section's components (call inside the LMD explorer's Blocks). Static: no events."""
    gr.Markdown("## In a federation: FedAvg vs FedNTD vs FedLMD", elem_id="fed-title")
    path = Path(results_path)
    if not path.is_file():
        gr.Markdown(f"No federated results shipped (`{path.name}` is missing): see `python -m fruitseg.federated run`.")
        return
    results = report.read(path)
    setting = results["setting"]
    seeds = ", ".join(str(s) for s in setting["seeds"])
    gr.Markdown(
        f"{setting['clients']} clients with label-skewed shares of {setting['classes']} Fruits-360 classes "
        f"({setting['size']}x{setting['size']} px), {round(setting['fraction'] * setting['clients'])} of them per "
        f"round, {setting['rounds']} rounds of {setting['local_epochs']} local epochs; the same small CNN, partitions, "
        f"seeds ({seeds}) and optimiser for all three; global top-1 on the held-out frame blocks. Trained with "
        f"{results['framework']} (simulation engine); see `checkpoints/federated/README.md`.",
        elem_id="fed-setting",
    )
    colours = {report.ALGORITHM_NAMES[k]: v for k, v in report.ALGORITHM_COLOURS.items()}
    settings = list(dict.fromkeys(report.setting_label(run) for run in results["runs"]))
    with gr.Row(equal_height=False):
        for name in settings:
            gr.LinePlot(
                accuracy_frame(results, name), x="round", y="top-1 (%)", color="algorithm", color_map=colours,
                title=f"{name}: mean over seeds", height=300, elem_classes="fed-curve",
            )  # fmt: skip
    gr.Dataframe(
        pd.DataFrame(report.summary_rows(results), columns=report.SUMMARY_COLUMNS),
        interactive=False, label="Final accuracy, mean ± std over seeds", elem_id="fed-table",
    )  # fmt: skip
    if Path(plot_path).is_file():
        with gr.Accordion("The curves with their spread over seeds (±1 std)", open=False):
            gr.Image(str(plot_path), interactive=False, show_label=False, elem_id="fed-plot")
    gr.Markdown(MEANING, elem_id="fed-meaning")
