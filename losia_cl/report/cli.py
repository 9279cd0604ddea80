"""The ``report`` and ``compare`` sub-commands (registered on the main CLI's subparsers by :func:`add_cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_cli", "report_command", "compare_command"]


def report_command(args: argparse.Namespace) -> int:
    """``losia-cl report RUN_DIR... [--out FILE.html]``; writes the HTML path to stdout, returns 0.

    Bad input raises :class:`~losia_cl.errors.DataError` / :class:`~losia_cl.errors.ConfigError`
    (both :class:`~losia_cl.errors.LosiaError`) for the main CLI to report.
    """
    from .build import build_report

    files = build_report([Path(d) for d in args.run_dirs], args.out)
    sys.stdout.write(f"{files.html}\n")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """``losia-cl compare RUN_DIR RUN_DIR... [--out FILE.html]``; writes the HTML path to stdout, returns 0."""
    from .compare import compare_runs

    files = compare_runs([Path(d) for d in args.run_dirs], args.out)
    sys.stdout.write(f"{files.html}\n")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``report`` and ``compare`` on ``subparsers`` (from ``ArgumentParser.add_subparsers()``).

    Each sub-parser sets ``func`` to a callable taking the parsed namespace and
    returning the exit code.
    """
    report = subparsers.add_parser(
        "report",
        help="write the forgetting-analysis report (HTML + Markdown + PNG/SVG figures) of a finished run",
        description="Write a self-contained HTML report of a finished run directory (several directories: seeds "
        "of the same setup, aggregated as mean ± 95% CI), a Markdown summary beside it and every figure "
        "as PNG and SVG in the same folder. Streams of more than 50 tasks get summary views. The files are "
        "written atomically; a damaged run folder or a full disk ends with exit code 2, one line naming the "
        "file, and nothing written.",
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output folder(s) of `losia-cl run`")
    report.add_argument("--out", type=Path, default=None, metavar="FILE.html",
                        help="HTML file to write (default: RUN_DIR/report/report.html); figures and "
                        "the .md summary go into the same folder")
    report.set_defaults(func=report_command)

    compare = subparsers.add_parser(
        "compare",
        help="put several runs side by side in one HTML report",
        description="Compare finished runs side by side: one column group per run in the tables, one bar or "
        "panel per run in the figures. Written like `losia-cl report` (atomically; exit code 2 and one line "
        "on a damaged run folder).",
    )
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more output folders of `losia-cl run`")
    compare.add_argument("--out", type=Path, default=None, metavar="FILE.html",
                         help="HTML file to write (default: FIRST_RUN_DIR/report/compare.html)")
    compare.set_defaults(func=compare_command)
