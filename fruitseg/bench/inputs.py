"""What the benchmarks run on: held-out Fruits-360 frames and composite scenes when the
shared data is beside the project, else the bundled fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE_FRUITS = FIXTURES / "fruits"
FIXTURE_BACKGROUNDS = FIXTURES / "backgrounds"
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "fruits360" / "Training"
DEFAULT_BACKGROUNDS = SHARED / "backgrounds"
CACHE_DIR = ROOT / "runs" / "bench"


def fixture_fruit_items():
    """The bundled fruit fixtures as FruitImage items (class from the file name)."""
    from fruitseg.data.fruit_bank import flat_fruit_items

    return flat_fruit_items(FIXTURE_FRUITS)


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def heldout_items(data: Path, class_names: Sequence[str], limit: int) -> list:
    """Held-out validation frames of a Fruits-360 folder, evenly subsampled to ``limit``."""
    from fruitseg.data.fruits360 import list_images, split_by_frame_blocks

    items = split_by_frame_blocks(list_images(data, tuple(class_names)))[1]
    if limit and len(items) > limit:
        items = items[:: max(1, len(items) // limit)][:limit]
    return items


def scene_banks(data: Path | None, backgrounds: Path | None, quick: bool, log: Callable[[str], None] = print):
    """(FruitBank, BackgroundBank, description): held-out Fruits-360 frames and held-out
    background photos when they exist, else the bundled fixtures."""
    from fruitseg.data.backgrounds import BackgroundBank, split_backgrounds
    from fruitseg.data.fruit_bank import FruitBank

    data = Path(data) if data is not None else DEFAULT_DATA
    backgrounds = Path(backgrounds) if backgrounds is not None else DEFAULT_BACKGROUNDS
    if data.is_dir() and backgrounds.is_dir():
        from fruitseg.data.fruits360 import list_images, split_by_frame_blocks

        items = split_by_frame_blocks(list_images(data))[1]
        if quick:  # one held-out frame per class and rotation is plenty for a few scenes
            seen: dict = {}
            for item in items:
                seen.setdefault((item.label, item.rotation), item)
            items = list(seen.values())
        photos = split_backgrounds(backgrounds)[1]
        log(f"segmenter: fruit bank of {len(items)} held-out frames, {len(photos)} held-out backgrounds")
        cache = CACHE_DIR / ("fruits_val_quick.npz" if quick else "fruits_val.npz")
        fruits = FruitBank.from_items(items, cache=cache, progress=False)
        desc = f"held-out Fruits-360 frames ({len(fruits)}) on held-out backgrounds ({len(photos)} photos + procedural)"
        return fruits, BackgroundBank(photos), desc
    fruits = FruitBank.from_folder(FIXTURE_FRUITS)
    desc = f"fixtures: {len(fruits)} fruits on {FIXTURE_BACKGROUNDS.relative_to(ROOT)} + procedural backgrounds"
    return fruits, BackgroundBank(FIXTURE_BACKGROUNDS), desc


def make_scenes(fruits, backgrounds, count: int, seed: int, size: tuple[int, int]) -> list:
    """Scene i is ``make_scene(default_rng([seed, i]), ..., size=(H, W))``, as in
    :func:`fruitseg.evaluate.validation_scenes`."""
    from fruitseg.data.scenes import make_scene

    return [make_scene(np.random.default_rng([seed, i]), fruits, backgrounds, size) for i in range(count)]


def bench_scene_file(folder: Path, size: tuple[int, int] = (512, 512), seed: int = 7) -> Path:
    """A deterministic composite scene from the bundled fixtures, written as a JPEG."""
    from fruitseg.data.backgrounds import BackgroundBank
    from fruitseg.data.fruit_bank import FruitBank
    from fruitseg.data.scenes import make_scene

    scene = make_scene(np.random.default_rng(seed), FruitBank.from_folder(FIXTURE_FRUITS), BackgroundBank(FIXTURE_BACKGROUNDS), size, max_fruits=4)
    path = folder / f"scene_{size[1]}x{size[0]}.jpg"
    Image.fromarray(scene.image).save(path, quality=92)
    return path
