"""The ``--help`` layout of every losia-cl command (each option's default is shown after its help) and its usage
errors (one line on stderr, exit code 2)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

#: The exit code of every user error.
EXIT_USAGE = 2


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, as ``ArgumentDefaultsHelpFormatter`` does.

    Left out where it would say nothing: the help already states its default, the default is
    ``None``, ``False`` (an off switch) or empty, or it is suppressed.  Descriptions keep their
    paragraphs (blank lines).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or "%(default)" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or (isinstance(default, (str, tuple, list, dict)) and not default)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = [super(DefaultsHelpFormatter, self)._fill_text(p, width, indent) for p in text.split("\n\n")]
        return "\n\n".join(paragraphs)


class CommandParser(argparse.ArgumentParser):
    """A losia-cl command's parser: defaults in ``--help``; a usage error is one line on stderr, exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """A usage error: one line on stderr, exit code 2, like every user error."""
        self.exit(EXIT_USAGE, f"losia-cl: error: {self.prog}: {message} (see {self.prog} --help)\n")
