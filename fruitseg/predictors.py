"""Classifier and Segmenter: load a model once, predict on PIL images.

They own everything between a clean RGB image and a result: preprocessing as described
by the model's config (size; mean and std through the model's own ``transforms()``,
:mod:`fruitseg.models.transforms`), the model on its device, and postprocessing
to plain Python/numpy values. The UI calls these and never touches tensors.

The seed classifier has several inference paths, all with BatchNorm folded into the
convolutions and ``torch.inference_mode``: ``float32`` (channels-last), ``winograd``
(float32 with Winograd F(4x4, 5x5) convolutions, CPU, :mod:`fruitseg.models.winograd`),
``int8`` (CPU with an FBGEMM engine and a calibrated checkpoint,
:mod:`fruitseg.models.quantized`) and ``bfloat16`` / ``float16`` autocast where the
device runs them natively. ``Classifier`` takes the fastest of those available, timed
once per machine (:func:`fruitseg.device.fastest_path`); ``Classifier.inference_path``
says which and why, ``python -m fruitseg.bench classifier`` measures them all against the
plain model. The photo classifier runs with its BatchNorm folded, channels-last,
``inference_mode``, float32.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fruitseg.device import fastest_path, has_fast_bfloat16, select_device
from fruitseg.hub import WeightsSource, load_weights
from fruitseg.labels import kind_of, kinds_of
from fruitseg.models import FCNTransformerNet, FruitsClassificationModel
from fruitseg.models.classifier import fold_batchnorm
from fruitseg.models.efficientnet import EfficientNetFruitClassifier
from fruitseg.models.folding import fold_batchnorm_into_convs
from fruitseg.models.quantized import int8_available, int8_classifier
from fruitseg.models.transforms import pil_to_uint8
from fruitseg.models.winograd import MICRO_BATCH, WinogradClassifier
from fruitseg.refine import refine_probability

log = logging.getLogger("fruitseg")


@dataclass
class Prediction:
    """One image's answer: the likeliest kinds (each the summed probability of its classes)
    and the likeliest classes (varieties), most likely first."""

    kinds: list[tuple[str, float]]
    classes: list[tuple[str, float]]

    @property
    def kind(self) -> str:
        return self.kinds[0][0]

    @property
    def kind_score(self) -> float:
        return self.kinds[0][1]

    @property
    def label(self) -> str:
        """The likeliest class (variety)."""
        return self.classes[0][0]

    @property
    def score(self) -> float:
        return self.classes[0][1]

    def varieties(self) -> list[tuple[str, float]]:
        """The likeliest classes of the headline kind, with their probabilities."""
        return [(name, p) for name, p in self.classes if kind_of(name) == self.kind]


def top_predictions(logits: np.ndarray, class_names: Sequence[str], top_k: int = 5) -> list[Prediction]:
    """(N, C) logits -> one :class:`Prediction` per row: ``top_k`` kinds and ``top_k`` classes."""
    probs = torch.from_numpy(np.asarray(logits, dtype=np.float32)).softmax(dim=1)
    kinds, kind_index = kinds_of(class_names)
    kind_probs = torch.zeros(probs.shape[0], len(kinds)).index_add_(1, torch.tensor(kind_index), probs)
    k = max(1, min(int(top_k), probs.shape[1]))
    class_p, class_i = probs.topk(k, dim=1)
    kind_p, kind_i = kind_probs.topk(min(k, len(kinds)), dim=1)
    return [
        Prediction([(kinds[i], float(p)) for p, i in zip(kp.tolist(), ki.tolist())],
                   [(class_names[i], float(p)) for p, i in zip(cp.tolist(), ci.tolist())])
        for kp, ki, cp, ci in zip(kind_p, kind_i, class_p, class_i)
    ]


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the device runs it natively, float16 on a GPU without it, else None (float32)."""
    if has_fast_bfloat16(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def to_tensor(images: Sequence[Image.Image], model: nn.Module) -> torch.Tensor:
    """Equal-sized RGB PIL images -> ``model``'s normalised (B, 3, H, W) float32 input (its
    config's :meth:`~fruitseg.models.hub_mixin.FruitsegHubMixin.transforms`), in
    channels-last memory (the pixels' own HWC order: no copy into NCHW)."""
    return model.normalise(pil_to_uint8(images))


def square_on_white(image: Image.Image, size: int) -> Image.Image:
    """Pad to a square with white (Fruits-360's background), then resize to ``size``."""
    image = image.convert("RGB")
    side = max(image.size)
    if image.size != (side, side):
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    return image.resize((size, size), Image.BILINEAR) if side != size else image


PATH_DESCRIPTIONS = {
    "int8": "int8 convolutions (torch.ao.quantization, x86/FBGEMM, calibrated activation ranges), float32 Linear, BN folded, inference_mode",
    "winograd": f"float32, Winograd F(4x4, 5x5) convolutions for blocks 2-3 in micro-batches of {MICRO_BATCH}, BN folded, inference_mode",
    "float32": "float32, BN folded, channels-last, inference_mode",
    "bfloat16": "bfloat16 autocast, BN folded, channels-last, inference_mode",
    "float16": "float16 autocast, BN folded, channels-last, inference_mode",
}
PRECISION = {"int8": "int8", "winograd": "float32", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def classifier_paths(model: FruitsClassificationModel, device: torch.device) -> dict[str, tuple[nn.Module, torch.dtype | None]]:
    """The inference paths that ``device`` can run, by name: (module, autocast dtype or None).

    ``float32`` everywhere; on a CPU ``winograd``, and ``int8`` where the checkpoint carries
    an int8 calibration and PyTorch has an FBGEMM engine; ``bfloat16`` (``float16`` on a GPU
    without bf16) where the device runs it natively (:func:`autocast_dtype`).
    """
    folded = fold_batchnorm(model)
    tuned = folded.to(device, memory_format=torch.channels_last)
    paths: dict[str, tuple[nn.Module, torch.dtype | None]] = {"float32": (tuned, None)}
    if device.type == "cpu":
        paths["winograd"] = (WinogradClassifier(folded), None)
        calibration = getattr(model, "int8_calibration", None)
        if calibration and int8_available():
            try:
                paths["int8"] = (int8_classifier(folded, calibration), None)
            except (RuntimeError, ValueError) as error:  # a PyTorch without quantized kernels, a bad calibration
                log.warning("int8 inference unavailable (%s)", error)
    dtype = autocast_dtype(device)
    if dtype is not None:
        paths[str(dtype).replace("torch.", "")] = (tuned, dtype)
    return paths


class Classifier:
    """The seed CNN: top-k fruit kinds and classes for images of a single fruit on white
    (Fruits-360 style; the pipeline cuts fruits out of photos onto white for it).

    ``path`` names the inference path (``"int8"``, ``"winograd"``, ``"float32"``,
    ``"bfloat16"``, ``"float16"``: see :func:`classifier_paths`); the default ``"auto"``
    takes the fastest of those the device can run, timed once per machine
    (:func:`fruitseg.device.fastest_path`). ``path="float32"`` gives the exact float32
    logits. ``inference_path`` says which path runs and why; ``path_timings`` holds the
    timings it was chosen by (milliseconds per image at batch 1 and 8), if any.
    """

    sees = "cut-out on white"  # what the pipeline hands it: fruitseg.instances.cut_out

    def __init__(
        self,
        model: FruitsClassificationModel,
        device: torch.device | str = "cpu",
        source: WeightsSource | None = None,
        path: str = "auto",
    ):
        self.device = torch.device(device)
        self.source = source
        self.model = model.eval()
        self.class_names = list(model.class_names)
        paths = classifier_paths(self.model, self.device)
        self.path_timings: dict[str, dict[int, float]] = {}
        if path == "auto":
            self.path, self.path_timings, where = fastest_path("classifier", self._timed(paths), self._example, self.device)
            why = self._why(where)
        elif path in paths:
            self.path, why = path, "as requested"
        else:
            raise ValueError(f"inference path {path!r} is not available on {self.device}: choose one of {sorted(paths)} or 'auto'")
        self.fast_model, self.amp_dtype = paths[self.path]
        self.inference_path = f"{self.path}: {PATH_DESCRIPTIONS[self.path]} ({why})"

    def _timed(self, paths: dict[str, tuple[nn.Module, torch.dtype | None]]) -> dict:
        def call(module: nn.Module, dtype: torch.dtype | None):
            @torch.inference_mode()
            def run(x: torch.Tensor) -> np.ndarray:
                with autocast(self.device, dtype):
                    return module(x).float().cpu().numpy()
            return run
        return {name: call(*entry) for name, entry in paths.items()}

    def _example(self, batch: int) -> torch.Tensor:
        """Normalised random images in the layout ``preprocess`` gives."""
        x = torch.rand(batch, 3, self.model.image_size, self.model.image_size, generator=torch.Generator().manual_seed(batch))
        return x.to(self.device).contiguous(memory_format=torch.channels_last)

    def _why(self, where: str) -> str:
        if not self.path_timings:
            return where
        times = ", ".join(f"{name} {' / '.join(f'{ms:.2f}' for _, ms in sorted(by_batch.items()))}"
                          for name, by_batch in sorted(self.path_timings.items(), key=lambda kv: sum(kv[1].values())))
        return f"the fastest here: ms per image at batch 1 / 8: {times}; {where}"

    @property
    def precision(self) -> str:
        """The arithmetic of the inference path in a word: int8, float32, bfloat16 or float16."""
        return PRECISION[self.path]

    @classmethod
    def load(cls, device: torch.device | str | None = None, path: str = "auto") -> "Classifier":
        device = torch.device(device) if device is not None else select_device()
        model, source = load_weights(FruitsClassificationModel, "classifier", device)
        return cls(model, device, source, path)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.model.image_size
        x = to_tensor([square_on_white(image, size) for image in images], self.model)
        return x.to(self.device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, num_classes) float32 logits."""
        if not images:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        with autocast(self.device, self.amp_dtype):
            out = self.fast_model(self.preprocess(images))
        return out.float().cpu().numpy()

    def predict(self, images: Sequence[Image.Image], top_k: int = 5) -> list[Prediction]:
        """For each image, its ``top_k`` kinds and classes (:class:`Prediction`)."""
        return top_predictions(self.logits(images), self.class_names, top_k)


class PhotoClassifier:
    """The photo classifier (ImageNet EfficientNet-Lite0 fine-tuned on photo-like composites and
    real photos): top-k fruit kinds and classes for a photo or a crop of one, background and all.

    Preprocessing is the model config's: the image squeezed to ``image_size`` square, scaled
    by ``mean`` / ``std``. ``model`` is the network as trained; ``fast_model`` runs it, with
    every BatchNorm folded into the convolution before it
    (:func:`fruitseg.models.folding.fold_batchnorm_into_convs`), float32, channels-last,
    ``inference_mode``, on every device (``inference_path``).
    """

    sees = "photo crop"  # what the pipeline hands it: fruitseg.instances.context_crop
    inference_path = "float32, BN folded, channels-last, inference_mode"

    def __init__(self, model: EfficientNetFruitClassifier, device: torch.device | str = "cpu", source: WeightsSource | None = None):
        self.device = torch.device(device)
        self.source = source
        self.model = model.float().eval().to(self.device, memory_format=torch.channels_last)
        self.class_names = list(model.class_names)
        self.precision = "float32"
        size = self.model.image_size
        example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(self.device)
        self.fast_model = fold_batchnorm_into_convs(self.model, example.contiguous(memory_format=torch.channels_last))

    @classmethod
    def load(cls, device: torch.device | str | None = None) -> "PhotoClassifier":
        device = torch.device(device) if device is not None else select_device()
        model, source = load_weights(EfficientNetFruitClassifier, "photo-classifier", device)
        return cls(model, device, source)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.model.image_size
        resized = [image.convert("RGB").resize((size, size), Image.BILINEAR, reducing_gap=2.0) for image in images]
        x = to_tensor(resized, self.model)
        return x.to(self.device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, num_classes) float32 logits."""
        if not images:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return self.fast_model(self.preprocess(images)).float().cpu().numpy()

    def predict(self, images: Sequence[Image.Image], top_k: int = 5) -> list[Prediction]:
        """For each image, its ``top_k`` kinds and classes (:class:`Prediction`)."""
        return top_predictions(self.logits(images), self.class_names, top_k)


class Segmenter:
    """Fruit probability maps (H, W) in [0, 1] at each image's own size.

    With ``refine_edges`` (the default) the upsampled map is sharpened along the photo's own
    edges by a colour guided filter (`fruitseg.refine`).
    """

    def __init__(
        self,
        model: FCNTransformerNet,
        device: torch.device | str = "cpu",
        source: WeightsSource | None = None,
        refine_edges: bool = True,
    ):
        self.device = torch.device(device)
        self.source = source
        self.refine_edges = refine_edges
        self.model = model.eval().to(self.device)
        self.fruit_index = model.class_names.index("fruit") if "fruit" in model.class_names else 1

    @property
    def inference_path(self) -> str:
        """What :meth:`predict` computes with (for stored results, :mod:`fruitseg.provenance`)."""
        refine = ", guided-filter edge refinement" if self.refine_edges else ", no edge refinement"
        return f"float32, inference_mode on {self.device.type}{refine}"

    @classmethod
    def load(cls, device: torch.device | str | None = None, refine_edges: bool = True) -> "Segmenter":
        device = torch.device(device) if device is not None else select_device()
        model, source = load_weights(FCNTransformerNet, "segmenter", device)
        return cls(model, device, source, refine_edges)

    def working_size(self, image: Image.Image) -> tuple[int, int]:
        """(width, height) with the longer side at the model's ``image_size``."""
        scale = self.model.image_size / max(image.size)
        return max(32, round(image.width * scale)), max(32, round(image.height * scale))

    @torch.inference_mode()
    def predict(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        results = []
        for image in images:  # images differ in size: one at a time
            rgb = image.convert("RGB")
            resized = rgb.resize(self.working_size(image), Image.BILINEAR)
            x = to_tensor([resized], self.model).to(self.device)
            logits = self.model(x)
            probs = logits.float().softmax(dim=1)[:, self.fruit_index : self.fruit_index + 1]
            probs = F.interpolate(probs, size=(image.height, image.width), mode="bilinear", align_corners=False)
            probability = probs[0, 0].clamp_(0, 1).cpu().numpy().astype(np.float32)
            if self.refine_edges:
                probability = refine_probability(np.asarray(rgb), probability)
            results.append(probability)
        return results


def load_classifier(device: torch.device | str | None = None) -> Classifier:
    return Classifier.load(device)


def load_segmenter(device: torch.device | str | None = None) -> Segmenter:
    return Segmenter.load(device)


def load_photo_classifier(device: torch.device | str | None = None) -> PhotoClassifier:
    return PhotoClassifier.load(device)
