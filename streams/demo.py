"""The embedded ``demo`` stream: four rule-based tasks generated offline from a seed.

Every prompt shows the same kind of input, a numbered list of four items (one
animal, one colour, one fruit, one tool, in random order), and asks one
question about one of the listed words::

    Items: 1. pear 2. wolf 3. chisel 4. green
    Question: Which number is chisel?
    Answer:

The four tasks ask different questions and, on purpose, answer in four
conflicting conventions, so that fine-tuning on a later task pulls the output
style away from the earlier ones (measurable forgetting):

============  ======================================  =====================  ===============
task          question                                answer                 max_new_tokens
============  ======================================  =====================  ===============
category      What kind of thing is chisel?           ``TOOL`` (upper case)  6
position      Which number is chisel?                 ``#3``                 4
successor     Which item comes after wolf?            ``chisel`` (the next   6
                                                      item's word)
check         Is lion on the list?                    ``true`` / ``false``   4
============  ======================================  =====================  ===============

Each rule needs one look-up (the asked word's kind, its place in the list,
or its presence).  Measured with SmolLM2-135M-Instruct (plain prompts, full
fine-tuning, AdamW lr 1e-4, batch 8, 32 steps per task, 24 test examples):
the base model scores 0 on all four; each task reaches 0.83–1.0 right after
its own training, and every earlier task falls to 0 after the next one (the
output convention is taken over).  Two first designs were not learnable in
32 steps and were dropped: "What kind of thing is item 3?" (two look-ups)
stayed at chance (0.28), and "Is pear a kind of tool?" at 0.54.

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

#: The item categories and their words (each word belongs to one category only; words that are
#: also something else, like "orange", "lime", "peach" or "kiwi", are left out).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("animal", ("cat", "dog", "horse", "cow", "pig", "sheep", "goat", "lion", "tiger", "bear", "wolf", "rabbit")),
    ("color", ("red", "blue", "green", "yellow", "black", "white", "pink", "brown", "purple", "gray", "crimson", "indigo")),
    ("fruit", ("apple", "banana", "grape", "cherry", "pear", "mango", "melon", "strawberry", "pineapple", "apricot",
               "papaya", "watermelon")),
    ("tool", ("hammer", "wrench", "drill", "axe", "shovel", "rake", "chisel", "pliers", "screwdriver", "spanner", "mallet", "crowbar")),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(name for name, _ in CATEGORIES)
NUM_ITEMS = len(CATEGORIES)

DEFAULT_NUM_TRAIN = 128
DEFAULT_NUM_TEST = 24
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
    """label: index of the asked word's category."""
    items = _draw_items(rng)
    category = CATEGORY_NAMES[label]
    word = dict(items)[category]
    return Example(_render(items, f"What kind of thing is {word}?"), category.upper())


def _position(rng: random.Random, label: int) -> Example:
    """label: 0-based position of the asked word."""
    items = _draw_items(rng)
    return Example(_render(items, f"Which number is {items[label][1]}?"), f"#{label + 1}")


def _successor(rng: random.Random, label: int) -> Example:
    """label: 0-based position of the asked word (never the last item)."""
    items = _draw_items(rng)
    return Example(_render(items, f"Which item comes after {items[label][1]}?"), items[label + 1][1])


def _check(rng: random.Random, label: int) -> Example:
    """label: 0 → the asked word is on the list ("true"), 1 → it is not ("false")."""
    items = _draw_items(rng)
    words = [word for _, word in items]
    if label == 0:
        word = rng.choice(words)
    else:
        word = rng.choice([w for _, pool in CATEGORIES for w in pool if w not in words])
    return Example(_render(items, f"Is {word} on the list?"), "true" if label == 0 else "false")


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
    DemoTaskSpec("category", _category, NUM_ITEMS, 6, "the asked word's kind, in upper case: ANIMAL/COLOR/FRUIT/TOOL"),
    DemoTaskSpec("position", _position, NUM_ITEMS, 4, "the asked word's number in the list, as #1..#4"),
    DemoTaskSpec("successor", _successor, NUM_ITEMS - 1, 6, "the word right after the asked word in the list"),
    DemoTaskSpec("check", _check, 2, 4, "whether the asked word is on the list: true/false"),
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
        num_test: test examples per task (default 24; keeps the default run within its time budget).
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
