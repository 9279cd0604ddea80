"""The data types of a task stream: :class:`Example`, :class:`Task`, :class:`Stream`.

All three are frozen dataclasses that validate their fields on construction
and raise :class:`~losia_cl.errors.DataError` (or
:class:`~losia_cl.errors.UnknownNameError` for an unknown metric) on bad
values, so a stream that exists is a stream that can be trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

from losia_cl.errors import DataError, UnknownNameError
from losia_cl.names import check_name, check_unique

from .metric_names import check_metric


#: Longest generation a task may ask for per test prompt (tokens).
MAX_NEW_TOKENS = 4096


@dataclass(frozen=True)
class Example:
    """One prompt and the answer a model should generate for it.

    Attributes:
        prompt: the model's input, verbatim (no chat template applied).
        answer: the reference output, verbatim; the scorer compares
            generations against it.

    Both are strings.  An integer is accepted and stored as its decimal text
    (``Example("2 + 1 =", 3).answer == "3"``): that is what a model generates
    for it.  Anything else (a float, whose text is ambiguous: ``3.0`` or ``3``?;
    a bool; None) raises :class:`DataError`: format it yourself.
    """

    prompt: str
    answer: str

    def __post_init__(self) -> None:
        for name in ("prompt", "answer"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, str(value))
            elif not isinstance(value, str):
                hint = f" (write the text to generate, e.g. f'{{x:g}}' gives {value:g})" if isinstance(value, float) else ""
                raise DataError(
                    f"Example.{name} must be a string or an integer, got {type(value).__name__}: {value!r:.60}{hint}"
                )


#: reads a dataset into a :class:`Task` for :meth:`Task.from_dataset`; set by
#: :mod:`losia_cl.streams.own_data` (imported with the package), the module that reads data
_dataset_reader: Callable[..., Task] | None = None


@dataclass(frozen=True)
class Task:
    """A named task: training, test and (optionally) eval examples, the metric, the generation length.

    Attributes:
        name: the task's name, unique within its stream; it becomes part of file names, so it is
            restricted to a safe character set (:mod:`losia_cl.names`) and unique ignoring case.
        train: training examples (non-empty; any iterable is stored as a tuple).
        test: held-out test examples (non-empty; stored as a tuple).
        metric: the name of the scorer that grades generations on ``test``
            (one of :func:`losia_cl.metrics.scorers.scorer_names`).
        max_new_tokens: how many tokens to generate per test prompt (1 to :data:`MAX_NEW_TOKENS`).
        eval: held-out examples for choosing hyperparameters (possibly empty;
            ``losia-cl tune`` scores on them, never on ``test``).
    """

    name: str
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    metric: str
    max_new_tokens: int
    eval: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        check_name("task", self.name, error=DataError)
        for split in ("train", "test", "eval"):
            examples = tuple(getattr(self, split))
            if not examples and split != "eval":
                raise DataError(f"task {self.name!r}: the {split} split is empty")
            for i, example in enumerate(examples):
                if not isinstance(example, Example):
                    raise DataError(
                        f"task {self.name!r}: {split}[{i}] must be an Example, got {type(example).__name__}"
                    )
            object.__setattr__(self, split, examples)
        check_metric(self.metric, where=f"task {self.name!r}")
        if (
            isinstance(self.max_new_tokens, bool)
            or not isinstance(self.max_new_tokens, int)
            or not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS
        ):
            raise DataError(
                f"task {self.name!r}: max_new_tokens must be an integer from 1 to {MAX_NEW_TOKENS}, "
                f"got {self.max_new_tokens!r}"
            )

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        *,
        prompt: str = "prompt",
        answer: str = "answer",
        labels: Sequence[str] | None = None,
        name: str = "task",
        metric: str = "accuracy",
        max_new_tokens: int | None = None,
        test: Any = None,
        eval: Any = None,  # noqa: A002 - the split's name, as Task.eval
        test_fraction: float = 0.1,
        class_label_names: bool = True,
    ) -> Task:
        """A task from a ``datasets.Dataset``, a ``DatasetDict`` or a list of dicts.

        Reading a dataset is the job of :func:`~losia_cl.streams.own_data.task_from_dataset`, which this
        method calls with the same arguments (see it for their meaning); this module imports nothing
        that reads data, so the reader is looked up here when the method runs.
        """
        if _dataset_reader is None:  # pragma: no cover - the package's __init__ imports own_data
            raise RuntimeError("losia_cl.streams.own_data is not imported")
        return _dataset_reader(
            dataset, prompt=prompt, answer=answer, labels=labels, name=name, metric=metric,
            max_new_tokens=max_new_tokens, test=test, eval=eval, test_fraction=test_fraction,
            class_label_names=class_label_names,
        )

    def split(self, name: str) -> tuple[Example, ...]:
        """The examples of split ``"train"``, ``"test"`` or ``"eval"``."""
        if name not in ("train", "test", "eval"):
            raise DataError(f"task {self.name!r}: unknown split {name!r}; splits: train, test, eval")
        return getattr(self, name)


@dataclass(frozen=True)
class Stream:
    """An ordered sequence of tasks, learned one after the other.

    Attributes:
        name: the stream's name (``"demo"``, ``"trace"``, a manifest's name).
        tasks: the tasks in training order (non-empty, unique names).
        description: one line saying what the stream is.
    """

    name: str
    tasks: tuple[Task, ...]
    description: str = field(default="")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataError(f"Stream.name must be a non-empty string, got {self.name!r}")
        tasks = tuple(self.tasks)
        if not tasks:
            raise DataError(f"stream {self.name!r} has no tasks")
        for i, task in enumerate(tasks):
            if not isinstance(task, Task):
                raise DataError(f"stream {self.name!r}: tasks[{i}] must be a Task, got {type(task).__name__}")
        check_unique("task", (task.name for task in tasks), error=DataError, where=f"stream {self.name!r}")
        object.__setattr__(self, "tasks", tasks)

    @property
    def task_names(self) -> list[str]:
        """The task names in training order."""
        return [task.name for task in self.tasks]

    def task(self, name: str) -> Task:
        """The task called ``name``; :class:`UnknownNameError` lists the stream's tasks otherwise."""
        for task in self.tasks:
            if task.name == name:
                return task
        err = UnknownNameError("task", name, self.task_names)
        err.args = (f"stream {self.name!r}: {err}",)
        raise err

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    @overload
    def __getitem__(self, key: int | str) -> Task: ...

    @overload
    def __getitem__(self, key: slice) -> Stream: ...

    def __getitem__(self, key: int | str | slice) -> Task | Stream:
        """``stream[0]`` (position), ``stream["name"]`` (as :meth:`task`), ``stream[1:]`` (a shorter stream)."""
        if isinstance(key, str):
            return self.task(key)
        if isinstance(key, slice):
            return Stream(name=self.name, tasks=self.tasks[key], description=self.description)
        if isinstance(key, bool) or not isinstance(key, int):
            raise TypeError(f"stream indices are integers, task names or slices, not {type(key).__name__}")
        if not -len(self.tasks) <= key < len(self.tasks):
            raise IndexError(f"stream {self.name!r} has {len(self.tasks)} tasks; index {key} is out of range")
        return self.tasks[key]

