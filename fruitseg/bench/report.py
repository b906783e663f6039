"""The markdown report of a benchmark run (the README's Performance section), and strict JSON."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

PARTS = ("classifier", "photo", "segmenter", "app", "load")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _reference(m: dict[str, Any]) -> str:
    """The machine's speed on the fixed reference workload, to compare runs' absolute times."""
    start, end = m.get("reference_gflops_at_start"), m.get("reference_gflops_at_end")
    if start is None:
        return ""
    return f"; reference (1-thread float32 matmul) {start:.1f} GFLOP/s at start" + (f", {end:.1f} at end" if end is not None else "")


def markdown_machine(m: dict[str, Any]) -> str:
    device = m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")
    load = m.get("load_average_at_start")
    return (
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m.get('memory_gib') or '?'} GiB RAM"
        + (f", {m['cpu_capability']}" if m.get("cpu_capability") else "")
        + (" with native bfloat16" if m.get("cpu_bf16") else " without native bfloat16" if "cpu_bf16" in m else "")
        + "; "
        f"torch {m['torch']}, {_threads(m['torch_threads'])}, device {device}"
        + (f"; load average at start {load[0]:.2f}" if load else "")
        + _reference(m)
        + "."
    )


def markdown_classifier(r: dict[str, Any]) -> str:
    b1, b64, acc = r["batch1"], r["batch64"], r["accuracy"]
    labels = {"shipped": "**Shipped**", "tuned_float32": "Tuned float32 (baseline)", "plain": "Plain (baseline)"}

    def versus(key: str, base: str) -> str:
        return f"{_x(b1['ratios'][key][f'vs_{base}'])} / {_x(b64['ratios'][key][f'vs_{base}'])}"

    rows = [
        [f"{labels.get(key, f'`{key}`')}: {r['paths'][key]}", _fmt(b1[key]["p50_ms"], 2), _fmt(b1[key]["p95_ms"], 2),
         _fmt(b1[key]["per_s"], 0), _fmt(b64[key]["per_s"], 0), versus(key, "plain"), versus(key, "tuned_float32")]
        for key in r["paths"]
    ]
    out = [
        "### Classifier",
        "",
        _table(["Path", "batch 1 p50 (ms)", "batch 1 p95 (ms)", "batch 1 images/s", "batch 64 images/s",
                "speed vs plain (batch 1 / 64)", "speed vs tuned float32 (batch 1 / 64)"], rows),
        "",
        f"Shipped: `Classifier.inference_path` = {r['inference_path']}.",
        f"Timed: {r['timed']}; {_threads(r['threads'])} on {r['device']}; images/s from the median call; "
        "calls of all paths interleaved in alternating rounds; speed ratios from the medians.",
    ]
    if "shipped_top1" in acc:
        out.append(
            f"Top-1 on {acc['images']} {acc['source']}: shipped {acc['shipped_top1']:.2%}, plain {acc['plain_top1']:.2%}; "
            f"argmax agreement {acc['agreement']:.2%} (max |logit difference| {acc['max_abs_logit_diff']:.3g})."
        )
    else:
        out.append(
            f"Argmax agreement on {acc['images']} {acc['source']}: {acc['agreement']:.2%} "
            f"(max |logit difference| {acc['max_abs_logit_diff']:.3g})."
        )
    return "\n".join(out)


def markdown_photo(r: dict[str, Any]) -> str:
    b1, p = r["batch1"], r["one_fruit_photo"]
    rows = [
        [f"Photo classifier, batch 1: shipped (`PhotoClassifier.logits`: {r['inference_path']})",
         _fmt(b1["shipped"]["p50_ms"], 2), _fmt(b1["shipped"]["p95_ms"], 2), f"**{_x(b1['speedup'])}** faster"],
        ["Photo classifier, batch 1: the same unfolded (channels-last, inference_mode, float32)",
         _fmt(b1["unfolded"]["p50_ms"], 2), _fmt(b1["unfolded"]["p95_ms"], 2), f"{_x(b1['speedup_vs_unfolded'])} the shipped time"],
        ["Photo classifier, batch 1: plain (eager, NCHW, grad mode)", _fmt(b1["plain"]["p50_ms"], 2), _fmt(b1["plain"]["p95_ms"], 2), "1x"],
        [f"One-fruit photo ({r['photo']}): segment-then-classify (`FruitPipeline.analyze`)",
         _fmt(p["pipeline"]["p50_ms"], 1), _fmt(p["pipeline"]["p95_ms"], 1), f"{_x(p['pipeline_over_whole_photo'])} the time"],
        ["Same photo: the photo classifier on the whole photo only", _fmt(p["whole_photo"]["p50_ms"], 1), _fmt(p["whole_photo"]["p95_ms"], 1), "1x"],
    ]
    return (
        "### Photo classifier and segment-then-classify on a photo\n\n"
        + _table(["Path", "p50 (ms)", "p95 (ms)", "vs baseline"], rows)
        + f"\n\nTimed in interleaved rounds on {r['device']} with {_threads(r['threads'])}; input {r['image_size']} px; "
        f"shipped and plain agree on the crop's class: {r['argmax_agreement']} (max |logit difference| "
        f"{r['max_abs_logit_diff']:.2g}). Weights: {r['weights']}."
    )


def markdown_segmenter(r: dict[str, Any]) -> str:
    out = ["### Segmenter", ""]
    rows = []
    for entry in r["sizes"]:
        for name, m in entry["methods"].items():
            rows.append([
                f"{entry['size']} ({entry['scenes']})" if name == "segmenter" else "",
                m["label"],
                _fmt(m["iou"], 3),
                _fmt(m["p50_ms"], 1),
                _fmt(m["p95_ms"], 1),
                _fmt(m["mean_ms"], 1),
                "1x" if name == "segmenter" else _x(m["time_vs_segmenter"]),
            ])
    out.append(_table(["Size (scenes)", "Method", "fruit IoU", "p50 (ms)", "p95 (ms)", "mean (ms)", "time vs segmenter"], rows))
    out += [
        "",
        f"Scenes: {r['scenes']}. IoU: {r['iou']}. Segmenter weights: {r['weights']}; working size {r['working_size']} px "
        f"(longer side); {_threads(r['threads'])} on {r['device']}. Times include the conversion to a PIL image and the "
        "resize back to the scene size; the Otsu variants blur 5x5 first and take as foreground the side that touches "
        "the image border less.",
    ]
    return "\n".join(out)


def markdown_app(r: dict[str, Any]) -> str:
    rows = []
    for name, e in r["endpoints"].items():
        rows.append([
            f"`{name}`",
            _fmt(e["server"]["p50_ms"], 1), _fmt(e["server"]["p95_ms"], 1),
            _fmt(e["direct"]["p50_ms"], 1), _fmt(e["direct"]["p95_ms"], 1),
            f"{e['overhead_ratio']:.2f}x", _fmt(e["overhead_ms"], 1),
        ])
    cold = r.get("cold_start", {})
    out = [
        "### App (Gradio server)",
        "",
        _table(["Endpoint", "client p50 (ms)", "client p95 (ms)", "direct p50 (ms)", "direct p95 (ms)", "client / direct", "overhead p50 (ms)"], rows),
        "",
        f"{r['calls']} calls per endpoint through `gradio_client` against an in-process `launch()`, interleaved with the "
        "same function called directly in Python.",
    ]
    if cold:
        if cold.get("error"):
            out.append(f"Cold start of `python app.py`: failed ({cold['error']}).")
        else:
            out.append(
                f"Cold start of `python app.py` to the first /classify answer: {cold['seconds']:.1f} s "
                f"(server up after {cold['server_up_s']:.1f} s); peak RSS of that server {_fmt(cold['server_peak_rss_mib'])} MiB "
                f"(first answer {cold['first_request_s']:.2f} s)."
            )
    out.append(f"Peak RSS of the bench process: {_fmt(r.get('bench_peak_rss_mib'))} MiB.")
    return "\n".join(out)


def markdown_load(r: dict[str, Any]) -> str:
    rows = []
    for name, e in r["endpoints"].items():
        rows.append([
            f"`{name}`", e["requests"], e["errors"], _fmt(e["p50_ms"], 1), _fmt(e["p95_ms"], 1), _fmt(e["throughput_per_s"], 2),
            _fmt(e["rss_early_mib"]), _fmt(e["rss_late_mib"]), f"{e['rss_growth_pct']:+.1f}%" if e["rss_growth_pct"] is not None else "-",
        ])
    out = [
        "### Load",
        "",
        _table(["Endpoint", "requests", "errors", "p50 (ms)", "p95 (ms)", "requests/s", "server RSS early (MiB)", "server RSS late (MiB)", "RSS growth"], rows),
        "",
        f"{r['clients']} concurrent clients (threads, one `gradio_client.Client` each) x {r['requests_per_client']} requests, "
        f"against `python app.py` in a subprocess; RSS sampled at requests ~{r['rss_marks'][0]} and ~{r['rss_marks'][1]} "
        f"of each run. Pass: 0 errors and RSS growth < {r['max_growth_pct']:.0f}%: **{'PASS' if r['passed'] else 'FAIL'}**.",
    ]
    return "\n".join(out)


MARKDOWN = {"classifier": markdown_classifier, "photo": markdown_photo, "segmenter": markdown_segmenter, "app": markdown_app, "load": markdown_load}


def clean(value: Any) -> Any:
    """``value`` with NaN / infinity replaced by None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def to_markdown(results: dict[str, Any]) -> str:
    sections = ["## Performance", ""]
    if "machine" in results:
        sections += [markdown_machine(results["machine"]), ""]
    for part in PARTS:
        if part in results:
            if "error" in results[part]:
                sections += [f"### {part.title()}", "", f"Not measured: {results[part]['error']}", ""]
            else:
                sections += [MARKDOWN[part](results[part]), ""]
    return "\n".join(sections).rstrip() + "\n"
