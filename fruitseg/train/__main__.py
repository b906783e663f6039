"""``python -m fruitseg.train {classifier,photo-classifier,segmenter,calibrate,pseudo-masks} --help``"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

TASKS = {
    "classifier": "fruitseg.train.classifier",
    "photo-classifier": "fruitseg.train.photo_classifier",
    "segmenter": "fruitseg.train.segmenter",
    "calibrate": "fruitseg.train.calibrate",
    "pseudo-masks": "fruitseg.train.pseudo_masks",
}
FOLDERS = ("data", "backgrounds", "photos", "more_photos", "real_masks", "pseudo_masks", "model")  # arguments that name input folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fruitseg.train", description=__doc__)
    sub = parser.add_subparsers(dest="task", required=True)
    modules = {}
    for task, module_name in TASKS.items():
        module = importlib.import_module(module_name)
        modules[task] = module
        module.add_arguments(sub.add_parser(task, help=module.__doc__.strip().splitlines()[0]))
    args = parser.parse_args(argv)
    for name in FOLDERS:
        folder = getattr(args, name, None)
        if folder and not Path(folder).is_dir():
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} {folder} is not a folder (the shared data lives in ../shared/data beside the project)")
    modules[args.task].run(args)


if __name__ == "__main__":
    main()
