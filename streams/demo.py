"""The embedded ``demo`` stream: four rule-based tasks generated offline from a seed.

Every prompt shows the same kind of input, a numbered list of four items (one
animal, one colour, one fruit, one tool, in random order), and asks one
question about the list::

    Items: 1. pear 2. wolf 3. chisel 4. green
    Question: Which item comes after wolf?
    Answer:

All four tasks answer with one of the listed words, so they share an output
format and differ in the rule that picks the word:

============  ======================================  ======================  ===============
task          question                                answer                  max_new_tokens
============  ======================================  ======================  ===============
category      Which item is a tool?                   ``chisel``              6
position      What is item 3?                         ``chisel``              6
successor     Which item comes after wolf?            ``chisel``              6
predecessor   Which item comes before chisel?         ``wolf``                6
============  ======================================  ======================  ===============

Forgetting therefore comes from interference between rules (the last two are
mirror images of each other), not from a later task's answer format taking
over: earlier tasks are partly kept, partly lost, and methods can differ.
An earlier design answered in four conflicting formats (``TOOL``, ``#3``,
a word, ``true``/``false``); there every earlier task fell to exactly 0 after
the next task for every method (forgetting 0.89–1.0, AP 0.24–0.25 with
SmolLM2-135M-Instruct), so the demo could not tell methods apart.

One extra task, ``check`` ("Is lion on the list?" → ``true``/``false``, 4
new tokens), is loaded only when named (``tasks=[...]``): it answers in its own
format, which a tiny model learns quickly (the Avalanche example uses it).

Each rule needs one look-up.  All four are scored by exact match
(``accuracy``).  Held-out examples are solvable: test and eval prompts never
occur among the training prompts, but they are built from the same 48 words.
Labels are balanced (each task cycles through its answer classes: the asked
kind, the asked number, the place of the answer in the list).  Each task
draws its examples from its own random generator seeded by ``(seed, task
name)``: test examples first, then eval examples, then training examples, so
the test and eval sets of a seed change with neither ``num_train`` nor the
task selection.
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

DEFAULT_NUM_TRAIN = 64
DEFAULT_NUM_TEST = 16
DEFAULT_NUM_EVAL = 24
MAX_EXAMPLES = 20_000  # per task, train, test and eval together

Items = list[tuple[str, str]]  # (category, word) in list order


def _draw_items(rng: random.Random) -> Items:
    items = [(name, rng.choice(words)) for name, words in CATEGORIES]
    rng.shuffle(items)
    return items


def _render(items: Items, question: str) -> str:
    listing = " ".join(f"{i}. {word}" for i, (_, word) in enumerate(items, start=1))
    return f"Items: {listing}\nQuestion: {question}\nAnswer:"


def _category(rng: random.Random, label: int) -> Example:
    """label: index of the asked category; the answer is the listed word of that kind."""
    items = _draw_items(rng)
    category = CATEGORY_NAMES[label]
    return Example(_render(items, f"Which item is {_ARTICLE[category]} {category}?"), dict(items)[category])


def _position(rng: random.Random, label: int) -> Example:
    """label: 0-based position asked for; the answer is the word at that number."""
    items = _draw_items(rng)
    return Example(_render(items, f"What is item {label + 1}?"), items[label][1])


def _successor(rng: random.Random, label: int) -> Example:
    """label: 0-based position of the asked word (never the last item)."""
    items = _draw_items(rng)
    return Example(_render(items, f"Which item comes after {items[label][1]}?"), items[label + 1][1])


def _predecessor(rng: random.Random, label: int) -> Example:
    """label: 0-based position of the answer (never the last item); the asked word follows it."""
    items = _draw_items(rng)
    return Example(_render(items, f"Which item comes before {items[label + 1][1]}?"), items[label][1])


def _check(rng: random.Random, label: int) -> Example:
    """label: 0 → the asked word is on the list ("true"), 1 → it is not ("false")."""
    items = _draw_items(rng)
    words = [word for _, word in items]
    if label == 0:
        word = rng.choice(words)
    else:
        word = rng.choice([w for _, pool in CATEGORIES for w in pool if w not in words])
    return Example(_render(items, f"Is {word} on the list?"), "true" if label == 0 else "false")


_ARTICLE = {"animal": "an", "color": "a", "fruit": "a", "tool": "a"}


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
    DemoTaskSpec("category", _category, NUM_ITEMS, 6, "the listed word of the asked kind"),
    DemoTaskSpec("position", _position, NUM_ITEMS, 6, "the word at the asked number"),
    DemoTaskSpec("successor", _successor, NUM_ITEMS - 1, 6, "the word right after the asked word"),
    DemoTaskSpec("predecessor", _predecessor, NUM_ITEMS - 1, 6, "the word right before the asked word"),
)
DEMO_TASK_NAMES: tuple[str, ...] = tuple(spec.name for spec in DEMO_TASKS)
#: Tasks loaded only when asked for by name (``tasks=[...]``): not part of the default stream.
EXTRA_TASKS: tuple[DemoTaskSpec, ...] = (
    DemoTaskSpec("check", _check, 2, 4, "whether the asked word is on the list: true/false"),
)


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


def demo_task(spec: DemoTaskSpec, *, num_train: int, num_test: int, seed: int, num_eval: int = 0) -> Task:
    """One demo task: ``num_test`` test examples drawn first, then ``num_eval`` eval, then ``num_train`` train."""
    examples = generate_examples(spec, count=num_test + num_eval + num_train, seed=seed)
    test, evaluation = examples[:num_test], examples[num_test:num_test + num_eval]
    train = examples[num_test + num_eval:]
    order = random.Random(f"losia-cl-demo-order:{seed}:{spec.name}")
    order.shuffle(test)
    order.shuffle(train)
    return Task(name=spec.name, train=tuple(train), test=tuple(test), metric="accuracy",
                max_new_tokens=spec.max_new_tokens, eval=tuple(evaluation))


@register_stream(
    "demo",
    "embedded offline stream (default): 4 rule-based tasks on a 4-item list, "
    "one shared answer format (a word of the list), exact-match accuracy",
)
def load_demo(
    *,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_test: int = DEFAULT_NUM_TEST,
    num_eval: int = DEFAULT_NUM_EVAL,
    seed: int = 0,
    tasks: str | Sequence[str] | None = None,
) -> Stream:
    """The ``demo`` stream.

    Args:
        num_train: training examples per task (default 64: 8 steps of 8).
        num_test: test examples per task (default 16; keeps the default run within its time budget).
        num_eval: eval examples per task, for ``losia-cl tune`` (default 24; disjoint from train and test).
        seed: the examples depend on it, and on nothing else.
        tasks: a subset and order of ``category``, ``position``, ``successor``,
            ``predecessor`` and the extra ``check`` (list or comma-separated string);
            default the first four, in that order.
    """
    num_train = _count("num_train", num_train)
    num_test = _count("num_test", num_test)
    num_eval = _count("num_eval", num_eval)
    seed = check_seed(seed)
    total = num_train + num_test + num_eval
    if total > MAX_EXAMPLES:
        raise ConfigError(f"num_train + num_test + num_eval must be at most {MAX_EXAMPLES}, got {total}")
    specs = {spec.name: spec for spec in DEMO_TASKS + EXTRA_TASKS}
    chosen = select_tasks(list(specs), DEMO_TASK_NAMES if tasks is None else tasks, kind="demo task")
    built = tuple(demo_task(specs[name], num_train=num_train, num_test=num_test, num_eval=num_eval, seed=seed)
                  for name in chosen)
    logger.debug("demo stream: %d tasks, %d train / %d test each, seed %d", len(built), num_train, num_test, seed)
    return Stream(name="demo", tasks=built, description="embedded offline demo stream")


def _count(option: str, value: object) -> int:
    checked = check_limit(option, value)
    if checked is None:
        raise ConfigError(f"{option} must be a positive integer, got None")
    return checked
