"""The Hugging Face Hub mixin every fruitseg model shares.

`huggingface_hub.PyTorchModelHubMixin` gives ``save_pretrained`` / ``from_pretrained`` /
``push_to_hub`` with ``config.json`` (the ``__init__`` arguments) and ``model.safetensors``.
Two defaults are changed here, for safety and for honesty about what was loaded:

* loading is strict: a missing or unexpected key in the state dict is an error;
* only ``model.safetensors`` is ever read: the mixin's fallback to a pickled
  ``pytorch_model.bin`` is refused.

It also keeps the config that describes inputs and outputs on the model
(:meth:`FruitsegHubMixin.set_metadata`) and gives the one preprocessing transform built
from it (:meth:`FruitsegHubMixin.transforms`, :mod:`fruitseg.models.transforms`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from huggingface_hub import PyTorchModelHubMixin

from fruitseg.models.transforms import Normalise

REPO_URL = "https://huggingface.co/spaces/fruitseg/fruitseg"


class FruitsegHubMixin(
    PyTorchModelHubMixin,
    library_name="fruitseg",
    repo_url=REPO_URL,
    license="mit",
    tags=["fruitseg", "fruits-360"],
):
    """`PyTorchModelHubMixin` with strict, safetensors-only loading."""

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs):
        return super()._from_pretrained(strict=strict, **kwargs)

    @classmethod
    def _load_as_pickle(cls, model, model_file, map_location, strict):
        raise ValueError(
            f"{model_file} is a pickled checkpoint; fruitseg loads model.safetensors only "
            "(pickle can run arbitrary code). Convert it with safetensors.torch.save_model."
        )

    def set_metadata(self, num_classes: int, class_names: Sequence[str], image_size: int, mean, std) -> None:
        """Keep the config that describes inputs and outputs on the model (it is also in config.json)."""
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.image_size = image_size
        self.mean = tuple(mean)
        self.std = tuple(std)

    def transforms(self) -> Normalise:
        """The input preprocessing of this model's config: a :class:`Normalise` with its
        ``mean`` / ``std`` ((B, 3, H, W) uint8 or [0, 1] float -> normalised float)."""
        return Normalise(self.mean, self.std)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``self.transforms()(x)``: (B, 3, H, W) uint8 or [0, 1] float RGB -> the model's input
        (one :class:`Normalise` per mean / std, built on first use: not a submodule, so the
        state dict and the module tree stay the model's own)."""
        return _normaliser(self.mean, self.std)(x)


@lru_cache(maxsize=8)
def _normaliser(mean: tuple[float, ...], std: tuple[float, ...]) -> Normalise:
    return Normalise(mean, std)
