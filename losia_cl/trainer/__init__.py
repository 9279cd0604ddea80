"""The sequential trainer: streams -> methods -> score matrix, overlap, stability -> results on disk."""

from losia_cl.trainer.config import RunConfig
from losia_cl.trainer.experiment import RunOutcome, run_experiment
from losia_cl.trainer.sequential import SequentialTrainer

__all__ = ["RunConfig", "RunOutcome", "SequentialTrainer", "run_experiment"]
