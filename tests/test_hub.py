"""Where weights come from: a real Hugging Face cache read offline, local folders, fallbacks.

Nothing is mocked: each case runs a fresh Python process with the environment a user
would set (HF_HUB_OFFLINE and HF_HUB_CACHE are read when huggingface_hub is imported).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fruitseg.hub import resolve_source
from fruitseg.models import FruitsClassificationModel

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LOAD = """
import json, torch
from fruitseg.hub import load_weights
from fruitseg.models import FruitsClassificationModel
model, source = load_weights(FruitsClassificationModel, "classifier")
torch.manual_seed(0)
logits = model(torch.randn(1, 3, 100, 100))
print(json.dumps({"kind": source.kind, "where": source.describe(), "logit0": float(logits[0, 0])}))
"""


def fill_hub_cache(cache: Path, repo_id: str, model_dir: Path, revision: str = "main") -> Path:
    """Lay files out exactly as huggingface_hub's cache does: blobs, a snapshot, a ref."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for index, name in enumerate(["config.json", "model.safetensors"]):
        blob = repo / "blobs" / f"{index:040x}"
        blob.write_bytes((model_dir / name).read_bytes())
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(COMMIT)
    return snapshot


def run_loader(env_overrides: dict, code: str = LOAD) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "FRUITSEG_"))}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env_overrides})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory):
    """A classifier with distinctive weights, saved with save_pretrained."""
    torch.manual_seed(1)
    model = FruitsClassificationModel().eval()
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    torch.manual_seed(0)
    with torch.inference_mode():
        expected = float(model(torch.randn(1, 3, 100, 100))[0, 0])
    return folder, expected


def test_from_pretrained_reads_the_hub_cache_offline(tmp_path, trained_like):
    folder, expected = trained_like
    fill_hub_cache(tmp_path, "someone/fruitseg-classifier", folder)
    code = """
import json, torch
from fruitseg.models import FruitsClassificationModel
model = FruitsClassificationModel.from_pretrained("someone/fruitseg-classifier")
torch.manual_seed(0)
print(json.dumps({"logit0": float(model(torch.randn(1, 3, 100, 100))[0, 0])}))
"""
    result = run_loader({"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}, code)
    assert result["logit0"] == pytest.approx(expected, abs=1e-6)


def test_app_loader_uses_a_configured_repo_and_revision_from_the_cache(tmp_path, trained_like):
    folder, expected = trained_like
    fill_hub_cache(tmp_path, "someone/fruitseg-classifier", folder, revision="v1")
    result = run_loader(
        {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "FRUITSEG_CLASSIFIER": "someone/fruitseg-classifier@v1"}
    )
    assert result["kind"] == "hub" and "someone/fruitseg-classifier@v1" in result["where"]
    assert result["logit0"] == pytest.approx(expected, abs=1e-6)


def test_unknown_repo_offline_falls_back_to_the_bundled_weights_quickly(tmp_path):
    started = time.perf_counter()
    result = run_loader({"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "FRUITSEG_CLASSIFIER": "nobody/missing"})
    assert result["kind"] == "bundled" and "fallback" in result["where"]
    assert time.perf_counter() - started < 60


def test_unreachable_hub_without_offline_flag_does_not_hang(tmp_path):
    # No HF_HUB_OFFLINE: the loader makes one short request, finds no Hub, and falls back.
    started = time.perf_counter()
    result = run_loader(
        {"HF_HUB_CACHE": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9", "FRUITSEG_CLASSIFIER": "nobody/missing"}
    )
    assert result["kind"] == "bundled"
    assert time.perf_counter() - started < 60


def test_a_local_folder_is_used_as_is(trained_like):
    folder, expected = trained_like
    result = run_loader({"FRUITSEG_CLASSIFIER": str(folder)})
    assert result["kind"] == "local" and result["logit0"] == pytest.approx(expected, abs=1e-6)


def test_source_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("FRUITSEG_SEGMENTER", raising=False)
    assert resolve_source("segmenter").kind == "bundled"
    monkeypatch.setenv("FRUITSEG_SEGMENTER", "user/repo@abc123")
    source = resolve_source("segmenter")
    assert (source.kind, source.location, source.revision) == ("hub", "user/repo", "abc123")
    monkeypatch.setenv("FRUITSEG_SEGMENTER", str(tmp_path))
    assert resolve_source("segmenter").kind == "local"
    monkeypatch.setenv("FRUITSEG_SEGMENTER", "not a repo id!")
    with pytest.raises(ValueError, match="neither an existing folder nor a Hub repo id"):
        resolve_source("segmenter")


def test_device_override(monkeypatch):
    from fruitseg.device import select_device

    monkeypatch.setenv("FRUITSEG_DEVICE", "cpu")
    assert select_device().type == "cpu"
    if not torch.cuda.is_available():
        monkeypatch.setenv("FRUITSEG_DEVICE", "cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device()


def test_the_photo_classifier_loads_from_a_configured_repo_in_the_cache(tmp_path):
    from fruitseg.models.efficientnet import EfficientNetFruitClassifier

    torch.manual_seed(2)
    folder = tmp_path / "model"
    EfficientNetFruitClassifier(image_size=64).eval().save_pretrained(folder)
    fill_hub_cache(tmp_path / "cache", "someone/fruitseg-photo-classifier", folder)
    code = """
import json
from PIL import Image
from fruitseg.predictors import PhotoClassifier
classifier = PhotoClassifier.load("cpu")
logits = classifier.logits([Image.new("RGB", (90, 70), (200, 40, 30))])
print(json.dumps({"where": classifier.source.describe(), "size": classifier.model.image_size, "logit0": float(logits[0, 0])}))
"""
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "FRUITSEG_PHOTO_CLASSIFIER": "someone/fruitseg-photo-classifier"}
    result = run_loader(env, code)
    assert "Hugging Face Hub: someone/fruitseg-photo-classifier" in result["where"] and result["size"] == 64
    local = run_loader({"FRUITSEG_PHOTO_CLASSIFIER": str(folder)}, code)
    assert local["logit0"] == pytest.approx(result["logit0"], abs=1e-5)  # the same weights, read from the cache
