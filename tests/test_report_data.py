"""Realistic run directories for the report tests, built with the real metrics trackers.

``write_run(root, ...)`` writes what ``losia-cl run`` writes (run.json and,
per method, results.json, scores.csv and predictions) for a small stream:
score matrices with forgetting that grows from LoSiA to LoRA to full
fine-tuning, ``cl_metrics`` of them, a :class:`SubnetOverlapTracker` summary
fed with random LoSiA blocks (LoSiA-family methods only) and a
:class:`StabilityTracker` summary of random weights moved by method-shaped
updates (a sub-block for LoSiA, low rank for LoRA, dense for full).  The
other test_report_* modules import it; the tests here check the builder itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losia_cl.metrics import StabilityConfig, StabilityTracker, SubnetOverlapTracker, cl_metrics

TASKS = ("category", "position", "successor")
METHODS = ("losia", "lora", "full")
LOSIA_FAMILY = ("losia", "losia-pro")
# how much each method forgets per later task, and its learning accuracy
_PROFILE = {
    "losia": (0.06, 0.84),
    "losia-pro": (0.06, 0.84),
    "lora": (0.14, 0.80),
    "dora": (0.12, 0.81),
    "pissa": (0.13, 0.82),
    "full": (0.25, 0.90),
}
_TRAINABLE = {"losia": 1_769_472, "losia-pro": 1_769_472, "lora": 1_474_560, "dora": 1_548_288,
              "pissa": 1_474_560, "full": 134_515_008}
TOTAL_PARAMETERS = 134_515_008
_LAYERS = 2
_SHAPES = {"self_attn.q_proj": (32, 24), "mlp.up_proj": (48, 32)}


def score_matrix(rng: np.random.Generator, method: str, num_tasks: int) -> list[list[float]]:
    """``(T+1) × T`` scores in [0, 1]: low base row, high diagonal, decay below it, a little transfer above."""
    forget, learn = _PROFILE.get(method, (0.1, 0.8))
    base = rng.uniform(0.05, 0.25, num_tasks)
    s = np.zeros((num_tasks + 1, num_tasks))
    s[0] = base
    for i in range(1, num_tasks + 1):
        for j in range(num_tasks):
            if j + 1 == i:
                s[i, j] = learn + rng.uniform(-0.08, 0.08)
            elif j + 1 < i:
                s[i, j] = s[j + 1, j] - forget * (i - j - 1) * rng.uniform(0.6, 1.4)
            else:
                s[i, j] = base[j] + rng.uniform(0.0, 0.1)
    return np.round(np.clip(s, 0.0, 1.0), 4).tolist()


def overlap_summary(rng: np.random.Generator, tasks: Sequence[str]) -> dict[str, Any]:
    """A SubnetOverlapTracker fed 3 re-localizations per task and matrix, with rows reused across tasks."""
    tracker = SubnetOverlapTracker()
    favourite, layers = {}, {}
    for layer in range(_LAYERS):
        for kind, (d_out, d_in) in _SHAPES.items():
            favourite[f"model.layers.{layer}.{kind}"] = rng.choice(d_out, d_out // 2, replace=False)
            layers[f"model.layers.{layer}.{kind}"] = layer
    for task in tasks:
        for _ in range(3):
            blocks, shapes = {}, {}
            for name, fav in favourite.items():
                d_out, d_in = _SHAPES[name.split(".", 3)[3]]
                rows = rng.choice(fav, d_out // 4, replace=False)
                cols = rng.choice(d_in, d_in // 4, replace=False)
                blocks[name], shapes[name] = (rows, cols), (d_out, d_in)
            tracker.record(task, blocks, shapes=shapes, layers=layers)
    return tracker.summary()


def stability_summary(rng: np.random.Generator, method: str, tasks: Sequence[str]) -> dict[str, Any]:
    """A StabilityTracker over random weights moved by a method-shaped update after every task."""
    import torch

    generator = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    base, layers = {}, {}
    for layer in range(_LAYERS):
        for kind, (d_out, d_in) in _SHAPES.items():
            base[f"model.layers.{layer}.{kind}"] = torch.randn(d_out, d_in, generator=generator) / d_in**0.5
            layers[f"model.layers.{layer}.{kind}"] = layer
    tracker = StabilityTracker(StabilityConfig(k=4), base=base, layers=layers)
    weights = {n: w.clone() for n, w in base.items()}
    for task in tasks:
        for name, w in weights.items():
            d_out, d_in = w.shape
            if method in LOSIA_FAMILY:
                rows = torch.randperm(d_out, generator=generator)[: d_out // 4]
                cols = torch.randperm(d_in, generator=generator)[: d_in // 4]
                w[rows[:, None], cols] += 0.3 * torch.randn(len(rows), len(cols), generator=generator)
            elif method == "full":
                w += 0.05 * torch.randn(d_out, d_in, generator=generator)
            else:
                w += 0.2 * torch.randn(d_out, 2, generator=generator) @ torch.randn(2, d_in, generator=generator)
        tracker.measure(task, weights, base=base)
    return tracker.summary(per_matrix=False)


def results_dict(method: str, tasks: Sequence[str], seed: int, rng: np.random.Generator) -> dict[str, Any]:
    scores = score_matrix(rng, method, len(tasks))
    steps = {t: 8 for t in tasks}
    return {
        "format": "losia_cl.results/1",
        "method": method,
        "method_options": {"rank_factor": 0.125} if method in LOSIA_FAMILY else {},
        "tasks": list(tasks),
        "task_metrics": {t: "accuracy" for t in tasks},
        "scores": scores,
        "metrics": cl_metrics(scores).to_dict(),
        "subnet_overlap": overlap_summary(rng, tasks) if method in LOSIA_FAMILY else None,
        "stability": stability_summary(rng, method, tasks),
        "trainable_parameters": _TRAINABLE.get(method, 1_000_000),
        "total_parameters": TOTAL_PARAMETERS,
        "train_seconds": float(np.round(rng.uniform(100, 400) * (2.5 if method == "full" else 1.0), 2)),
        "eval_seconds": float(np.round(rng.uniform(20, 40), 2)),
        "peak_memory_bytes": int((6.5 if method == "full" else 2.2) * 2**30 + rng.integers(0, 2**26)),
        "seed": seed,
        "steps": steps,
        "losses": {t: np.round(np.linspace(2.0, 0.5, n) + rng.uniform(0, 0.1, n), 4).tolist()
                   for t, n in steps.items()},
    }


def write_run(
    root: Path,
    *,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    tasks: Sequence[str] = TASKS,
    unfinished: Sequence[str] = (),
    stream: str = "demo",
    model: str = "smollm2-135m-instruct",
) -> Path:
    """Write a run directory under ``root`` (created); ``unfinished`` methods get a folder but no results.json."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    run = {
        "format": "losia_cl.run/1",
        "command": ["losia-cl", "run", "--stream", stream, "--seed", str(seed), "--out", str(root)],
        "config": {"stream": stream, "seed": seed, "methods": list(methods), "lr": 2e-4},
        "seed": seed,
        "stream": stream,
        "tasks": list(tasks),
        "task_metrics": {t: "accuracy" for t in tasks},
        "model": model,
        "methods": list(methods),
        "versions": {"losia_cl": "0.1.0", "torch": "2.13.0", "transformers": "4.57.0", "python": "3.11.9"},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "started_at": "2025-06-01T10:00:00+00:00",
        "finished_at": None if unfinished else "2025-06-01T11:30:00+00:00",
    }
    (root / "run.json").write_text(json.dumps(run, indent=2))
    for method in methods:
        folder = root / method
        folder.mkdir(exist_ok=True)
        results = results_dict(method, tasks, seed, rng)
        if method in unfinished:
            (folder / "checkpoint.pt").write_bytes(b"")
            continue
        (folder / "results.json").write_text(json.dumps(results, indent=2))
        lines = ["after," + ",".join(tasks)]
        for i, row in enumerate(results["scores"]):
            lines.append(("base" if i == 0 else tasks[i - 1]) + "," + ",".join(f"{v:.4f}" for v in row))
        (folder / "scores.csv").write_text("\n".join(lines) + "\n")
        pred = folder / "predictions"
        pred.mkdir(exist_ok=True)
        for i, task in enumerate(tasks, start=1):
            record = {"index": 0, "prompt": "Items: ...", "prediction": "TOOL", "reference": "TOOL", "score": 1.0}
            (pred / f"stage{i}-{task}.jsonl").write_text(json.dumps(record) + "\n")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- the builder itself


def test_written_run_loads_and_metrics_are_consistent(tmp_path: Path) -> None:
    from losia_cl.report import load_run

    run = load_run(write_run(tmp_path / "run"))
    assert list(run.results) == list(METHODS) and run.missing == ()
    losia, full = run.results["losia"], run.results["full"]
    assert losia.subnet_overlap is not None and full.subnet_overlap is None
    assert full.metrics["forgetting"] > losia.metrics["forgetting"]
    assert len(losia.stability["stages"]) == len(TASKS)
    # LoSiA's update is confined to sub-blocks: the overlap beats chance by construction (reused rows)
    assert losia.subnet_overlap["coverage_jaccard_ratio"][0][1] > 1.0


def test_unfinished_method_has_no_results(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", unfinished=("lora",))
    assert not (root / "lora" / "results.json").exists() and (root / "losia" / "results.json").exists()


# ---- reading the HTML back (stdlib html.parser only)

from html.parser import HTMLParser  # noqa: E402


class ParsedPage(HTMLParser):
    """Collects images (with the enclosing figure's name), tables (caption + cell texts), links and all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str]] = []
        self.tables: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._figure: str | None = None
        self._table: dict[str, Any] | None = None
        self._cell: list[str] | None = None
        self._in_caption = False
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag not in ("img", "meta", "br", "hr", "link", "input"):
            self._stack.append(tag)
        for key in ("href", "src"):
            if key in a:
                self.urls.append(a[key])
        if tag == "figure":
            self._figure = a.get("data-figure")
        elif tag == "img":
            self.images.append({**a, "figure": self._figure or ""})
        elif tag == "table":
            self._table = {"caption": "", "class": a.get("class", ""), "rows": []}
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self._table is not None:
            self._table["rows"].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
            self._cell_class = a.get("class", "")

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if tag == "figure":
            self._figure = None
        elif tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table["rows"][-1].append(("".join(self._cell).strip(), self._cell_class))
            self._cell = None
        elif tag == "table" and self._table is not None:
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_caption and self._table is not None:
            self._table["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)

    def table(self, caption_start: str) -> dict[str, Any]:
        found = [t for t in self.tables if t["caption"].startswith(caption_start)]
        assert len(found) == 1, (caption_start, [t["caption"] for t in self.tables])
        return found[0]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def parse_page(path: Path) -> ParsedPage:
    page = ParsedPage()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert not page._stack, f"unclosed tags: {page._stack}"
    return page


def row_of(table: dict[str, Any], label: str) -> list[tuple[str, str]]:
    """Cells (text, class) of the row whose first cell is ``label``, without that first cell."""
    rows = [r for r in table["rows"] if r and r[0][0] == label]
    assert len(rows) == 1, (label, table["rows"])
    return rows[0][1:]
