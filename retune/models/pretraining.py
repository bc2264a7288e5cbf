"""Task-agnostic pretraining data for the default model: copying lines of random symbols, with small edits.

The paper's LLaMA-7B brings from pretraining the skill every recursive call needs: copy the problem, minus a
little, into ``Call: ...``; copy a returned value, plus a little, into the answer. The default model is built
from a config and has no such skill, so it learns it here once, on random content at lengths far beyond any
task's training lengths, in the framework's text protocol (``Solution:``/``Call:``/``Return:``/``Answer:``
lines) but never in the format of any task. Every record is a function of ``Random(f"{seed}/{index}")``.

A *line* mixes random words, bracketed lists (of bits, digits, signed integers, letters or booleans) and
digit strings (sometimes two of the same length joined by an operator). A record asks for one of:

* ``copy``: the line again;
* ``smaller``: the line with the first item of every list and the first digit of every number removed
  (the shape of every "minus first element" recursion);
* ``rewrite``: other words around the same lists and numbers;
* ``compare``: ``True`` or ``False``: is the first symbol (first list item or digit) of the problem line the
  same as that of a returned line (the lookups of a combine step: what the problem starts with, what came back);
* ``grow``: a returned line with one item (or digit) put in front of each list (or number), the item
  being the first one of the first list (or number) of the problem line (the shape of a combine that
  extends a returned value);
* ``firsts`` (not in :data:`EDITS`; in the shipped weights' mix): the first symbol of every list and number of the
  problem line, then ``;`` and the first symbol of the returned line (the inputs of a combine step that looks at
  the head of *each* argument and at what came back, e.g. both leading digits of ``a - b`` and a returned carry).

* ``arith`` (not in :data:`EDITS`): after the same lines, an instruction to compute a small expression over the
  first items of the problem line's first list (``array[i]``) and of the returned list (``return[j]``): sums,
  differences, ``max``, ``min`` and ``==``; the answer is its value, or the returned list with the value put in front
  (the arithmetic of a combine step that looks items up and adds, compares or keeps the larger, over values larger
  than any one list item).

* ``flags`` (not in :data:`EDITS`): a problem line with a named flag (``..., some words True``, or in front:
  ``some words False: ...``), answered one line below its problem or two (after an instruction line): the flag, the
  flag in brackets, or one of two numbers the instruction names (``Write 4 if some words else 7.``) (the reading of a
  flag that a decision depends on, wherever the line's lists put it).

* ``sums`` (not in :data:`EDITS`): ``arith`` narrowed to one sum of two looked-up small numbers, alone, as the
  second term of a ``max`` or compared with a third (``Compute array[0] + return[1].``, ``Compute max(return[0],
  array[1] + return[2]).``, ``Compute return[0] == array[0] + return[2].``), over the first three items of a
  problem line's list of small integers and of a returned list (after a call, as a combine reads them), or over the
  first three items of a problem line's two lists (``first[i]``, ``second[i]``, answered right below it, as a
  decision that compares items across two lists reads them); the answer is the value, or ``True``/``False``. Never
  a value put in front of a list (``arith``'s form that a combine of digits shares).

* ``sumfront`` (not in :data:`EDITS`): ``sums`` over a problem line's list and a returned one, its sum or ``max``
  put in front of the returned list (``Put max(return[0], array[1] + return[2]) in front of return.`` ->
  ``[7, 5, 3]``): the shape of a combine that extends a returned list of values (with the ``numbers`` tokenizer
  the value is one token, as the returned items are).

Which edits a record may ask for, and how often, is the ``edits`` setting (:data:`EDITS` by default; each stage
of the shipped weights' pretraining has its own mix, :func:`stage_settings`; another mix draws other records).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import string
import tempfile
from pathlib import Path

from retune.core.text import ANSWER, CALL, RETURN, SOLUTION

MAX_ITEMS = 64
PRETRAINING_FILE = "pretraining.json"  # what a pretrained model directory records of its pretraining
MAX_LINE = 240  # characters of a line; longer draws are redrawn
_WORD_RUN = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
KINDS = ("bits", "digits", "ints", "letters", "bools")
OPERATORS = "-/%&|^~#@=<>"  # not + or *: "a + b" and "a * b" are the formats of built-in tasks
# The basic mix of edits and their weights (the order and weights fix which record an index draws): the default of
# pretraining_records (so the records of the first shipped weights, and those replayed in fine-tuning other models
# than the default, TrainConfig.replay_edits); the shipped weights' own mixes are in stage_settings
EDITS = {"copy": 2, "smaller": 4, "rewrite": 2, "grow": 2, "compare": 2}
ALL_EDITS = (*EDITS, "firsts", "arith", "flags", "sums", "sumfront")


def _word(rng: random.Random) -> str:
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))
    return word.capitalize() if rng.random() < 0.15 else word


def _words(rng: random.Random, lo: int = 1, hi: int = 6) -> str:
    text = " ".join(_word(rng) for _ in range(rng.randint(lo, hi)))
    return text + rng.choice(["", "", "", ":", ","])


def _size(rng: random.Random) -> int:
    """A list or number size: log-uniform over 1..MAX_ITEMS, so long ones are common but not dominant."""
    return max(1, min(MAX_ITEMS, int(round(2 ** rng.uniform(0, 6)))))


def _item(kind: str, rng: random.Random) -> str:
    if kind == "bits":
        return str(rng.randint(0, 1))
    if kind == "digits":
        return str(rng.randint(0, 9))
    if kind == "ints":
        return str(rng.randint(-9, 9) if rng.random() < 0.6 else rng.randint(-99, 99))
    if kind == "letters":
        return rng.choice(string.ascii_lowercase)
    return rng.choice(["True", "False"])


class Line:
    """A line as chunks: ``("text", str)``, ``("list", [items])``, ``("number", digits)`` and separators."""

    def __init__(self, chunks: list[tuple[str, object]]):
        self.chunks = chunks

    def render(self) -> str:
        out = []
        for kind, value in self.chunks:
            if kind == "list":
                out.append("[" + ", ".join(value) + "]")
            else:
                out.append(str(value))
        return "".join(out)

    def smaller(self) -> Line:
        chunks = []
        for kind, value in self.chunks:
            if kind == "list" and len(value) > 1:
                value = value[1:]
            elif kind == "number" and len(value) > 1:
                value = value[1:]
            chunks.append((kind, value))
        return Line(chunks)

    def grow(self, item: str, digit: str) -> Line:
        chunks = []
        for kind, value in self.chunks:
            if kind == "list":
                value = [item, *value]
            elif kind == "number":
                value = digit + value
            chunks.append((kind, value))
        return Line(chunks)

    def rewrite(self, rng: random.Random) -> Line:
        """Each run of words replaced by another run of random words (separators and punctuation kept)."""
        def words(_match) -> str:
            return " ".join(_word(rng) for _ in range(rng.randint(1, 6)))

        return Line([(kind, _WORD_RUN.sub(words, value) if kind == "text" else value) for kind, value in self.chunks])

    def with_first_symbol(self, symbol: str) -> Line:
        """The line with the first item of its first list (or the first digit of its first number, when that
        comes first) replaced by ``symbol``."""
        chunks = list(self.chunks)
        for index, (kind, value) in enumerate(chunks):
            if kind == "list" and value:
                chunks[index] = (kind, [symbol, *value[1:]])
                break
            if kind == "number" and value:
                chunks[index] = (kind, (symbol if symbol.isdigit() and len(symbol) == 1 else "7") + value[1:])
                break
        return Line(chunks)

    def first_items(self) -> tuple[str | None, str | None]:
        item = next((v[0] for k, v in self.chunks if k == "list" and v), None)
        digit = next((v[0] for k, v in self.chunks if k == "number" and v), None)
        return item, digit


def _longest(*lines: Line) -> int:
    """The most items of any list or digits of any number of the lines (0 without either)."""
    return max([len(v) for line in lines for k, v in line.chunks if k in ("list", "number")] or [0])


def _after_return(line: Line, returned: Line) -> str:
    """The prompt of a combine-shaped record: the problem line, its call (the line made smaller) and ``returned``."""
    return f"{line.render()}{SOLUTION}{CALL}{line.smaller().render()}\n{RETURN}{returned.render()}\n{ANSWER}"


def _returned_size(rng: random.Random) -> int:
    """How many items a returned list of ``arith`` or ``sums`` holds: log-uniform over 1..~40."""
    return max(1, int(round(2 ** rng.uniform(0, 5.3))))


def _firsts(line: Line) -> list[str]:
    """The first item of every list and the first digit of every number of the line, in order."""
    return [str(v[0]) for k, v in line.chunks if k in ("list", "number") and v]


def _first_symbol(line: Line) -> str:
    """The first item of the line's first list or first digit of its first number, whichever comes first."""
    return next(iter(_firsts(line)), "")


def random_line(rng: random.Random, kinds: dict[str, float] | None = None) -> Line:
    """Words, lists and numbers in one of a few generic shapes, at most ``MAX_LINE`` characters; ``kinds``
    weighs the kinds of list item (default: each of :data:`KINDS` alike)."""
    while True:
        line = _draw_line(rng, kinds)
        if len(line.render()) <= MAX_LINE:
            return line


def _draw_line(rng: random.Random, kinds: dict[str, float] | None = None) -> Line:
    shape = rng.random()
    chunks: list[tuple[str, object]] = []
    if shape < 0.25:  # two numbers of one size around an operator
        size = _size(rng)
        number = lambda: "".join(rng.choice(string.digits) for _ in range(size))  # noqa: E731
        chunks = [("number", number()), ("text", f" {rng.choice(OPERATORS)} "), ("number", number())]
    else:  # text, then one to three lists or numbers, each followed by text
        kind = rng.choice(KINDS) if kinds is None else rng.choices(list(kinds), weights=list(kinds.values()))[0]
        if rng.random() < 0.85:
            chunks.append(("text", _words(rng) + " "))
        for index in range(rng.choice([1, 1, 1, 2, 3])):
            if index:
                chunks.append(("text", ", " + _words(rng, 1, 3) + " "))
            if rng.random() < 0.85:
                chunks.append(("list", [_item(kind, rng) for _ in range(_size(rng))]))
            else:
                chunks.append(("number", "".join(rng.choice(string.digits) for _ in range(_size(rng)))))
        if rng.random() < 0.5:
            chunks.append(("text", rng.choice(["?", ".", ", " + _words(rng, 1, 3)])))
    return Line(chunks)


def check_edits(edits: dict[str, float]) -> dict[str, float]:
    """``edits`` itself, or a ValueError naming what is wrong with it."""
    unknown = set(edits) - set(ALL_EDITS)
    if unknown or not edits or any(weight < 0 for weight in edits.values()) or not sum(edits.values()) > 0:
        raise ValueError(f"bad pretraining edits {edits!r}: expected positive weights of {', '.join(ALL_EDITS)}")
    return edits


def check_kinds(kinds: dict[str, float] | None) -> dict[str, float] | None:
    """``kinds`` itself, or a ValueError naming what is wrong with it."""
    if kinds is not None and (set(kinds) - set(KINDS) or not kinds or any(w < 0 for w in kinds.values())
                              or not sum(kinds.values()) > 0):
        raise ValueError(f"bad pretraining kinds {kinds!r}: expected positive weights of {', '.join(KINDS)}")
    return kinds


def _parse_weights(text: str, what: str, names: tuple[str, ...], check) -> dict[str, float]:
    try:
        pairs = [item.split("=") for item in text.split(",") if item.strip()]
        return check({name.strip(): float(weight) for name, weight in pairs})
    except ValueError as exc:
        raise ValueError(f"bad pretraining {what} {text!r}: expected NAME=WEIGHT,... of {', '.join(names)}") from exc


def parse_kinds(text: str) -> dict[str, float]:
    """``"bits=3,digits=1"`` as a dict of list-item kind weights (a ValueError when malformed)."""
    return _parse_weights(text, "kinds", KINDS, check_kinds)


def parse_edits(text: str) -> dict[str, float]:
    """``"copy=2,smaller=4,firsts=2"`` as a dict of edit weights (a ValueError when malformed)."""
    return _parse_weights(text, "edits", ALL_EDITS, check_edits)


_ARITH_KINDS = {"ints": 3.0, "digits": 1.0, "bits": 1.0}  # arith needs numbers in the problem's first list


def _returned_value(rng: random.Random) -> int:
    """An item of a returned list for ``arith``: mostly small and non-negative, as running sums and maxima are."""
    draw = rng.random()
    if draw < 0.5:
        return rng.randint(0, 20)
    return rng.randint(0, 60) if draw < 0.8 else rng.randint(-99, 99)


def _arith_term(rng: random.Random, refs: dict[str, int], exclude: str | None = None) -> tuple[str, int]:
    """``ref``, ``ref + ref`` or ``ref - ref`` over ``refs`` (name -> value), never naming ``exclude``."""
    names = [name for name in refs if name != exclude]
    first = rng.choice(names)
    draw = rng.random()
    if draw < 0.4:
        return first, refs[first]
    second = rng.choice(names)
    if draw < 0.8:
        return f"{first} + {second}", refs[first] + refs[second]
    return f"{first} - {second}", refs[first] - refs[second]


def _arith_record(rng: random.Random) -> tuple[str, str, int]:
    """The input, output and length of an ``arith`` record (see the module docstring)."""
    while True:  # a problem line whose first list holds numbers
        line = random_line(rng, _ARITH_KINDS)  # whatever the kinds of the other records
        array = next((v for k, v in line.chunks if k == "list" and v), None)
        if array is not None and all(re.fullmatch(r"-?\d+", item) for item in array):
            break
    values = [_returned_value(rng) for _ in range(_returned_size(rng))]
    words = [] if rng.random() < 0.5 else [("text", _words(rng) + " ")]
    refs = {f"array[{i}]": int(item) for i, item in enumerate(array[:3])}
    refs.update({f"return[{j}]": value for j, value in enumerate(values[:3])})
    draw = rng.random()
    if draw < 0.2:  # a comparison, true about half the time
        index = rng.randrange(min(3, len(values)))
        lhs = f"return[{index}]"
        text, value = _arith_term(rng, refs, exclude=lhs)
        if rng.random() < 0.5:
            values[index] = refs[lhs] = value
        returned = Line([*words, ("list", [str(v) for v in values])])
        instruction, answer = f"Compute {lhs} == {text}.", str(refs[lhs] == value)
    else:
        returned = Line([*words, ("list", [str(v) for v in values])])
        terms = [_arith_term(rng, refs) for _ in range(1 if draw < 0.4 else rng.choice([2, 2, 3]))]
        if len(terms) == 1:
            expression, value = terms[0]
        else:
            name = rng.choice(["max", "max", "min"])
            expression = f"{name}({', '.join(text for text, _ in terms)})"
            value = (max if name == "max" else min)(value for _, value in terms)
        instruction, answer = f"Compute {expression}.", str(value)
        if rng.random() < 0.5:  # the returned list with the value in front
            instruction, answer = f"Put {expression} in front of return.", returned.grow(answer, "0").render()
    return f"{_after_return(line, returned)}{instruction}\n{ANSWER}", answer, _longest(line, returned)


def _small_ints(rng: random.Random) -> list[str]:
    """A list of small integers (-9..9, as task lists of signed items are) of a pretraining list's size."""
    return [str(rng.randint(-9, 9)) for _ in range(_size(rng))]


def _small_sum(rng: random.Random) -> int:
    """A returned item for ``sums``: a running sum or maximum of small items, mostly 0..20."""
    draw = rng.random()
    return rng.randint(0, 20) if draw < 0.6 else rng.randint(0, 60) if draw < 0.9 else rng.randint(-20, 20)


def _sums_record(rng: random.Random, front: bool = False) -> tuple[str, str, int]:
    """The input, output and length of a ``sums`` record, or with ``front`` of a ``sumfront`` one (see the module
    docstring)."""
    first = _small_ints(rng)
    chunks: list[tuple[str, object]] = [("text", _words(rng) + " "), ("list", first)]
    across = not front and rng.random() < 0.5  # two lists of the problem line, else one and a returned list
    if across:  # the added item from the second list, the other term and the compared item from the first
        own, other, names = _small_ints(rng), first, ("second", "first")
        chunks += [("text", ", " + _words(rng, 1, 3) + " "), ("list", own)]
    else:  # the added item from the problem's list, the other term and the compared item from the returned one
        own, other, names = first, [str(_small_sum(rng)) for _ in range(_returned_size(rng))], ("array", "return")
    if rng.random() < 0.3:
        chunks.append(("text", rng.choice(["?", ".", ", " + _words(rng, 1, 3)])))
    i, j = rng.randrange(min(3, len(own))), rng.randrange(min(3, len(other)))
    a, b = f"{names[0]}[{i}]", f"{names[1]}[{j}]"
    total = int(own[i]) + int(other[j])
    draw = rng.random() * (0.75 if front else 1)  # sumfront: a sum or a max, never a comparison
    others = [index for index in range(min(3, len(other))) if index != j]  # where a compared item may come from
    k = rng.choice(others or [j]) if front else None  # (sumfront draws it whatever it asks)
    if draw < 0.5 or len(other) == 1:
        expression, value = f"{a} + {b}", total
    else:
        k = rng.choice(others) if k is None else k
        c = f"{names[1]}[{k}]"
        if draw < 0.75:
            expression, value = f"max({c}, {a} + {b})", max(int(other[k]), total)
        else:
            if rng.random() < 0.5:  # true about half the time
                other[k] = str(total)
            expression, value = f"{c} == {a} + {b}", int(other[k]) == total
    line = Line(chunks)
    if across:
        return f"{line.render()}{SOLUTION}Compute {expression}.\n{ANSWER}", str(value), _longest(line)
    returned = Line([("list", other)])
    if front:
        return (f"{_after_return(line, returned)}Put {expression} in front of return.\n{ANSWER}",
                Line([("list", [str(value), *other])]).render(), _longest(line, returned))
    return f"{_after_return(line, returned)}Compute {expression}.\n{ANSWER}", str(value), _longest(line, returned)


def _flags_record(rng: random.Random, kinds: dict[str, float] | None) -> tuple[str, str, int]:
    """The input, output and length of a ``flags`` record (see the module docstring)."""
    line = random_line(rng, kinds)
    flag = rng.choice(["True", "False"])
    name = " ".join(_word(rng) for _ in range(rng.randint(1, 4)))
    text = line.render()
    problem = f"{text}, {name} {flag}" if rng.random() < 0.75 else f"{name} {flag}: {text}"
    length = _longest(line)
    draw = rng.random()
    if draw < 0.65:  # the flag itself, one line below the problem or two
        before = f"{problem}{SOLUTION}"
        if draw >= 0.3:
            before += f"{_words(rng, 3, 12).rstrip(':,')}.\n{ANSWER}"
        return before, flag if rng.random() < 0.5 else f"[{flag}]", length
    yes, no = rng.sample(string.digits, 2)
    before = f"{problem}{SOLUTION}{_words(rng, 1, 8).rstrip(':,')} {yes} if {name} else {no}.\n{ANSWER}"
    return before, f"[{yes if flag == 'True' else no}]", length


_OWN_LINES = {"arith": lambda rng, kinds: _arith_record(rng), "sums": lambda rng, kinds: _sums_record(rng),
              "flags": _flags_record, "sumfront": lambda rng, kinds: _sums_record(rng, front=True)}


def pretraining_record(index: int, seed: int = 0, edits: dict[str, float] | None = None,
                       kinds: dict[str, float] | None = None) -> dict:
    """Pretraining record number ``index``: ``{"task": "pretraining", "method", "length", "input", "output"}``;
    ``edits`` weighs the kinds of record (default :data:`EDITS`), ``kinds`` the kinds of list item (default:
    alike; ``None`` draws the records of the shipped weights)."""
    edits = EDITS if edits is None else edits
    rng = random.Random(f"{seed}/{index}")
    line = random_line(rng, kinds)
    problem = line.render()
    length = _longest(line)
    edit = rng.choices(list(edits), weights=list(edits.values()))[0]
    if edit in _OWN_LINES:  # records that draw lines of their own
        before, answer, length = _OWN_LINES[edit](rng, kinds)
        return {"task": "pretraining", "method": edit, "length": length, "input": before, "output": answer}
    if edit == "firsts":
        returned = line.smaller() if rng.random() < 0.5 else random_line(rng, kinds)
        before = _after_return(line, returned)
        return {"task": "pretraining", "method": edit, "length": length, "input": before,
                "output": " ".join(_firsts(line)) + "; " + _first_symbol(returned)}
    if edit == "compare":
        returned = line.smaller() if rng.random() < 0.5 else random_line(rng, kinds)
        ours, theirs = _first_symbol(line), _first_symbol(returned)
        if rng.random() < 0.5:  # make "same" as common as "different"
            returned = returned.with_first_symbol(ours)
            theirs = _first_symbol(returned)
        before = _after_return(line, returned)
        return {"task": "pretraining", "method": edit, "length": length, "input": before,
                "output": "True" if ours == theirs else "False"}
    if edit == "grow":
        returned = line.smaller() if rng.random() < 0.7 else random_line(rng, kinds)
        item, digit = line.first_items()
        item = item if item is not None else _item("digits", rng)
        digit = digit if digit is not None else rng.choice(string.digits)
        before = _after_return(line, returned)
        return {"task": "pretraining", "method": edit, "length": length, "input": before,
                "output": returned.grow(item, digit).render()}
    target = {"copy": line, "smaller": line.smaller(), "rewrite": line.rewrite(rng)}[edit]
    prefix = _words(rng, 2, 10) + ". " if rng.random() < 0.2 else ""
    return {"task": "pretraining", "method": edit, "length": length, "input": f"{problem}{SOLUTION}",
            "output": f"{prefix}{CALL}{target.render()}\n"}


PARALLEL_MIN = 20_000  # fewer records are drawn in this process (a pool costs seconds to start)


def _record_range(args: tuple[int, int, int, dict | None, dict | None]) -> list[dict]:
    start, stop, seed, edits, kinds = args
    return [pretraining_record(index, seed, edits, kinds) for index in range(start, stop)]


def pretraining_records(count: int, seed: int = 0, processes: int = 1,
                        edits: dict[str, float] | None = None, min_length: int = 0,
                        kinds: dict[str, float] | None = None) -> list[dict]:
    """Records ``0 .. count-1`` of ``seed``; ``processes`` > 1 draws them in parallel (the same records). With
    ``min_length``, the first ``count`` records whose longest list or number has at least that many items.
    ``edits`` and ``kinds`` as :func:`pretraining_record`."""
    if min_length > MAX_ITEMS:
        raise ValueError(f"no pretraining record is longer than {MAX_ITEMS} items (min_length {min_length})")
    if min_length:
        records, index = [], 0
        while len(records) < count:
            record = pretraining_record(index, seed, edits, kinds)
            index += 1
            if record["length"] >= min_length:
                records.append(record)
        return records
    if processes <= 1 or count < PARALLEL_MIN:
        return _record_range((0, count, seed, edits, kinds))
    import multiprocessing

    chunk = -(-count // (4 * processes))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_record_range, [(start, min(count, start + chunk), seed, edits, kinds)
                                         for start in range(0, count, chunk)])
    return [record for part in parts for record in part]


# ---- the pretraining run ------------------------------------------------------------------------------------

# The shipped weights (retune/models/pretrained, "cont-h" in docs/length-generalization.md) are eight stages of
# pretraining, each continuing the one before with every parameter trained. The first, from scratch, has
# PRETRAINING_SETTINGS ("wf-b": words positions, the firsts edit in the mix from the start; about 6 minutes on one
# H100 or H200, hours on 2 CPU cores; the shipped weights of sessions 8-13); each later stage of PRETRAINING_STAGES
# changes some of them (session 12, "cont-b": long copies and bit lists weighted up; session 13, "cont-c": the same,
# longer, on a cosine; "cont-d": without copy records, so that no record asks for a whole copy at a prompt where
# others ask for the first item dropped; session 15, on one H200, "cont-e": cont-d's mix with batches of 256;
# "cont-f": without rewrite records too, since a rewrite of a line without words, such as two numbers around an
# operator, is a whole copy; session 16, on one H200, "cont-g" and "cont-h": two more cosines of cont-f's mix).
# Each continued stage ran under a time budget (cont-b, cont-c and cont-d on 2 CPU cores: 10, 45 and 20 minutes;
# cont-e and cont-f on the GPU: 350 s beside three other runs and 95 s alone; cont-g 330 s beside three others,
# cont-h 240 s beside one; all but cont-b on a cosine fitted to the budget), so their steps are recorded here and a
# rebuild runs a cosine over exactly those steps (the fitted schedules, which moved a little as the step time was
# measured, are in the pretraining.json of each stage); cont-e to cont-h, like wf-b, are minutes on a GPU and hours
# on 2 CPU cores.
# Earlier pretrainings are kept for the benchmarks in benchmarks/models: the
# first shipped weights (pretrained-cpu: hierarchical positions, this module's EDITS, batch 16 x 8,000 steps, 53
# minutes on one CPU thread), a longer GPU run of the same (pretrained-p2, sessions 3 and 4), a two-stage one with
# words positions (pretrained-words-f, session 5) and each stage of the shipped weights before the last
# (pretrained-wf-b, pretrained-cont-b to pretrained-cont-g), and two candidates that continue the shipped weights:
# with arith records (pretrained-arith, session 17: 4,300 GPU steps, arith weighted 10 beside cont-f's mix) and
# with flags records (pretrained-cont-i, session 20: 3,650 steps of 32 in 1,500 s on 2 CPU cores, flags weighted 8
# beside cont-h's mix; the default weights of session 20, which read DP's flags and lose some of parity's and
# addition's longest problems, session 21); each directory's pretraining.json has its settings (and its init's).
PRETRAINING_SETTINGS = {
    "records": 400_000,
    "seed": 2,
    "lr": 1e-3,
    "warmup_steps": 200,
    "scheduler": "constant",
    "batch_size": 256,
    "max_steps": 4714,
    "max_length": 1200,
    "loss_normalization": "token",
    "balance_lengths": False,
    "position_scheme": "words",
    "precision": "fp32",
    "edits": {"copy": 2.0, "smaller": 4.0, "rewrite": 1.0, "grow": 3.0, "compare": 2.0, "firsts": 6.0},
}


_CONTINUED = {"lr": 5e-4, "warmup_steps": 50, "batch_size": 32,
              "kinds": {"bits": 2.0, "digits": 1.0, "ints": 1.0, "letters": 1.0, "bools": 1.0}}
_LONG_COPIES = {"copy": 4.0, "smaller": 8.0, "rewrite": 1.0, "grow": 3.0, "compare": 2.0, "firsts": 6.0}
_NO_COPY = {key: value for key, value in _LONG_COPIES.items() if key != "copy"}
_NO_WHOLE_COPY = {key: value for key, value in _NO_COPY.items() if key != "rewrite"}  # a rewrite of bare numbers copies
_ON_GPU = {**_CONTINUED, "scheduler": "cosine", "batch_size": 256}  # cont-e on
_LATE = {**_ON_GPU, "lr": 3e-4, "warmup_steps": 20, "edits": _NO_WHOLE_COPY}  # cont-f on
PRETRAINING_STAGES = (
    {**_CONTINUED, "records": 100_000, "seed": 11, "max_steps": 1851, "edits": _LONG_COPIES},  # cont-b
    {**_CONTINUED, "records": 300_000, "seed": 13, "scheduler": "cosine", "max_steps": 8250,
     "edits": _LONG_COPIES},  # cont-c
    {**_CONTINUED, "records": 100_000, "seed": 14, "scheduler": "cosine", "max_steps": 3700,
     "edits": _NO_COPY},  # cont-d
    {**_ON_GPU, "records": 300_000, "seed": 15, "max_steps": 2550, "edits": _NO_COPY},  # cont-e
    {**_LATE, "records": 60_000, "seed": 19, "max_steps": 1600},  # cont-f
    {**_LATE, "records": 150_000, "seed": 20, "max_steps": 2450},  # cont-g
    {**_LATE, "records": 100_000, "seed": 24, "max_steps": 3050},  # cont-h: the shipped weights
)


def stage_settings(stage: int) -> dict:
    """The settings of one stage of the shipped weights' pretraining: 0 is the stage from scratch
    (:data:`PRETRAINING_SETTINGS`), ``k`` continues stage ``k - 1`` with :data:`PRETRAINING_STAGES` ``[k - 1]``."""
    if not 0 <= stage <= len(PRETRAINING_STAGES):
        raise ValueError(f"no pretraining stage {stage}: the stages are 0-{len(PRETRAINING_STAGES)}")
    return {**PRETRAINING_SETTINGS, **(PRETRAINING_STAGES[stage - 1] if stage else {})}


def check_init(init: str | Path, position_scheme: str) -> dict:
    """The ``pretraining.json`` of a model to continue (or its path, when it has none); a ValueError when it
    is not a model directory or was trained with other positions than ``position_scheme``."""
    init = Path(init)
    if not (init / "config.json").is_file():
        raise ValueError(f"{init} is not a model directory (no config.json)")
    scheme = json.loads((init / "config.json").read_text()).get("retune_position_scheme", "sequential")
    if scheme != position_scheme:
        raise ValueError(f"{init} uses {scheme!r} positions: continue it with position_scheme={scheme!r}")
    saved = init / PRETRAINING_FILE
    return json.loads(saved.read_text()) if saved.is_file() else {"model": str(init)}


def widen_to_numbers(init: str | Path, out: str | Path) -> Path:
    """``init`` (a model of the character tokenizer) over the ``numbers`` tokenizer
    (:func:`retune.models.tokenizer.build_tokenizer`), saved in ``out`` with the init's ``pretraining.json``.

    Each new token's input and output embedding rows start as the mean of its characters' rows (``"-37"``: of
    ``-``, ``3`` and ``7``), so a number token starts out near the characters it replaces; every other weight
    is the init's. Deterministic: the same init gives the same widened weights."""
    import torch
    from transformers import LlamaForCausalLM

    from retune.models.tokenizer import NUMBER_TOKENS, build_tokenizer

    init, out = Path(init), Path(out)
    model = LlamaForCausalLM.from_pretrained(init)
    characters = build_tokenizer()
    if model.config.vocab_size != len(characters):
        raise ValueError(f"{init} is not a model of the character tokenizer ({model.config.vocab_size} tokens, "
                         f"expected {len(characters)})")
    tokenizer = build_tokenizer(model_max_length=model.config.max_position_embeddings, numbers=True)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for weights in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            for token in NUMBER_TOKENS:
                rows = characters.convert_tokens_to_ids(list(token))
                weights[tokenizer.convert_tokens_to_ids(token)] = weights[rows].mean(dim=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if (init / PRETRAINING_FILE).is_file():
        shutil.copy2(init / PRETRAINING_FILE, out / PRETRAINING_FILE)
    return out


def pretrain(out: str | Path, work: str | Path | None = None, time_budget: float | None = None,
             init: str | Path | None = None, numbers: bool = False, **overrides) -> Path:
    """Pretrain the default architecture from scratch on :func:`pretraining_records` and save the model
    (config, weights, tokenizer, ``pretraining.json``) in ``out``; ``work`` keeps the training run.

    ``time_budget`` (seconds) stops the run early; with the constant learning rate the weights are then those
    of a run with ``max_steps`` set to the steps done, which is what ``pretraining.json`` records (with the
    budget; a cosine schedule is fitted to the budget, and ``"fitted_horizons"`` lists each ``[step, end]`` the
    fit set, since a run with ``max_steps`` alone decays on another schedule). ``init`` (a
    pretrained model directory) continues its pretraining instead of starting from scratch (every parameter
    trained; ``pretraining.json`` then records the init's own settings under ``"init"``). ``kinds`` (an override,
    not in :data:`PRETRAINING_SETTINGS`) weighs the kinds of list item, as :func:`pretraining_record`.
    ``numbers`` continues ``init`` over the ``numbers`` tokenizer (:func:`widen_to_numbers`, into
    ``work/widened``; ``pretraining.json`` then says ``"tokenizer": "numbers"``)."""
    from retune.core.data import write_jsonl
    from retune.engines.training import TrainConfig, train
    from retune.engines.training.config import SCRATCH_MODEL
    from retune.engines.training.trainer import fitted_horizons, training_summary

    settings = {**PRETRAINING_SETTINGS, **overrides}
    check_edits(settings["edits"])
    kinds = check_kinds(settings.get("kinds"))
    if kinds is None:  # the shipped weights' records: pretraining.json names no kinds
        settings.pop("kinds", None)
    before = None if init is None else check_init(init, settings["position_scheme"])
    work = Path(work or tempfile.mkdtemp(prefix="retune-pretrain-"))
    work.mkdir(parents=True, exist_ok=True)
    if numbers:
        if init is None:
            raise ValueError("numbers widens a pretrained model: give init")
        if not (work / "widened" / "config.json").is_file():
            widen_to_numbers(init, work / "widened")
        init = work / "widened"
    data = work / "records.jsonl"
    if not data.is_file():
        write_jsonl(pretraining_records(settings["records"], settings["seed"], processes=os.cpu_count() or 1,
                                        edits=settings["edits"], kinds=kinds), data)
    run_dir = work / "run"
    config = TrainConfig(
        data=data, model=SCRATCH_MODEL if init is None else str(init), finetune="full", out=run_dir,
        resume=(run_dir / "checkpoints").is_dir(), save_every=500, time_budget=time_budget,
        **{key: value for key, value in settings.items() if key not in ("records", "edits", "kinds")},
    )
    train(config)
    steps = training_summary(run_dir)["steps"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json"):
        shutil.copy2(run_dir / name, out / name)
    settings["max_steps"] = steps
    saved = {"settings": settings, "data": "retune.models.pretraining.pretraining_records"}
    if time_budget is not None:
        saved["time_budget"] = time_budget
        horizons = fitted_horizons(run_dir)  # where a cosine schedule was fitted to the budget: its ends
        if horizons:
            saved["fitted_horizons"] = horizons
    if before is not None:
        saved["init"] = before
    if numbers:
        saved["tokenizer"] = "numbers"
    (out / PRETRAINING_FILE).write_text(json.dumps(saved, indent=1) + "\n")
    return out


def pretrain_shipped(out: str | Path, work: str | Path | None = None, stages: int | None = None) -> Path:
    """Rebuild the shipped weights: stage 0 (:data:`PRETRAINING_SETTINGS`) from scratch, then each of
    :data:`PRETRAINING_STAGES` continuing the one before (only the first ``stages`` continued stages, when given);
    the last stage's model goes to ``out``. ``work/stage-K`` keeps each stage's run and model, and a rerun resumes:
    a finished stage is kept, an unfinished one resumes from its last checkpoint."""
    last = len(PRETRAINING_STAGES) if stages is None else stages
    stage_settings(last)  # a ValueError when there is no such stage
    work = Path(work or tempfile.mkdtemp(prefix="retune-pretrain-"))
    init = None
    for stage in range(last + 1):
        model = work / f"stage-{stage}" / "model"
        if not (model / PRETRAINING_FILE).is_file():
            pretrain(model, work / f"stage-{stage}", init=init, **stage_settings(stage))
        init = model
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in init.iterdir():
        shutil.copy2(path, out / path.name)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pretrain the default model (retune.models.pretraining).")
    parser.add_argument("--out", required=True, help="where the pretrained model goes")
    parser.add_argument("--work", help="run directory (kept; rerunning resumes from its last checkpoint)")
    settings = {key: value for key, value in PRETRAINING_SETTINGS.items() if not isinstance(value, bool)}
    for key, value in settings.items():  # e.g. --batch-size 128, --precision auto (bf16 on a GPU)
        if isinstance(value, dict):  # --edits copy=2,smaller=4,firsts=2
            parser.add_argument(f"--{key}", type=parse_edits, default=value,
                                help="NAME=WEIGHT,... of " + ", ".join(ALL_EDITS))
        else:
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--kinds", type=parse_kinds, help="NAME=WEIGHT,... of " + ", ".join(KINDS)
                        + ": how often each kind of list item is drawn (default: alike, the shipped weights' records)")
    parser.add_argument("--time-budget", type=float, help="seconds; stop early (pretraining.json records the steps)")
    parser.add_argument("--init", help="a pretrained model directory whose pretraining to continue")
    parser.add_argument("--numbers", action="store_true", help="continue --init over the tokenizer with list "
                        "items of -99..99 as single tokens (retune.models.tokenizer; a candidate)")
    parser.add_argument("--shipped", action="store_true", help="rebuild the shipped weights: every stage of their "
                        "pretraining in turn, each continuing the one before (no other setting may be given; "
                        "--work keeps each stage, and a rerun resumes)")
    args = parser.parse_args(argv)
    if args.shipped:
        given = [key for key in (*settings, "kinds", "time_budget", "init", "numbers")
                 if getattr(args, key) != parser.get_default(key)]
        if given:
            parser.error(f"--shipped rebuilds the shipped weights with their own settings: drop "
                         f"--{given[0].replace('_', '-')}")
        print(pretrain_shipped(args.out, args.work))
        return
    if args.numbers and args.init is None:
        parser.error("--numbers widens a pretrained model: give --init")
    if args.init is not None:
        try:
            check_init(args.init, args.position_scheme)
        except ValueError as exc:
            parser.error(str(exc))
    print(pretrain(args.out, args.work, args.time_budget, args.init, numbers=args.numbers, kinds=args.kinds,
                   **{key: getattr(args, key) for key in settings}))


if __name__ == "__main__":
    main()
