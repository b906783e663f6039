"""fruitseg's web app (also the Hugging Face Space's app_file): ``python app.py``.

Serves on 127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise.
Models load once, here, on the GPU when there is one (FRUITSEG_DEVICE overrides).
"""

from fruitseg.ui import build_demo, launch

demo = build_demo()

if __name__ == "__main__":
    launch(demo)
