"""Task scorers: hand-computed small cases, the published SARI example, CJK tokenization."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from losia_cl.errors import DataError, UnknownNameError
from losia_cl.metrics import get_scorer, scorer_names
from losia_cl.metrics.scorers import (
    extract_option_letter,
    indel_ratio,
    lcs_length,
    tokenize_13a,
    tokenize_words,
)

approx = lambda x: pytest.approx(x, abs=1e-12)  # noqa: E731


def test_registry_has_exactly_the_contract_names() -> None:
    assert scorer_names() == ["accuracy", "bleu", "edit_similarity", "letter_accuracy", "rouge_l", "sari"]
    assert get_scorer("ROUGE_L") is get_scorer("rouge_l")
    with pytest.raises(UnknownNameError, match="known scorers: accuracy, bleu"):
        get_scorer("f1")


@pytest.mark.parametrize("name", ["accuracy", "letter_accuracy", "rouge_l", "edit_similarity", "sari", "bleu"])
def test_every_scorer_rejects_empty_and_mismatched_input(name) -> None:
    scorer = get_scorer(name)
    with pytest.raises(DataError, match="empty"):
        scorer([], [], [])
    with pytest.raises(DataError, match="2 predictions but 1 references"):
        scorer(["A", "B"], ["A"], ["x", "y"])
    with pytest.raises(DataError, match=r"references\[0\] is an empty list"):
        scorer(["A"], [[]], ["x"])


def test_accuracy_strips_whitespace_only_and_accepts_any_reference() -> None:
    acc = get_scorer("accuracy")
    # " yes" == "yes" after strip; "No" != "no" (case-sensitive); "maybe " matches the 2nd reference
    assert acc([" yes", "No", "maybe "], ["yes\n", "no", ["perhaps", "maybe"]]) == approx(2 / 3)
    assert acc(["a"], ["b"]) == 0.0


def test_option_letter_extraction() -> None:
    assert extract_option_letter("The answer is (B).") == "B"
    assert extract_option_letter("答案是D。") == "D"
    assert extract_option_letter("Apple A1 then C") == "C"  # A of Apple and A1 are not standalone
    assert extract_option_letter("I think F") is None  # I and F are not options A-E
    assert extract_option_letter("a b c") is None  # lower case never counts


def test_letter_accuracy_by_hand() -> None:
    la = get_scorer("letter_accuracy")
    preds = ["The answer is (B).", "C", "I think A1 is wrong, D", "none of them", "答案是B。"]
    refs = ["B", "Answer: D", "(D)", "A", ["A", "B"]]
    # hits: B=B, C!=D, D=D, no letter, B in {A, B}
    assert la(preds, refs) == approx(3 / 5)
    with pytest.raises(DataError, match=r"references\[0\]\[0\] = 'yes' holds no option letter"):
        la(["A"], ["yes"])


def test_rouge_l_by_hand() -> None:
    rouge = get_scorer("rouge_l")
    # LCS("the cat sat on the mat", "the cat lay on the mat") = 5 of 6 tokens each: F1 = 5/6
    assert rouge(["the cat sat on the mat"], ["The cat lay on the mat."]) == approx(5 / 6)
    # LCS = 2, P = 2/4, R = 2/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert rouge(["a b c d"], ["a c"]) == approx(2 / 3)
    assert rouge(["the cat sat on the mat", "a b c d"], ["the cat lay on the mat", "a c"]) == approx(0.75)
    # several references: the best one counts
    assert rouge(["a b c d"], [["x", "a b c d"]]) == approx(1.0)
    assert rouge(["x y"], ["a b"]) == 0.0


def test_rouge_l_splits_chinese_per_character() -> None:
    assert tokenize_words("今天天气很好") == ["今", "天", "天", "气", "很", "好"]
    assert tokenize_words("我爱NLP，Hello-World!") == ["我", "爱", "nlp", "hello", "world"]
    rouge = get_scorer("rouge_l")
    # LCS("今天天气很好", "今天天气不错") = 4 characters of 6: F1 = 4/6 (whitespace tokens would give 0)
    assert rouge(["今天天气很好"], ["今天天气不错"]) == approx(2 / 3)
    assert rouge(["我爱 NLP"], ["我爱nlp"]) == approx(1.0)
    # punctuation-only sides: only an exact copy scores
    assert rouge(["。", "."], ["。", ","]) == approx(0.5)


def test_edit_similarity_is_the_indel_ratio() -> None:
    es = get_scorer("edit_similarity")
    # LCS("kitten", "sitting") = 4 ("ittn"); 1 - (6 + 7 - 8) / 13 = 8/13  (fuzz.ratio = 61.5...)
    assert es(["kitten"], ["sitting"]) == approx(8 / 13)
    # one substitution costs 2: "abcd" vs "abxd": LCS 3, 1 - 2/8
    assert es(["abcd"], ["abxd"]) == approx(0.75)
    assert es([""], [""]) == 1.0
    assert es(["abc"], [""]) == 0.0
    assert es(["abc", "abc"], [["abd", "abc"], "xyz"]) == approx(0.5)  # mean of max(2/3, 1) and 0
    # characters, not bytes: each Chinese character counts once
    assert es(["你好吗"], ["你好"]) == approx(0.8)  # LCS 2, 4/5


def test_sari_reproduces_the_published_example() -> None:
    sari = get_scorer("sari")
    sources = ["About 95 species are currently accepted."]
    predictions = ["About 95 you now get in."]
    references = [["About 95 species are currently known.", "About 95 species are now accepted.",
                   "95 species are now accepted."]]
    # HF evaluate's SARI docstring: {'sari': 26.953601953601954} on a 0-100 scale
    assert sari(predictions, references, sources) == pytest.approx(0.26953601953601954, abs=1e-12)
    # the same example pre-tokenized (the docstring's other form) gives the same value
    assert sari(["About 95 you now get in ."], [[r.replace(".", " .") for r in references[0]]],
                ["About 95 species are currently accepted ."]) == pytest.approx(0.26953601953601954, abs=1e-12)
    # the README's exact-copy example: 100
    same = "About 95 species are currently accepted ."
    assert sari([same], [[same]], [same]) == 1.0


def test_sari_hand_computed_pure_deletion() -> None:
    # source "a b c", prediction "a b", reference "a b": every n-gram the system kept is kept by the
    # reference, every deletion is a reference deletion, and nothing was to be added: SARI = 1.
    sari = get_scorer("sari")
    assert sari(["a b"], ["a b"], ["a b c"]) == approx(1.0)
    # prediction copies the source while the reference deletes "c":
    #   n=1: keep P = 2/3 (c kept wrongly), R = 2/2 -> F1 = 0.8; no deletion -> P_del = 1; add = 1
    #   n=2: kept {a b, b c}: P = 1/2, R = 1 -> F1 = 2/3; P_del = 1; add = 1
    #   n=3: kept {a b c}: P = 0, R = 1 (0/0) -> F1 = 0; P_del = 1; add = 1
    #   n=4: nothing anywhere -> 1, 1, 1
    keep = (0.8 + 2 / 3 + 0.0 + 1.0) / 4
    assert sari(["a b c"], ["a b"], ["a b c"]) == approx((keep + 1.0 + 1.0) / 3)
    with pytest.raises(DataError, match="sources is required"):
        sari(["a"], ["a"])
    with pytest.raises(DataError, match="one source each"):
        sari(["a", "b"], ["a", "b"], ["a"])


def test_bleu_by_hand() -> None:
    bleu = get_scorer("bleu")
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == approx(1.0)
    # candidate "the cat sat on mat" (5 tokens) against the 6-token reference:
    # p1 = 5/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; BP = exp(1 - 6/5)
    expected = (1.0 * 0.75 * (2 / 3) * 0.5) ** 0.25 * math.exp(-0.2)
    assert bleu(["the cat sat on mat"], ["the cat sat on the mat"]) == approx(expected)
    # no 4-gram match anywhere: 0 (no smoothing)
    assert bleu(["the cat"], ["the cat"]) == 0.0
    # CJK characters are tokens: 6 chars vs 6 chars with a common 4-char prefix
    # p1 = 4/6, p2 = 3/5, p3 = 2/4, p4 = 1/3, BP = 1
    assert bleu(["今天天气很好"], ["今天天气不错"]) == approx((4 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)


def test_13a_tokenization() -> None:
    assert tokenize_13a("Hello, world 3.5 and 1-2 (ok).") == "Hello , world 3.5 and 1 - 2 ( ok ) ."
    assert tokenize_13a("a &amp; b") == "a & b"


def _lcs_dp(a, b) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            cur = row[j]
            row[j] = prev + 1 if x == y else max(row[j], row[j - 1])
            prev = cur
    return row[-1]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcé中 ", max_size=40), st.text(alphabet="abcé中 ", max_size=40))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b) -> None:
    assert lcs_length(a, b) == _lcs_dp(a, b)
    r = indel_ratio(a, b)
    assert 0.0 <= r <= 1.0 and r == indel_ratio(b, a)
    assert (r == 1.0) == (a == b)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ab .", max_size=12), min_size=1, max_size=5), st.data())
def test_scores_are_in_unit_interval_and_copies_score_one(preds, data) -> None:
    refs = data.draw(st.lists(st.text(alphabet="ab .", max_size=12), min_size=len(preds), max_size=len(preds)))
    for name in ("accuracy", "rouge_l", "edit_similarity", "bleu", "sari"):
        s = get_scorer(name)(preds, refs, refs)
        assert 0.0 <= s <= 1.0
    for name in ("accuracy", "rouge_l", "edit_similarity"):
        assert get_scorer(name)(preds, preds) == 1.0
