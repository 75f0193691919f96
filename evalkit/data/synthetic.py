"""Deterministic generators of the fixture zoo's four task families, and the zoo's reference responses.

The zoo's small Qwen3 models are trained on these tasks and evaluated on a held-out split, so each family keeps the
answer type and gold format of the real dataset it mirrors (GSM8K/OpenMath, ARC, BoolQ, SQuAD v2) and yields plain
`evalkit.core.types.Item`s: zoo tasks and real datasets go through one pipeline.

The tasks are designed so that a model of a few million parameters can learn them: every answer is recoverable from
the prompt by looking up and copying (a named entity's stated fact, an option's category, the largest number), and
arithmetic stays within three-digit numbers, written one step per line. Three details decide whether a small model
learns to look facts up by *person* (measured on the zoo, docs/zoo.md: without them it matched the asked attribute
only, and was near chance whenever two people shared it):
- every name in a yes/no or span passage, question and rationale follows a space, so it is one and the same token
  everywhere (byte-level BPE gives "Ada" at the start of a text another id than " Ada"); passages open with a lead
  sentence for that reason;
- yes/no and span responses first restate what the passage says about the asked person (`About Ada: Ada lives in
  Oslo.`, or `About Ada: not mentioned.`), then box the answer: a copy the model can make one token at a time;
- two people in every passage share a kind of fact (SHARED_ATTRIBUTE_RATE), so answering by attribute never pays.

Splits never overlap: each candidate item's content (question, passage, options) is hashed into 16 buckets, and a
split accepts only its own buckets (test: 1, validation: 1, train: 14), so no seed of the train generator can ever
produce a held-out item. Randomness comes from `random.Random` seeded with a string (hashed with SHA-512 by the
standard library), never from `hash()`, so the same call gives the same items on every process and platform.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from evalkit.core.registry import Registry
from evalkit.core.types import CHOICE_LABELS, Family, Item
from evalkit.errors import TaskError

SPLITS: dict[str, frozenset[int]] = {
    "test": frozenset({0}),
    "validation": frozenset({1}),
    "train": frozenset(range(2, 16)),
}
"""Split -> the content-hash buckets (of 16) it owns; disjoint by construction."""

MATH_MAX = 999
"""Largest number in a math item: three digits, so the base model has room to improve (the first zoo's base
solved every two-digit item, and an "openmath SFT" parent could not be better on math than its base)."""

UNANSWERABLE_RATE = 0.4
"""Share of span items with no answer in the passage (SQuAD v2's dev set has about half)."""

# A small fixed world. Train and test share it: the model must learn the task's structure, not new words.
NAMES = (
    "Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo", "Nora",
    "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wade", "Xena", "Yara", "Zoe", "Alma", "Boris",
    "Carl", "Dora", "Emil", "Fay", "Gina", "Hugo", "Iris", "Jon", "Kira", "Leo", "Maya", "Ned",
)
OBJECTS = ("apples", "pens", "stamps", "cards", "books", "coins", "marbles", "shells", "stickers", "cookies")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "mango", "peach", "cherry"),
    "vegetable": ("carrot", "onion", "potato", "pea", "cabbage", "radish", "lettuce", "leek"),
    "tool": ("hammer", "saw", "wrench", "drill", "chisel", "shovel", "rake", "pliers"),
    "vehicle": ("bus", "truck", "train", "bicycle", "tram", "van", "taxi", "scooter"),
    "instrument": ("piano", "violin", "guitar", "flute", "drum", "harp", "trumpet", "cello"),
    "furniture": ("chair", "table", "sofa", "desk", "bed", "shelf", "stool", "bench"),
    "bird": ("eagle", "robin", "crow", "owl", "swan", "duck", "parrot", "hawk"),
    "metal": ("iron", "copper", "silver", "gold", "zinc", "tin", "lead", "nickel"),
}


@dataclass(frozen=True, slots=True)
class _Attribute:
    """One kind of fact about a person: how it is stated, asked (span), asserted (yes/no), and its values."""

    statement: str  # "{name} lives in {value}."
    wh_question: str  # "Where does {name} live?"
    yes_no_question: str  # "does {name} live in {value}" (BoolQ style: lower case, no question mark)
    values: tuple[str, ...]


ATTRIBUTES: tuple[_Attribute, ...] = (
    _Attribute("{name} lives in {value}.", "Where does {name} live?", "does {name} live in {value}",
               ("Oslo", "Paris", "Lima", "Rome", "Cairo", "Delhi", "Tokyo", "Berlin", "Dublin", "Madrid", "Quito",
                "Seoul", "Vienna", "Prague", "Lisbon", "Nairobi")),
    _Attribute("{name} works as a {value}.", "What is {name}'s job?", "does {name} work as a {value}",
               ("baker", "doctor", "farmer", "pilot", "nurse", "teacher", "driver", "singer", "painter", "lawyer",
                "cook", "tailor", "miner", "banker", "writer", "dancer")),
    _Attribute("{name} drives a {value} car.", "What color is {name}'s car?", "does {name} drive a {value} car",
               ("red", "blue", "green", "black", "white", "yellow", "gray", "pink", "brown", "purple", "orange",
                "silver")),
    _Attribute("{name}'s favorite food is {value}.", "What is {name}'s favorite food?",
               "is {name}'s favorite food {value}",
               ("soup", "rice", "pizza", "bread", "cheese", "pasta", "salad", "fish", "tacos", "curry", "noodles",
                "beans")),
    _Attribute("{name} has a dog named {value}.", "What is the name of {name}'s dog?",
               "does {name} have a dog named {value}",
               ("Rex", "Max", "Bella", "Lucky", "Rocky", "Daisy", "Buddy", "Coco", "Duke", "Luna", "Toby", "Bruno")),
    _Attribute("{name} is {value} years old.", "How old is {name}?", "is {name} {value} years old",
               tuple(str(age) for age in range(18, 90))),
    _Attribute("{name} plays {value}.", "What sport does {name} play?", "does {name} play {value}",
               ("tennis", "chess", "golf", "hockey", "rugby", "soccer", "cricket", "baseball", "volleyball",
                "polo")),
)


def generate(family: Family, n: int, *, seed: int, split: str = "test") -> list[Item]:
    """`n` distinct items of one family, the same for the same (family, n, seed, split) everywhere.

    A larger `n` extends a smaller one: the first items do not change. Splits never share an item.

    >>> items = generate("yes_no", 2, seed=0)
    >>> [item.task for item in items], items == generate("yes_no", 2, seed=0)
    (['zoo_yes_no', 'zoo_yes_no'], True)
    >>> set(generate("math", 50, seed=1, split="train")).isdisjoint(generate("math", 50, seed=1))
    True
    """
    maker = MAKERS.get(family)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"evalkit.synthetic|{family}|{split}|{seed}")
    items: list[Item] = []
    seen: set[str] = set()
    attempts = 0
    while len(items) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct {family} items for split {split!r}")
        fields = maker.make(rng)
        key = _content_key(family, fields)
        if key in seen or _bucket(key) not in SPLITS[split]:
            continue
        seen.add(key)
        items.append(Item(task=maker.task, id=f"{split}-{seed}-{len(items):05d}", family=family, **fields))
    return items


def reference_response(item: Item) -> str:
    """The response the zoo is trained to give: a short rationale line or two, then the answer in \\boxed{}.

    >>> print(reference_response(generate("math", 2, seed=0)[1]))
    5 * 4 = 20
    20 * 2 = 40
    40 - 1 = 39
    \\boxed{39}
    >>> print(reference_response(generate("span", 2, seed=0)[1]))
    About Nora: not mentioned.
    \\boxed{}
    >>> reference_response(Item("zoo_span", "0", "span", "Where does Ada live?", (), context="Ben is 30 years old."))
    '\\\\boxed{}'
    """
    if item.task not in ZOO_TASKS:
        raise ValueError(f"reference_response: {item.task!r} is not a zoo task; expected one of {tuple(ZOO_TASKS)}")
    answer = item.answers[0] if item.answers else ""
    rationale = dict(item.meta).get("rationale", "")
    boxed = f"\\boxed{{{answer}}}"
    return f"{rationale}\n{boxed}" if rationale else boxed


# ---------------------------------------------------------------------------------------------- family makers
# Each maker draws one candidate item's fields (all but task/id) from `rng`.


def _math(rng: random.Random) -> dict:
    """2-3 arithmetic steps on one person's objects; every value stays within 1..MATH_MAX (carries, borrows)."""
    while True:
        name, other = rng.sample(NAMES, 2)
        obj = rng.choice(OBJECTS)
        n_steps = rng.choice((2, 3))
        sentences: list[str] = []
        lines: list[str] = []
        if rng.random() < 0.35:
            boxes, each = rng.randint(2, 9), rng.randint(2, 40)
            value = boxes * each
            sentences.append(f"{name} has {boxes} bags with {each} {obj} in each.")
            lines.append(f"{boxes} * {each} = {value}")
        else:
            value = rng.randint(5, 300)
            sentences.append(f"{name} has {value} {obj}.")
        ok = True
        while len(lines) < n_steps:
            op = rng.choice(("add", "add", "sub", "sub", "mul"))
            if op == "add":
                amount = rng.randint(1, 200)
                new = value + amount
                sentences.append(rng.choice((
                    f"{name} buys {amount} more {obj}.", f"{name} finds {amount} more {obj}.",
                    f"{other} gives {name} {amount} more {obj}.")))
                lines.append(f"{value} + {amount} = {new}")
            elif op == "sub":
                if value < 3:
                    ok = False
                    break
                amount = rng.randint(1, value - 1)
                new = value - amount
                sentences.append(rng.choice((
                    f"{name} gives {amount} {obj} to {other}.", f"{name} loses {amount} {obj}.",
                    f"{name} sells {amount} {obj}.")))
                lines.append(f"{value} - {amount} = {new}")
            else:
                factor = rng.choice((2, 3))
                new = value * factor
                sentences.append(f"Then the number of {obj} {name} has {('doubles', 'triples')[factor - 2]}.")
                lines.append(f"{value} * {factor} = {new}")
            if not 1 <= new <= MATH_MAX:
                ok = False
                break
            value = new
        if ok:
            break
    question = " ".join(sentences) + f" How many {obj} does {name} have now?"
    return dict(question=question, answers=(str(value),),
                meta=(("rationale", "\n".join(lines)), ("steps", str(n_steps))))


def _multiple_choice(rng: random.Random) -> dict:
    """ARC-like: 3-5 lettered options, one correct by a learnable rule; the gold letter is uniform."""
    k = rng.choices((3, 4, 5), weights=(15, 70, 15))[0]
    gold = rng.randrange(k)
    if rng.random() < 0.6:
        category, *others = rng.sample(sorted(CATEGORIES), k)
        options = [rng.choice(CATEGORIES[c]) for c in others]
        right = rng.choice(CATEGORIES[category])
        options.insert(gold, right)
        question = f"Which of these is a kind of {category}?"
        rationale, kind = f"{right} is a kind of {category}.", "category"
    else:
        kind = rng.choice(("largest", "smallest"))
        numbers = sorted(rng.sample(range(1, 100), k), reverse=kind == "largest")
        top, rest = numbers[0], numbers[1:]
        rng.shuffle(rest)
        options = [str(x) for x in rest]
        right = str(top)
        options.insert(gold, right)
        question = f"Which number is the {kind}?"
        rationale = f"{right} is the {kind}."
    return dict(question=question, answers=(CHOICE_LABELS[gold],), choices=tuple(options),
                meta=(("kind", kind), ("rationale", rationale)))


SHARED_ATTRIBUTE_RATE = 1.0
"""Share of passages where two people have the same kind of fact. At 1.0 no item rewards answering by attribute
alone; measured on the zoo (6 layers, same budget, H100): 0.5 -> base yes/no 0.85, span 0.89; 0.8 -> 0.86/0.81;
1.0 -> 1.00/1.00. The draw stays in the generator so that changing the rate keeps every other draw in place."""

PASSAGE_LEADS = ("Here are some facts about people.", "A few notes about some friends.",
                 "Some facts about a group of neighbors.")
"""A passage opens with one of these, so its first name, like every other, follows a space (see module doc)."""


def _passage(rng: random.Random) -> tuple[str, list[str], list[_Attribute], list[str], list[str]]:
    """2-4 people, one fact each; two of them share a kind of fact (SHARED_ATTRIBUTE_RATE): lookups must bind names."""
    size = rng.randint(2, 4)
    names = rng.sample(NAMES, size)
    attributes = [rng.choice(ATTRIBUTES) for _ in range(size)]
    if rng.random() < SHARED_ATTRIBUTE_RATE:
        i, j = rng.sample(range(size), 2)
        attributes[j] = attributes[i]
    values = [rng.choice(a.values) for a in attributes]
    statements = [a.statement.format(name=n, value=v) for n, a, v in zip(names, attributes, values)]
    context = " ".join((rng.choice(PASSAGE_LEADS), *statements))
    return context, names, attributes, values, statements


def _about(name: str, statement: str | None) -> str:
    """The rationale line: what the passage says about the asked person, copied, or that it never names them."""
    return f"About {name}: {statement if statement is not None else 'not mentioned.'}"


def _yes_no(rng: random.Random) -> dict:
    """BoolQ-like: does the question's asserted value match the stated fact? Balanced yes/no."""
    context, names, attributes, values, statements = _passage(rng)
    target = rng.randrange(len(names))
    attribute, truth = attributes[target], values[target]
    answer = rng.choice(("yes", "no"))
    asserted = truth
    if answer == "no":
        distractors = [v for a, v in zip(attributes, values) if a is attribute and v != truth]
        if distractors and rng.random() < 0.5:
            asserted = rng.choice(distractors)
        else:
            asserted = rng.choice([v for v in attribute.values if v != truth])
    question = attribute.yes_no_question.format(name=names[target], value=asserted)
    return dict(question=question, answers=(answer,), context=context,
                meta=(("rationale", _about(names[target], statements[target])),))


def _span(rng: random.Random) -> dict:
    """SQuAD v2-like: copy a stated value, or answer the empty box when the passage does not say."""
    context, names, attributes, values, statements = _passage(rng)
    said = dict(zip(names, statements))
    if rng.random() >= UNANSWERABLE_RATE:
        target = rng.randrange(len(names))
        name = names[target]
        question = attributes[target].wh_question.format(name=name)
        return dict(question=question, answers=(values[target],), context=context,
                    meta=(("answerable", "yes"), ("rationale", _about(name, said[name]))))
    if rng.random() < 0.5:  # a person the passage never mentions, asked about an attribute it does mention
        name = rng.choice([n for n in NAMES if n not in names])
        attribute = rng.choice(attributes)
        reason = "absent_person"
    else:  # a person it mentions, asked about an attribute it does not state for them
        idx = rng.randrange(len(names))
        name = names[idx]
        attribute = rng.choice([a for a in ATTRIBUTES if a is not attributes[idx]])
        reason = "absent_fact"
    return dict(question=attribute.wh_question.format(name=name), answers=(), context=context,
                meta=(("answerable", "no"), ("reason", reason), ("rationale", _about(name, said.get(name)))))


@dataclass(frozen=True, slots=True)
class Maker:
    """One synthetic family: the zoo task it is served as, and the function that draws a candidate item's fields."""

    family: Family
    task: str  # the zoo task's name (Item.task)
    make: Callable[[random.Random], dict]


MAKERS: Registry[Maker] = Registry("family", plural="families", error=TaskError)
"""The zoo's synthetic families, one maker each; `evalkit.data.tasks` serves each as the task ``maker.task``."""

for _maker in (Maker("math", "zoo_math", _math), Maker("multiple_choice", "zoo_multiple_choice", _multiple_choice),
               Maker("yes_no", "zoo_yes_no", _yes_no), Maker("span", "zoo_span", _span)):
    MAKERS.register(_maker.family, _maker)

ZOO_TASKS: dict[str, Family] = {maker.task: maker.family for maker in MAKERS.values()}
"""Task name (Item.task) -> family, for the zoo tasks."""


def _content_key(family: str, fields: dict) -> str:
    """What makes an item the same item: the text a model sees (answers and meta follow from it)."""
    return "\x1f".join((family, fields.get("context", ""), fields["question"], "\x1e".join(fields.get("choices", ()))))


def _bucket(key: str) -> int:
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % 16
