"""`losia-cl eval`: the run's base row from the same settings, saved models and PEFT adapters, bad input, eval.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from losia_cl.cli import main
from losia_cl.errors import DataError
from losia_cl.evaluation.results import EVAL_FORMAT, EvalResults, eval_schema_markdown, read_eval_results

ROOT = Path(__file__).resolve().parents[1]
#: The settings `run` and `eval` share in these tests (tiny-llama on two demo tasks).
STREAM = ["--model", "tiny-llama", "--tasks", "check,position", "--max-length", "96", "--seed", "3"]


def _eval(out: Path, *extra: str) -> EvalResults:
    assert main(["eval", *STREAM, "--limit", "6", "--batch-size", "4", "--output-path", str(out), "-q", *extra]) == 0
    return read_eval_results(out)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_scores_the_base_row_of_a_run_with_the_same_settings(tmp_path):
    run = tmp_path / "run"
    assert main(["run", *STREAM, "--methods", "full", "--max-steps", "1", "--max-test-examples", "6",
                 "--eval-batch-size", "4", "--out", str(run), "--no-report", "-q"]) == 0
    results = _eval(tmp_path / "eval", "--log-samples")
    base = json.loads((run / "base_scores.json").read_text())
    method = json.loads((run / "full" / "results.json").read_text())
    assert results.tasks == base["tasks"] == ["check", "position"]
    assert results.scores == base["scores"]
    assert results.loglik_scores == method["loglik_scores"][0]  # the same batches give the same floats
    assert all(v < -0.5 for v in results.loglik_scores)  # a random model: far from the references
    assert results.probe["right"] == method["retention"]["right"][0] and results.probe["items"] == 122
    assert results.examples == [6, 6] and results.task_metrics == {"check": "accuracy", "position": "accuracy"}
    for task in results.tasks:  # every generated prediction, prompt and reference, in the same order
        assert _lines(tmp_path / "eval" / "predictions" / f"{task}.jsonl") == \
            _lines(run / "base" / "predictions" / f"stage0-{task}.jsonl")
    data = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert list(data)[0] == "format" and data["format"] == EVAL_FORMAT and data["config"]["limit"] == 6


def test_a_save_pretrained_folder_and_a_peft_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model

    from losia_cl.models import load_model
    from losia_cl.streams import load_stream
    from losia_cl.trainer.loglik import answer_loglik

    builtin = _eval(tmp_path / "builtin")
    model, tokenizer = load_model("tiny-llama", seed=3)
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    saved = _eval(tmp_path / "from-folder", "--model", str(tmp_path / "saved"))
    assert (saved.scores, saved.loglik_scores, saved.probe) == (builtin.scores, builtin.loglik_scores, builtin.probe)

    torch.manual_seed(1)
    adapted = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "adapter")  # tiny-llama has no name: the adapter does not record its base
    merged = adapted.merge_and_unload()
    test = load_stream("demo", tasks=["check"], seed=3)["check"].test[:6]  # what --limit 6 keeps
    expected = answer_loglik(merged, tokenizer, test, batch_size=4, max_length=96)
    result = _eval(tmp_path / "adapter-eval", "--model", str(tmp_path / "adapter"), "--base-model", "tiny-llama")
    assert result.loglik_scores[0] == pytest.approx(expected, abs=1e-5)
    assert abs(result.loglik_scores[0] - builtin.loglik_scores[0]) > 1e-3  # the adapter changed the model
    assert result.base_model == "tiny-llama" and result.probe["base_model"] == "tiny-llama"
    assert result.probe["kl"] > 0 and result.probe["base_right"] == builtin.probe["right"]


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("losia-cl: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(("extra", "message"), [
    (["--tasks", "check,nope"], "nope"),
    (["--limit", "0"], "limit = 0 is invalid"),
    (["--batch-size", "-1"], "batch_size = -1 is invalid"),
    (["--answer-field", "label"], "--answer-field: only for a single data file"),
    (["--device", "cuda:99"], "device = 'cuda:99' is invalid"),
    (["--base-model", ""], "base_model = '' is invalid"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, extra, message):
    out = tmp_path / "eval"
    argv = ["eval", "--model", "tiny-llama", "--output-path", str(out), *extra]
    assert message in _refused(capsys, argv)
    assert not out.exists()


def test_refused_folders_models_and_data_write_nothing(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert "the folder is not empty (notes.txt)" in _refused(
        capsys, ["eval", "--model", "tiny-llama", "--output-path", str(foreign)])
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    from peft import LoraConfig, get_peft_model

    from losia_cl.models import load_model

    model, _ = load_model("tiny-llama")
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    out = tmp_path / "eval"
    assert "names no base model; give it with --base-model" in _refused(
        capsys, ["eval", "--model", str(tmp_path / "adapter"), "--output-path", str(out)])

    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps({"text": f"r{i}", "label": i % 2}) + "\n" for i in range(10)))
    err = _refused(capsys, ["eval", "--model", "tiny-llama", "--stream", str(data), "--output-path", str(out)])
    assert "missing field 'prompt'; its fields: text, label" in err and "--prompt-template '{text}" in err
    assert "--answer-field label" in err
    assert not out.exists()


def test_an_earlier_eval_folder_is_reused(tmp_path):
    out = tmp_path / "eval"
    first = _eval(out, "--log-samples", "--no-probe")
    assert first.probe is None and sorted(p.name for p in (out / "predictions").iterdir()) == \
        ["check.jsonl", "position.jsonl"]
    second = _eval(out, "--log-samples", "--no-probe", "--tasks", "position")
    assert second.tasks == ["position"] and second.scores == first.scores[1:]
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["position.jsonl"]


def test_eval_json_is_documented_and_validated(tmp_path):
    assert eval_schema_markdown() in (ROOT / "docs" / "results-format.md").read_text()
    record = EvalResults(model="m", stream="demo", tasks=["a", "b"], scores=[0.5, 1.0], loglik_scores=[-1.0, -0.2],
                         examples=[4, 4], probe={"items": 3, "right": 1, "kept": None})
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({**record.to_json(), "a_newer_key": 1}))
    assert read_eval_results(tmp_path) == record
    for key, value, message in (("scores", [0.5, 1.5], r"key 'scores\[1\]' = 1.5 is not a finite number in \[0, 1\]"),
                                ("loglik_scores", [-1.0], "key 'loglik_scores' must hold 2 numbers"),
                                ("format", "losia_cl.eval/9", "expected 'losia_cl.eval/1'")):
        path.write_text(json.dumps({**record.to_json(), key: value}))
        with pytest.raises(DataError, match=message):
            read_eval_results(path)


def test_the_readme_command_runs(tmp_path, monkeypatch):
    import shlex

    from doc_blocks import find_block

    command = shlex.split(find_block("README.md", "**Scoring one model: `losia-cl eval`.**", lang="bash").text)
    assert command[:2] == ["losia-cl", "eval"]
    monkeypatch.chdir(tmp_path)
    assert main([*command[1:], "-q"]) == 0
    results = read_eval_results(tmp_path / "evals" / "tiny")
    assert results.tasks == ["check", "position"] and results.examples == [8, 8] and results.model == "tiny-llama"
    assert [len(_lines(tmp_path / "evals" / "tiny" / "predictions" / f"{t}.jsonl")) for t in results.tasks] == [8, 8]
