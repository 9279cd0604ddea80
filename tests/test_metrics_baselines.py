"""The majority-class baseline of a test split."""

from __future__ import annotations

import pytest

from losia_cl.errors import DataError
from losia_cl.metrics.baselines import majority_baseline
from losia_cl.metrics.scorers import get_scorer


def test_share_of_the_most_frequent_reference_equals_the_accuracy_of_always_answering_it():
    refs = ["A", "B ", "A", "C", " A", "B", "C", "A"]
    baseline = majority_baseline(refs)
    assert (baseline.answer, baseline.count, baseline.total) == ("A", 4, 8) and baseline.share == 0.5
    assert get_scorer("accuracy")([baseline.answer] * len(refs), refs) == baseline.share


def test_ties_go_to_the_first_answer_in_sorted_order():
    assert majority_baseline(["7", "12", "12", "7", "3"]).answer == "12"


def test_bad_input_is_named():
    with pytest.raises(DataError, match="no references"):
        majority_baseline([])
    with pytest.raises(DataError, match="reference #2 is int"):
        majority_baseline(["a", 3])
