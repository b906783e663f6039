"""The whole app: a header, then the Classify, Segment and LMD explorer tabs, and the
launch settings of a public app (limits, no monitoring page, :class:`RequestGuard`)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import gradio as gr
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from fruitseg.images import MAX_FILE_BYTES
from fruitseg.ui import classify, lmd, segment
from fruitseg.ui.common import MAX_DATA_URL_CHARS, guard_inputs
from fruitseg.ui.state import Models, load_models

log = logging.getLogger("fruitseg")

TITLE = "fruitseg"
DESCRIPTION = "Name and outline every fruit in a photo, and see how label-masking distillation (FedLMD) treats a prediction."
MAX_FILE_SIZE = MAX_FILE_BYTES  # uploads (Gradio's own limit, 20 MiB)
QUEUE_MAX_SIZE = 32
SESSION_CAPACITY = 1000  # sessions whose state Gradio keeps (each API call is a session); the oldest go first
MAX_REQUEST_BYTES = MAX_DATA_URL_CHARS + 64 * 1024  # any other request body: a 20 MB image as a data: URL fits
REQUEST_LIMITS = {"lmd": 256 * 1024}  # named endpoints with a smaller body limit (1,000 classes need ~60 KB)

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
                segment_cache = segment.build(models)
            with gr.Tab("LMD explorer", id="lmd", elem_id="tab-lmd"):
                lmd.build(models)
    # api_open=False: events that queue cannot be run directly (/gradio_api/run/...), past the queue's limits.
    demo.queue(default_concurrency_limit=concurrency(models), max_size=QUEUE_MAX_SIZE, api_open=False)
    demo.segment_cache = segment_cache  # the Segment tab's bounded cache (for tests and benchmarks)
    return guard_inputs(demo)


_NAMED_ROUTE = re.compile(r"/gradio_api/(?:call/v2|call|run|api)/([^/]+)")
PAGE_ROUTE = "/run/predict"  # how the page runs its unqueued events (loading an example), by event index


class RequestGuard:
    """ASGI middleware of the public app (installed by :func:`launch_options`).

    * Only the public endpoints (``/classify``, ``/segment``, ``/lmd``: the events whose
      ``api_visibility`` is "public") can be called by name (``/gradio_api/call/<name>``,
      ``call/v2``, ``run``, ``api``); any other name, internal handler or not, is a 404.
      The page's own events go, by event index, through ``/gradio_api/queue/join`` and
      (unqueued ones) ``/gradio_api/run/predict``, which runs no queued event
      (``api_open=False``).
    * A request body over :data:`MAX_REQUEST_BYTES` (:data:`REQUEST_LIMITS` for the named
      endpoints listed there) is refused with 413 before Gradio reads it; uploads
      (``/gradio_api/upload``) keep Gradio's own ``max_file_size``.
    * Every response says ``X-Content-Type-Options: nosniff``, so an uploaded ``.jpg`` full
      of HTML is never rendered as a page.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._allowed: tuple[set[str], set[int]] | None = None

    def allowed(self, server: Any) -> tuple[set[str], set[int]]:
        """(the public endpoints' names, the indices of the unqueued events) of the served app."""
        if self._allowed is None:
            fns = list(server.get_blocks().fns.values())
            public = {fn.api_name for fn in fns if fn.api_visibility == "public" and fn.api_name}
            self._allowed = public, {fn._id for fn in fns if not fn.queue}
        return self._allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        named = _NAMED_ROUTE.search(path)
        name = named.group(1) if named else None
        public, unqueued = self.allowed(scope["app"])
        page_route = path.endswith(PAGE_ROUTE)
        if name is not None and name not in public and not page_route:
            await _NOT_FOUND(scope, receive, send)
            return
        if scope["method"] == "POST" and not path.endswith("/upload"):
            body = await self._read_body(scope, receive, send, REQUEST_LIMITS.get(name or "", MAX_REQUEST_BYTES))
            if body is None:
                return
            if page_route and _fn_index(body) not in unqueued:
                await _NOT_FOUND(scope, receive, send)
                return
            receive = _replay(body, receive)

        async def send_nosniff(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-content-type-options", b"nosniff"))
            await send(message)

        await self.app(scope, receive, send_nosniff)

    @staticmethod
    async def _read_body(scope: dict, receive: Any, send: Any, limit: int) -> bytes | None:
        """The request body if it has at most ``limit`` bytes, else None once a 413 was sent."""
        declared = dict(scope["headers"]).get(b"content-length")
        size, chunks, more = 0, [], True
        if declared is None or not declared.isdigit() or int(declared) <= limit:
            while more and size <= limit:  # read it (also when chunked), at most limit + 1 chunk
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return None
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
        else:
            size = int(declared)
        if size > limit:
            text = f"The request is too large ({size:,} bytes or more); the limit is {limit:,} bytes."
            log.warning("refused: %s %s", scope["path"], text)
            await PlainTextResponse(text, status_code=413)(scope, receive, send)
            return None
        return b"".join(chunks)


_NOT_FOUND = PlainTextResponse("Not Found", status_code=404)


def _fn_index(body: bytes) -> Any:
    try:
        return json.loads(body).get("fn_index")
    except (ValueError, AttributeError):
        return None


def _replay(body: bytes | None, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` (already read), then whatever the client sends next."""

    async def replay() -> dict:
        nonlocal body
        if body is None:
            return await receive()  # e.g. a disconnect, as the server would report it
        message, body = {"type": "http.request", "body": body, "more_body": False}, None
        return message

    return replay


def launch_options(**overrides: Any) -> dict[str, Any]:
    """``launch()`` keyword arguments: look, limits and :class:`RequestGuard` (server name/port
    come from ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` when not given, default
    127.0.0.1:7860). The monitoring page (``/monitoring``) is off."""
    options: dict[str, Any] = {
        "theme": theme(),
        "css": CSS,
        "max_file_size": MAX_FILE_SIZE,
        "show_error": False,
        "enable_monitoring": False,
        "state_session_capacity": SESSION_CAPACITY,
        "app_kwargs": {"middleware": [Middleware(RequestGuard)]},
    }
    options.update(overrides)
    return options


def launch(demo: gr.Blocks, **overrides: Any):
    return demo.launch(**launch_options(**overrides))
