"""Batch-wise augmentation of 100x100 fruit-on-white images for the classifier.

Everything works on a (B, 3, H, W) float batch in [0, 1] with each image's fruit mask
(B, 1, H, W), so one call augments a whole batch on the CPU or GPU.

Two kinds of training image come out of :func:`augment`:

* *studio*: a Fruits-360 frame turned, scaled, shifted and flipped on white, with mild
  brightness/contrast/saturation jitter. No hue shift: colour separates many classes.
* *cut-out*: what :mod:`fruitseg.pipeline` hands the classifier after it cut a fruit out
  of a photo. The fruit gets the colour changes of a composite scene
  (:func:`fruitseg.data.scenes.make_scene`: per-fruit gain, contrast, saturation and a
  hue turn of a few degrees; a camera white balance and gamma), the resolution of a fruit
  that was small in the photo, sensor noise, and a mask that is a little too large (a rim
  of background around the fruit) or too small (the fruit's edge lost to white).

The conversions around it (uint8 frames to float batches, fruit masks) are here too, for
the training loop and the int8 calibration alike; normalisation is the model's own
(``model.transforms()``, :mod:`fruitseg.models.transforms`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fruitseg.data.colour import RGB_TO_YIQ, YIQ_TO_RGB
from fruitseg.masks import fruit_mask

# RGB <-> YIQ, the scenes' own: hue turns and saturation act on (I, Q).
_TO_YIQ = torch.from_numpy(RGB_TO_YIQ).float()
_FROM_YIQ = torch.from_numpy(YIQ_TO_RGB).float()


def _uniform(b: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(b, generator=generator).mul_(high - low).add_(low)


def geometric(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random in-plane turn (any angle for half the batch, small for the rest), scale
    0.88-1.12, shift +-8 % and horizontal flip; the image is filled with white, the mask with 0."""
    b = x.shape[0]
    angle = _uniform(b, -math.pi, math.pi, generator) * (torch.rand(b, generator=generator) < 0.5)
    angle = angle + _uniform(b, -0.3, 0.3, generator)
    scale = _uniform(b, 0.88, 1.12, generator)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift_x, shift_y = _uniform(b, -0.08, 0.08, generator), _uniform(b, -0.08, 0.08, generator)
    theta = torch.stack([torch.stack([cos * flip, -sin, shift_x], 1), torch.stack([sin * flip, cos, shift_y], 1)], 1)
    # Warp (x - 1) and the mask together with zero padding, then add 1 back: white fill.
    stacked = torch.cat([x - 1, mask], dim=1)
    grid = F.affine_grid(theta.to(x), list(stacked.shape), align_corners=False)
    warped = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped[:, :3] + 1, warped[:, 3:]


def studio_colour(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild brightness, contrast and saturation jitter (no hue)."""
    b = x.shape[0]
    brightness = _uniform(b, 0.88, 1.12, generator).to(x).view(b, 1, 1, 1)
    contrast = _uniform(b, 0.88, 1.12, generator).to(x).view(b, 1, 1, 1)
    saturation = _uniform(b, 0.85, 1.15, generator).to(x).view(b, 1, 1, 1)
    gray = x.mean(dim=1, keepdim=True)
    x = gray + (x - gray) * saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean) * brightness


def scene_colour(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The fruit's colour changes in a composite scene: gain, saturation and hue (+-4 deg)
    as one 3x3 matrix, contrast about the fruit's mean luma, then for half the batch a
    white balance with exposure and a gamma."""
    b = x.shape[0]
    gain = _uniform(b, 0.85, 1.15, generator)
    sat = _uniform(b, 0.85, 1.15, generator)
    turn = _uniform(b, -math.radians(4), math.radians(4), generator)
    rot = torch.zeros(b, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = sat * torch.cos(turn), -sat * torch.sin(turn)
    rot[:, 2, 1], rot[:, 2, 2] = sat * torch.sin(turn), sat * torch.cos(turn)
    matrix = (_FROM_YIQ @ rot @ _TO_YIQ) * gain.view(b, 1, 1)
    x = torch.einsum("bij,bjhw->bihw", matrix.to(x), x)
    luma = torch.einsum("c,bchw->bhw", _TO_YIQ[0].to(x), x).unsqueeze(1)
    fruit_luma = (luma * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    contrast = _uniform(b, 0.85, 1.15, generator).to(x).view(b, 1, 1, 1)
    x = (x - fruit_luma) * contrast + fruit_luma

    camera = (torch.rand(b, generator=generator) < 0.5).to(x).view(b, 1, 1, 1)
    gains = (torch.rand(b, 3, generator=generator) * 0.16 + 0.92) * _uniform(b, 0.85, 1.12, generator).view(b, 1)
    gamma = _uniform(b, 0.85, 1.18, generator).to(x).view(b, 1, 1, 1)
    balanced = (x.clamp(0, 1) * gains.to(x).view(b, 3, 1, 1)).clamp(0, 1).pow(gamma)
    return camera * balanced + (1 - camera) * x


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(mask, 2 * radius + 1, stride=1, padding=radius) if radius > 0 else mask


def imperfect_mask(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A segmenter's mask instead of the exact one: for each image one of exact (40 %),
    grown by 1-4 px (40 %) or shrunk by 1-2 px (20 %)."""
    b = mask.shape[0]
    hard = (mask >= 0.5).to(mask)
    out = hard.clone()
    choice = torch.rand(b, generator=generator)
    radius = torch.randint(1, 5, (b,), generator=generator)
    for r in radius.unique().tolist():
        grow = (choice >= 0.4) & (choice < 0.8) & (radius == r)
        shrink = (choice >= 0.8) & (radius == min(r, 2))
        if grow.any():
            out[grow] = _dilate(hard[grow], r)
        if shrink.any():
            out[shrink] = 1 - _dilate(1 - hard[shrink], min(r, 2))
    return out


def background_rim(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random background for each image: a colour with a little texture noise."""
    b, _, h, w = x.shape
    colour = torch.rand(b, 3, 1, 1, generator=generator).to(x)
    noise = torch.randn(b, 1, h, w, generator=generator).to(x) * _uniform(b, 0, 0.08, generator).to(x).view(b, 1, 1, 1)
    return (colour + noise).clamp(0, 1)


def lower_resolution(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For a third of the batch, down-sample by 0.45-0.9 and back: a fruit that was small in the photo."""
    b, _, h, w = x.shape
    pick = torch.rand(b, generator=generator) < 0.33
    if not pick.any():
        return x
    factor = float(_uniform(1, 0.45, 0.9, generator))
    small = F.interpolate(x[pick], scale_factor=factor, mode="bilinear", antialias=True, align_corners=False)
    x = x.clone()
    x[pick] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return x


def simulate_cut_out(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fruit-on-white frames -> what the pipeline's cut-outs of scene fruit look like
    (:func:`fruitseg.instances.cut_out` on a segmenter's mask of a fruit in a photo)."""
    b = x.shape[0]
    fruit = scene_colour(x, mask, generator).clamp(0, 1)
    kept = imperfect_mask(mask, generator)
    exact = (mask >= 0.5).to(x)
    # Inside the exact mask the (jittered) fruit, in a grown rim the scene's background.
    scene = exact * fruit + (1 - exact) * background_rim(x, generator)
    # Anti-aliased fruit edges: blend with the rim where the warped mask is fractional.
    scene = torch.where((mask > 0) & (mask < 1), mask * fruit + (1 - mask) * scene, scene)
    x = kept * scene + (1 - kept)
    x = lower_resolution(x, generator)
    noisy = (torch.rand(b, generator=generator) < 0.4).to(x).view(b, 1, 1, 1)
    sigma = _uniform(b, 1 / 255, 5 / 255, generator).to(x).view(b, 1, 1, 1)
    x = x + noisy * sigma * torch.randn(x.shape, generator=generator).to(x) * kept
    return x


def augment(
    x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator, cutout_fraction: float = 0.0
) -> torch.Tensor:
    """Augment a (B, 3, H, W) batch in [0, 1] with its (B, 1, H, W) fruit masks.

    Every image is turned, scaled, shifted and flipped; ``cutout_fraction`` of them then
    look like the pipeline's cut-outs (:func:`simulate_cut_out`), the rest get :func:`studio_colour`.
    """
    x, mask = geometric(x, mask, generator)
    pick = torch.rand(x.shape[0], generator=generator) < cutout_fraction
    out = studio_colour(x, generator)
    if pick.any():
        out[pick] = simulate_cut_out(x[pick], mask[pick], generator)
    return out.clamp_(0, 1).contiguous(memory_format=torch.channels_last)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1], channels_last."""
    return batch.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)


def fruit_masks(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, H, W) uint8 fruit masks (the dataset's own flood fill)."""
    return torch.from_numpy(np.stack([fruit_mask(image) for image in tqdm(images, desc="fruit masks", leave=False)]).astype(np.uint8))
