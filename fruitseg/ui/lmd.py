"""LMD explorer tab: how label-masking distillation (FedLMD) reacts to its inputs, live.

One sample, C classes. The student's and the teacher's logits, the per-class counts of
the client's data and the true class go in; CE, the LMD term and the total come out,
with the distributions LMD compares, the gradient on every student logit, and KD / NTD
on the same logits for comparison. Every control change recomputes (no submit button);
the numbers come from ``fruitseg.ui.lmd_breakdown`` (built on ``fruitseg.losses``).

The table and the controls are read and repaired by ``fruitseg.ui.lmd_inputs``, which
also holds the presets that fill the table.
"""


import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import gradio as gr
import numpy as np
import pandas as pd

from fruitseg.ui import charts
from fruitseg.ui import federation
from fruitseg.ui.common import Stopwatch, image_input, read_image, refusal, user_errors
from fruitseg.ui.lmd_breakdown import lmd_breakdown
from fruitseg.ui.lmd_inputs import (
    COLUMNS, COUNT_LIMIT, LOGIT_LIMIT, MAX_CLASSES, MIN_CLASSES, PRESETS, api_class_id, api_class_ids, api_numbers,
    check_beta, check_T, clamp_classes, class_choices, major_ids_from_counts, photo_table, preset_table, repair_table,
    resize_table, resolve_manual, resolve_target,
)  # fmt: skip
from fruitseg.ui.state import Models

DEFAULT_CLASSES = 6
DEFAULT_T, DEFAULT_BETA = 2.0, 1.0
DEFAULT_PRESET, DEFAULT_SEED = "confident teacher", 9  # a minority true class and two major classes
T_RANGE, BETA_RANGE = (0.5, 10.0), (0.0, 5.0)
COMPARISON_COLUMNS = ["loss", "teacher masks", "student masks", "term", "CE + β·term"]

COLOURS = {
    "teacher_raw": "#9ca3af",
    "teacher": "#f97316",
    "student": "#2563eb",
    "total": "#7c3aed",
    "ce": "#64748b",
    "lmd": "#f97316",
}

EXPLAINER = """
**What masking does.** The loss for one sample is **CE + β · LMD**. Cross-entropy (CE) pulls the
student towards the true class. The LMD term is a distillation term: the student should match the
teacher's opinion, softened by the temperature T, about the *other* classes. Before the two
distributions are compared, some classes are **masked** (their probability set to 0 and the rest
renormalised):

* the **true class** is masked in both the teacher and the student, because CE already teaches it
  (this alone is FedNTD's *not-true distillation*);
* the client's **major classes** (the ones its local data has plenty of; FedLMD's rule: count above
  the mean count) are also masked in the **teacher**. The teacher's probability then flows to the
  **minority classes**, so the student is taught what the global model knows about the classes its
  own data lacks, and any probability the student keeps on its major classes is penalised.

The KL term is multiplied by T², as usual for distillation. Negative gradient bars are logits that a
gradient-descent step would *raise*.
"""


# --------------------------------------------------------------------------- the computation


@dataclass
class Exploration:
    names: list[str]
    target: int
    majors: list[int]
    major_source: str  # "counts" or "manual"
    T: float
    beta: float
    result: dict[str, Any]  # lmd_breakdown's answer
    counts: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ms: float = 0.0


def explore(
    num_classes: Any, target: Any, T: Any, beta: Any, major_source: str, manual_majors: Any, table: Any
) -> Exploration:
    """Repair the inputs (every repair noted), then compute every term with ``lmd_breakdown``."""
    with Stopwatch() as watch:
        T, beta = check_T(T), check_beta(beta)
        num_classes = clamp_classes(num_classes)
        names, student, teacher, counts, notes = repair_table(table, num_classes)
        target = resolve_target(target, num_classes, notes)
        source = "manual" if str(major_source).strip().lower().startswith("manual") else "counts"
        majors = resolve_manual(manual_majors, num_classes, notes) if source == "manual" else major_ids_from_counts(counts)
        try:
            result = lmd_breakdown(student, teacher, target, T, beta, majors)
        except ValueError as error:
            raise gr.Error(f"Could not compute the loss: {error}", print_exception=False) from None
    return Exploration(names, target, majors, source, T, beta, result, counts, notes, watch.ms)


def distribution_chart(ex: Exploration) -> str:
    r, n = ex.result, len(ex.names)
    majors = set(ex.majors)
    teacher_notes = [
        "masked: true class" if i == ex.target else "masked: major class" if i in majors else "" for i in range(n)
    ]
    student_notes = ["masked: true class" if i == ex.target else "" for i in range(n)]
    tags = [("true+major" if i in majors else "true") if i == ex.target else "major" if i in majors else "" for i in range(n)]
    values = [*r["teacher_probs_unmasked"], *r["teacher_probs"], *r["student_probs"]]
    return charts.render(
        charts.Chart(
            title=f"What LMD compares (softmax of logits / T, T = {ex.T:g})",
            categories=ex.names,
            series=[
                charts.Series("teacher before masking", r["teacher_probs_unmasked"], COLOURS["teacher_raw"], 0.55),
                charts.Series("teacher, masked (target)", r["teacher_probs"], COLOURS["teacher"], notes=teacher_notes),
                charts.Series("student, true class masked", r["student_probs"], COLOURS["student"], notes=student_notes),
            ],
            y_title="probability",
            tags=tags,
            y_min=0.0,
            y_max=min(1.0, max(values) * 1.08) if values else 1.0,
            elem_class="fs-chart fs-chart-probs",
        )
    )


def gradient_chart(ex: Exploration) -> str:
    r = ex.result
    tags = ["true" if i == ex.target else "major" if i in set(ex.majors) else "" for i in range(len(ex.names))]
    return charts.render(
        charts.Chart(
            title="Gradient of the loss w.r.t. each student logit",
            categories=ex.names,
            series=[
                charts.Series("total", r["grad_total"], COLOURS["total"]),
                charts.Series("CE part", r["grad_ce"], COLOURS["ce"], 0.7),
                charts.Series("β · LMD part", [ex.beta * g for g in r["grad_lmd"]], COLOURS["lmd"], 0.8),
            ],
            y_title="∂ loss / ∂ logit",
            tags=tags,
            value_format="{:+.4f}",
            elem_class="fs-chart fs-chart-grads",
        )
    )


def comparison_table(ex: Exploration) -> pd.DataFrame:
    r = ex.result
    rows = [
        ["KD", "nothing", "nothing", r["kd"], r["kd_total"]],
        ["NTD", "true", "true", r["ntd"], r["ntd_total"]],
        ["LMD", "true + major", "true", r["lmd"], r["total"]],
    ]
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for column in COMPARISON_COLUMNS[3:]:
        frame[column] = frame[column].map(lambda v: float(f"{v:.6g}"))
    return frame


def _names(ex: Exploration, ids: Sequence[int]) -> str:
    return ", ".join(f"**{ex.names[i]}**" for i in ids) if ids else "none"


def explanation(ex: Exploration) -> str:
    r, n = ex.result, len(ex.names)
    majors = [i for i in ex.majors if i != ex.target]
    lines = [f"True class: **{ex.names[ex.target]}**."]
    if ex.major_source == "counts":
        mean = sum(ex.counts) / n if n else 0.0
        lines.append(f"Major classes from the counts (count > mean = {mean:.4g}): {_names(ex, ex.majors)}.")
    else:
        lines.append(f"Major classes (picked by hand): {_names(ex, ex.majors)}.")
    masked = {ex.target, *ex.majors}
    if len(masked) >= n:
        lines.append(
            "Every class is masked in the teacher: softmax ignores the equal -1000 shift, so the teacher is "
            "effectively unmasked (see `fruitseg.losses`); pick fewer major classes for a meaningful comparison."
        )
    else:
        raw = r["teacher_probs_unmasked"]
        minority = [i for i in range(n) if i not in masked]
        share = sorted(minority, key=lambda i: -r["teacher_probs"][i])[:3]
        shares = ", ".join(f"{ex.names[i]} {100 * r['teacher_probs'][i]:.0f}%" for i in share)
        moved = f"{100 * raw[ex.target]:.0f}% on the true class"
        if majors:
            moved = f"{100 * sum(raw[i] for i in majors):.0f}% on the major classes and " + moved
        lines.append(
            f"Masking moved the teacher's {moved} onto the {len(minority)} other "
            f"class{'es' if len(minority) != 1 else ''} (largest: {shares})."
        )
    lines.append(
        f"CE = {r['ce']:.4f}, LMD = {r['lmd']:.4f}, total = CE + {ex.beta:g} × LMD = **{r['total']:.4f}**. "
        f"On the same logits KD = {r['kd']:.4f} and NTD = {r['ntd']:.4f}."
    )
    text = "  \n".join(lines)
    if ex.notes:
        text += "\n\n" + "\n".join(f"**Note:** {note}  " for note in ex.notes)
    return text


def explore_ui(num_classes, target, T, beta, major_source, manual_majors, table):
    """Every control's change: (CE, LMD, total, distribution chart, gradient chart, comparison, explanation)."""
    ex = explore(num_classes, target, T, beta, major_source, manual_majors, table)
    r = ex.result
    return (
        round(r["ce"], 6),
        round(r["lmd"], 6),
        round(r["total"], 6),
        distribution_chart(ex),
        gradient_chart(ex),
        comparison_table(ex),
        explanation(ex),
    )


# --------------------------------------------------------------------------- control updates


def _control_updates(table: pd.DataFrame, target: int, manual: Sequence[int] | None):
    names = table["class"].astype(str).tolist()
    choices = class_choices(names)
    num = len(names)
    kept = [int(i) for i in (manual or []) if isinstance(i, (int, np.integer)) and 0 <= int(i) < num]
    return (
        table,
        gr.update(choices=choices, value=min(max(int(target), 0), num - 1)),
        gr.update(choices=choices, value=kept),
    )


def preset_ui(kind: str, num_classes, seed):
    """A preset button: (table, target update, manual-majors update)."""
    table, target = preset_table(kind, num_classes, _seed(seed))
    return _control_updates(table, target, [])


def photo_ui(models: Models, path: str | None, num_classes, seed):
    """The "from a photo" preset: the classifier's logits on the photo become the teacher's."""
    image = read_image(path)
    logits = models.classifier.logits([image])[0]
    table, target = photo_table(logits, models.classifier.class_names, num_classes, _seed(seed))
    return _control_updates(table, target, [])


def resize_ui(num_classes, table, target, manual):
    """The number-of-classes slider: grow or shrink the table, keep the choices valid."""
    table = resize_table(table, num_classes)
    try:
        target = int(target)
    except (TypeError, ValueError):
        target = 0
    return _control_updates(table, target, manual)


def major_source_ui(source: str, table, manual):
    """Switching to "manual" starts from the classes the counts rule picks."""
    manual_mode = str(source).startswith("manual")
    if manual_mode and not manual:
        _, _, _, counts, _ = repair_table(table, None)
        manual = major_ids_from_counts(counts) if counts else []
    return gr.update(visible=manual_mode, value=list(manual or []))


def _seed(seed: Any) -> int:
    try:
        value = float(seed)
    except (TypeError, ValueError):
        return 0
    return int(value) % (2**32) if math.isfinite(value) else 0


# --------------------------------------------------------------------------- API


def lmd_api(
    student_logits: list[float],
    teacher_logits: list[float],
    target: int,
    T: float = DEFAULT_T,
    beta: float = DEFAULT_BETA,
    major_labels: list[int] | None = None,
    counts: list[float] | None = None,
) -> dict:
    """CE, the LMD term and the total for one sample (plus KD, NTD, distributions, gradients).

    The number of classes C is the length of the logit lists (2 to 1000; logits within
    +-100, 0 < T <= 100, 0 <= beta <= 100). Major labels are the given class ids; when
    ``major_labels`` is null and ``counts`` (C per-class sample counts) is given, they
    follow FedLMD's rule (count above the mean count). Returns the dictionary of
    ``fruitseg.ui.lmd_breakdown.lmd_breakdown`` with "major_labels" (ids) added; every number in it
    is finite (strict JSON).
    """
    T, beta = check_T(T), check_beta(beta)
    student = api_numbers(student_logits, "student_logits", -LOGIT_LIMIT, LOGIT_LIMIT)
    teacher = api_numbers(teacher_logits, "teacher_logits", -LOGIT_LIMIT, LOGIT_LIMIT)
    if len(student) != len(teacher):
        raise refusal(f"student_logits has {len(student)} values but teacher_logits has {len(teacher)}.")
    if len(student) < 2:
        raise refusal("At least 2 classes are needed.")
    num_classes = len(student)
    target = api_class_id(target, "target", num_classes)
    if counts is not None:
        counts = api_numbers(counts, "counts", 0.0, COUNT_LIMIT, length=num_classes)
    if major_labels is not None:
        majors = api_class_ids(major_labels, "major_labels", num_classes)
    else:
        majors = major_ids_from_counts(counts) if counts is not None else []
    result = {**lmd_breakdown(student, teacher, target, T, beta, majors), "major_labels": majors}
    if not all(math.isfinite(v) for v in _numbers_in(result)):
        raise refusal("The loss is not a finite number for these inputs; use a larger T or smaller logits.")
    return result


def _numbers_in(value: Any):
    """Every float in a JSON-like value (dicts, lists)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers_in(item)
    elif isinstance(value, float):
        yield value


# --------------------------------------------------------------------------- layout


def build(models: Models) -> None:
    """The LMD explorer tab's components and events (call inside a ``gr.Tab``)."""
    table0, target0 = preset_table(DEFAULT_PRESET, DEFAULT_CLASSES, seed=DEFAULT_SEED)
    initial = explore_ui(DEFAULT_CLASSES, target0, DEFAULT_T, DEFAULT_BETA, "counts", [], table0)
    choices0 = class_choices(table0["class"].tolist())
    live = dict(
        trigger_mode="always_last", show_progress="hidden", api_visibility="private", concurrency_id="lmd", concurrency_limit=8
    )

    gr.Markdown(
        "Label-masking distillation (FedLMD, Lu et al., ACM MM 2023) for **one sample**. Edit the logits, the counts "
        "or any control: everything recomputes at once.",
        elem_id="lmd-intro",
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            with gr.Row():
                num_classes = gr.Slider(
                    MIN_CLASSES, MAX_CLASSES, value=DEFAULT_CLASSES, step=1, label="Classes C", elem_id="lmd-classes"
                )
                target = gr.Dropdown(choices=choices0, value=target0, label="True class", elem_id="lmd-target")
            with gr.Row():
                T = gr.Slider(*T_RANGE, value=DEFAULT_T, step=0.1, label="Temperature T", elem_id="lmd-T")
                beta = gr.Slider(*BETA_RANGE, value=DEFAULT_BETA, step=0.05, label="β (LMD weight)", elem_id="lmd-beta")
            major_source = gr.Radio(
                [("counts (FedLMD rule: count > mean)", "counts"), ("manual", "manual")],
                value="counts",
                label="Major labels from",
                elem_id="lmd-major-source",
            )
            manual = gr.CheckboxGroup(choices=choices0, value=[], label="Major labels", visible=False, elem_id="lmd-majors")
            table = gr.Dataframe(
                value=table0,
                headers=COLUMNS,
                datatype=["str", "number", "number", "number"],
                column_count=4,
                static_columns=[0],
                interactive=True,
                label="Logits and the client's per-class sample counts (editable)",
                elem_id="lmd-table",
                max_height=420,
            )
            gr.Markdown("**Presets** (fill the table; the seed drives their random draws)", elem_id="lmd-presets-title")
            with gr.Row(equal_height=True):
                seed = gr.Number(
                    value=DEFAULT_SEED, precision=0, show_label=False, container=False, scale=1, min_width=70, elem_id="lmd-seed"
                )
                buttons = {
                    kind: gr.Button(kind.capitalize(), scale=2, min_width=90, elem_id=f"lmd-preset-{kind.replace(' ', '-')}")
                    for kind in PRESETS
                }
            with gr.Accordion("Preset: the classifier's logits on a photo", open=False):
                gr.Markdown(
                    "Teacher = the fruit classifier's logits over its top-C classes on your photo; "
                    "student = half of those logits plus N(0, 1) noise (seeded); true class = the classifier's top class."
                )
                photo = image_input(label="Photo", height=200, elem_id="lmd-photo")
                photo_button = gr.Button("Use the classifier's logits", size="sm", elem_id="lmd-photo-button")
        with gr.Column(scale=7, min_width=380):
            with gr.Row():
                ce = gr.Number(value=initial[0], label="CE", interactive=False, elem_id="lmd-ce")
                lmd = gr.Number(value=initial[1], label="LMD term (× T²)", interactive=False, elem_id="lmd-lmd")
                total = gr.Number(value=initial[2], label="Total = CE + β · LMD", interactive=False, elem_id="lmd-total")
            dist_chart = gr.HTML(value=initial[3], elem_id="lmd-dist-chart")
            grad_chart = gr.HTML(value=initial[4], elem_id="lmd-grad-chart")
            comparison = gr.Dataframe(
                value=initial[5], interactive=False, label="Same logits, three distillation losses", elem_id="lmd-compare"
            )
            details = gr.Markdown(value=initial[6], elem_id="lmd-details")
            gr.Markdown(EXPLAINER, elem_id="lmd-explainer")

    inputs = [num_classes, target, T, beta, major_source, manual, table]
    outputs = [ce, lmd, total, dist_chart, grad_chart, comparison, details]
    recompute = user_errors("computing the loss")(explore_ui)
    for control in (target, T, beta, major_source, manual, table):
        control.change(recompute, inputs=inputs, outputs=outputs, **live)

    controls = [table, target, manual]
    resize = user_errors("resizing the table")(resize_ui)
    num_classes.change(resize, inputs=[num_classes, table, target, manual], outputs=controls, **live)
    switch = user_errors("switching major labels")(major_source_ui)
    major_source.change(switch, inputs=[major_source, table, manual], outputs=[manual], **live)
    for kind, button in buttons.items():
        preset = user_errors("applying the preset")(partial(preset_ui, kind))
        button.click(preset, inputs=[num_classes, seed], outputs=controls, api_visibility="private")
    photo_button.click(
        user_errors("reading the classifier's logits")(partial(photo_ui, models)),
        inputs=[photo, num_classes, seed],
        outputs=controls,
        api_visibility="private",
        concurrency_id="models",
    )

    # API: /lmd(student_logits, teacher_logits, target, T, beta, major_labels, counts) -> dict.
    gr.api(
        user_errors("computing the loss")(lmd_api),
        api_name="lmd",
        api_description=lmd_api.__doc__,
        concurrency_id="lmd",
        concurrency_limit=8,
    )

    federation.build()  # static: FedAvg vs FedNTD vs FedLMD in a Flower federation (checkpoints/federated)
