"""The learning-rate envelope shared by every method (LoSiA's included): a ``LambdaLR``."""

from losia_cl.optim.lr import envelope_scheduler

__all__ = ["envelope_scheduler"]
