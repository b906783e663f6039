"""fruitseg.provenance: the commit (and its dirtiness) and the machine a stored result came from."""

from __future__ import annotations

import csv
import json
import subprocess

from fruitseg import provenance as prov
from fruitseg.train.common import write_history


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
