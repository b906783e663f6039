"""Where weights come from.

Each model has an environment variable (``FRUITSEG_CLASSIFIER``, ``FRUITSEG_PHOTO_CLASSIFIER``,
``FRUITSEG_SEGMENTER``) that may hold:

* a Hugging Face Hub repo id, optionally pinned: ``user/fruitseg-classifier@v1.0``;
* a local directory with ``config.json`` + ``model.safetensors``.

Unset, the bundled ``checkpoints/<name>`` is used. If the Hub cannot be reached (no
network, ``HF_HUB_OFFLINE=1``) the local Hugging Face cache is tried, and failing that the
bundled weights are loaded, with one log line that says why. The device is
:mod:`fruitseg.device`'s business.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

log = logging.getLogger("fruitseg")

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
ENV_VARS = {
    "classifier": "FRUITSEG_CLASSIFIER",
    "photo-classifier": "FRUITSEG_PHOTO_CLASSIFIER",
    "segmenter": "FRUITSEG_SEGMENTER",
}
HUB_TIMEOUT_S = 4.0
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights were (or will be) read from."""

    kind: str  # "hub", "local" or "bundled"
    location: str  # repo id or folder
    revision: str | None = None
    note: str = ""  # why a fallback happened, if one did

    def describe(self) -> str:
        if self.kind == "hub":
            text = f"Hugging Face Hub: {self.location}" + (f"@{self.revision}" if self.revision else "")
        elif self.kind == "local":
            text = f"local folder: {self.location}"
        else:
            text = f"bundled: checkpoints/{Path(self.location).name}"
        return f"{text} ({self.note})" if self.note else text


def bundled(name: str, note: str = "") -> WeightsSource:
    return WeightsSource("bundled", str(CHECKPOINTS / name), note=note)


def resolve_source(name: str) -> WeightsSource:
    """Read ``FRUITSEG_<NAME>``: a folder, a Hub repo id (``id@revision``), or unset (bundled)."""
    value = os.environ.get(ENV_VARS[name], "").strip()
    if not value:
        return bundled(name)
    if Path(value).is_dir():
        return WeightsSource("local", str(Path(value).resolve()))
    if _REPO_ID.match(value):
        repo_id, _, revision = value.partition("@")
        return WeightsSource("hub", repo_id, revision or None)
    raise ValueError(f"{ENV_VARS[name]}={value!r} is neither an existing folder nor a Hub repo id (user/name[@revision])")


def hub_reachable(repo_id: str, revision: str | None) -> bool:
    """One quick request (no retries): can the Hub answer for this repo now?"""
    if constants.HF_HUB_OFFLINE:
        return False
    try:
        HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)
        return True
    except Exception as error:  # HTTP errors, DNS/connection errors (httpx's are not OSErrors), ...
        log.info("Hub check for %s failed: %s", repo_id, error)
        return False


def load_weights(model_class, name: str, device: torch.device | str = "cpu"):
    """Instantiate ``model_class`` with weights from :func:`resolve_source`; returns (model, source)."""
    source = resolve_source(name)
    if source.kind == "hub":
        online = hub_reachable(source.location, source.revision)
        try:
            model = model_class.from_pretrained(
                source.location, revision=source.revision, local_files_only=not online, map_location=str(device)
            )
            note = "" if online else "offline, from the local cache"
            return model, WeightsSource("hub", source.location, source.revision, note)
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
            reason = "the Hub is unreachable and the repo is not cached" if not online else str(error).splitlines()[0]
            log.warning("Could not load %s from %s (%s); using the bundled weights.", name, source.location, reason)
            source = bundled(name, note=f"fallback: {source.location} unavailable")
    model = model_class.from_pretrained(source.location, map_location=str(device))
    return model, source
