"""Measure the shipped models: ``python -m fruitseg.evaluate {classifier,segmenter,pipeline,kinds}``.

classifier  top-1, top-5, per-class accuracy and the most confused pairs on any folder
            laid out as ``<Class>/*.jpg`` (all 131 classes or only some), through the
            exact inference path the app uses (``--float32``: plain float32 instead).
segmenter   fruit IoU, pixel accuracy and boundary F1 on composite scenes built from
            held-out fruit frames and held-out backgrounds (or folders you name); with
            ``--real DIR`` fruit IoU of the app's masks on real photos with hand-drawn masks
            (``../shared/data/real-masks/test``), per source, beside GrabCut.
pipeline    segment-then-classify on single-fruit scenes against the same scenes with the
            background painted white: does a fruit on any background classify as well?
kinds       real photos in ``<kind>/*.jpg`` folders (``../shared/data/real-photos/test``),
            or a flat folder of ``<name>.jpg`` whose kinds are listed in a ``SOURCES.tsv``
            in it or its parent (``../shared/data/real-masks/test``; a photo may show
            several kinds, and an answer naming any of them is right): top-1 by kind of
            the app's answer, for both classifiers (photo and seed CNN), and of its parts
            (the whole photo, the segmenter's surest fruit); per-kind accuracy and the most
            confused pairs.

Weights come from the same place as in the app (``FRUITSEG_CLASSIFIER`` /
``FRUITSEG_SEGMENTER``, default ``checkpoints/``). A ``--json`` file also records its
``provenance`` (:mod:`fruitseg.provenance`): the commit, each model's inference path and
weights (where from, and a hash of the ``model.safetensors`` read), torch and the CPU.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from fruitseg.data.fruits360 import FruitImage, image_files, list_images, split_by_frame_blocks
from fruitseg.instances import cut_out
from fruitseg.masks import outline
from fruitseg.predictors import Classifier, PhotoClassifier, Segmenter
from fruitseg.provenance import provenance, weights_identity

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_FRUITS = SHARED / "fruits360" / "Training"
DEFAULT_BACKGROUNDS = SHARED / "backgrounds"
EVAL_SEED = 2024


def evaluate_classifier(classifier: Classifier, items: list[FruitImage], batch_size: int = 128) -> dict:
    labels = np.array([item.label for item in items])
    top5 = np.empty((len(items), 5), dtype=np.int64)
    for start in tqdm(range(0, len(items), batch_size), desc="classifying", unit="batch"):
        batch = []
        for item in items[start : start + batch_size]:
            with Image.open(item.path) as image:
                batch.append(image.convert("RGB"))
        logits = classifier.logits(batch)
        top5[start : start + len(batch)] = np.argsort(-logits, axis=1)[:, :5]
    hit1 = top5[:, 0] == labels
    per_class = {
        classifier.class_names[c]: round(float(hit1[labels == c].mean()), 4) for c in sorted(set(labels.tolist()))
    }
    confusions = Counter(
        (classifier.class_names[t], classifier.class_names[p]) for t, p in zip(labels[~hit1], top5[~hit1, 0])
    )
    return {
        "images": len(items),
        "classes": len(per_class),
        "top1": round(float(hit1.mean()), 5),
        "top5": round(float((top5 == labels[:, None]).any(axis=1).mean()), 5),
        "worst_classes": dict(sorted(per_class.items(), key=lambda kv: kv[1])[:10]),
        "most_confused": [{"true": t, "predicted": p, "count": n} for (t, p), n in confusions.most_common(10)],
        "per_class_top1": per_class,
    }


def boundary_f1(pred: np.ndarray, truth: np.ndarray, tolerance: int = 2) -> float:
    """F1 of boundary pixels matched within ``tolerance`` pixels (as in the DAVIS F measure)."""
    pb, tb = outline(pred), outline(truth)  # each mask's inner ring, the image border counted as outside
    if not pb.any() and not tb.any():
        return 1.0
    near_t = ndimage.binary_dilation(tb, iterations=tolerance)
    near_p = ndimage.binary_dilation(pb, iterations=tolerance)
    precision = (pb & near_t).sum() / max(pb.sum(), 1)
    recall = (tb & near_p).sum() / max(tb.sum(), 1)
    return float(2 * precision * recall / max(precision + recall, 1e-9))


def validation_banks(fruits_dir=None, backgrounds_dir=None):
    """(fruits, backgrounds) for evaluation scenes: held-out fruit frames and held-out
    background photos, or everything in the given folders."""
    from fruitseg.data.backgrounds import BackgroundBank, split_backgrounds
    from fruitseg.data.fruit_bank import FruitBank

    if fruits_dir:
        fruit_items = list_images(fruits_dir)
    else:
        fruit_items = split_by_frame_blocks(list_images(DEFAULT_FRUITS))[1]
    if backgrounds_dir:
        background_paths = image_files(backgrounds_dir)
    else:
        background_paths = split_backgrounds(DEFAULT_BACKGROUNDS)[1]
    return FruitBank.from_items(fruit_items), BackgroundBank(background_paths)


def validation_scenes(count: int, seed: int, size: int, banks, max_fruits: int = 8, white_background: bool = False):
    """Deterministic scenes (scene i is a function of ``seed`` and i alone); with
    ``white_background`` each is the same scene's twin on plain white."""
    from fruitseg.data.scenes import make_scene

    fruits, backgrounds = banks
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        yield make_scene(rng, fruits, backgrounds, (size, size), max_fruits=max_fruits, white_background=white_background)


def evaluate_segmenter(segmenter: Segmenter, scenes, threshold: float = 0.5) -> dict:
    inter = union = correct = pixels = 0
    ious, f1s = [], []
    for scene in tqdm(scenes, desc="segmenting", unit="scene"):
        prob = segmenter.predict([Image.fromarray(scene.image)])[0]
        pred, truth = prob >= threshold, scene.mask.astype(bool)
        i, u = int((pred & truth).sum()), int((pred | truth).sum())
        inter, union = inter + i, union + u
        correct, pixels = correct + int((pred == truth).sum()), pixels + truth.size
        ious.append(i / max(u, 1))
        f1s.append(boundary_f1(pred, truth))
    return {
        "scenes": len(ious),
        "fruit_iou": round(inter / max(union, 1), 5),
        "mean_scene_iou": round(float(np.mean(ious)), 5),
        "pixel_accuracy": round(correct / max(pixels, 1), 5),
        "boundary_f1_2px": round(float(np.mean(f1s)), 5),
    }


def evaluate_real_masks(pipeline, folder: str | Path, grabcut: bool = True) -> dict:
    """Fruit IoU of the app's masks (:meth:`FruitPipeline.segment` at 0.5) on real photos with
    hand-drawn masks, per source (the file-name prefix) and overall (summed intersections over
    summed unions), with OpenCV GrabCut from a rectangle 5 % in from the border on the same photos."""
    from fruitseg.bench.baselines import grabcut_mask
    from fruitseg.data.real_masks import IGNORE, load_pair, mask_pairs, source_of

    sums: dict[str, dict[str, np.ndarray]] = {}
    for photo, mask in tqdm(mask_pairs(folder), desc="real photos", unit="photo"):
        image, labels = load_pair(photo, mask)
        truth, measured = labels == 1, labels != IGNORE  # unsure pixels (pseudo-masks) are not measured
        predictions = {"segmenter": pipeline.segment(Image.fromarray(image)) >= 0.5}
        if grabcut:
            predictions["grabcut"] = grabcut_mask(image)
        for name in (source_of(photo), "all"):
            for method, pred in predictions.items():
                sums.setdefault(name, {}).setdefault(method, np.zeros(3))
                sums[name][method] += [(pred & truth).sum(), ((pred | truth) & measured).sum(), 1]
    return {
        name: {"photos": int(by_method["segmenter"][2]),
               **{f"{m}_iou": round(float(v[0] / max(v[1], 1)), 4) for m, v in by_method.items()}}
        for name, by_method in sums.items()
    }


def evaluate_pipeline(pipeline, scenes, white_twins=None) -> dict:
    """Top-1 of segment-then-classify on single-fruit scenes, split into its error sources.

    ``segment_then_classify_top1`` is the pipeline's own result; ``cutout_true_mask_top1``
    classifies the cut-out made with the scene's exact mask (what a perfect segmenter would
    give); ``classify_whole_scene_top1`` the classifier on the raw scene, without segmenting.
    With ``white_twins`` (the same scenes on plain white, see ``make_scene``'s
    ``white_background``) the pipeline also runs on each twin: ``same_scene_on_white_top1``
    is how well the very same photographed fruit classifies on white, so the difference
    to ``segment_then_classify_top1`` is what the background alone costs.
    """
    twins = iter(white_twins) if white_twins is not None else None
    hits = true_mask_hits = naive_hits = found = total = white_hits = 0
    for scene in tqdm(scenes, desc="segment+classify", unit="scene"):
        image, truth = Image.fromarray(scene.image), pipeline.classifier.class_names[scene.labels[0]]
        total += 1
        found += bool(fruits := pipeline.analyze(image).fruits)
        hits += bool(fruits) and fruits[0].label == truth
        true_cutout = cut_out(image, scene.mask.astype(bool))
        true_mask_hits += pipeline.classifier.predict([true_cutout], top_k=1)[0].label == truth
        naive_hits += pipeline.classifier.predict([image], top_k=1)[0].label == truth
        if twins is not None:
            twin = pipeline.analyze(Image.fromarray(next(twins).image)).fruits
            white_hits += bool(twin) and twin[0].label == truth
    results = {
        "scenes": total,
        "fruit_found": round(found / max(total, 1), 5),
        "segment_then_classify_top1": round(hits / max(total, 1), 5),
        "cutout_true_mask_top1": round(true_mask_hits / max(total, 1), 5),
        "classify_whole_scene_top1": round(naive_hits / max(total, 1), 5),
    }
    if twins is not None:
        results["same_scene_on_white_top1"] = round(white_hits / max(total, 1), 5)
    return results


def evaluate_kinds(segmenter: Segmenter, classifiers: dict, items: list[tuple[Path, str | frozenset[str]]]) -> dict:
    """Top-1 by kind on real photos labelled by kind, for each named classifier.

    Per photo the segmenter runs once; each classifier then goes through the pipeline as in
    the app. ``answer`` is the app's headline (:attr:`fruitseg.pipeline.Analysis.answer`, or
    the whole photo when no fruit is found); ``whole_image`` the classifier on the whole
    photo; ``surest_fruit`` the segmenter's surest fruit (the whole photo when none).

    A photo's truth is one kind (``<kind>/*.jpg`` folders) or a set of kinds (a photo that
    shows several, :func:`fruitseg.data.real_masks.photo_kind_sets`); an answer is right when
    it names any kind in the photo. ``per_kind_top1`` counts a photo under each of its kinds
    (right or wrong as a whole), so a multi-kind photo weighs in several kinds;
    ``most_confused`` lists wrong answers only, the true side being the photo's kinds joined
    with ``+`` (``Date+Fig+Hazelnut``). ``multi_kind_photos`` says how many photos show more
    than one kind (0 for kind folders, whose figures are as before).
    """
    from fruitseg.images import load_image
    from fruitseg.instances import split_fruits
    from fruitseg.pipeline import FruitPipeline

    truths = [frozenset([truth]) if isinstance(truth, str) else frozenset(truth) for _, truth in items]
    if any(not truth for truth in truths):
        raise ValueError("every photo needs at least one kind")
    pipelines = {name: FruitPipeline(c, segmenter) for name, c in classifiers.items()}
    rows = {name: [] for name in pipelines}  # (answer, whole, surest)
    for path, _ in tqdm(items, desc="photos", unit="photo"):
        image = load_image(path)
        probability = next(iter(pipelines.values())).segment(image)
        regions = split_fruits(probability)  # once, for every classifier
        for name, pipeline in pipelines.items():
            analysis = pipeline.analyze(image, probability=probability, regions=regions)
            whole = analysis.whole_image or pipeline.classifier.predict([image])[0]
            surest = analysis.fruits[0].prediction if analysis.fruits else whole
            answer = analysis.answer or whole
            rows[name].append((answer.kind, whole.kind, surest.kind))
    results: dict = {"photos": len(items), "kinds": sorted(set().union(*truths)),
                     "multi_kind_photos": sum(len(truth) > 1 for truth in truths)}
    for name, found in rows.items():
        right = {part: np.array([r[i] in truth for r, truth in zip(found, truths)]) for i, part in enumerate(("answer", "whole", "surest"))}
        per_kind = {k: round(float(right["answer"][[k in truth for truth in truths]].mean()), 4) for k in results["kinds"]}
        confusions = Counter(("+".join(sorted(truth)), r[0]) for r, truth in zip(found, truths) if r[0] not in truth)
        results[name] = {
            "answer_top1": round(float(right["answer"].mean()), 4),
            "whole_image_top1": round(float(right["whole"].mean()), 4),
            "surest_fruit_top1": round(float(right["surest"].mean()), 4),
            "mean_per_kind_top1": round(float(np.mean(list(per_kind.values()))), 4),
            "per_kind_top1": per_kind,
            "most_confused": [{"true": t, "predicted": p, "count": n} for (t, p), n in confusions.most_common(12)],
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fruitseg.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", required=True)
    cls = sub.add_parser("classifier", help="top-1/top-5 on a <Class>/*.jpg folder")
    cls.add_argument("--data", default=str(DEFAULT_FRUITS), help="a <Class>/*.jpg folder (default: the shared Fruits-360 Training folder)")
    cls.add_argument("--split", choices=["all", "val"], default="all", help="val: only the held-out frame blocks")
    cls.add_argument("--limit", type=int, default=0)
    seg = sub.add_parser("segmenter", help="IoU on composite scenes, or on real photos with masks (--real)")
    seg.add_argument("--real", default=None, help="folder of real photos with masks (<name>.jpg + <name>.png): IoU per source, with GrabCut")
    pipe = sub.add_parser("pipeline", help="segment-then-classify on single-fruit scenes")
    for p in (seg, pipe):
        p.add_argument("--scenes", type=int, default=200)
        p.add_argument("--seed", type=int, default=EVAL_SEED)
        p.add_argument("--size", type=int, default=512)
        p.add_argument("--fruits", default=None, help="fruit folder (default: held-out Fruits-360 frames)")
        p.add_argument("--backgrounds", default=None, help="background folder (default: held-out photos)")
        p.add_argument("--no-refine", action="store_true", help="skip the guided-filter edge refinement")
    kinds = sub.add_parser("kinds", help="top-1 by kind on real photos in <kind>/*.jpg folders, or listed in a SOURCES.tsv")
    kinds.add_argument("--data", default=str(SHARED / "real-photos" / "test"),
                       help="a <kind>/*.jpg folder, or a flat folder of <name>.jpg with a SOURCES.tsv (columns file, fruit_kind) "
                            "in it or its parent, e.g. ../shared/data/real-masks/test (default: the shared real-photos/test)")
    kinds.add_argument("--limit", type=int, default=0, help="at most this many photos per kind (per set of kinds, for SOURCES.tsv photos)")
    for p in (cls, pipe, kinds):
        p.add_argument("--float32", action="store_true", help="run the seed classifier in plain float32 (BN folded, channels-last), not the app's fastest path (int8, Winograd or bfloat16)")
    for p in (cls, seg, pipe, kinds):
        p.add_argument("--json", default=None, help="also write the results here")
        p.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    folders = [getattr(args, "data", None), getattr(args, "real", None)]
    if args.task == "pipeline" or (args.task == "segmenter" and not args.real):  # scenes of held-out frames
        folders += [args.fruits or DEFAULT_FRUITS, args.backgrounds or DEFAULT_BACKGROUNDS]
    for folder in folders:
        if folder and not Path(folder).is_dir():
            parser.error(f"{folder} is not a folder (the shared data lives in ../shared/data beside the project)")

    if args.task == "classifier":
        classifier = Classifier.load(args.device, path="float32" if args.float32 else "auto")
        models = {"classifier": classifier}
        items = list_images(args.data, tuple(classifier.class_names))
        if args.split == "val":
            items = split_by_frame_blocks(items)[1]
        if args.limit:
            items = items[:: max(1, len(items) // args.limit)][: args.limit]
        results = {"inference_path": classifier.inference_path, **evaluate_classifier(classifier, items)}
        paths = classifier.inference_path
    elif args.task == "segmenter":
        from fruitseg.pipeline import FruitPipeline

        segmenter = Segmenter.load(args.device, refine_edges=not args.no_refine)
        models, paths = {"segmenter": segmenter}, segmenter.inference_path
        if args.real:
            results = evaluate_real_masks(FruitPipeline(None, segmenter), args.real)
        else:
            scenes = validation_scenes(args.scenes, args.seed, args.size, validation_banks(args.fruits, args.backgrounds))
            results = evaluate_segmenter(segmenter, scenes)
    elif args.task == "kinds":
        from fruitseg.data.photo_crops import kind_photo_files
        from fruitseg.data.real_masks import find_sources, photo_kind_sets

        data = Path(args.data)
        listed = (not any(p.is_dir() for p in data.iterdir()) and any(data.glob("*.jpg"))
                  and find_sources(data) is not None)  # a flat folder of photos with a SOURCES.tsv
        items = photo_kind_sets(data) if listed else kind_photo_files(data)
        if args.limit:
            group = (lambda truth: "+".join(sorted(truth))) if listed else (lambda truth: truth)
            items = [item for key in sorted({group(k) for _, k in items}) for item in [i for i in items if group(i[1]) == key][: args.limit]]
        classifiers = {"photo_classifier": PhotoClassifier.load(args.device),
                       "seed_cnn": Classifier.load(args.device, path="float32" if args.float32 else "auto")}
        segmenter = Segmenter.load(args.device)
        models = {**classifiers, "segmenter": segmenter}
        results = {"inference_paths": {name: c.inference_path for name, c in classifiers.items()},
                   **evaluate_kinds(segmenter, classifiers, items)}
        paths = {**results["inference_paths"], "segmenter": segmenter.inference_path}
    else:
        from fruitseg.pipeline import FruitPipeline

        segmenter = Segmenter.load(args.device, refine_edges=not args.no_refine)
        classifier = Classifier.load(args.device, path="float32" if args.float32 else "auto")
        models = {"classifier": classifier, "segmenter": segmenter}
        pipeline = FruitPipeline(classifier, segmenter)
        banks = validation_banks(args.fruits, args.backgrounds)
        scenes = validation_scenes(args.scenes, args.seed, args.size, banks, max_fruits=1)
        twins = validation_scenes(args.scenes, args.seed, args.size, banks, max_fruits=1, white_background=True)
        results = {"classifier_inference_path": classifier.inference_path, **evaluate_pipeline(pipeline, scenes, twins)}
        paths = {"classifier": classifier.inference_path, "segmenter": segmenter.inference_path}
    weights = {name: weights_identity(model.source) for name, model in models.items()}
    summary = {k: v for k, v in results.items() if k != "per_class_top1"}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "provenance": provenance(paths, weights=weights)}, indent=1))


if __name__ == "__main__":
    main()
