"""``run --from RUN_DIR``: every method goes on from the saved model; the score matrix spans the whole history."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from losia_cl.cli import main
from losia_cl.metrics import cl_metrics
from losia_cl.trainer import RunConfig, run_experiment

METHODS = ("losia", "lora")


def _manifest(tmp_path: Path) -> Path:
    """Three tasks with a graded metric (edit similarity), so the tiny model's scores are not all 0."""
    lines = ['name = "letters"', "[defaults]", 'metric = "edit_similarity"', "max_new_tokens = 4"]
    for task, answer in (("ay", "aaaa"), ("bee", "bbbb"), ("cee", "cccc")):
        folder = tmp_path / "data" / task
        folder.mkdir(parents=True)
        for split, n in (("train", 8), ("test", 4)):
            rows = [json.dumps({"prompt": f"{task} {split} {i}:", "answer": answer}) for i in range(n)]
            (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
        lines += ["[[tasks]]", f'name = "{task}"', f'train = "data/{task}/train.jsonl"',
                  f'test = "data/{task}/test.jsonl"']
    path = tmp_path / "letters.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _options(manifest: Path) -> dict:
    return dict(stream=str(manifest), model="tiny-llama", methods=METHODS, batch_size=4, eval_batch_size=8, epochs=6,
                max_length=48, progress=False, report=False, checkpoint_every=0, retention=False,
                lr={"losia": 5e-2, "lora": 5e-2})


def test_continued_stream_extends_the_score_matrix(tmp_path, caplog):
    manifest = _manifest(tmp_path)
    first = run_experiment(RunConfig(out=str(tmp_path / "first"), tasks=("ay", "bee"), **_options(manifest)))
    with caplog.at_level(logging.WARNING, logger="losia_cl"):
        second = run_experiment(RunConfig(out=str(tmp_path / "second"), tasks=("cee",), from_run=str(first.out_dir),
                                          save_every_task=True, **_options(manifest)))
    # the saved models reproduce the earlier run's scores on its tasks (no mismatch is reported)
    assert not [r for r in caplog.records if "differently" in r.getMessage()]
    run = json.loads((second.out_dir / "run.json").read_text())
    assert run["tasks"] == ["ay", "bee", "cee"]
    for method in METHODS:
        before = json.loads((first.out_dir / method / "results.json").read_text())
        after = json.loads((second.out_dir / method / "results.json").read_text())
        scores = after["scores"]
        assert after["tasks"] == ["ay", "bee", "cee"] and len(scores) == 4 and all(len(r) == 3 for r in scores)
        assert any(v > 0 for row in before["scores"] for v in row)  # graded scores: the check below is not 0 == 0
        assert [row[:2] for row in scores[:3]] == before["scores"]  # the earlier run's rows, unchanged
        assert scores[1][2] is None  # that model is gone: the earlier stage never saw the new task
        assert scores[0][2] is not None and scores[2][2] is not None and scores[3][2] is not None
        assert after["metrics"] == json.loads(json.dumps(cl_metrics(scores).to_dict()))
        assert after["metrics"]["bwt"] == pytest.approx(
            ((scores[3][0] - scores[1][0]) + (scores[3][1] - scores[2][1])) / 2)
        assert after["continued_from"] == {"run": str(first.out_dir), "tasks": 2}
        graded = after["loglik_scores"]  # the graded matrix is laid out the same way
        assert [row[:2] for row in graded[:3]] == before["loglik_scores"] and graded[1][2] is None
        assert after["loglik_metrics"] == json.loads(json.dumps(cl_metrics(graded, bounded=False).to_dict()))
        assert after["stability"] is None
        assert set(after["steps"]) == {"ay", "bee", "cee"} and after["losses"]["ay"] == before["losses"]["ay"]
        # the models of this run's tasks only (the earlier ones stay in the earlier run's folder)
        assert after["saved_models"] == {"final": "models/3-cee", "tasks": {"cee": "models/3-cee"}}
        assert (second.out_dir / method / "models" / "3-cee" / "saved_model.json").exists()
        assert not (second.out_dir / method / "models" / "1-ay").exists()
    # the report shows the joined stream, the cell never measured as a dash
    from losia_cl.report import build_report

    markdown = build_report([second.out_dir]).html.with_name("report.md").read_text()
    assert re.search(r"^\| after ay \| [0-9.]+ \| [0-9.]+ \| — \|$", markdown, flags=re.M)
    assert re.search(r"^\| after cee \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$", markdown, flags=re.M)
    # a continued run can be continued again: the history now has three tasks
    from losia_cl.trainer.continuation import read_continuation
    from losia_cl.trainer.experiment import load_run_stream

    again = RunConfig(out=str(tmp_path / "third"), tasks=("ay",), from_run=str(second.out_dir), **_options(manifest))
    with pytest.raises(Exception, match="already in it"):
        read_continuation(again, load_run_stream(again), load_run_stream)


def _refused(capsys, *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("losia-cl: error: --from") and "\n" not in err
    return err


def test_bad_from_is_refused_in_one_line_with_nothing_written(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    unsaved = run_experiment(RunConfig(out=str(tmp_path / "unsaved"), tasks=("ay",), save_models=False,
                                       **_options(manifest)))
    out = tmp_path / "out"

    def run(source: Path, methods: str = "losia,lora", model: str = "tiny-llama") -> str:
        return _refused(capsys, "run", "--stream", str(manifest), "--model", model, "--tasks", "bee", "--out",
                        str(out), "--no-progress", "--no-report", "--methods", methods, "--from", str(source))

    assert "no run.json" in run(tmp_path / "nothing")
    assert "--no-save" in run(unsaved.out_dir)
    assert "methods" in run(unsaved.out_dir, methods="full")
    assert "--model tiny-llama" in run(unsaved.out_dir, model="smollm2-135m")
    assert "--seeds" in _refused(capsys, "run", "--model", "tiny-llama", "--methods", "losia,lora", "--seeds", "0,1",
                                 "--out", str(out), "--from", str(unsaved.out_dir))
    assert not out.exists()
