"""Task scorers: turn a task's generated answers into one number on a 0–1 scale.

Every scorer has the same signature::

    scorer(predictions: list[str],
           references: list[str] | list[list[str]],
           sources: list[str] | None = None) -> float

and returns the *corpus* score in ``[0, 1]``: the mean of a per-example score
(``accuracy``, ``letter_accuracy``, ``rouge_l``, ``edit_similarity``,
``sari``) or a corpus statistic (``bleu``).  ``references`` holds one string
per example or a list of acceptable strings per example.  ``sources`` is
needed by ``sari`` only (the other scorers ignore it).  An empty
``predictions`` list, a length mismatch or an example with no reference raises
:class:`~losia_cl.errors.DataError`.

Look scorers up by name with :func:`get_scorer`; :func:`scorer_names` lists
them.  The implementations depend on the standard library only.

=================  ==================================================================
name               per-example score (several references: see each function)
=================  ==================================================================
accuracy           1 if ``pred.strip() == ref.strip()`` for any reference, else 0
letter_accuracy    1 if the first standalone option letter A–E of the prediction
                   equals that of a reference, else 0
rouge_l            ROUGE-L F1 = 2·P·R/(P+R), P = LCS/|pred|, R = LCS/|ref| (tokens;
                   CJK characters are one token each); max over references
edit_similarity    Indel ratio 1 − (|a|+|b|−2·LCS(a, b))/(|a|+|b|) on characters
                   (``fuzz.ratio``/100, unrounded); max over references
sari               SARI (Xu et al. 2016), n = 1..4, (F1_keep + P_del + F1_add)/3
bleu               corpus BLEU-4 with brevity penalty (Papineni et al. 2002)
=================  ==================================================================
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Union

from losia_cl.errors import DataError
from losia_cl.registry import Registry

logger = logging.getLogger(__name__)

References = Union[Sequence[str], Sequence[Sequence[str]]]
Scorer = Callable[..., float]

__all__ = [
    "Scorer",
    "get_scorer",
    "scorer_names",
    "accuracy",
    "letter_accuracy",
    "rouge_l",
    "edit_similarity",
    "sari",
    "bleu",
    "tokenize_words",
    "tokenize_13a",
    "lcs_length",
    "indel_ratio",
    "extract_option_letter",
]

_SCORERS: Registry[Scorer] = Registry("scorer")


def get_scorer(name: str) -> Scorer:
    """The scorer registered as ``name`` (case-insensitive).

    Raises :class:`~losia_cl.errors.UnknownNameError` listing the known names.
    """
    return _SCORERS.get(name)


def scorer_names() -> list[str]:
    """Names of every registered scorer, sorted."""
    return _SCORERS.names()


# --------------------------------------------------------------------------------------------
# input checking


def _check_inputs(
    name: str, predictions: Sequence[str], references: References
) -> list[list[str]]:
    """Validate lengths and types; return the references as one list of strings per example."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise DataError(f"{name}: predictions and references must be lists of strings, not a string")
    if len(predictions) == 0:
        raise DataError(f"{name}: predictions is empty; a score of an empty corpus is undefined")
    if len(predictions) != len(references):
        raise DataError(
            f"{name}: {len(predictions)} predictions but {len(references)} references; "
            "they must pair up one to one"
        )
    refs: list[list[str]] = []
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        if not isinstance(pred, str):
            raise DataError(f"{name}: predictions[{i}] is {type(pred).__name__}, expected str")
        if isinstance(ref, str):
            refs.append([ref])
            continue
        ref_list = list(ref)
        if not ref_list:
            raise DataError(f"{name}: references[{i}] is an empty list; give at least one reference")
        for k, r in enumerate(ref_list):
            if not isinstance(r, str):
                raise DataError(f"{name}: references[{i}][{k}] is {type(r).__name__}, expected str")
        refs.append(ref_list)
    return refs


# --------------------------------------------------------------------------------------------
# shared text utilities

# Han ideographs (unified, extension A, compatibility, supplementary planes), kana,
# CJK symbols/punctuation and half/full-width forms: each such character is one token.
_CJK_CLASS = (
    "\u2e80-\u2fdf\u3000-\u303f\u3040-\u309f\u30a0-\u30ff\u3100-\u312f\u3190-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
    "\U00020000-\U0003134f"
)
_CJK_CHAR = re.compile(f"([{_CJK_CLASS}])")
_WORD_OR_CJK = re.compile(f"[{_CJK_CLASS}]|(?:(?![{_CJK_CLASS}])\\w)+")


def tokenize_words(text: str) -> list[str]:
    """ROUGE tokenization: lowercase, CJK characters one token each, other runs of ``\\w`` one token.

    Punctuation and whitespace separate tokens and are dropped, so
    ``"今天天气很好"`` gives six tokens and ``"Hello, World!"`` gives
    ``["hello", "world"]``.  (Unlike whitespace splitting, Chinese text does not
    collapse into a single token; unlike Google's ``rouge-score``, non-ASCII
    letters are kept.)  CJK punctuation (``。，``) is dropped like ASCII punctuation.
    """
    return [t for t in _WORD_OR_CJK.findall(text.lower()) if t.isalnum() or "_" in t]


_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def tokenize_13a(text: str, split_cjk: bool = False) -> str:
    """The ``13a`` tokenization of mteval-v13a / sacreBLEU; returns the tokens joined by single spaces.

    Punctuation is split off words, except that ``.`` and ``,`` stay inside
    numbers (``3.5``) and ``-`` is split off only after a digit.  With
    ``split_cjk=True`` every CJK character is also made a token first (as
    sacreBLEU's ``zh`` tokenizer does for Chinese).
    """
    line = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (
            line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        )
    if split_cjk:
        line = _CJK_CHAR.sub(r" \1 ", line)
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of two sequences (characters or tokens).

    Bit-parallel algorithm (Allison & Dix 1986, Hyyrö 2004): the DP column is a
    ``len(a)``-bit integer, so the cost is ``len(b)`` big-integer operations.
    """
    if len(a) < len(b):
        a, b = b, a  # the longer sequence is the bit pattern: fewer iterations
    m = len(a)
    if m == 0 or len(b) == 0:
        return 0
    match: dict[Hashable, int] = {}
    for i, item in enumerate(a):
        match[item] = match.get(item, 0) | (1 << i)
    mask = (1 << m) - 1
    v = mask
    for item in b:
        u = v & match.get(item, 0)
        v = ((v + u) | (v - u)) & mask
    return m - bin(v).count("1")


def indel_ratio(a: str, b: str) -> float:
    """Normalized Indel similarity ``1 − d/(|a|+|b|)``, ``d = |a|+|b|−2·LCS(a, b)``; 1.0 for two empty strings.

    The Indel distance ``d`` is the Levenshtein distance with insertions and
    deletions of cost 1 and substitutions of cost 2.  This is exactly
    ``rapidfuzz.fuzz.ratio(a, b) / 100`` and ``Levenshtein.ratio(a, b)``; fuzzywuzzy's
    ``fuzz.ratio`` (the one TRACE uses, with python-Levenshtein installed)
    returns ``round(100 · indel_ratio)`` — an integer percentage.
    """
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    return 2.0 * lcs_length(a, b) / total


_OPTION_LETTER = re.compile(r"(?<![A-Za-z0-9])([A-E])(?![A-Za-z0-9])")


def extract_option_letter(text: str) -> str | None:
    """The first standalone upper-case option letter A–E in ``text``, or ``None``.

    "Standalone" means not adjacent to an ASCII letter or digit, so ``"(B)"``,
    ``"B."``, ``"Answer: C"`` and ``"答案是D。"`` all match, while the ``A`` of
    ``"Apple"`` or ``"A1"`` does not.  Lower-case letters are never options
    (``a`` is usually the article).
    """
    found = _OPTION_LETTER.search(text)
    return found.group(1) if found else None


def _mean(values: Sequence[float]) -> float:
    return float(math.fsum(values) / len(values))


# --------------------------------------------------------------------------------------------
# scorers


@_SCORERS.register("accuracy")
def accuracy(
    predictions: Sequence[str], references: References, sources: Sequence[str] | None = None
) -> float:
    """Exact-match accuracy: mean over examples of ``[pred.strip() == ref.strip() for some ref]``.

    Normalisation: leading and trailing whitespace (``str.strip()``) is removed
    from both sides; nothing else (comparison is case- and punctuation-sensitive).
    ``sources`` is ignored.
    """
    refs = _check_inputs("accuracy", predictions, references)
    hits = [
        1.0 if any(p.strip() == r.strip() for r in rs) else 0.0 for p, rs in zip(predictions, refs)
    ]
    return _mean(hits)


@_SCORERS.register("letter_accuracy")
def letter_accuracy(
    predictions: Sequence[str], references: References, sources: Sequence[str] | None = None
) -> float:
    """Multiple-choice accuracy on the answer letter (see :func:`extract_option_letter`).

    An example scores 1 when the prediction's first standalone letter A–E
    equals the letter of any reference, 0 otherwise (also when the prediction
    holds no letter).  A reference with no option letter raises
    :class:`~losia_cl.errors.DataError`.  ``sources`` is ignored.
    """
    refs = _check_inputs("letter_accuracy", predictions, references)
    hits = []
    for i, (p, rs) in enumerate(zip(predictions, refs)):
        ref_letters = set()
        for k, r in enumerate(rs):
            letter = extract_option_letter(r)
            if letter is None:
                raise DataError(
                    f"letter_accuracy: references[{i}][{k}] = {r!r} holds no option letter A-E"
                )
            ref_letters.add(letter)
        hits.append(1.0 if extract_option_letter(p) in ref_letters else 0.0)
    return _mean(hits)


def _rouge_l_f1(pred: str, ref: str) -> float:
    pred_tokens, ref_tokens = tokenize_words(pred), tokenize_words(ref)
    if not pred_tokens or not ref_tokens:
        # no tokens on one side (empty or punctuation only): only an exact copy scores
        return 1.0 if pred.strip() == ref.strip() else 0.0
    lcs = lcs_length(pred_tokens, ref_tokens)
    if lcs == 0:
        return 0.0
    precision = lcs / len(pred_tokens)
    recall = lcs / len(ref_tokens)
    return 2.0 * precision * recall / (precision + recall)


@_SCORERS.register("rouge_l")
def rouge_l(
    predictions: Sequence[str], references: References, sources: Sequence[str] | None = None
) -> float:
    """ROUGE-L F1 (Lin 2004), sentence level, averaged over examples.

    Per example and reference, with tokens from :func:`tokenize_words`
    (lower-cased; each CJK character is a token)::

        P = LCS(pred, ref) / |pred|,  R = LCS(pred, ref) / |ref|,  F1 = 2·P·R / (P + R)

    (F1 = 0 when LCS = 0.  When either side has no token — empty or punctuation
    only — the example scores 1 if the stripped strings are equal, else 0.)
    With several references the example takes the maximum F1.  This is the
    β = 1 F-measure of Google's ``rouge-score`` ``rougeL``, not the
    β = P/R variant of the ``rouge`` package.  ``sources`` is ignored.
    """
    refs = _check_inputs("rouge_l", predictions, references)
    scores = []
    for p, rs in zip(predictions, refs):
        scores.append(max(_rouge_l_f1(p, r) for r in rs))
    return _mean(scores)


@_SCORERS.register("edit_similarity")
def edit_similarity(
    predictions: Sequence[str], references: References, sources: Sequence[str] | None = None
) -> float:
    """Character edit similarity, TRACE's ``fuzz.ratio`` on a 0–1 scale, averaged over examples.

    Per example: :func:`indel_ratio` ``= 1 − (|a|+|b|−2·LCS(a, b)) / (|a|+|b|)``
    on the raw strings (no normalisation), the maximum over references.  It
    equals ``rapidfuzz.fuzz.ratio / 100`` exactly; fuzzywuzzy with
    python-Levenshtein rounds each example to a whole percent, so the two
    differ by at most 0.005 per example.  (fuzzywuzzy *without*
    python-Levenshtein falls back to ``difflib.SequenceMatcher.ratio``, a
    Ratcliff–Obershelp ratio ``2·M/(|a|+|b|)`` whose matches ``M ≤ LCS``: never
    higher, on random code-like strings about 0.07 lower.)  ``sources`` is ignored.
    """
    refs = _check_inputs("edit_similarity", predictions, references)
    return _mean([max(indel_ratio(p, r) for r in rs) for p, rs in zip(predictions, refs)])


# ---- SARI


def _ngrams(tokens: list[str], n: int) -> list[str]:
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def _sari_ngram(
    src: list[str], cand: list[str], refs: list[list[str]]
) -> tuple[float, float, float]:
    """(F1_keep, P_del, F1_add) for one n-gram order, following the EASSE / HF ``evaluate`` reference."""
    num_refs = len(refs)
    ref_counts: Counter[str] = Counter(g for ref in refs for g in ref)
    # source and candidate counts are scaled by the number of references, so that an
    # n-gram kept by the system is "good" in proportion to how many references keep it
    src_rep = Counter({g: c * num_refs for g, c in Counter(src).items()})
    cand_rep = Counter({g: c * num_refs for g, c in Counter(cand).items()})

    # KEEP: n-grams in both source and candidate; good when the references keep them too
    keep = src_rep & cand_rep
    keep_good = keep & ref_counts
    keep_all = src_rep & ref_counts
    keep_p = sum(keep_good[g] / keep[g] for g in keep_good) / len(keep) if keep else 1.0
    keep_r = sum(keep_good.values()) / sum(keep_all.values()) if keep_all else 1.0
    keep_f1 = _f1(keep_p, keep_r)

    # DELETE: source n-grams the candidate dropped; good when the references drop them too.
    # Only precision counts (deletion recall would reward over-deleting).
    deleted = src_rep - cand_rep
    deleted_good = deleted - ref_counts
    del_p = (
        sum(deleted_good[g] / deleted[g] for g in deleted_good) / len(deleted) if deleted else 1.0
    )

    # ADD: candidate n-grams not in the source (as sets); good when some reference has them
    added = set(cand) - set(src)
    added_good = added & set(ref_counts)
    added_all = set(ref_counts) - set(src)
    add_p = len(added_good) / len(added) if added else 1.0
    add_r = len(added_good) / len(added_all) if added_all else 1.0
    return keep_f1, del_p, _f1(add_p, add_r)


def _sari_tokens(text: str) -> list[str]:
    # EASSE / HF normalisation: lowercase, 13a tokenization, split on single spaces
    return tokenize_13a(text.lower()).split(" ")


def sari_sentence(source: str, prediction: str, references: Sequence[str]) -> float:
    """SARI of one example on a 0–1 scale (see :func:`sari`)."""
    s1 = _sari_tokens(source)
    c1 = _sari_tokens(prediction)
    r1 = [_sari_tokens(r) for r in references]
    keep, delete, add = [], [], []
    for n in range(1, 5):
        k, d, a = _sari_ngram(_ngrams(s1, n), _ngrams(c1, n), [_ngrams(r, n) for r in r1])
        keep.append(k)
        delete.append(d)
        add.append(a)
    return (sum(keep) / 4 + sum(delete) / 4 + sum(add) / 4) / 3


@_SCORERS.register("sari")
def sari(
    predictions: Sequence[str], references: References, sources: Sequence[str] | None = None
) -> float:
    """SARI (Xu et al. 2016) on a 0–1 scale: the HF ``evaluate`` ``sari`` value divided by 100.

    Texts are lower-cased and ``13a``-tokenized.  For each n = 1..4, with the
    source and candidate n-gram counts multiplied by the number of references
    ``m`` and the reference counts summed over references:

    * keep:  ``K = S∩C``, ``K_good = K∩R``, ``K_all = S∩R`` (multiset min);
      ``P_keep = mean_{g∈K_good} K_good[g]/K[g]`` (over the distinct n-grams of K),
      ``R_keep = |K_good| / |K_all|`` (total counts), ``F1_keep``;
    * delete: ``D = S−C``, ``D_good = D−R`` (multiset difference);
      ``P_del = mean_{g∈D_good} D_good[g]/D[g]`` (over the distinct n-grams of D);
    * add (sets): ``A = C∖S``, ``A_good = A∩R``, ``A_all = R∖S``;
      ``P_add = |A_good|/|A|``, ``R_add = |A_good|/|A_all|``, ``F1_add``;

    each ratio with an empty denominator is 1 (0/0 = 1, so an exact copy of a
    reference scores 1).  Example score ``(mean_n F1_keep + mean_n P_del +
    mean_n F1_add) / 3``; the corpus score is the mean over examples.
    ``sources`` is required.
    """
    refs = _check_inputs("sari", predictions, references)
    if sources is None:
        raise DataError("sari: sources is required (SARI compares the prediction with its source)")
    if isinstance(sources, str) or len(sources) != len(predictions):
        n_src = "a string" if isinstance(sources, str) else f"{len(sources)} sources"
        raise DataError(f"sari: {n_src} for {len(predictions)} predictions; give one source each")
    return _mean([sari_sentence(s, p, rs) for s, p, rs in zip(sources, predictions, refs)])


# ---- BLEU


def _bleu_tokens(text: str) -> list[str]:
    return tokenize_13a(text, split_cjk=True).split()


@_SCORERS.register("bleu")
def bleu(
    predictions: Sequence[str], references: References, sources: Sequence[str] | None = None
) -> float:
    """Corpus BLEU-4 (Papineni et al. 2002) on a 0–1 scale, no smoothing.

    Tokens: ``13a`` tokenization with every CJK character a token, case kept.
    With ``m_n`` the clipped n-gram matches summed over the corpus (each
    candidate n-gram count clipped by its maximum count in any one reference)
    and ``t_n`` the candidate n-grams summed over the corpus::

        p_n = m_n / t_n,   BLEU = BP · exp( (1/4) Σ_{n=1..4} log p_n )
        BP  = 1 if c > r else exp(1 − r/c)

    where ``c`` is the total candidate length and ``r`` the sum over examples
    of the reference length closest to the candidate's (the shorter one on a
    tie).  BLEU is 0 when some ``p_n`` is 0 or the candidates are all empty.
    ``sources`` is ignored.
    """
    refs = _check_inputs("bleu", predictions, references)
    matches = [0] * 4
    totals = [0] * 4
    cand_len = 0
    ref_len = 0
    for p, rs in zip(predictions, refs):
        ct = _bleu_tokens(p)
        rts = [_bleu_tokens(r) for r in rs]
        cand_len += len(ct)
        ref_len += min((abs(len(rt) - len(ct)), len(rt)) for rt in rts)[1]
        for n in range(1, 5):
            cand_counts = Counter(tuple(ct[i : i + n]) for i in range(len(ct) - n + 1))
            max_ref: Counter[tuple[str, ...]] = Counter()
            for rt in rts:
                max_ref |= Counter(tuple(rt[i : i + n]) for i in range(len(rt) - n + 1))
            matches[n - 1] += sum((cand_counts & max_ref).values())
            totals[n - 1] += sum(cand_counts.values())
    if cand_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    brevity = 1.0 if cand_len > ref_len else math.exp(1.0 - ref_len / cand_len)
    return float(brevity * math.exp(log_precision))
