"""Composite training scenes for fruit / background segmentation.

Fruits-360 photos show one fruit on painted white; :func:`fruitseg.masks.fruit_mask`
recovers each fruit's mask. :func:`make_scene` cuts 1 to 8 of those fruits out, scales,
rotates, flips and colour-jitters them, and lays them (with soft shadows) on a background
photo crop or a procedural background, so the pixel masks stay exact:

* ``Scene.mask`` is 1 exactly where a fruit's warped alpha is >= 0.5 (after occlusion);
  shadows, feathered fringes and the background are 0;
* ``Scene.instances`` numbers the visible pixels of each kept fruit 1..K, so
  ``mask == (instances > 0)`` always holds.

Everything is a pure function of a :class:`numpy.random.Generator`, so a scene set is
fixed by its seed. :class:`SceneDataset` serves ``(image, mask)`` tensors for training;
its banks are plain numpy arrays, so it works with DataLoader workers. The fruits come
from a :class:`~fruitseg.data.fruit_bank.FruitBank`, the backgrounds from a
:class:`~fruitseg.data.backgrounds.BackgroundBank`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from fruitseg.data.backgrounds import BackgroundBank
from fruitseg.data.colour import apply_colour, colour_jitter_matrix
from fruitseg.data.fruit_bank import FruitBank
from fruitseg.masks import outline


@dataclass
class Scene:
    """A composite scene. ``boxes`` are (x0, y0, x1, y1) of each instance's visible pixels,
    x1/y1 exclusive; ``labels[k-1]`` is the class id of instance k."""

    image: np.ndarray      # (H, W, 3) uint8
    mask: np.ndarray       # (H, W) uint8, 1 = fruit
    instances: np.ndarray  # (H, W) int32, 0 = background, k = k-th fruit's visible pixels
    labels: list[int]
    boxes: list[tuple[int, int, int, int]]
    background: str = ""   # kind of background: photo, white, plain, gradient, noise, grain


MIN_VISIBLE_PX = 30
MIN_DIAMETER_PX = 14.0  # so that even a slim fruit keeps >= MIN_VISIBLE_PX pixels


def _blur(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 map; wide blurs run on a shrunk copy (same result, cheaper)."""
    if sigma <= 4:
        return cv2.GaussianBlur(alpha, (0, 0), sigma)
    factor = sigma / 2
    h, w = alpha.shape
    small = cv2.resize(alpha, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _shadow_paste(canvas: np.ndarray, alpha: np.ndarray, x0: int, y0: int, dx: float, dy: float,
                  sigma: float, strength: float) -> None:
    """Darken ``canvas`` in place by a blurred copy of ``alpha`` (placed at x0, y0) shifted by dx, dy."""
    if strength <= 0:
        return
    pad = int(math.ceil(2.5 * sigma)) + 1
    local = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    local = _blur(local, sigma)
    ox, oy = x0 - pad + int(round(dx)), y0 - pad + int(round(dy))
    H, W = canvas.shape[:2]
    cx0, cy0 = max(ox, 0), max(oy, 0)
    cx1, cy1 = min(ox + local.shape[1], W), min(oy + local.shape[0], H)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    piece = local[cy0 - oy : cy1 - oy, cx0 - ox : cx1 - ox]
    canvas[cy0:cy1, cx0:cx1] *= (1 - strength * piece)[..., None]


def make_scene(
    rng: np.random.Generator,
    fruits: FruitBank,
    backgrounds: BackgroundBank,
    size: tuple[int, int] = (256, 256),
    max_fruits: int = 8,
    min_fruits: int = 1,
    degrade: bool = True,
    white_background: bool = False,
    classes: Sequence[int] | None = None,
    diameter_range: tuple[float, float] | None = None,
    container: bool = False,
    leaves: int = 0,
    foliage: int = 0,
    clutter: int = 0,
) -> Scene:
    """A random scene of ``min_fruits``..``max_fruits`` fruits on a random background.

    Fruits are sampled class-uniformly; each is scaled so its longer side is ~12-60% of
    the scene's shorter side (fewer fruits -> larger), rotated, flipped, colour-jittered
    and pasted with slight edge feathering and a soft cast + contact shadow (shadows
    darken what lies below - the background or earlier fruits - and are never in the
    mask). Later fruits occlude earlier ones. A placement that would leave any fruit
    with 1..29 visible pixels is retried elsewhere (or the fruit is skipped), so every
    instance has >= 30 pixels and ``mask == (instances > 0)``. With ``degrade`` the
    whole scene may get a global colour cast, blur, noise and JPEG compression.

    ``white_background`` paints the sampled background plain white and changes nothing
    else: the random draws are the same, so the result is the very same fruits, light,
    shadows and camera on white, the scene's twin for measuring what a background costs.

    ``classes`` limits the fruits to these class ids (one id: a pile of one kind, as in a
    market crate); by default every class in the bank is drawn from. ``diameter_range``
    (fractions of the shorter side) overrides the fruit sizes: (0.8, 1.5) fills or overflows
    the frame, (0.15, 0.3) with many fruits makes a dense pile. ``container`` first draws a
    plate or bowl (an ellipse with a rim and shading) under the fruits; ``leaves`` lays that
    many leaf shapes over them at the end; ``foliage`` first covers the background with that
    many leaves (a tree's canopy, fruit hanging in it). ``clutter`` adds that many objects that
    are not fruit (a kitchen table's packets, wrappers, boards): rounded boxes and angular
    polygons filled with a surface texture or a shaded colour, with shadows; about a third
    lie over the fruits. Containers, leaves and clutter are never fruit in the mask.
    """
    h, w = int(size[0]), int(size[1])
    short = min(h, w)
    canvas, kind = backgrounds.sample_float(rng, (h, w))
    canvas = np.ascontiguousarray(canvas, dtype=np.float32)
    if white_background:
        canvas[:], kind = 255.0, "white"
    instances = np.zeros((h, w), np.int32)
    counts = [0]  # visible pixels per instance id (index 0 unused)
    labels: list[int] = []

    n = int(rng.integers(min_fruits, max_fruits + 1))
    if diameter_range is None:
        hi = 0.60 - 0.30 * (n - 1) / 7 if n > 1 else 0.60
        lo, top = 0.12, 0.62
    else:
        lo, hi = diameter_range
        top = hi
    base = math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo * 1.01))))
    if container:
        _draw_container(rng, canvas)
    for _ in range(foliage):
        _draw_leaf(rng, canvas, instances, counts)
    clutter_over = int(rng.binomial(clutter, 1 / 3)) if clutter else 0
    for _ in range(clutter - clutter_over):
        _draw_clutter(rng, canvas, instances, counts, backgrounds)
    classes = fruits.classes if classes is None else np.asarray(classes, dtype=np.int64)
    # one light per scene: direction, cast-shadow length/softness/strength
    light = rng.uniform(0, 2 * math.pi)
    flat_light = rng.random() < 0.15  # no shadows at all, like Fruits-360 itself
    cast = 0.0 if flat_light else rng.uniform(0.2, 0.65)
    cast_len, cast_blur = rng.uniform(0.02, 0.14), rng.uniform(0.04, 0.14)
    contact = 0.0 if flat_light else rng.uniform(0.15, 0.45)
    feather = rng.uniform(0.3, 0.9)

    for _ in range(n):
        cls = classes[rng.integers(len(classes))]
        idx = int(rng.choice(fruits.by_class[int(cls)]))
        diameter = float(np.clip(base * math.exp(rng.uniform(-0.3, 0.3)), lo, top)) * short
        diameter = max(diameter, MIN_DIAMETER_PX)
        scale = diameter / fruits.extent[idx]
        src, src_mask = fruits.images[idx], fruits.masks[idx]
        src_alpha = src_mask.astype(np.float32)
        if scale < 0.7:  # anti-alias before shrinking
            sigma = 0.45 * (1 / scale - 1)
            src = cv2.GaussianBlur(src, (0, 0), sigma)
            src_alpha = cv2.GaussianBlur(src_alpha, (0, 0), sigma)
        elif scale > 1.5:  # round off the source's pixel staircase before enlarging
            src_alpha = cv2.GaussianBlur(src_alpha, (0, 0), 0.6)
        # per-fruit colour jitter on the small source, before warping
        matrix, contrast = colour_jitter_matrix(rng, 0.15, 0.15, 0.15, 4)
        src = apply_colour(src, matrix, contrast, mask=src_mask.view(np.uint8))

        angle = rng.uniform(-180, 180)
        flip = rng.random() < 0.5
        cx0, cy0 = fruits.centroid[idx]
        bx0, by0, bx1, by1 = fruits.bbox[idx]
        corners = np.array([[bx0 - 1, by0 - 1], [bx1 + 1, by0 - 1], [bx0 - 1, by1 + 1], [bx1 + 1, by1 + 1]], np.float64)
        rot = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)[:, :2]
        if flip:
            rot = rot @ np.diag([-1.0, 1.0])
        local = (corners - [cx0, cy0]) @ rot.T
        margin = min(0.25 * diameter, 0.45 * short)
        placed = None
        attempts = 4 if labels else 8
        for attempt in range(attempts):
            tx = rng.uniform(margin, max(w - margin, margin + 1))
            ty = rng.uniform(margin, max(h - margin, margin + 1))
            if attempt == attempts - 1 and not labels:  # the first fruit always lands
                tx, ty = w / 2, h / 2
            pts = local + [tx, ty]
            rx0, ry0 = max(int(math.floor(pts[:, 0].min())), 0), max(int(math.floor(pts[:, 1].min())), 0)
            rx1, ry1 = min(int(math.ceil(pts[:, 0].max())) + 1, w), min(int(math.ceil(pts[:, 1].max())) + 1, h)
            if rx0 >= rx1 or ry0 >= ry1:
                continue
            M = np.empty((2, 3), np.float64)
            M[:, :2] = rot
            M[:, 2] = np.array([tx - rx0, ty - ry0]) - rot @ [cx0, cy0]
            dsize = (rx1 - rx0, ry1 - ry0)
            alpha = cv2.warpAffine(src_alpha, M, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            hard = alpha >= 0.5
            area = int(hard.sum())
            if area < MIN_VISIBLE_PX:
                continue
            # would this leave an earlier fruit with a sliver of 1..29 pixels?
            covered = np.bincount(instances[ry0:ry1, rx0:rx1][hard], minlength=len(counts))
            left = np.asarray(counts) - covered
            if np.any((left[1:] > 0) & (left[1:] < MIN_VISIBLE_PX)):
                continue
            placed = (M, dsize, alpha, hard, rx0, ry0, rx1, ry1, covered)
            break
        if placed is None:
            continue
        M, dsize, alpha, hard, rx0, ry0, rx1, ry1, covered = placed
        fruit = cv2.warpAffine(src, M, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        # shadows: darken what is below (background and earlier fruits), never the mask
        dx, dy = math.cos(light) * cast_len * diameter, math.sin(light) * cast_len * diameter
        _shadow_paste(canvas, alpha, rx0, ry0, dx, dy, max(cast_blur * diameter, 0.8), cast)
        _shadow_paste(canvas, alpha, rx0, ry0, dx * 0.15, dy * 0.15, max(0.025 * diameter, 0.6), contact)

        # feathering only widens the fringe outwards; inside pixels keep the warped alpha
        soft = np.maximum(cv2.GaussianBlur(alpha, (0, 0), feather), alpha) if feather > 0.35 else alpha
        region = canvas[ry0:ry1, rx0:rx1]
        region += (fruit - region) * soft[..., None]

        for k in np.flatnonzero(covered[1:]) + 1:
            counts[k] -= int(covered[k])
        counts.append(int(hard.sum()))
        instances[ry0:ry1, rx0:rx1][hard] = len(counts) - 1
        labels.append(int(fruits.labels[idx]))

    for _ in range(leaves):
        _draw_leaf(rng, canvas, instances, counts)
    for _ in range(clutter_over):
        _draw_clutter(rng, canvas, instances, counts, backgrounds)

    # renumber the surviving instances 1..K
    alive = [k for k in range(1, len(counts)) if counts[k] > 0]
    remap = np.zeros(len(counts), np.int32)
    remap[alive] = np.arange(1, len(alive) + 1, dtype=np.int32)
    instances = remap[instances]
    labels = [labels[k - 1] for k in alive]
    boxes = [(sx.start, sy.start, sx.stop, sy.stop) for sy, sx in ndimage.find_objects(instances, len(alive))]

    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    if degrade:
        image = _degrade(rng, image)
    mask = (instances > 0).astype(np.uint8)
    return Scene(image, mask, instances, labels, boxes, kind)


def _draw_container(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """A plate or bowl seen from above at an angle: a shaded ellipse with a lighter rim."""
    h, w = canvas.shape[:2]
    centre = (int(w * rng.uniform(0.35, 0.65)), int(h * rng.uniform(0.4, 0.65)))
    axes = (int(w * rng.uniform(0.3, 0.55)), int(h * rng.uniform(0.2, 0.45)))
    colour = rng.uniform(150, 255, 3) if rng.random() < 0.6 else rng.uniform(30, 230, 3)  # mostly pale china
    body = np.zeros((h, w), np.float32)
    cv2.ellipse(body, centre, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    rim = np.zeros((h, w), np.float32)
    cv2.ellipse(rim, centre, axes, 0, 0, 360, 1.0, max(2, int(min(axes) * rng.uniform(0.05, 0.15))), cv2.LINE_AA)
    yy = (np.arange(h, dtype=np.float32)[:, None] - centre[1]) / max(axes[1], 1)
    shade = (1.0 - 0.25 * np.clip(yy, -1, 1) * rng.uniform(-1, 1)).astype(np.float32)  # light from one side
    surface = colour[None, None, :] * shade[..., None] * (1 + 0.15 * rim[..., None])
    shadow = _blur(body, max(2.0, min(axes) * 0.08))
    canvas *= 1 - 0.35 * shadow[..., None] * rng.uniform(0.3, 1.0)
    canvas += (surface - canvas) * body[..., None]


def _draw_leaf(rng: np.random.Generator, canvas: np.ndarray, instances: np.ndarray, counts: list[int]) -> None:
    """A green leaf with a midrib laid over the scene; the fruit pixels it covers leave the mask."""
    h, w = canvas.shape[:2]
    length = min(h, w) * rng.uniform(0.15, 0.45)
    centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    angle = rng.uniform(0, 180)
    half_width = rng.uniform(0.15, 0.3)
    green = np.array([rng.uniform(20, 90), rng.uniform(80, 170), rng.uniform(10, 60)], np.float32)
    # work in the leaf's bounding square only
    reach = int(length / 2) + 2
    x0, y0 = max(int(centre[0]) - reach, 0), max(int(centre[1]) - reach, 0)
    x1, y1 = min(int(centre[0]) + reach + 1, w), min(int(centre[1]) + reach + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    leaf = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(leaf, (int(centre[0]) - x0, int(centre[1]) - y0), (int(length / 2), int(length * half_width)), angle,
                0, 360, 1.0, -1, cv2.LINE_AA)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    along = (xx - centre[0]) * math.cos(math.radians(angle)) + (yy - centre[1]) * math.sin(math.radians(angle))
    across = -(xx - centre[0]) * math.sin(math.radians(angle)) + (yy - centre[1]) * math.cos(math.radians(angle))
    texture = 1 + 0.12 * np.sin(along / max(length, 1) * 12) - 0.25 * (np.abs(across) < max(1.0, length * 0.01))
    region = canvas[y0:y1, x0:x1]
    region += (green * texture[..., None] - region) * leaf[..., None]
    _cover(instances, counts, leaf >= 0.5, x0, y0)


def _cover(instances: np.ndarray, counts: list[int], hidden: np.ndarray, x0: int, y0: int) -> None:
    """Take the fruit pixels under ``hidden`` (a boolean map placed at x0, y0) out of the mask;
    a fruit left with a sliver of under MIN_VISIBLE_PX pixels is dropped altogether."""
    below = instances[y0 : y0 + hidden.shape[0], x0 : x0 + hidden.shape[1]]
    covered = np.bincount(below[hidden], minlength=len(counts))
    for k in np.flatnonzero(covered[1:]) + 1:
        counts[k] -= int(covered[k])
    below[hidden] = 0
    for k in range(1, len(counts)):
        if 0 < counts[k] < MIN_VISIBLE_PX:
            instances[instances == k] = 0
            counts[k] = 0


def _draw_clutter(rng: np.random.Generator, canvas: np.ndarray, instances: np.ndarray, counts: list[int],
                  backgrounds: BackgroundBank) -> None:
    """An object that is not fruit, with a soft shadow: a rounded box or an angular polygon
    (packets, wrappers, boards, slabs) filled with a surface texture (a background photo's
    crop) or a shaded colour, sometimes with a glossy highlight (plastic, foil). Round shapes
    are left out on purpose: a round, smoothly coloured, shaded thing is what a fruit looks
    like, and a first try that drew fruit silhouettes and ellipses as clutter taught the
    model that fruit was background (composite IoU 0.95 -> 0.83 after one epoch)."""
    h, w = canvas.shape[:2]
    side = max(8, int(min(h, w) * math.exp(rng.uniform(math.log(0.12), math.log(0.5)))))
    sh, sw = max(4, int(side * math.exp(rng.uniform(math.log(0.2), 0.0)))), side
    shape = np.zeros((sh, sw), np.float32)
    if rng.random() < 0.5:
        r = int(min(sh, sw) * rng.uniform(0.0, 0.25))
        cv2.rectangle(shape, (r, 0), (sw - 1 - r, sh - 1), 1.0, -1)
        cv2.rectangle(shape, (0, r), (sw - 1, sh - 1 - r), 1.0, -1)
        for cx, cy in ((r, r), (sw - 1 - r, r), (r, sh - 1 - r), (sw - 1 - r, sh - 1 - r)):
            cv2.circle(shape, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
    else:
        n = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(0.5, 1.0, n)
        points = np.stack([sw / 2 + np.cos(angles) * radii * (sw / 2 - 1), sh / 2 + np.sin(angles) * radii * (sh / 2 - 1)], 1)
        cv2.fillPoly(shape, [np.round(points).astype(np.int32)], 1.0, cv2.LINE_AA)
    if rng.random() < 0.5:
        shape = np.ascontiguousarray(shape.T)
    sh, sw = shape.shape
    x0, y0 = int(rng.integers(-sw // 4, max(w - 3 * sw // 4, 1))), int(rng.integers(-sh // 4, max(h - 3 * sh // 4, 1)))
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + sw, w), min(y0 + sh, h)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    alpha = shape[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    ph, pw = alpha.shape
    if rng.random() < 0.5:
        surface = backgrounds.texture(rng, (ph, pw))
    else:
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        light = rng.uniform(0, 2 * math.pi)
        ramp = ((xx - pw / 2) * math.cos(light) + (yy - ph / 2) * math.sin(light)) / max(ph, pw)
        surface = colour * (1 + rng.uniform(0.2, 0.8) * ramp)[..., None]
        if rng.random() < 0.5:  # a glossy highlight
            spot = np.exp(-(((xx - pw * rng.uniform(0.2, 0.8)) ** 2 + (yy - ph * rng.uniform(0.2, 0.8)) ** 2)
                            / (2 * (max(ph, pw) * rng.uniform(0.05, 0.2)) ** 2)))
            surface = surface + (255 - surface) * spot[..., None] * rng.uniform(0.4, 0.9)
        surface = surface + rng.standard_normal((ph, pw, 1), dtype=np.float32) * rng.uniform(0, 12)
    size = max(ph, pw)
    _shadow_paste(canvas, alpha, cx0, cy0, size * 0.05, size * 0.05, max(size * 0.06, 0.8), rng.uniform(0.1, 0.5))
    region = canvas[cy0:cy1, cx0:cx1]
    region += (np.clip(surface, 0, 255) - region) * alpha[..., None]
    _cover(instances, counts, alpha >= 0.5, cx0, cy0)


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Global camera-ish changes on a uint8 scene: white balance and exposure (a LUT),
    blur, sensor noise, JPEG compression."""
    if rng.random() < 0.5:
        gains = rng.uniform(0.92, 1.08, 3) * rng.uniform(0.85, 1.12)
        gamma = rng.uniform(0.85, 1.18)
        levels = np.arange(256, dtype=np.float64)[:, None]
        lut = 255.0 * (np.clip(levels * gains, 0, 255) / 255.0) ** gamma
        image = cv2.LUT(image, np.clip(lut + 0.5, 0, 255).astype(np.uint8).reshape(1, 256, 3))
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.1))
    if rng.random() < 0.4:
        noise = rng.standard_normal(image.shape[:2] + (1,), dtype=np.float32) * rng.uniform(1, 5)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 92))])
        if ok:
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------- photo-like mix

# What real photos show and the plain scatter of make_scene misses, with exact masks.
PHOTO_MIX: dict[str, float] = {"scatter": 0.25, "fill": 0.2, "pile": 0.25, "bowl": 0.15, "leaves": 0.15, "tree": 0.1,
                               "clutter": 0.15}


def photo_like_scene(rng: np.random.Generator, fruits: FruitBank, backgrounds: BackgroundBank, size: tuple[int, int]) -> Scene:
    """A scene of one kind drawn from :data:`PHOTO_MIX`: the plain scatter (sometimes on a plate,
    sometimes under a leaf or two), fruit that fills or overflows the frame, a dense pile of
    one class (a market crate), fruit in a bowl (sometimes beside other things), fruit among
    leaves, fruit of one class hanging in a tree's canopy (leaves behind and in front of it),
    a table of things that are not fruit with up to four fruits (or none) among them."""
    kind = rng.choice(list(PHOTO_MIX), p=np.array(list(PHOTO_MIX.values())) / sum(PHOTO_MIX.values()))
    one_class = [int(fruits.classes[rng.integers(len(fruits.classes))])]
    if kind == "fill":
        return make_scene(rng, fruits, backgrounds, size, max_fruits=2, diameter_range=(0.75, 1.5), classes=one_class)
    if kind == "pile":
        return make_scene(rng, fruits, backgrounds, size, min_fruits=10, max_fruits=30, diameter_range=(0.12, 0.3),
                          classes=one_class, container=rng.random() < 0.3)
    if kind == "bowl":
        return make_scene(rng, fruits, backgrounds, size, min_fruits=3, max_fruits=8, diameter_range=(0.15, 0.35), container=True,
                          clutter=int(rng.integers(0, 3)))
    if kind == "leaves":
        return make_scene(rng, fruits, backgrounds, size, max_fruits=4, leaves=int(rng.integers(2, 7)))
    if kind == "tree":
        return make_scene(rng, fruits, backgrounds, size, min_fruits=2, max_fruits=12, diameter_range=(0.06, 0.22),
                          classes=one_class, foliage=int(rng.integers(25, 60)), leaves=int(rng.integers(3, 12)))
    if kind == "clutter":
        return make_scene(rng, fruits, backgrounds, size, min_fruits=0, max_fruits=4, clutter=int(rng.integers(2, 7)))
    return make_scene(rng, fruits, backgrounds, size, container=rng.random() < 0.3, leaves=int(rng.random() < 0.2))


# --------------------------------------------------------------------------- dataset


class SceneDataset(torch.utils.data.Dataset):
    """``length`` scenes; item i is ``make_scene(np.random.default_rng([seed, i]), ...)``
    as (image float32 (3, H, W) in [0, 1], mask int64 (H, W)); with ``photo_like`` item i is
    ``photo_like_scene`` instead (frame-filling fruit, piles, bowls, leaves).

    Deterministic by (``seed``, index): a fixed validation set is a fixed seed over
    validation fruits. Changing ``seed`` (e.g. per epoch) gives new scenes.

    With DataLoader workers (fork), do not call ``cv2.setNumThreads`` inside a worker:
    after a fork it can deadlock on the parent's OpenCV thread pool. Set it in the
    parent before the loader starts, if at all.
    """

    def __init__(
        self,
        fruits: FruitBank,
        backgrounds: BackgroundBank,
        length: int,
        size: tuple[int, int] = (256, 256),
        seed: int = 0,
        max_fruits: int = 8,
        degrade: bool = True,
        photo_like: bool = False,
    ) -> None:
        self.fruits, self.backgrounds = fruits, backgrounds
        self.length, self.size, self.seed = int(length), (int(size[0]), int(size[1])), int(seed)
        self.max_fruits, self.degrade, self.photo_like = max_fruits, degrade, photo_like

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        if self.photo_like:
            return photo_like_scene(rng, self.fruits, self.backgrounds, self.size)
        return make_scene(
            rng, self.fruits, self.backgrounds, self.size, max_fruits=self.max_fruits, degrade=self.degrade
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        scene = self.scene(int(index))
        image = torch.from_numpy(scene.image).permute(2, 0, 1).float().div_(255)
        return image.contiguous(), torch.from_numpy(scene.mask.astype(np.int64))


# --------------------------------------------------------------------------- visual check

_PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], np.float32,
)


def scene_overlay(scene: Scene) -> np.ndarray:
    """The scene darkened outside the mask, each instance tinted, its inner ring drawn white."""
    image = scene.image.astype(np.float32)
    out = image * 0.35
    for k in range(1, len(scene.labels) + 1):
        sel = scene.instances == k
        out[sel] = image[sel] * 0.55 + _PALETTE[(k - 1) % len(_PALETTE)] * 0.45
    out = out.astype(np.uint8)
    out[outline(scene.instances)] = 255
    return out


def save_scene_grid(scenes: Sequence[Scene], path: str | Path, columns: int = 4) -> Path:
    """Write a PNG montage of (image | mask overlay) pairs; returns the path."""
    scenes = list(scenes)
    if not scenes:
        raise ValueError("no scenes")
    h, w = scenes[0].image.shape[:2]
    tiles = []
    for scene in scenes:
        image, overlay = scene.image, scene_overlay(scene)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            overlay = cv2.resize(overlay, (w, h), interpolation=cv2.INTER_NEAREST)
        pair = np.concatenate([image, np.full((h, 2, 3), 255, np.uint8), overlay], axis=1)
        tiles.append(np.pad(pair, ((3, 3), (3, 3), (0, 0)), constant_values=40))
    columns = max(1, min(columns, len(tiles)))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 40))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
