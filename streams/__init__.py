"""Task streams for continual learning: the data types, the registry and the built-in streams.

>>> from losia_cl.streams import load_stream
>>> stream = load_stream("demo", num_train=16, num_test=8, seed=0)
>>> [(task.name, len(task.train), len(task.test), task.metric) for task in stream][:2]
[('category', 16, 8, 'accuracy'), ('position', 16, 8, 'accuracy')]

Built-in streams: ``demo`` (embedded, offline; :mod:`.demo`), ``trace``
(the TRACE benchmark read from disk; :mod:`.trace`) and ``cl-benchmark`` (O-LoRA's
classification benchmark read from disk; :mod:`.cl_benchmark`).  A path ending in
``.toml`` loads a custom stream from a manifest (:mod:`.manifest`); a path
ending in ``.json``, ``.jsonl``, ``.csv``, ``.tsv`` or ``.parquet`` is a
one-task stream (:mod:`.own_data`), and :meth:`Task.from_dataset` builds a task
from a ``datasets.Dataset``.  Records become examples through a
:class:`RecordMapping` (fields or format strings, integer labels).
Tokenization for training and generation lives in :mod:`.tokenization`
(imported on demand; it is the only module that uses torch/transformers/datasets,
and only inside its functions).
"""

from __future__ import annotations

from . import cl_benchmark as _cl_benchmark  # noqa: F401  registers "cl-benchmark"
from . import demo as _demo  # noqa: F401  registers "demo"
from . import trace as _trace  # noqa: F401  registers "trace"
from .manifest import load_manifest
from .metric_names import known_metrics
from .mapping import RecordMapping
from .own_data import load_data_file
from .records import read_examples, read_records
from .registry import describe_streams, load_stream, register_stream, stream_names, stream_options
from .types import Example, Stream, Task

__all__ = [
    "Example",
    "RecordMapping",
    "Stream",
    "Task",
    "describe_streams",
    "known_metrics",
    "load_data_file",
    "load_manifest",
    "load_stream",
    "read_examples",
    "read_records",
    "register_stream",
    "stream_names",
    "stream_options",
]
