"""The Gradio app: one module per tab (classify, segment, lmd), joined in ``blocks``.

UI code only: models are reached through ``fruitseg.predictors`` / ``fruitseg.pipeline``
(numpy and PIL in, plain values out) and losses through ``fruitseg.losses`` (``lmd_breakdown``: the LMD explorer's numbers).
"""

from fruitseg.ui.blocks import build_demo, launch, launch_options
from fruitseg.ui.state import Models, load_models

__all__ = ["Models", "build_demo", "launch", "launch_options", "load_models"]
