"""The embedded ``demo`` stream: four rule-based tasks generated offline from a seed.

Every prompt shows the same kind of input, a numbered list of four items (one
animal, one colour, one fruit, one tool, in random order), and asks one
question about it::

    Items: 1. pear 2. wolf 3. chisel 4. green
    Question: Which number is the tool?
    Answer:

The four tasks ask different questions and, on purpose, answer in four
conflicting conventions, so that fine-tuning on a later task pulls the output
style away from the earlier ones (measurable forgetting):

============  ======================================  =====================  ===============
task          question                                answer                 max_new_tokens
============  ======================================  =====================  ===============
category      What kind of thing is item 3?           ``TOOL`` (upper case)  6
position      Which number is the tool?               ``#3``                 4
successor     Which item comes after the animal?      ``chisel`` (the next   6
                                                      item's word)
check         Is item 3 the fruit?                    ``true`` / ``false``   4
============  ======================================  =====================  ===============

All four are scored by exact match (``accuracy``).  The rules are simple, so
held-out examples are solvable: test prompts never occur among the training
prompts, but they are built from the same 48 words.  Labels are balanced
(each task cycles through its answer classes).  Each task draws its examples
from its own random generator seeded by ``(seed, task name)``; test examples
are drawn first, so the test set of a seed does not change with ``num_train``
or with the task selection.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from losia_cl.errors import ConfigError

from .registry import register_stream
from .selection import check_limit, check_seed, select_tasks
from .types import Example, Stream, Task

logger = logging.getLogger(__name__)

#: The item categories and their words (each word belongs to exactly one category).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("animal", ("cat", "dog", "horse", "cow", "pig", "sheep", "goat", "lion", "tiger", "bear", "wolf", "rabbit")),
    ("color", ("red", "blue", "green", "yellow", "black", "white", "pink", "brown", "purple", "gray", "violet", "indigo")),
    ("fruit", ("apple", "banana", "grape", "lemon", "cherry", "peach", "pear", "mango", "plum", "melon", "kiwi", "strawberry")),
    ("tool", ("hammer", "wrench", "drill", "axe", "shovel", "rake", "chisel", "pliers", "screwdriver", "spanner", "mallet", "crowbar")),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(name for name, _ in CATEGORIES)
NUM_ITEMS = len(CATEGORIES)

DEFAULT_NUM_TRAIN = 128
DEFAULT_NUM_TEST = 40
MAX_EXAMPLES = 20_000  # per task, train and test together

Items = list[tuple[str, str]]  # (category, word) in list order


def _draw_items(rng: random.Random) -> Items:
    items = [(name, rng.choice(words)) for name, words in CATEGORIES]
    rng.shuffle(items)
    return items


def _render(items: Items, question: str) -> str:
    listing = " ".join(f"{i}. {word}" for i, (_, word) in enumerate(items, start=1))
    return f"Items: {listing}\nQuestion: {question}\nAnswer:"


def _category(rng: random.Random, label: int) -> Example:
    """label: index of the asked item's category."""
    items = _draw_items(rng)
    category = CATEGORY_NAMES[label]
    position = [c for c, _ in items].index(category) + 1
    return Example(_render(items, f"What kind of thing is item {position}?"), category.upper())


def _position(rng: random.Random, label: int) -> Example:
    """label: 0-based position of the asked category."""
    items = _draw_items(rng)
    category = items[label][0]
    return Example(_render(items, f"Which number is the {category}?"), f"#{label + 1}")


def _successor(rng: random.Random, label: int) -> Example:
    """label: 0-based position of the asked category (never the last item)."""
    items = _draw_items(rng)
    category = items[label][0]
    return Example(_render(items, f"Which item comes after the {category}?"), items[label + 1][1])


def _check(rng: random.Random, label: int) -> Example:
    """label: 0 → the statement is true, 1 → false."""
    items = _draw_items(rng)
    position = rng.randrange(NUM_ITEMS)
    actual = items[position][0]
    category = actual if label == 0 else rng.choice([c for c in CATEGORY_NAMES if c != actual])
    return Example(_render(items, f"Is item {position + 1} the {category}?"), "true" if label == 0 else "false")


@dataclass(frozen=True)
class DemoTaskSpec:
    """How one demo task is generated.

    Attributes:
        name: the task's name.
        make: draws one example from a generator, given the answer class to produce.
        num_classes: how many answer classes ``make`` knows (examples cycle through them).
        max_new_tokens: generation length of the task.
        summary: one line for the documentation.
    """

    name: str
    make: Callable[[random.Random, int], Example]
    num_classes: int
    max_new_tokens: int
    summary: str


#: The demo tasks in their default training order.
DEMO_TASKS: tuple[DemoTaskSpec, ...] = (
    DemoTaskSpec("category", _category, NUM_ITEMS, 6, "kind of item k, in upper case: ANIMAL/COLOR/FRUIT/TOOL"),
    DemoTaskSpec("position", _position, NUM_ITEMS, 4, "number of the item of a category, as #1..#4"),
    DemoTaskSpec("successor", _successor, NUM_ITEMS - 1, 6, "the word right after the item of a category"),
    DemoTaskSpec("check", _check, 2, 4, "whether item k is of a category: true/false"),
)
DEMO_TASK_NAMES: tuple[str, ...] = tuple(spec.name for spec in DEMO_TASKS)


def generate_examples(spec: DemoTaskSpec, *, count: int, seed: int) -> list[Example]:
    """``count`` examples of a demo task with pairwise distinct prompts, deterministic in ``seed``."""
    rng = random.Random(f"losia-cl-demo:{seed}:{spec.name}")
    seen: set[str] = set()
    examples: list[Example] = []
    attempts = 0
    while len(examples) < count:
        attempts += 1
        if attempts > 100 * count:  # pragma: no cover - the prompt space is millions large
            raise ConfigError(f"demo task {spec.name!r}: cannot draw {count} distinct examples")
        example = spec.make(rng, len(examples) % spec.num_classes)
        if example.prompt not in seen:
            seen.add(example.prompt)
            examples.append(example)
    return examples


def demo_task(spec: DemoTaskSpec, *, num_train: int, num_test: int, seed: int) -> Task:
    """One demo task: ``num_test`` test examples drawn first, then ``num_train`` training examples."""
    examples = generate_examples(spec, count=num_test + num_train, seed=seed)
    test, train = examples[:num_test], examples[num_test:]
    order = random.Random(f"losia-cl-demo-order:{seed}:{spec.name}")
    order.shuffle(test)
    order.shuffle(train)
    return Task(name=spec.name, train=tuple(train), test=tuple(test), metric="accuracy",
                max_new_tokens=spec.max_new_tokens)


@register_stream(
    "demo",
    "embedded offline stream (default): 4 rule-based tasks on a 4-item list, "
    "conflicting answer formats, exact-match accuracy",
)
def load_demo(
    *,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_test: int = DEFAULT_NUM_TEST,
    seed: int = 0,
    tasks: str | Sequence[str] | None = None,
) -> Stream:
    """The ``demo`` stream.

    Args:
        num_train: training examples per task (default 128).
        num_test: test examples per task (default 40).
        seed: the examples depend on it, and on nothing else.
        tasks: a subset and order of ``category``, ``position``, ``successor``,
            ``check`` (list or comma-separated string); default all four, in that order.
    """
    num_train = _count("num_train", num_train)
    num_test = _count("num_test", num_test)
    seed = check_seed(seed)
    if num_train + num_test > MAX_EXAMPLES:
        raise ConfigError(f"num_train + num_test must be at most {MAX_EXAMPLES}, got {num_train + num_test}")
    chosen = select_tasks(DEMO_TASK_NAMES, tasks, kind="demo task")
    specs = {spec.name: spec for spec in DEMO_TASKS}
    built = tuple(demo_task(specs[name], num_train=num_train, num_test=num_test, seed=seed) for name in chosen)
    logger.debug("demo stream: %d tasks, %d train / %d test each, seed %d", len(built), num_train, num_test, seed)
    return Stream(name="demo", tasks=built, description="embedded offline demo stream")


def _count(option: str, value: object) -> int:
    checked = check_limit(option, value)
    if checked is None:
        raise ConfigError(f"{option} must be a positive integer, got None")
    return checked
