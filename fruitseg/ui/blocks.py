"""The whole app: a header, then the Classify, Segment and LMD explorer tabs."""

from __future__ import annotations

from typing import Any

import gradio as gr

from fruitseg.ui import classify, lmd, segment
from fruitseg.ui.models import Models, load_models

TITLE = "fruitseg"
DESCRIPTION = "Name and outline every fruit in a photo, and see how label-masking distillation (FedLMD) treats a prediction."
MAX_FILE_SIZE = "20mb"
QUEUE_MAX_SIZE = 32

CSS = """
#fs-header h1 { margin-bottom: 0.1em; }
#fs-header p { margin: 0.15em 0; }
#fs-models { font-size: 0.9em; opacity: 0.85; }
.fs-chart svg { display: block; }
#lmd-total input { font-weight: 700; }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="orange", secondary_hue="lime", neutral_hue="slate")


def concurrency(models: Models) -> int:
    """Model events at once: a GPU overlaps a few requests, a CPU is best left to one or two."""
    return 4 if models.device.startswith("cuda") else 2


def build_demo(models: Models | None = None) -> gr.Blocks:
    """The Blocks app with its queue configured. Loads the models unless given."""
    models = models or load_models()
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        with gr.Column(elem_id="fs-header"):
            gr.Markdown(f"# {TITLE}\n{DESCRIPTION}")
            gr.Markdown(models.header_markdown(), elem_id="fs-models")
        with gr.Tabs(elem_id="fs-tabs"):
            with gr.Tab("Classify", id="classify", elem_id="tab-classify"):
                classify.build(models)
            with gr.Tab("Segment", id="segment", elem_id="tab-segment"):
                segment.build(models)
            with gr.Tab("LMD explorer", id="lmd", elem_id="tab-lmd"):
                lmd.build(models)
    demo.queue(default_concurrency_limit=concurrency(models), max_size=QUEUE_MAX_SIZE)
    return demo


def launch_options(**overrides: Any) -> dict[str, Any]:
    """``launch()`` keyword arguments: look and upload limit (server name/port come from
    ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` when not given, default 127.0.0.1:7860)."""
    options: dict[str, Any] = {"theme": theme(), "css": CSS, "max_file_size": MAX_FILE_SIZE, "show_error": False}
    options.update(overrides)
    return options


def launch(demo: gr.Blocks, **overrides: Any):
    return demo.launch(**launch_options(**overrides))
