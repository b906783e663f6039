"""The models a benchmark measures: the shipped ones, or a clear error. Never a stand-in."""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


class ModelUnavailable(RuntimeError):
    """A model the benchmark needs could not be loaded; the command line prints this one line
    and exits non-zero."""


def load_model(name: str, env: str, loader: Callable[[], T]) -> T:
    """``loader()``, or :class:`ModelUnavailable` saying which model failed, why, and where
    its weights come from (``env``, else ``checkpoints/<name>``)."""
    try:
        return loader()
    except Exception as error:
        reason = str(error).strip().splitlines()[0][:240] if str(error).strip() else "no message"
        raise ModelUnavailable(
            f"cannot load the {name} ({type(error).__name__}: {reason}); its weights come from {env} "
            f"or checkpoints/{name.replace(' ', '-')}"
        ) from error
