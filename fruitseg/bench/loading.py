"""The models a benchmark measures: the shipped ones, or a clear error. Never a stand-in.

Each model loaded here leaves its :func:`~fruitseg.provenance.weights_identity` in
:data:`LOADED_WEIGHTS` (by name), for the provenance of the JSON the run writes.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from fruitseg.provenance import weights_identity

T = TypeVar("T")

LOADED_WEIGHTS: dict[str, dict[str, str]] = {}  # model name -> weights_identity, as loaded (cleared per run)


class ModelUnavailable(RuntimeError):
    """A model the benchmark needs could not be loaded; the command line prints this one line
    and exits non-zero."""


def load_model(name: str, env: str, loader: Callable[[], T]) -> T:
    """``loader()``, or :class:`ModelUnavailable` saying which model failed, why, and where
    its weights come from (``env``, else ``checkpoints/<name>``). Records the weights it read
    in :data:`LOADED_WEIGHTS`."""
    try:
        model = loader()
    except Exception as error:
        reason = str(error).strip().splitlines()[0][:240] if str(error).strip() else "no message"
        raise ModelUnavailable(
            f"cannot load the {name} ({type(error).__name__}: {reason}); its weights come from {env} "
            f"or checkpoints/{name.replace(' ', '-')}"
        ) from error
    LOADED_WEIGHTS[name] = weights_identity(getattr(model, "source", None))  # hashed now, as read
    return model
