"""Shared fixtures: the models (loaded once) and the real app served on a free port.
(``pytest`` imports the project from the repo root: ``pythonpath`` in pyproject.toml.)

The UI tests use the default weights (``checkpoints/`` unless FRUITSEG_CLASSIFIER /
FRUITSEG_SEGMENTER say otherwise). Tests that only pass with *trained* weights (e.g. "the
banana example is classified as Banana") carry the ``trained_weights`` marker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fruitseg.bench.server import free_port  # one helper for tests and benchmarks

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

EXAMPLES = ROOT / "fruitseg" / "ui" / "examples"
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def models():
    """Both models, loaded once for the whole session (default weights)."""
    from fruitseg.ui import load_models

    return load_models()


@pytest.fixture(scope="session")
def app_url(models):
    """The real app (same Blocks and launch options as app.py) on 127.0.0.1:<free port>."""
    from fruitseg.ui import build_demo, launch

    demo = build_demo(models)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def example_paths() -> dict[str, str]:
    return {p.stem: str(p) for p in EXAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}


@pytest.fixture()
def text_as_jpg(tmp_path: Path) -> str:
    """A text file named like a JPEG."""
    path = tmp_path / "notes.jpg"
    path.write_text("these are not the pixels you are looking for\n" * 20)
    return str(path)


@pytest.fixture(scope="session")
def tiny_fruits360(tmp_path_factory) -> Path:
    """Six classes, 24 'frames' each (copies of one fixture image), in the Fruits-360 layout."""
    root = tmp_path_factory.mktemp("Training")
    for image in sorted((FIXTURES / "fruits").glob("*.jpg")):
        name = image.stem.rsplit("_", 1)[0].replace("_", " ")
        folder = root / name
        folder.mkdir()
        for frame in range(0, 48, 2):
            shutil.copy(image, folder / f"{frame}_100.jpg")
    return root
