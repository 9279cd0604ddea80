"""Progress bars that stay out of logs: shown on a terminal, hidden in pipes, files and under ``TQDM_DISABLE``."""

from __future__ import annotations

import os
from typing import Any

#: Values of ``TQDM_DISABLE`` that leave progress bars on (anything else hides them).
_FALSE = ("", "0", "false", "no", "off")


def disabled_by_environment() -> bool:
    """Whether ``TQDM_DISABLE`` is set to a true value (``1``, ``true``, ...) in the environment."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in _FALSE


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A ``tqdm.auto`` bar, or a disabled one.

    Disabled when ``enabled`` is false or ``TQDM_DISABLE`` is set; otherwise tqdm decides from
    its output stream (``disable=None``): a bar on a terminal, nothing when stderr is a pipe or a
    file (so logs hold no carriage-return noise), a widget in a notebook.
    """
    from tqdm.auto import tqdm

    disable = True if not enabled or disabled_by_environment() else None
    return tqdm(iterable, disable=disable, **kwargs)
