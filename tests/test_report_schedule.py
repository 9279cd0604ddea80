"""The report's "LoSiA schedule" section, from real LoSiA runs on tiny-llama: which LoSiA ran, and a flag
for tasks in which some layer never re-localized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from losia_cl.report import build_report
from losia_cl.trainer import RunConfig, run_experiment

SMALL = dict(model="tiny-llama", tasks=("category", "check"), max_train_examples=32, max_test_examples=4,
             batch_size=4, eval_batch_size=8, max_length=64, progress=False, report=False, retention=False)


def _run(tmp_path: Path, name: str, **losia) -> tuple[dict, str]:
    config = RunConfig(methods=("losia",), out=str(tmp_path / name), method_options={"losia": losia}, **SMALL)
    outcome = run_experiment(config)
    results = json.loads((outcome.out_dir / "losia" / "results.json").read_text())
    files = build_report([outcome.out_dir])
    return results, Path(files.markdown).read_text(encoding="utf-8")


@pytest.mark.slow
def test_default_losia_relocalizes_every_layer_and_the_report_says_so(tmp_path):
    results, page = _run(tmp_path, "default")
    for task in ("category", "check"):
        record = results["method_record"][task]
        counts = record["relocalizations_per_layer"]
        assert record["never_relocalized"] == [] and min(counts.values()) >= 1, record
    assert "## LoSiA schedule" in page
    assert "never re-localized and trained" not in page
    period = results["method_record"]["check"]["schedule"]["period"]
    assert f"T={period}" in page


@pytest.mark.slow
def test_a_slot_longer_than_the_task_is_flagged(tmp_path):
    # random first subnets, 8 steps per task and T = 6 for 2 slots: the second slot never comes round
    results, page = _run(tmp_path, "long", period=6, losia_options={"init": "random"})
    never = results["method_record"]["category"]["never_relocalized"]
    assert never, results["method_record"]["category"]
    assert "never re-localized and trained their initial subnet" in page
    assert f"losia on category: {len(never)} layer(s)" in page
