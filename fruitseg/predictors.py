"""Classifier and Segmenter: load a model once, predict on PIL images.

They own everything between a clean RGB image and a result: preprocessing as described
by the model's config (size, mean, std), the model on its device, and postprocessing
to plain Python/numpy values. The UI calls these and never touches tensors.

The classifier's inference path is tuned for CPU and GPU alike: BatchNorm folded into
the convolutions and ``torch.inference_mode`` always; then bfloat16 autocast with
channels-last memory where the hardware runs bfloat16 natively (GPUs, CPUs with
AVX-512-BF16 or AMX); on other x86 CPUs int8 convolutions with the activation ranges
calibrated into the model's config (:mod:`fruitseg.models.quantized`); and failing that
(no calibration, no FBGEMM engine: an ARM CPU, say) float32 with Winograd F(4x4, 5x5)
convolutions (:mod:`fruitseg.models.winograd`). ``Classifier.inference_path`` says which;
``python -m fruitseg.bench classifier`` measures it against the plain model.
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

from fruitseg.device import has_fast_bfloat16, select_device
from fruitseg.hub import WeightsSource, load_weights
from fruitseg.labels import kind_of, kinds_of
from fruitseg.models import FCNTransformerNet, FruitsClassificationModel
from fruitseg.models.classifier import fold_batchnorm
from fruitseg.models.efficientnet import EfficientNetFruitClassifier
from fruitseg.models.quantized import Int8Classifier, int8_available
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


def to_tensor(images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Equal-sized RGB PIL images -> normalised (B, 3, H, W) float32, in channels-last
    memory (the pixels' own HWC order: no copy into NCHW)."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images])
    x = torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def square_on_white(image: Image.Image, size: int) -> Image.Image:
    """Pad to a square with white (Fruits-360's background), then resize to ``size``."""
    image = image.convert("RGB")
    side = max(image.size)
    if image.size != (side, side):
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    return image.resize((size, size), Image.BILINEAR) if side != size else image


def cpu_inference_path(folded: FruitsClassificationModel, int8: bool = True) -> tuple[nn.Module, str]:
    """(model, description) for a CPU without native bfloat16: int8 where allowed, the model
    carries an int8 calibration and PyTorch has an FBGEMM engine, else float32 Winograd."""
    calibration = getattr(folded, "int8_calibration", None)
    if int8 and calibration and int8_available():
        try:
            return Int8Classifier(folded, calibration), "BN folded, int8 convolutions (FBGEMM, calibrated activations), float32 Linear, inference_mode"
        except (RuntimeError, ValueError) as error:  # a PyTorch without quantized tensors, a bad calibration
            log.warning("int8 inference unavailable (%s); using float32", error)
    path = f"BN folded, float32 Winograd F(4x4, 5x5) for blocks 2-3, micro-batches of {MICRO_BATCH}, inference_mode"
    return WinogradClassifier(folded), path


class Classifier:
    """The seed CNN: top-k fruit kinds and classes for images of a single fruit on white
    (Fruits-360 style; the pipeline cuts fruits out of photos onto white for it).

    ``int8=False`` keeps a CPU without native bfloat16 in float32 (exact logits, slower).
    """

    sees = "cut-out on white"  # what the pipeline hands it: fruitseg.instances.cut_out

    def __init__(
        self,
        model: FruitsClassificationModel,
        device: torch.device | str = "cpu",
        source: WeightsSource | None = None,
        int8: bool = True,
    ):
        self.device = torch.device(device)
        self.source = source
        self.model = model.eval()
        self.class_names = list(model.class_names)
        self.amp_dtype = autocast_dtype(self.device)
        folded = fold_batchnorm(model)
        if self.device.type == "cpu" and self.amp_dtype is None:
            self.fast_model, self.inference_path = cpu_inference_path(folded, int8)
        else:
            self.fast_model = folded.to(self.device, memory_format=torch.channels_last)
            precision = f"autocast {str(self.amp_dtype).replace('torch.', '')}" if self.amp_dtype else "float32"
            self.inference_path = f"BN folded, channels-last, inference_mode, {precision}"

    @property
    def precision(self) -> str:
        """The arithmetic of the inference path in a word: int8, float32, bfloat16 or float16."""
        if isinstance(self.fast_model, Int8Classifier):
            return "int8"
        return str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32"

    @classmethod
    def load(cls, device: torch.device | str | None = None, int8: bool = True) -> "Classifier":
        device = torch.device(device) if device is not None else select_device()
        model, source = load_weights(FruitsClassificationModel, "classifier", device)
        return cls(model, device, source, int8)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.model.image_size
        x = to_tensor([square_on_white(image, size) for image in images], self.model.mean, self.model.std)
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
    by ``mean`` / ``std``. Float32, channels-last, ``inference_mode`` on every device.
    """

    sees = "photo crop"  # what the pipeline hands it: fruitseg.instances.context_crop

    def __init__(self, model: EfficientNetFruitClassifier, device: torch.device | str = "cpu", source: WeightsSource | None = None):
        self.device = torch.device(device)
        self.source = source
        self.model = model.float().eval().to(self.device, memory_format=torch.channels_last)
        self.class_names = list(model.class_names)
        self.precision = "float32"

    @classmethod
    def load(cls, device: torch.device | str | None = None) -> "PhotoClassifier":
        device = torch.device(device) if device is not None else select_device()
        model, source = load_weights(EfficientNetFruitClassifier, "photo-classifier", device)
        return cls(model, device, source)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.model.image_size
        resized = [image.convert("RGB").resize((size, size), Image.BILINEAR, reducing_gap=2.0) for image in images]
        x = to_tensor(resized, self.model.mean, self.model.std)
        return x.to(self.device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, num_classes) float32 logits."""
        if not images:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return self.model(self.preprocess(images)).float().cpu().numpy()

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
            x = to_tensor([resized], self.model.mean, self.model.std).to(self.device)
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
