"""Tests for fruit-mask recovery (fruitseg.masks, fruitseg.data.masks) and composite scenes (fruitseg.data.scenes).

They use only the small images under tests/fixtures/: six Fruits-360 training images
(``fruits/<Class>_<frame>.jpg``, copied unchanged) and two background crops.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image
from scipy import ndimage

from fruitseg.data.backgrounds import BackgroundBank
from fruitseg.data.fruit_bank import FruitBank, flat_fruit_items
from fruitseg.data.fruits360 import FruitImage
from fruitseg.data.masks import mask_montage, soft_alpha
from fruitseg.data.scenes import Scene, SceneDataset, make_scene, photo_like_scene, save_scene_grid, scene_overlay
from fruitseg.labels import FRUITS360_CLASSES
from fruitseg.masks import fruit_mask, near_white, outline

FRUITS_DIR = ROOT / "tests" / "fixtures" / "fruits"
BACKGROUNDS_DIR = ROOT / "tests" / "fixtures" / "backgrounds"
FRUIT_FILES = sorted(FRUITS_DIR.glob("*.jpg"))

# Mask areas (pixels of 100x100) measured on the fixtures, with some slack below:
# a flood fill that leaked into a bright fruit would lose far more than that.
MIN_AREA = {
    "Grape_White_120.jpg": 6200,     # measured 6716
    "Lemon_116.jpg": 5500,           # measured 5993
    "Onion_White_30.jpg": 6200,      # measured 6762
    "Cauliflower_80.jpg": 5500,      # measured 6040
    "Apple_Braeburn_116.jpg": 6800,  # measured 7387
    "Banana_130.jpg": 2700,          # measured 3037
}


def load(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def jpeg(image: np.ndarray, quality: int = 90) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return load(io.BytesIO(buffer.getvalue()))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def fruits() -> FruitBank:
    return FruitBank.from_folder(FRUITS_DIR)


@pytest.fixture(scope="module")
def backgrounds() -> BackgroundBank:
    return BackgroundBank(BACKGROUNDS_DIR)


# ----------------------------------------------------------------------------- masks


def test_fixtures_present():
    assert {p.name for p in FRUIT_FILES} == set(MIN_AREA)
    assert len(list(BACKGROUNDS_DIR.glob("*.jpg"))) >= 1


@pytest.mark.parametrize("path", FRUIT_FILES, ids=lambda p: p.stem)
def test_fruit_mask_on_fixture(path):
    image = load(path)
    mask = fruit_mask(image)
    assert mask.shape == image.shape[:2] and mask.dtype == bool
    assert 0.2 <= mask.mean() <= 0.95
    assert mask[50, 50], "the centre is fruit"
    assert not mask[0, 0] and not mask[0, -1] and not mask[-1, 0] and not mask[-1, -1], "the corners are background"
    assert mask.sum() >= MIN_AREA[path.name], "a bright fruit was eaten by the flood fill"
    # one solid piece without holes
    assert ndimage.label(mask, structure=np.ones((3, 3)))[1] == 1
    assert np.array_equal(ndimage.binary_fill_holes(mask), mask)


@pytest.mark.parametrize("name", ["Grape_White_120.jpg", "Onion_White_30.jpg"])
def test_bright_fruit_keeps_its_highlights(name):
    image = load(FRUITS_DIR / name)
    mask = fruit_mask(image)
    bright = image.min(axis=2) >= 200
    # bright pixels well inside the fruit's outline (its highlights) all stay fruit
    inside = ndimage.binary_erosion(ndimage.binary_fill_holes(~_border_white(image)), iterations=3)
    assert (bright & inside).sum() > 40
    assert mask[bright & inside].all()


def _border_white(image: np.ndarray) -> np.ndarray:
    labels, _ = ndimage.label(image.min(axis=2) >= 245)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


@pytest.mark.parametrize("quality", [None, 92, 75])
def test_synthetic_disc_with_highlight(quality):
    size = 100
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - 52) ** 2 + (xx - 47) ** 2 <= 33**2
    image = np.full((size, size, 3), 255, np.uint8)
    image[disc] = (200, 170, 60)
    # a near-white specular highlight inside
    highlight = (yy - 40) ** 2 + (xx - 38) ** 2 <= 8**2
    image[highlight] = (252, 253, 250)
    if quality is not None:
        image = jpeg(image, quality)
    mask = fruit_mask(image)
    assert iou(mask, disc) > 0.97
    assert mask[highlight].all()


def test_disc_touching_the_border_and_a_near_white_fruit():
    # a pale (but not near-white) fruit cut by the image border; the paper is JPEG-noisy
    size = 100
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - 60) ** 2 + (xx - 50) ** 2 <= 45**2
    image = np.full((size, size, 3), 255, np.uint8)
    image[disc] = (228, 226, 205)
    image = jpeg(image, 85)
    mask = fruit_mask(image)
    assert iou(mask, disc) > 0.97


def test_blank_image_has_no_fruit():
    assert not fruit_mask(np.full((40, 50, 3), 255, np.uint8)).any()


def test_near_white_rejects_bad_input():
    with pytest.raises(ValueError):
        near_white(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("path", FRUIT_FILES[:3], ids=lambda p: p.stem)
def test_outline_of_a_fruit_mask_is_its_inner_ring_and_the_montage_draws_it(path):
    image = load(path)
    mask = fruit_mask(image)
    # the boundary evaluate.boundary_f1 scores: the mask minus its 4-connected erosion
    assert np.array_equal(outline(mask), mask & ~ndimage.binary_erosion(mask))
    montage = mask_montage(image[None], mask[None], columns=1, scale=1)
    shown = montage[2:-2, 2 + image.shape[1] + 2 : -2]
    assert np.array_equal((shown == (0, 255, 255)).all(axis=2), outline(mask))


def test_soft_alpha():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    alpha = soft_alpha(mask, feather_px=1.0)
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert alpha[20, 20] > 0.99 and alpha[0, 0] < 0.01
    assert 0.3 < alpha[20, 10] < 0.8 and 0.2 < alpha[20, 9] < 0.7
    assert np.array_equal(soft_alpha(mask, 0), mask.astype(np.float32))


# ------------------------------------------------------------------------ fruit bank


def test_flat_fixture_names_parse():
    items = flat_fruit_items(FRUITS_DIR)
    names = {FRUITS360_CLASSES[item.label] for item in items}
    assert names == {"Grape White", "Lemon", "Banana", "Apple Braeburn", "Cauliflower", "Onion White"}


def test_fruit_bank(fruits):
    assert len(fruits) == 6
    assert fruits.images.shape == (6, 100, 100, 3) and fruits.images.dtype == np.uint8
    assert fruits.masks.shape == (6, 100, 100) and fruits.masks.dtype == bool
    assert fruits.labels.shape == (6,)
    for image, mask, path in zip(fruits.images, fruits.masks, FRUIT_FILES):
        original = load(path)
        assert np.array_equal(mask, fruit_mask(original))
        # no painted white left around the fruit (it would make a halo when warped)
        ring = ndimage.binary_dilation(mask, iterations=3) & ~mask
        assert image[ring].min(axis=1).mean() < 235


def test_fruit_bank_drops_degenerate_masks():
    good = load(FRUIT_FILES[0])
    blank = np.full((100, 100, 3), 255, np.uint8)
    full = np.full((100, 100, 3), 90, np.uint8)
    bank = FruitBank.from_arrays(np.stack([blank, good, full]), [1, 2, 3])
    assert len(bank) == 1 and bank.labels.tolist() == [2]


def test_fruit_bank_cache(tmp_path):
    items = flat_fruit_items(FRUITS_DIR)
    cache = tmp_path / "bank.npz"
    first = FruitBank.from_items(items, cache=cache, progress=False)
    assert cache.exists()
    again = FruitBank.from_items(items, cache=cache, progress=False)
    for name in ("images", "masks", "labels"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    # a cache made for other files is rebuilt, not reused
    fewer = FruitBank.from_items(items[:3], cache=cache, progress=False)
    assert len(fewer) == 3
    assert isinstance(items[0], FruitImage)


# ------------------------------------------------------------------------ backgrounds


def test_background_bank(backgrounds):
    assert len(backgrounds) == 2
    kinds = set()
    for i in range(60):
        rng = np.random.default_rng(i)
        image = backgrounds.sample(rng, (64, 80))
        assert image.shape == (64, 80, 3) and image.dtype == np.uint8
        kinds.add(backgrounds.sample_float(np.random.default_rng(i), (32, 32))[1])
    assert {"photo", "white"} <= kinds and len(kinds) >= 4
    white = BackgroundBank(None, white_prob=1.0).sample(np.random.default_rng(0), (8, 8))
    assert (white == 255).all()
    procedural = BackgroundBank([], white_prob=0.0)
    assert procedural.sample_float(np.random.default_rng(1), (16, 16))[1] != "photo"


# ------------------------------------------------------------------------------ scenes


def check_scene(scene: Scene, size, fruits: FruitBank) -> None:
    h, w = size
    assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
    assert scene.mask.shape == (h, w) and scene.mask.dtype == np.uint8
    assert scene.instances.shape == (h, w) and scene.instances.dtype == np.int32
    assert set(np.unique(scene.mask)) <= {0, 1}
    assert np.array_equal(scene.mask == 1, scene.instances > 0)
    k = len(scene.labels)
    assert 1 <= k <= 8 and len(scene.boxes) == k
    assert set(np.unique(scene.instances)) == set(range(k + 1))
    assert set(scene.labels) <= set(fruits.labels.tolist())
    for i, (x0, y0, x1, y1) in enumerate(scene.boxes, start=1):
        ys, xs = np.nonzero(scene.instances == i)
        assert len(ys) >= 30
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_make_scene_deterministic(fruits, backgrounds):
    a = make_scene(np.random.default_rng(123), fruits, backgrounds, (96, 128))
    b = make_scene(np.random.default_rng(123), fruits, backgrounds, (96, 128))
    c = make_scene(np.random.default_rng(124), fruits, backgrounds, (96, 128))
    for name in ("image", "mask", "instances"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.labels == b.labels and a.boxes == b.boxes
    assert not np.array_equal(a.image, c.image)


def test_a_scene_on_white_is_the_same_scene_with_white_paper(fruits, backgrounds):
    for i in range(6):
        scene = make_scene(np.random.default_rng([5, i]), fruits, backgrounds, (96, 96), degrade=False)
        twin = make_scene(np.random.default_rng([5, i]), fruits, backgrounds, (96, 96), degrade=False, white_background=True)
        assert twin.background == "white" and twin.labels == scene.labels and twin.boxes == scene.boxes
        assert np.array_equal(twin.mask, scene.mask) and np.array_equal(twin.instances, scene.instances)
        inner = ndimage.binary_erosion(scene.mask > 0, iterations=2)
        far = ~ndimage.binary_dilation(scene.mask > 0, iterations=12)
        assert np.median(twin.image[far].min(axis=1)) > 200  # white paper far from the fruits
        if scene.background != "white":
            assert not np.array_equal(twin.image[far], scene.image[far])
        same = np.all(twin.image[inner] == scene.image[inner], axis=1)
        assert same.mean() > 0.95  # the very same fruit (a few pixels where the warped alpha is below 1 differ)


def test_make_scene_invariants(fruits, backgrounds):
    fractions, counts = [], []
    for i in range(50):
        scene = make_scene(np.random.default_rng([7, i]), fruits, backgrounds, (128, 128))
        check_scene(scene, (128, 128), fruits)
        fractions.append(scene.mask.mean())
        counts.append(len(scene.labels))
    fractions = np.array(fractions)
    assert fractions.min() > 0.003 and fractions.max() < 0.9
    assert 0.05 < fractions.mean() < 0.45
    assert max(counts) >= 5 and min(counts) <= 2


def test_make_scene_fruit_counts(fruits, backgrounds):
    for i in range(30):  # a one-fruit scene always has its fruit, even on a small canvas
        one = make_scene(np.random.default_rng(i), fruits, backgrounds, (48, 48), max_fruits=1)
        assert len(one.labels) == 1 and one.mask.sum() >= 30
    for i in range(10):
        many = make_scene(np.random.default_rng(i), fruits, backgrounds, (160, 160), min_fruits=8, max_fruits=8)
        assert 1 <= len(many.labels) <= 8


def test_shadows_are_not_fruit(fruits):
    white = BackgroundBank(None, white_prob=1.0)
    shadowed = 0
    for i in range(12):
        scene = make_scene(np.random.default_rng([3, i]), fruits, white, (128, 128), degrade=False)
        check_scene(scene, (128, 128), fruits)
        # away from the fruits (beyond the 1-2 px feathered fringe) there is only the white
        # paper and grey shadows on it: no fruit colour, and nothing marked as fruit
        outside = ~ndimage.binary_dilation(scene.mask > 0, iterations=3)
        pixels = scene.image[outside].astype(int)
        assert (pixels.max(axis=1) - pixels.min(axis=1)).max() <= 3
        shadowed += int((pixels.min(axis=1) < 235).sum() > 20)
        # inside the mask the fruit is opaque: it is never the white paper
        inner = ndimage.binary_erosion(scene.mask > 0, iterations=1)
        assert (scene.image[inner].min(axis=1) < 250).mean() > 0.7
    assert shadowed >= 6, "most scenes cast visible shadows"


def test_scene_overlay_draws_each_fruits_inner_ring_in_white(fruits, backgrounds):
    for seed in range(3):
        scene = make_scene(np.random.default_rng(seed), fruits, backgrounds, (64, 64))
        white = (scene_overlay(scene) == 255).all(axis=2)  # tints and darkening never reach white
        assert white.any() and np.array_equal(white, outline(scene.instances))


def test_scene_grid(tmp_path, fruits, backgrounds):
    scenes = [make_scene(np.random.default_rng(i), fruits, backgrounds, (64, 64)) for i in range(5)]
    path = save_scene_grid(scenes, tmp_path / "grid.png", columns=2)
    with Image.open(path) as grid:
        assert grid.size[0] > 2 * 128 and grid.size[1] > 3 * 64


# ----------------------------------------------------------------------------- dataset


def test_scene_dataset(fruits, backgrounds):
    data = SceneDataset(fruits, backgrounds, length=5, size=(64, 96), seed=11)
    assert len(data) == 5
    image, mask = data[2]
    assert image.shape == (3, 64, 96) and image.dtype == torch.float32
    assert mask.shape == (64, 96) and mask.dtype == torch.int64
    assert 0 <= image.min() and image.max() <= 1
    assert set(mask.unique().tolist()) <= {0, 1} and mask.sum() > 0
    again_image, again_mask = SceneDataset(fruits, backgrounds, 5, (64, 96), seed=11)[2]
    assert torch.equal(image, again_image) and torch.equal(mask, again_mask)
    scene = make_scene(np.random.default_rng([11, 2]), fruits, backgrounds, (64, 96))
    assert np.array_equal(scene.mask, mask.numpy())
    other, _ = SceneDataset(fruits, backgrounds, 5, (64, 96), seed=12)[2]
    assert not torch.equal(image, other)
    with pytest.raises(IndexError):
        data[5]


def test_scene_dataset_with_workers(fruits, backgrounds):
    data = SceneDataset(fruits, backgrounds, length=4, size=(48, 48), seed=5)
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2, timeout=120)
    batches = list(loader)
    assert len(batches) == 2
    images, masks = batches[1]
    assert images.shape == (2, 3, 48, 48) and masks.shape == (2, 48, 48)
    assert torch.equal(images[0], data[2][0]) and torch.equal(masks[1], data[3][1])


def test_photo_like_scenes_keep_exact_masks(fruits, backgrounds):
    seen = set()
    for i in range(40):
        scene = photo_like_scene(np.random.default_rng([11, i]), fruits, backgrounds, (128, 128))
        assert np.array_equal(scene.mask == 1, scene.instances > 0)
        assert len(scene.boxes) == len(scene.labels) == scene.instances.max()
        sizes = np.bincount(scene.instances.ravel())[1:]
        assert (sizes >= 30).all()
        seen.add(len(scene.labels) > 8)
    assert seen == {True, False}, "piles hold more fruits than the plain scatter"


def test_a_tree_canopy_is_leaves_not_fruit(fruits):
    white = BackgroundBank(None, white_prob=1.0)
    for i in range(6):
        bare = make_scene(np.random.default_rng([4, i]), fruits, white, (128, 128), degrade=False, max_fruits=3)
        tree = make_scene(np.random.default_rng([4, i]), fruits, white, (128, 128), degrade=False, max_fruits=3,
                          foliage=40)
        for scene in (bare, tree):
            assert np.array_equal(scene.mask == 1, scene.instances > 0)
        outside = ~ndimage.binary_dilation(tree.mask > 0, iterations=3)
        r, g, b = (tree.image[outside].astype(int)[:, c] for c in range(3))
        assert ((g > r + 20) & (g > b + 20)).mean() > 0.6, "the background is a canopy of green leaves"
        r, g, b = (bare.image[~ndimage.binary_dilation(bare.mask > 0, iterations=3)].astype(int)[:, c] for c in range(3))
        assert ((g > r + 20) & (g > b + 20)).mean() < 0.05


def test_clutter_is_drawn_but_never_fruit(fruits):
    white = BackgroundBank(None, white_prob=1.0)
    drawn = []
    for i in range(6):  # a table of things and no fruit
        empty = make_scene(np.random.default_rng([3, i]), fruits, white, (128, 128), degrade=False, min_fruits=0,
                           max_fruits=0, clutter=5)
        assert not empty.mask.any() and empty.labels == [] and empty.boxes == []
        drawn.append((empty.image.min(axis=2) < 200).mean())
    assert np.mean(drawn) > 0.05, "the objects are in the picture"
    hidden_some = False
    for i in range(12):
        plain = make_scene(np.random.default_rng([5, i]), fruits, white, (128, 128), degrade=False, max_fruits=4)
        scene = make_scene(np.random.default_rng([5, i]), fruits, white, (128, 128), degrade=False, max_fruits=4, clutter=6)
        assert np.array_equal(scene.mask == 1, scene.instances > 0)
        assert (np.bincount(scene.instances.ravel())[1:] >= 30).all()
        assert len(scene.boxes) == len(scene.labels) == scene.instances.max()
        outside = ~ndimage.binary_dilation(scene.mask > 0, iterations=3)
        assert (scene.image[outside].min(axis=1) < 200).mean() > (plain.image[~ndimage.binary_dilation(
            plain.mask > 0, iterations=3)].min(axis=1) < 200).mean(), "clutter darkens the white table outside the mask"
        hidden_some |= scene.mask.sum() < plain.mask.sum()
    assert hidden_some, "objects laid over fruits hide them"
