"""The LMD explorer's inputs: the class table (presets, a photo, resizing, repairing any
edited table) and the checked controls (true class, major labels, T, β).

Every repair of a bad value is noted, so the tab can say what it changed.

Presets fill the table:

* **Random** (seeded): teacher and student logits ~ N(0, 2²), counts from a skewed
  Dirichlet(0.5) draw, a random true class.
* **Confident teacher**: the teacher's logit for the true class is 6 above its largest
  other logit; the student is N(0, 1) noise.
* **Uniform student**: every student logit is 0 (a uniform prediction); the teacher is
  N(0, 2²) with +3 on the true class.
* **From a photo**: the teacher is the fruit classifier's logits on an uploaded photo,
  restricted to its top-C classes (the classes are then those fruits, most likely first);
  the student is a weaker copy, half the teacher's logits plus N(0, 1) noise (seeded); the
  true class is the classifier's top class. Counts are a skewed random draw as above.
"""

import math
from typing import Any, Sequence

import gradio as gr
import numpy as np
import pandas as pd

from fruitseg.losses import major_labels_from_counts
from fruitseg.ui.common import parse_number, refusal, shown

COLUMNS = ["class", "student", "teacher", "count"]
MIN_CLASSES, MAX_CLASSES = 3, 20
MAX_API_CLASSES = 1000  # /lmd refuses more classes than this
LOGIT_LIMIT = 100.0  # logits are clamped (table) or refused (/lmd) beyond +-this (|logits / T| stays far from the -1000 mask)
COUNT_LIMIT = 1e9
T_LIMIT, BETA_LIMIT = 100.0, 100.0  # largest temperature and LMD weight accepted
FRUIT_NAMES = (
    "Apple", "Banana", "Cherry", "Kiwi", "Lemon", "Mango", "Orange", "Pear", "Plum", "Grape",
    "Peach", "Lime", "Melon", "Papaya", "Fig", "Guava", "Lychee", "Apricot", "Pineapple", "Strawberry",
)  # fmt: skip
PRESETS = ("random", "confident teacher", "uniform student")


def default_names(num_classes: int) -> list[str]:
    return [FRUIT_NAMES[i] if i < len(FRUIT_NAMES) else f"class {i}" for i in range(num_classes)]


def make_table(
    names: Sequence[str], student: Sequence[float], teacher: Sequence[float], counts: Sequence[float]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "class": [str(n) for n in names],
            "student": [round(float(v), 2) for v in student],
            "teacher": [round(float(v), 2) for v in teacher],
            "count": [int(round(float(c))) for c in counts],
        },
        columns=COLUMNS,
    )


def skewed_counts(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A non-IID client: a few classes hold most of the samples (Dirichlet(0.5) x 40 C)."""
    return np.round(rng.dirichlet(np.full(num_classes, 0.5)) * 40 * num_classes)


def preset_table(kind: str, num_classes: int, seed: int = 0) -> tuple[pd.DataFrame, int]:
    """(table, true class) for one of :data:`PRESETS` (see the module docstring)."""
    num_classes = clamp_classes(num_classes)
    rng = np.random.default_rng(int(seed))
    counts = skewed_counts(num_classes, rng)
    target = int(rng.integers(num_classes))
    if kind == "random":
        teacher, student = rng.normal(0, 2, num_classes), rng.normal(0, 2, num_classes)
    elif kind == "confident teacher":
        teacher = rng.normal(0, 1, num_classes)
        teacher[target] = np.delete(teacher, target).max() + 6
        student = rng.normal(0, 1, num_classes)
    elif kind == "uniform student":
        teacher = rng.normal(0, 2, num_classes)
        teacher[target] += 3
        student = np.zeros(num_classes)
    else:
        raise gr.Error(f"Unknown preset {kind!r}; choose one of: {', '.join(PRESETS)}.")
    return make_table(default_names(num_classes), student, teacher, counts), target


def photo_table(
    classifier_logits: np.ndarray, class_names: Sequence[str], num_classes: int, seed: int = 0
) -> tuple[pd.DataFrame, int]:
    """Teacher = the classifier's logits over its top-C classes; student = 0.5 x teacher + N(0, 1)."""
    num_classes = min(clamp_classes(num_classes), len(class_names))
    logits = np.asarray(classifier_logits, dtype=np.float64).reshape(-1)
    top = np.argsort(-logits, kind="stable")[:num_classes]
    rng = np.random.default_rng(int(seed))
    teacher = logits[top]
    student = 0.5 * teacher + rng.normal(0, 1, num_classes)
    counts = skewed_counts(num_classes, rng)
    return make_table([class_names[i] for i in top], student, teacher, counts), 0


def resize_table(table: Any, num_classes: int) -> pd.DataFrame:
    """Keep the first C rows; new rows get a fruit name, zero logits and a count of 10."""
    num_classes = clamp_classes(num_classes)
    names, student, teacher, counts, _ = repair_table(table, None)
    n = len(names)
    if n >= num_classes:
        return make_table(names[:num_classes], student[:num_classes], teacher[:num_classes], counts[:num_classes])
    extra = default_names(num_classes)[n:]
    used = set(names)
    extra = [name if name not in used else f"class {n + i}" for i, name in enumerate(extra)]
    return make_table(
        [*names, *extra],
        [*student, *[0.0] * (num_classes - n)],
        [*teacher, *[0.0] * (num_classes - n)],
        [*counts, *[10.0] * (num_classes - n)],
    )


def clamp_classes(num_classes: Any) -> int:
    """Round and clamp to [MIN_CLASSES, MAX_CLASSES]; a non-number is a ``gr.Error``."""
    try:
        value = float(num_classes)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        message = f"The number of classes must be a whole number from {MIN_CLASSES} to {MAX_CLASSES}."
        raise gr.Error(message, print_exception=False)
    return int(min(max(round(value), MIN_CLASSES), MAX_CLASSES))


def _as_frame(table: Any) -> pd.DataFrame:
    if table is None:
        return pd.DataFrame(columns=COLUMNS)
    if isinstance(table, pd.DataFrame):
        return table
    try:
        if isinstance(table, dict) and "data" in table:  # Gradio's {"headers", "data"} payload
            data = [row for row in table["data"] or [] if row]
            headers = table.get("headers") or None
            return pd.DataFrame(data, columns=headers) if data or headers else pd.DataFrame(columns=COLUMNS)
        return pd.DataFrame(table)
    except Exception:
        raise gr.Error("The logits table could not be read; pick a preset to reset it.", print_exception=False) from None


def _column(frame: pd.DataFrame, name: str, position: int) -> pd.Series | None:
    lookup = {str(c).strip().lower(): c for c in frame.columns}
    if name in lookup:
        return frame[lookup[name]]
    if frame.shape[1] > position and not any(str(c).strip().lower() in COLUMNS for c in frame.columns):
        return frame.iloc[:, position]
    return None


def _numbers(
    column: pd.Series | None, rows: int, what: str, low: float, high: float, fill: float, notes: list[str]
) -> list[float]:
    if column is None:
        notes.append(f"The table has no '{what}' column: used {fill:g} for every class.")
        return [fill] * rows
    raw = column.tolist()
    values = np.array([_to_number(v) for v in raw], dtype=np.float64)
    bad = np.isnan(values)  # +-inf is just a huge number: clamped below
    if bad.any():
        which = ", ".join(str(i) for i in np.flatnonzero(bad)[:6])
        notes.append(f"Non-numeric or empty '{what}' cells (rows {which}) were read as {fill:g}.")
        values[bad] = fill
    clipped = np.clip(values, low, high)
    if (clipped != values).any():
        notes.append(f"'{what}' values outside [{low:g}, {high:g}] were clamped.")
    return clipped.tolist()


def _to_number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip().replace(",", ".").replace("−", "-"))
    except ValueError:
        return float("nan")


def repair_table(table: Any, num_classes: int | None) -> tuple[list[str], list[float], list[float], list[float], list[str]]:
    """(names, student, teacher, counts, notes): any table made usable, every repair noted.

    Non-numeric / empty / NaN cells become 0 (logits) or 0 (counts); logits are clamped to
    +-:data:`LOGIT_LIMIT`, counts to [0, :data:`COUNT_LIMIT`]; with ``num_classes`` given,
    missing rows are added (zero logits) and extra rows dropped.
    """
    frame = _as_frame(table)
    notes: list[str] = []
    frame = frame.dropna(how="all")
    rows = len(frame)
    names_col = _column(frame, "class", 0)
    raw_names = names_col.tolist() if names_col is not None else [None] * rows
    names = [str(n).strip() if n is not None and str(n).strip() not in ("", "nan") else f"class {i}" for i, n in enumerate(raw_names)]
    student = _numbers(_column(frame, "student", 1), rows, "student", -LOGIT_LIMIT, LOGIT_LIMIT, 0.0, notes) if rows else []
    teacher = _numbers(_column(frame, "teacher", 2), rows, "teacher", -LOGIT_LIMIT, LOGIT_LIMIT, 0.0, notes) if rows else []
    counts = _numbers(_column(frame, "count", 3), rows, "count", 0.0, COUNT_LIMIT, 0.0, notes) if rows else []
    if num_classes is not None:
        if rows == 0:
            notes.append("The table was empty: every logit was taken as 0.")
        elif rows < num_classes:
            notes.append(
                f"The table has {rows} rows for {num_classes} classes: the missing classes got logits 0 and count 0."
            )
        elif rows > num_classes:
            notes.append(f"The table has {rows} rows for {num_classes} classes: the extra rows were ignored.")
        missing = max(0, num_classes - rows)
        names = (names + default_names(num_classes)[rows:])[:num_classes] if missing else names[:num_classes]
        student = (student + [0.0] * missing)[:num_classes]
        teacher = (teacher + [0.0] * missing)[:num_classes]
        counts = (counts + [0.0] * missing)[:num_classes]
    return names, student, teacher, counts, notes


# --------------------------------------------------------------------------- controls


def class_choices(names: Sequence[str]) -> list[tuple[str, int]]:
    return [(f"{i} · {name}", i) for i, name in enumerate(names)]


def major_ids_from_counts(counts: Sequence[float]) -> list[int]:
    """FedLMD's rule (``fruitseg.losses.major_labels_from_counts``) as plain ints."""
    return [int(i) for i in major_labels_from_counts(np.asarray(counts, dtype=np.float64)).tolist()]


def check_T(T: Any) -> float:
    message = f"The temperature T must be a number greater than 0 and at most {T_LIMIT:g} (got {{value!r}})."
    return parse_number(T, message, low=0.0, low_inclusive=False, high=T_LIMIT)


def check_beta(beta: Any) -> float:
    return parse_number(beta, f"β must be a number ≥ 0 and at most {BETA_LIMIT:g} (got {{value!r}}).", low=0.0, high=BETA_LIMIT)


# --------------------------------------------------------------------------- /lmd's arguments


def api_numbers(value: Any, name: str, low: float, high: float, length: int | None = None) -> list[float]:
    """A JSON list of finite numbers in [low, high] (at most :data:`MAX_API_CLASSES`, ``length``
    when given), or a refusal that names the argument and the first bad value."""
    if not isinstance(value, (list, tuple)):
        raise refusal(f"{name} must be a list of numbers (got {shown(value)}).")
    if len(value) > MAX_API_CLASSES:
        raise refusal(f"{name} has {len(value):,} values; at most {MAX_API_CLASSES:,} classes are supported.")
    if length is not None and len(value) != length:
        raise refusal(f"{name} has {len(value)} values for {length} classes.")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:  # NaN fails too
            raise refusal(f"{name} must be a list of finite numbers from {low:g} to {high:g}; found {shown(v)}.")
    return [float(v) for v in value]


def api_class_id(value: Any, name: str, num_classes: int) -> int:
    """An integer (a JSON integer or an integral float) in [0, num_classes), or a refusal."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 <= value < num_classes:
        raise refusal(f"{name} must be a class id, an integer from 0 to {num_classes - 1} (got {shown(value)}).")
    return int(value)


def api_class_ids(value: Any, name: str, num_classes: int) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) > num_classes:
        raise refusal(f"{name} must be a list of at most {num_classes} class ids (got {shown(value)}).")
    return sorted({api_class_id(v, "each major label", num_classes) for v in value})


def resolve_target(target: Any, num_classes: int, notes: list[str]) -> int:
    try:
        value = float(target)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        notes.append("No valid true class was given: using class 0.")
        return 0
    index = int(round(value))
    if not 0 <= index < num_classes:
        clamped = min(max(index, 0), num_classes - 1)
        notes.append(f"True class {index} does not exist with {num_classes} classes: using class {clamped}.")
        return clamped
    return index


def resolve_manual(manual: Any, num_classes: int, notes: list[str]) -> list[int]:
    ids: list[int] = []
    dropped = []
    for value in manual or []:
        try:
            index = int(value)
        except (TypeError, ValueError):
            dropped.append(str(value))
            continue
        if 0 <= index < num_classes:
            ids.append(index)
        else:
            dropped.append(str(value))
    if dropped:
        notes.append(f"Major labels {', '.join(dropped)} do not exist with {num_classes} classes and were ignored.")
    return sorted(set(ids))
