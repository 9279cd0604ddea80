"""The comparison table printed at the end of ``losia-cl run``."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}" if isinstance(value, float) and value < 0 else (
        f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    )


def _last(values: list[Any] | None) -> Any:
    return values[-1] if values else None


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: AP, BWT, FWT, forgetting, LA, graded BWT and forgetting (answer log-likelihood), the
    general probe's KL drift and kept share after the last task, trainable parameters, time, memory."""
    header = ["method", "AP", "BWT", "FWT", "forgetting", "LA", "BWT (loglik)", "forgetting (loglik)",
              "probe KL", "probe kept", "trainable params", "train s", "eval s", "peak MiB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        m = r["metrics"]
        graded = r.get("loglik_metrics") or {}
        retention = r.get("retention") or {}
        row = [
            name, _fmt(m["average_performance"]), _fmt(m["bwt"]), _fmt(m["fwt"]), _fmt(m["forgetting"]),
            _fmt(m["learning_accuracy"]), _fmt(graded.get("bwt")), _fmt(graded.get("forgetting")),
            _fmt(_last(retention.get("kl")), 4), _fmt(_last(retention.get("kept"))),
            f"{r['trainable_parameters']:,}", f"{r['train_seconds']:.0f}",
            f"{r['eval_seconds']:.0f}", f"{r['peak_memory_bytes'] / 2**20:.0f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def time_table(results: dict[str, dict[str, Any]], shared: dict[str, float] | None = None) -> str:
    """A Markdown table of where each method's time went, in seconds (``results.json["timings"]``), with the base
    model's share done once per run (``run.json["timings"]``) as the first row; empty when nothing was timed."""
    from losia_cl.timing import RUN_TIME_PARTS, TIME_PARTS

    parts = list(TIME_PARTS)
    timed = {name: r["timings"] for name, r in results.items() if r.get("timings")}
    if not timed:
        return ""
    lines = ["| seconds | " + " | ".join(parts) + " | total |", "|" + "---|" * (len(parts) + 2)]
    if shared:
        column = {"load": "load", "base_evaluation": "evaluation", "probe_reference": "probe",
                  "stability_reference": "metrics"}
        values = {column[p]: shared[p] for p in RUN_TIME_PARTS if p in shared}
        cells = [f"{values[p]:.0f}" if p in values else "" for p in parts]
        lines.append("| base model (once) | " + " | ".join(cells) + f" | {sum(values.values()):.0f} |")
    for name, timings in timed.items():
        values = [float(timings.get(p, 0.0)) for p in parts]
        lines.append(f"| {name} | " + " | ".join(f"{v:.0f}" for v in values) + f" | {sum(values):.0f} |")
    return "\n".join(lines)
