"""Continual-learning metrics for losia-cl.

* :mod:`.continual` — forgetting and transfer from a score matrix
  (:func:`cl_metrics`, :class:`CLMetrics`);
* :mod:`.scorers` — task scorers by name (:func:`get_scorer`, :func:`scorer_names`);
* :mod:`.overlap` — overlap of the LoSiA subnets trained on different tasks
  (:class:`SubnetOverlapTracker`);
* :mod:`.stability` — weight dimensional stability (:class:`StabilityTracker`);
* :mod:`.paired` — paired comparisons of two methods over seeds (:func:`paired_difference`, :func:`verdict`,
  :func:`minimum_detectable_effect`);
* :mod:`.holm` — Holm's correction of a family of p-values (:func:`holm`);
* :mod:`.baselines` — the majority-class baseline of a test split (:func:`majority_baseline`).

Importing this package is cheap: it imports none of the submodules, and torch
is imported only when a stability measurement runs.  Every name below is
resolved on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losia_cl.lazy import lazy_attributes

# public name -> submodule that defines it
_LAZY = {
    "CLMetrics": ".continual",
    "cl_metrics": ".continual",
    "Scorer": ".scorers",
    "get_scorer": ".scorers",
    "scorer_names": ".scorers",
    "SubnetOverlapTracker": ".overlap",
    "chance_jaccard": ".overlap",
    "StabilityTracker": ".stability",
    "StabilityConfig": ".stability",
    "spectrum": ".stability",
    "effective_rank": ".stability",
    "stable_rank": ".stability",
    "subspace_similarity": ".stability",
    "spectral_drift": ".stability",
    "merge_lora": ".stability",
    "linear_weights": ".stability",
    "PairedDifference": ".paired",
    "paired_difference": ".paired",
    "verdict": ".paired",
    "minimum_detectable_effect": ".paired",
    "holm": ".holm",
    "majority_baseline": ".baselines",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .baselines import majority_baseline
    from .continual import CLMetrics, cl_metrics
    from .holm import holm
    from .overlap import SubnetOverlapTracker, chance_jaccard
    from .paired import PairedDifference, minimum_detectable_effect, paired_difference, verdict
    from .scorers import Scorer, get_scorer, scorer_names
    from .stability import (
        StabilityConfig,
        StabilityTracker,
        effective_rank,
        linear_weights,
        merge_lora,
        spectral_drift,
        spectrum,
        stable_rank,
        subspace_similarity,
    )


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
