"""fruitseg.provenance: the commit (and its dirtiness), the weights and the machine a stored result came from."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fruitseg import provenance as prov
from fruitseg.hub import CHECKPOINTS
from fruitseg.predictors import PhotoClassifier, Segmenter
from fruitseg.train.common import write_history

from test_hub import fill_hub_cache, run_loader


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(prov.REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_commit_is_head_and_says_when_tracked_files_differ():
    commit = prov.git_commit()
    head = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    assert commit == head + ("-dirty" if dirty else "")


def test_outside_a_git_checkout_the_commit_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(prov, "REPO", tmp_path)
    assert prov.git_commit() == "unknown"


def test_provenance_is_json_and_names_the_machine():
    record = json.loads(json.dumps(prov.provenance("int8")))
    assert set(record) == {"commit", "inference_path", "torch", "cpu", "cpu_bfloat16", "cpu_threads"}
    assert record["commit"] == prov.git_commit() and record["cpu"] not in ("", "unknown")


def test_training_history_records_each_epochs_commit(tmp_path):
    history = [{"epoch": 1, "loss": 0.5, "commit": "an-earlier-commit"}, {"epoch": 2, "loss": 0.4}]
    write_history(tmp_path, history)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["commit"] for r in stored] == ["an-earlier-commit", prov.git_commit()]  # a resumed run keeps epoch 1's
    with open(tmp_path / "metrics.csv") as f:
        assert [row["commit"] for row in csv.DictReader(f)] == ["an-earlier-commit", prov.git_commit()]


def sha256_16(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_weights_are_recorded_only_when_given():
    identity = {"source": "bundled: checkpoints/segmenter", "sha256": "0123456789abcdef"}
    record = json.loads(json.dumps(prov.provenance("float32", weights={"segmenter": identity})))
    assert record["weights"] == {"segmenter": identity}
    assert set(record) - {"weights"} == set(prov.provenance("float32"))  # the other keys as before


def test_bundled_weights_are_named_with_the_hash_of_the_file_read(monkeypatch):
    for name, env, model_class in (("segmenter", "FRUITSEG_SEGMENTER", Segmenter),
                                   ("photo-classifier", "FRUITSEG_PHOTO_CLASSIFIER", PhotoClassifier)):
        monkeypatch.delenv(env, raising=False)
        identity = prov.weights_identity(model_class.load("cpu").source)
        assert identity == {"source": f"bundled: checkpoints/{name}", "sha256": sha256_16(CHECKPOINTS / name / "model.safetensors")}


def test_weights_from_a_local_folder_are_told_apart_from_the_bundled_ones(monkeypatch, tmp_path):
    candidate = tmp_path / "candidate"
    shutil.copytree(CHECKPOINTS / "segmenter", candidate)
    monkeypatch.setenv("FRUITSEG_SEGMENTER", str(candidate))
    identity = prov.weights_identity(Segmenter.load("cpu").source)
    assert identity["source"] == f"local folder: {candidate.resolve()}"
    assert identity["sha256"] == sha256_16(candidate / "model.safetensors")  # the same bytes as the bundled file

    weights = candidate / "model.safetensors"  # a candidate: one weight changed
    with safe_open(weights, "pt") as f:
        metadata = f.metadata()
    tensors = load_file(weights)
    first = min(tensors)
    tensors[first] = tensors[first] + 1
    save_file(tensors, weights, metadata)
    changed = prov.weights_identity(Segmenter.load("cpu").source)
    assert changed["source"] == identity["source"]
    assert changed["sha256"] == sha256_16(weights) != sha256_16(CHECKPOINTS / "segmenter" / "model.safetensors")


def test_weights_from_the_hub_are_hashed_from_the_cached_file(tmp_path):
    """A real Hugging Face cache read offline (a fresh process: HF_HUB_CACHE is read at import)."""
    snapshot = fill_hub_cache(tmp_path, "someone/fruitseg-segmenter", CHECKPOINTS / "segmenter", revision="v2")
    code = """
import json
from fruitseg.predictors import Segmenter
from fruitseg.provenance import weights_file, weights_identity
source = Segmenter.load("cpu").source
print(json.dumps({**weights_identity(source), "file": str(weights_file(source))}))
"""
    env = {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "FRUITSEG_SEGMENTER": "someone/fruitseg-segmenter@v2"}
    result = run_loader(env, code)
    assert result["source"].startswith("Hugging Face Hub: someone/fruitseg-segmenter@v2")
    assert result["file"] == str(snapshot / "model.safetensors")
    assert result["sha256"] == sha256_16(CHECKPOINTS / "segmenter" / "model.safetensors")


def test_a_model_built_in_memory_has_no_weights_file():
    assert prov.weights_identity(None) == {"source": "given model", "sha256": "unknown"}


def test_an_evaluation_json_names_the_weights_it_ran_with(monkeypatch, tmp_path, tiny_fruits360):
    from fruitseg.evaluate import main

    monkeypatch.delenv("FRUITSEG_CLASSIFIER", raising=False)
    out = tmp_path / "classifier.json"
    main(["classifier", "--data", str(tiny_fruits360), "--limit", "2", "--float32", "--json", str(out)])
    weights = json.loads(out.read_text())["provenance"]["weights"]
    assert weights == {"classifier": {"source": "bundled: checkpoints/classifier",
                                      "sha256": sha256_16(CHECKPOINTS / "classifier" / "model.safetensors")}}


def test_a_benchmark_json_names_the_weights_of_the_models_it_loaded(monkeypatch, tmp_path):
    import fruitseg.bench.__main__ as cli
    from fruitseg.bench.machine import machine_info
    from fruitseg.bench.segmenter import load_segmenter

    monkeypatch.delenv("FRUITSEG_SEGMENTER", raising=False)

    def run(parts, args, log):  # loads the real segmenter the way every bench part does, measures nothing
        load_segmenter("cpu")
        return {"machine": machine_info("cpu"), "quick": True, "segmenter": {"error": "not measured in this test"}}

    monkeypatch.setattr(cli, "run", run)
    out = tmp_path / "bench.json"
    cli.main(["segmenter", "--quick", "--json", str(out)])
    weights = json.loads(out.read_text())["provenance"]["weights"]
    assert weights == {"segmenter": {"source": "bundled: checkpoints/segmenter",
                                     "sha256": sha256_16(CHECKPOINTS / "segmenter" / "model.safetensors")}}
