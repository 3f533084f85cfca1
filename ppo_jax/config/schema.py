"""The config schema: each field says once what it is and what it allows.

A field is declared with :func:`option`: its default, a help text (the CLI's ``--help``
and the options table of ppo_jax/config/README.md), whether it is *traceable* (a plain
number inside the computation, copied into ``Hyperparams`` so that sweeps can vmap over
it) and, for numbers, its range. Its type annotation says the rest: ``Literal[...]``
lists the choices, ``X | None`` admits ``None`` (``none`` on the command line),
``tuple[int, ...]`` parses from ``64,64``.

Validation (:func:`check_fields`), command-line parsing (:func:`parse_text`)
and the options table (:func:`markdown_table`) are all derived from it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")
# Integers are carried as int32 inside the compiled program (counters, shapes).
INT32_MAX = 2**31 - 1


class ConfigError(ValueError):
    """A config field holds a value that is not allowed.

    The message is one sentence naming the field, the value and what is allowed.
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}.")


def option(
    default: T,
    help: str,
    *,
    traceable: bool = False,
    low: float | None = None,
    high: float = math.inf,
    low_open: bool = False,
) -> T:
    """A config field: default, help text, traceability and numeric range.

    ``low``/``high`` bound numbers (``low_open``: strictly above ``low``); for
    integers and tuples of integers they bound each value (``high`` defaults
    to the int32 maximum there).
    """
    meta = {
        "help": help,
        "traceable": traceable,
        "low": low,
        "high": high,
        "low_open": low_open,
    }
    field: T = dataclasses.field(default=default, metadata=meta)
    return field


@dataclasses.dataclass(frozen=True)
class FieldKind:
    """What a field's annotation says, resolved once."""

    name: str
    base: type  # bool, int, float, str or tuple (of ints)
    optional: bool  # None allowed
    choices: tuple[str, ...]  # Literal choices, () for free values
    help: str
    traceable: bool
    low: float | None
    high: float
    low_open: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@functools.cache
def field_kinds(cls: type) -> tuple[FieldKind, ...]:
    """The :class:`FieldKind` of every field of the dataclass ``cls`` (resolved
    once per class)."""
    hints = typing.get_type_hints(cls)
    kinds = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        args = typing.get_args(annotation)
        optional = _is_union(annotation) and type(None) in args
        if optional:
            (annotation,) = [a for a in args if a is not type(None)]
        choices: tuple[str, ...] = ()
        if typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
            base: type = type(choices[0])
        else:
            base = typing.get_origin(annotation) or annotation
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with option()")
        m = f.metadata
        kinds.append(
            FieldKind(
                f.name,
                base,
                optional,
                choices,
                m["help"],
                m["traceable"],
                m["low"],
                m["high"],
                m["low_open"],
            )
        )
    return tuple(kinds)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


# ---------------------------------------------------------------- validation
def check_fields(instance: Any) -> None:
    """Check every field of a dataclass instance against its declaration.

    Raises :class:`ConfigError` on the first field whose value is not allowed.
    """
    cls: type = type(instance)
    for kind in field_kinds(cls):
        value = getattr(instance, kind.name)
        if value is None and kind.optional:
            continue
        allowed = _allowed(kind, value)
        if allowed is not None:
            raise ConfigError(kind.name, value, allowed)


def _allowed(kind: FieldKind, value: Any) -> str | None:
    """None when ``value`` is allowed, else the sentence's "allowed" part."""
    if kind.choices:
        listed = [*kind.choices, *(["None"] if kind.optional else [])]
        return None if value in kind.choices else f"one of {', '.join(listed)}"
    if kind.base is bool:
        return None if isinstance(value, bool) else "true or false"
    if kind.base is int:
        minimum, maximum = _int_range(kind)
        ok = _is_int(value) and minimum <= value <= maximum
        return None if ok else f"an integer >= {minimum} and <= {maximum}"
    if kind.base is float:
        return _check_float(kind, value)
    if kind.base is tuple:
        minimum, maximum = _int_range(kind)
        ok = isinstance(value, tuple) and value
        ok = ok and all(_is_int(v) and minimum <= v <= maximum for v in value)
        what = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        return None if ok else f"a non-empty tuple of {what} <= {maximum}"
    if kind.base is str:
        return None if isinstance(value, str) and value else "a non-empty string"
    raise TypeError(f"no check for field {kind.name} of type {kind.base}")


def _int_range(kind: FieldKind) -> tuple[int, int]:
    low = 0 if kind.low is None else int(kind.low)
    high = INT32_MAX if math.isinf(kind.high) else int(kind.high)
    return low, high


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_float(kind: FieldKind, value: Any) -> str | None:
    low = -math.inf if kind.low is None else kind.low
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value <= kind.high
    ok = ok and (value > low if kind.low_open else value >= low)
    if ok:
        return None
    lo = "" if math.isinf(low) else (f" > {low}" if kind.low_open else f" >= {low}")
    hi = "" if math.isinf(kind.high) else f" and <= {kind.high}"
    if not lo and hi:
        hi = f" <= {kind.high}"
    return f"a finite number{lo}{hi}"


# -------------------------------------------------------------- command line
BOOL_TEXT = {"true": True, "false": False, "yes": True, "no": False,
             "on": True, "off": False, "1": True, "0": False}  # fmt: skip


def _parse_bool(text: str) -> bool:
    try:
        return BOOL_TEXT[text.strip().lower()]
    except KeyError:
        raise ValueError(f"not a boolean: {text!r}") from None


def parse_text(kind: FieldKind, text: str) -> Any:
    """A field's value from command-line text (``none`` for None when allowed;
    ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0`` for
    booleans).

    Raises ``ValueError`` (argparse reports it as a bad flag value).
    """
    if kind.optional and text.strip().lower() == "none":
        return None
    parsers: dict[type, Callable[[str], Any]] = {
        bool: _parse_bool,
        int: int,
        float: float,
        str: str,
        tuple: lambda s: tuple(int(p) for p in s.split(",") if p.strip()),
    }
    return parsers[kind.base](text)


def expected_text(kind: FieldKind, text: str) -> str:
    """What ``kind`` takes as text, for a refusal of ``text``: ``"an integer
    (write 4000, not 4e3)"``."""
    described = {
        bool: "true or false",
        int: "an integer",
        float: "a number, e.g. 3e-4",
        str: "text",
        tuple: "integers separated by commas, e.g. 64,64",
    }[kind.base]
    if kind.optional:
        described += ", or none"
    if kind.base in (int, tuple):
        try:
            number = float(text)
        except ValueError:
            return described
        if math.isfinite(number) and number == int(number):
            described += f" (write {int(number)}, not {text.strip()})"
    return described


# ---------------------------------------------------------------- options table
def markdown_table(cls: type, defaults: Any) -> str:
    """The options table of ppo_jax/config/README.md: flag, values, default
    (from ``defaults``), traceable, help; one row per field, in declaration order."""
    rows = [
        "| flag | values | default | traceable | what it does |",
        "|---|---|---|---|---|",
    ]
    for kind in field_kinds(cls):
        rows.append(
            f"| `{kind.flag}` | {_values(kind)} | "
            f"{_shown(getattr(defaults, kind.name))} | "
            f"{'yes' if kind.traceable else ''} | {kind.help} |"
        )
    return "\n".join(rows) + "\n"


def _values(kind: FieldKind) -> str:
    none = ", none" if kind.optional else ""
    if kind.choices:
        return ", ".join(kind.choices) + none
    if kind.base is bool:
        return "on/off"
    if kind.base is tuple:
        return "ints, comma-separated"
    if kind.base is str:
        return "text" + none
    if kind.base is int:
        low, high = _int_range(kind)
        if high == INT32_MAX:
            return f"int >= {low}{none}"
        return f"int in [{low}, {high}]{none}"
    if kind.low is not None and not math.isinf(kind.high):
        left = "(" if kind.low_open else "["
        return f"float in {left}{kind.low:g}, {kind.high:g}]{none}"
    if kind.low is not None:
        return f"float {'>' if kind.low_open else '>='} {kind.low:g}{none}"
    return f"float{none}"


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
