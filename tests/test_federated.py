"""fruitseg.federated: partitions, the clients' losses, a real Flower simulation, the explorer's section.

Tiny synthetic data only (``fruitseg.federated.data.synthetic``): no Fruits-360 folder needed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fruitseg.federated import data as fdata
from fruitseg.federated import report
from fruitseg.federated.algorithms import LocalConfig, client_criterion, train_local
from fruitseg.federated.partitions import dirichlet_partition, label_counts, partition, shard_partition
from fruitseg.losses import LMDLoss, major_labels_from_counts, ntd_loss
from fruitseg.provenance import git_commit

LABELS = np.repeat(np.arange(10), 100)  # 10 classes x 100 samples


def _check_disjoint_and_complete(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert joined.size == n and np.unique(joined).size == n  # every sample on exactly one client


def _top_class_share(parts: list[np.ndarray]) -> float:
    counts = label_counts(LABELS, parts, 10)
    return float(np.mean(counts.max(1) / counts.sum(1)))


# --------------------------------------------------------------------------- partitions


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.5])
def test_dirichlet_partition_is_disjoint_complete_and_deterministic(alpha):
    parts = dirichlet_partition(LABELS, 10, alpha, seed=3)
    _check_disjoint_and_complete(parts, LABELS.size)
    assert min(p.size for p in parts) >= 10
    again = dirichlet_partition(LABELS, 10, alpha, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = dirichlet_partition(LABELS, 10, alpha, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    share = {alpha: np.mean([_top_class_share(dirichlet_partition(LABELS, 10, alpha, seed)) for seed in range(5)])
             for alpha in (0.05, 0.1, 0.5, 100.0)}  # fmt: skip
    assert share[0.05] > 0.6 and share[0.1] > 0.5  # a client's largest class: most of its data
    assert share[0.1] > share[0.5] + 0.1
    assert share[100.0] < 0.2  # almost uniform: 10 classes at ~10 % each
    classes_held = (label_counts(LABELS, dirichlet_partition(LABELS, 10, 0.1, 0), 10) > 0).sum(1)
    assert classes_held.mean() < 6


def test_shards_give_each_client_exactly_two_classes():
    parts = shard_partition(LABELS, 10, classes_per_client=2, seed=0)
    _check_disjoint_and_complete(parts, LABELS.size)
    counts = label_counts(LABELS, parts, 10)
    assert ((counts > 0).sum(1) == 2).all()
    assert (counts.sum(0) == 100).all()  # every class is held, in full
    assert all(np.array_equal(a, b) for a, b in zip(parts, partition(LABELS, 10, "shards", seed=0)))
    with pytest.raises(ValueError, match="cannot hold"):
        shard_partition(LABELS, 4, classes_per_client=2, seed=0)


# --------------------------------------------------------------------------- the clients' losses


def _client_batch(seed: int = 0):
    torch.manual_seed(seed)
    from fruitseg.federated.model import SmallFruitsCNN

    model = SmallFruitsCNN(6, image_size=16, channels=(4, 8, 8))
    y = torch.tensor([0] * 12 + [1] * 6 + [2, 3, 4, 5])  # classes 0 and 1 are this client's majors
    x = torch.randn(len(y), 3, 16, 16)
    return model, x, y, np.bincount(y.numpy(), minlength=6)


def test_fedlmd_client_loss_is_lmdloss_on_the_received_global_model():
    global_model, x, y, counts = _client_batch()
    majors = major_labels_from_counts(counts)
    assert majors.tolist() == [0, 1]
    config = LocalConfig(epochs=1, batch_size=len(y), lr=0.1, momentum=0.0, weight_decay=0.0, tau=2.0, beta=0.7)

    # One full-batch SGD step by hand: student and teacher both start as the global model.
    expected = copy.deepcopy(global_model)
    with torch.no_grad():
        teacher_logits = global_model(x)
    lmd = LMDLoss(6, tau=2.0, beta=0.7)(expected(x), y, teacher_logits, majors)
    lmd.backward()
    with torch.no_grad():
        for p in expected.parameters():
            p -= 0.1 * p.grad

    local = copy.deepcopy(global_model)
    loss = train_local(local, x, y, 6, "fedlmd", config, seed=0)
    assert loss == pytest.approx(lmd.item(), rel=1e-6)
    for got, want in zip(local.parameters(), expected.parameters()):
        torch.testing.assert_close(got, want)
    # ... and it is not NTD's (the major classes are masked in the teacher).
    ntd = F.cross_entropy(global_model(x), y) + 0.7 * ntd_loss(global_model(x), teacher_logits, y, 2.0)
    assert abs(float(ntd) - loss) > 1e-4


def test_client_criteria_use_fruitseg_losses():
    model, x, y, counts = _client_batch(1)
    logits, teacher = model(x), model(x).detach() + torch.randn(len(y), 6)
    fedavg, fedntd, fedlmd = (client_criterion(a, 6, counts, 1.5, 2.0) for a in ("fedavg", "fedntd", "fedlmd"))
    torch.testing.assert_close(fedavg(logits, y, teacher), F.cross_entropy(logits, y))
    torch.testing.assert_close(fedntd(logits, y, teacher), F.cross_entropy(logits, y) + 2.0 * ntd_loss(logits, teacher, y, 1.5))
    torch.testing.assert_close(
        fedlmd(logits, y, teacher), LMDLoss(6, 1.5, 2.0)(logits, y, teacher, major_labels_from_counts(counts))
    )
    with pytest.raises(ValueError, match="unknown algorithm"):
        client_criterion("fedprox", 6, counts, 1.0, 1.0)


def test_client_round_trains_its_own_partition():
    from fruitseg.federated.apps import RunSettings, client_partitions, client_round

    settings = RunSettings(algorithm="fedlmd", clients=3, alpha=0.5, size=16, classes=6, per_class=40, val_per_class=10)
    parts = client_partitions(settings)
    _check_disjoint_and_complete(parts, 6 * 40)
    start = settings.build_model(6).state_dict()
    weights, metrics = client_round(settings, 1, 1, start)
    again, _ = client_round(settings, 1, 1, start)
    assert metrics["num-examples"] == parts[1].size
    assert any(not torch.equal(weights[k], start[k]) for k in start)

    # Minority accuracy: the trained local model on the validation samples of the classes this
    # client has at most its mean count of (FedLMD's major classes are the ones above it).
    data = fdata.load(settings.data_spec())
    counts = np.bincount(data.y_train[parts[1]], minlength=6)
    minority = np.flatnonzero(counts * 6 <= counts.sum())
    assert 0 < minority.size < 6
    rows = np.isin(data.y_val, minority)
    local = settings.build_model(6).eval()
    local.load_state_dict(weights)
    with torch.no_grad():
        predicted = local(fdata.to_tensor(data.x_val[rows])).argmax(1).numpy()
    assert metrics["minority-accuracy"] == pytest.approx(np.mean(predicted == data.y_val[rows]))
    assert all(torch.equal(weights[k], again[k]) for k in start)  # deterministic per (seed, round, client)


# --------------------------------------------------------------------------- Flower


@pytest.mark.timeout(300)
def test_quick_run_through_flower_simulation(tmp_path):
    import flwr

    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "fruitseg.federated", "run", "--quick", "--data", "synthetic", "--workers", "1",
               "--json", str(out), "--plot", str(tmp_path / "curves.png")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["framework"] == f"flwr {flwr.__version__}"
    assert results["provenance"]["commit"].removesuffix("-dirty") == git_commit().removesuffix("-dirty")  # the code run
    runs = results["runs"]
    assert [r["algorithm"] for r in runs] == ["fedavg", "fedntd", "fedlmd"]
    setting = results["setting"]
    validation = len(fdata.synthetic(setting["classes"], setting["per_class"], setting["val_per_class"], setting["size"]).y_val)
    for run in runs:
        assert run["seed"] == 0 and run["alpha"] == 0.1
        assert len(run["accuracy"]) == len(run["minority_accuracy"]) == 3
        hits = np.multiply(run["accuracy"], validation)  # shares of the whole validation set
        np.testing.assert_allclose(hits, np.round(hits), atol=1e-6)
        assert all(len(c) == 2 for c in run["clients_per_round"])  # 4 clients, fraction 0.5
    assert runs[0]["clients_per_round"] == runs[1]["clients_per_round"] == runs[2]["clients_per_round"]
    assert runs[0]["initial_accuracy"] == runs[2]["initial_accuracy"]  # same seed, same initial model
    assert "| Dirichlet α = 0.1 | FedLMD | 1 |" in done.stdout
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_a_deployments_result_json_records_its_provenance(tmp_path, monkeypatch):
    import flwr
    from flwr.app import Context, RecordDict

    from fruitseg.federated import apps

    record = {"algorithm": "fedntd", "seed": 1, "accuracy": [0.5]}
    ran = []

    def one_run(grid, runs, on_finish, progress):  # Flower's loop itself is exercised by the simulation test
        ran.extend(runs)
        on_finish(record)

    monkeypatch.setattr(apps, "run_server", one_run)
    out = tmp_path / "fedntd-1.json"
    config = {"algorithm": "fedntd", "seed": 1, "result-json": str(out)}
    apps.make_server_app(progress=False)(None, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=config))
    assert [(r.algorithm, r.seed) for r in ran] == [("fedntd", 1)]
    results = json.loads(out.read_text())
    assert results["runs"] == [record] and results["framework"] == f"flwr {flwr.__version__}"
    assert results["provenance"]["commit"].removesuffix("-dirty") == git_commit().removesuffix("-dirty")  # others may edit the tree meanwhile
    assert results["provenance"]["inference_path"] == apps.INFERENCE_PATH


# --------------------------------------------------------------------------- report and the explorer's section


def _fake_results() -> dict:
    runs = [
        {"algorithm": a, "seed": s, "partition": p, "alpha": 0.1 if p == "dirichlet" else None,
         "classes_per_client": 2 if p == "shards" else None, "initial_accuracy": 0.05,
         "accuracy": [0.1 * (s + 1), 0.2 + 0.01 * s + 0.05 * i], "minority_accuracy": [0.1, 0.2], "seconds": 60.0}
        for p in ("dirichlet", "shards") for s in (0, 1, 2) for i, a in enumerate(("fedavg", "fedntd", "fedlmd"))
    ]  # fmt: skip
    setting = {"clients": 20, "classes": 40, "size": 32, "fraction": 0.25, "rounds": 2, "local_epochs": 2, "seeds": [0, 1, 2]}
    return {"framework": "flwr 1.42.0", "setting": setting, "runs": runs}


def test_report_table_and_curves():
    results = _fake_results()
    rows = report.summary_rows(results)
    assert len(rows) == 6
    assert rows[2][:4] == ["Dirichlet α = 0.1", "FedLMD", 3, "31.0 ± 1.0"]
    table = report.markdown_table(results)
    assert "| shards, 2 classes/client | FedAvg | 3 | 21.0 ± 1.0 |" in table
    curve = [r for r in report.curves(results) if r["algorithm"] == "FedAvg" and r["setting"].startswith("Dirichlet")]
    assert [r["round"] for r in curve] == [0, 1, 2]
    assert curve[1]["mean"] == pytest.approx(0.2) and curve[1]["std"] == pytest.approx(0.1)


def test_explorer_section_is_static_and_needs_no_flower(tmp_path):
    import gradio as gr

    from fruitseg.ui import federation

    path = tmp_path / "results.json"
    path.write_text(json.dumps(_fake_results()))
    report.plot(_fake_results(), tmp_path / "plot.png")
    with gr.Blocks() as demo:
        federation.build(path, tmp_path / "plot.png")
    kinds = [type(block).__name__ for block in demo.blocks.values()]
    assert kinds.count("LinePlot") == 2 and "Dataframe" in kinds
    images = [b for b in demo.blocks.values() if isinstance(b, gr.Image)]
    assert images and not any(image.interactive for image in images)  # never an upload target
    assert not demo.fns  # no event handlers, no endpoints
    with gr.Blocks() as empty:
        federation.build(tmp_path / "missing.json")
    assert not empty.fns

    code = "import sys, fruitseg.ui.federation, fruitseg.ui.lmd; assert not [m for m in sys.modules if m.startswith(('flwr', 'ray'))]"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
