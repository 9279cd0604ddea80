"""The cl-benchmark stream: O-LoRA's released layout, its prompts, the eval slice held out from train."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from losia_cl.errors import DataError, UnknownNameError
from losia_cl.presets import PRESETS
from losia_cl.streams import describe_streams, load_stream, stream_options
from losia_cl.streams.cl_benchmark import CL_TASK_NAMES, majority_rate

SENTIMENT = "What is the sentiment of the following paragraph? Choose one from the option.\n"


def write_task(root: Path, group: str, task: str, labels: list[str], train: list[tuple[str, str]],
               test: list[tuple[str, str]]) -> None:
    """One task in O-LoRA's released layout (dev.json a copy of test.json, as released)."""
    folder = root / group / task
    folder.mkdir(parents=True)
    (folder / "labels.json").write_text(json.dumps(labels))
    for split, pairs in (("train", train), ("test", test), ("dev", test)):
        (folder / f"{split}.json").write_text(json.dumps([{"sentence": s, "label": y} for s, y in pairs]))


def write_benchmark(root: Path, n_train: int = 40) -> Path:
    write_task(root, "SC", "SST-2", ["Good", "Bad"],
               [(f"Text: review {i}", "Good" if i % 3 else "Bad") for i in range(n_train)],
               [(f"Text: unseen {i}", "Bad" if i % 4 else "Good") for i in range(12)])
    write_task(root, "TC", "agnews", ["World", "Sports", "Business", "Science or Technology"],
               [(f"Title: t{i}\nText: news {i}\n", ["World", "Sports", "Business"][i % 3]) for i in range(n_train)],
               [(f"Title: u{i}\nText: later {i}\n", "Sports") for i in range(8)])
    write_task(root, "COPA", "COPA", ["A", "B"],
               [(f'Which sentence is the cause of "x{i}"? Choose one between A and B.\nA: a\nB: b', "AB"[i % 2])
                for i in range(n_train)],
               [(f'Which sentence is the effect of "y{i}"? Choose one between A and B.\nA: a\nB: b', "A")
                for i in range(4)])
    return root


def test_registered_with_the_run_options():
    assert "cl-benchmark" in dict(describe_streams())
    assert stream_options("cl-benchmark") == ["data_dir", "tasks", "max_train_examples", "max_test_examples", "seed"]
    assert {"SST-2", "agnews", "amazon", "MNLI", "COPA", "yelp", "dbpedia", "yahoo"} <= set(CL_TASK_NAMES)


def test_prompts_are_olora_instruction_options_sentence_answer(tmp_path):
    root = write_benchmark(tmp_path)
    stream = load_stream("cl-benchmark", data_dir=str(root), tasks="sst-2,agnews,COPA")
    assert stream.task_names == ["SST-2", "agnews", "COPA"]
    sst2, agnews, copa = stream.tasks
    assert sst2.metric == "accuracy" and sst2.test[0].answer == "Good"
    assert sst2.test[0].prompt == SENTIMENT + "Option: Good, Bad \nText: unseen 0\nAnswer:"
    assert agnews.train[0].prompt.startswith("What is the topic of the following paragraph? Choose one from the "
                                             "option.\nOption: World, Sports, Business, Science or Technology \n")
    assert copa.test[0].prompt.endswith("B: b\nAnswer:") and copa.test[0].prompt.startswith("Which sentence")
    assert len(sst2.test) == 12 and majority_rate(sst2) == 0.75  # 9 of 12 test labels are "Bad"


def test_eval_is_a_fixed_slice_of_train_disjoint_from_every_seeds_train_and_from_test(tmp_path):
    root = write_benchmark(tmp_path)
    loads = [load_stream("cl-benchmark", data_dir=str(root), tasks="SST-2", max_train_examples=20,
                         max_test_examples=6, seed=seed)["SST-2"] for seed in (0, 1, 2)]
    evals = [{e.prompt for e in task.eval} for task in loads]
    assert len(evals[0]) == 6 and evals[0] == evals[1] == evals[2]  # the same for every seed
    trains = [{e.prompt for e in task.train} for task in loads]
    assert len(trains[0]) == 20 and trains[0] != trains[1]  # the train draw follows the seed
    everything = {f"{SENTIMENT}Option: Good, Bad \nText: review {i}\nAnswer:" for i in range(40)}
    for train in trains:
        assert not train & evals[0] and train | evals[0] <= everything
    assert not evals[0] & {e.prompt for e in loads[0].test}
    # the eval slice is at most a fifth of train.json; without a cap it is 200, cut the same way
    capped = load_stream("cl-benchmark", data_dir=str(root), tasks="SST-2", max_test_examples=30)["SST-2"]
    assert len(capped.eval) == 8 and len(capped.train) == 32 and len(capped.test) == 12


def test_sentences_shared_with_test_or_repeated_never_enter_eval_and_are_reported(tmp_path, caplog):
    shared = [("Text: in both", "Good")] * 2 + [("Text: also in test", "Bad")]
    write_task(tmp_path, "SC", "SST-2", ["Good", "Bad"],
               shared + [(f"Text: r{i}", "Good") for i in range(7)],
               [("Text: also in test", "Bad"), ("Text: t", "Good")])
    with caplog.at_level(logging.WARNING):
        task = load_stream("cl-benchmark", data_dir=str(tmp_path), tasks="SST-2", max_test_examples=2)["SST-2"]
    assert "1 of 10 training sentences also occur in test.json" in caplog.text
    assert {e.prompt.split("\n")[2] for e in task.eval} <= {f"Text: r{i}" for i in range(7)}


def test_unlabelled_records_are_left_out_and_unknown_labels_refused(tmp_path, caplog):
    write_task(tmp_path, "NLI", "MNLI", ["neutral", "entailment", "contradiction"],
               [(f"sentence 1: a{i}\nsentence 2: b", "neutral") for i in range(10)],
               [("sentence 1: x\nsentence 2: y", "-"), ("sentence 1: z\nsentence 2: w", "entailment")])
    with caplog.at_level(logging.WARNING):
        task = load_stream("cl-benchmark", data_dir=str(tmp_path), tasks="MNLI")["MNLI"]
    assert [e.answer for e in task.test] == ["entailment"] and "1 record(s) labelled '-'" in caplog.text
    bad = tmp_path / "NLI" / "MNLI" / "train.json"
    bad.write_text(json.dumps([{"sentence": "s", "label": "neutral"}, {"sentence": "t", "label": "Neutral"}]))
    with pytest.raises(DataError, match=r"train.json: record 1\b.*field 'label' is 'Neutral', not one of"):
        load_stream("cl-benchmark", data_dir=str(tmp_path), tasks="MNLI")


def test_missing_data_is_named_with_what_to_do(tmp_path, monkeypatch):
    root = write_benchmark(tmp_path / "O-LoRA" / "CL_Benchmark")
    monkeypatch.setenv("LOSIA_CL_DATA", str(tmp_path / "O-LoRA"))  # a root holding CL_Benchmark/ is read through it
    assert load_stream("cl-benchmark", tasks="SST-2").task_names == ["SST-2"]
    with pytest.raises(DataError, match=r"MNLI: task folder not found.*--tasks.*cmnfriend/O-LoRA"):
        load_stream("cl-benchmark", tasks="SST-2,MNLI")
    (root / "SC" / "SST-2" / "test.json").unlink()
    with pytest.raises(DataError, match=r"SST-2/test.json: file not found"):
        load_stream("cl-benchmark", tasks="SST-2")
    with pytest.raises(UnknownNameError, match="unknown CL benchmark task 'sst2'"):
        load_stream("cl-benchmark", tasks="sst2")
    monkeypatch.delenv("LOSIA_CL_DATA")
    with pytest.raises(DataError, match="no CL benchmark data directory given"):
        load_stream("cl-benchmark", tasks="SST-2")


def test_the_cl_cpu_preset_names_tasks_of_the_stream_and_gives_losia_its_async_schedule():
    from losia_cl.optim.schedule import SlotSchedule, fit_schedule, relocalization_counts
    from losia_cl.presets import CL_CPU_ORDERS

    preset = PRESETS.get("cl-cpu").common
    assert preset["stream"] == "cl-benchmark" and preset["tasks"] == CL_CPU_ORDERS[0]
    assert CL_CPU_ORDERS[1].split(",") == CL_CPU_ORDERS[0].split(",")[::-1]
    assert set(CL_CPU_ORDERS[0].split(",")) <= set(CL_TASK_NAMES)
    assert len(PRESETS.get("cl-cpu").run["seeds"]) == 5 and PRESETS.get("cl-cpu").tune["tune_tasks"] == 2
    steps = min(preset["max_steps"], preset["max_train_examples"] // preset["batch_size"])
    period, mode = fit_schedule(steps, 30, "importance")  # SmolLM2-135M: 30 decoder layers, one slot each
    counts = relocalization_counts(SlotSchedule(30, period, mode, offset=period), steps)
    assert mode == "async" and period >= 4 and min(counts) >= 2  # the initial choice and one in its own slot
