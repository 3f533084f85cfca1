"""A search's space: the traceable fields it varies and how.

A :class:`Param` is a range ``[low, high]`` (uniform, or log-uniform) or a
list of choices; a space is a tuple of them, from ``--param`` text
(:func:`parse_param`), a space file (:func:`read_space_file`: TOML, JSON or
YAML) or a mapping (:func:`space_from_dict`, :func:`space_to_dict` its
inverse). :func:`check_space` refuses, in one sentence and before anything
compiles, a space the base config cannot take.
"""

from __future__ import annotations

import dataclasses
import json
import math
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppo_jax.config.ppo_config import TRACEABLE_FIELDS, PPOConfig
from ppo_jax.config.schema import ConfigError, field_kinds

if TYPE_CHECKING:
    import optuna

MAX_SPACE_BYTES = 1 << 20


class EmptySpaceError(ConfigError):
    """A search with no field to vary (a ConfigError, worded as a sentence)."""

    def __init__(self) -> None:
        super().__init__("param", None, "")
        self.args = (
            "nothing to search: give a traceable field with --param "
            "FIELD=LOW:HIGH[:log] or FIELD=V1,V2,..., or a --space file.",
        )

    def __str__(self) -> str:
        return str(self.args[0])


Choice = float | None  # None: an optional field's "none" (max_grad_norm, target_kl)


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched field: a range ``[low, high]`` (``log``: log-uniform) or a
    list of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Choice, ...] | None = None

    def text(self) -> str:
        """``lr=0.0001:0.003:log`` or ``ent_coef=0,0.01``, as ``--param`` takes."""
        if self.choices is not None:
            return f"{self.name}=" + ",".join(choice_text(c) for c in self.choices)
        return f"{self.name}={self.low:g}:{self.high:g}" + (":log" if self.log else "")

    def describe(self) -> str:
        if self.choices is not None:
            return (
                f"{self.name} in {{{', '.join(choice_text(c) for c in self.choices)}}}"
            )
        scale = " (log)" if self.log else ""
        return f"{self.name} in [{self.low:g}, {self.high:g}]{scale}"

    def suggest(self, trial: optuna.Trial) -> Choice:
        if self.choices is not None:
            choice = trial.suggest_categorical(self.name, list(self.choices))
            return None if choice is None else float(choice)
        assert self.low is not None and self.high is not None
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


SearchSpace = tuple[Param, ...]


def choice_text(value: Choice) -> str:
    """A choice as ``--param`` writes it: ``none`` or the number (``%g``)."""
    return "none" if value is None else f"{value:g}"


PARAM_FORMAT = (
    "FIELD=LOW:HIGH, FIELD=LOW:HIGH:log or FIELD=V1,V2,... with numbers, e.g. "
    "lr=1e-4:3e-3:log or ent_coef=0,0.01"
)


def _number(value: Any) -> float:
    """A bound or choice as a float: numbers, or text such as ``3e-4``."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def _choice(value: Any) -> Choice:
    if value is None or isinstance(value, str) and value.strip().lower() == "none":
        return None
    return _number(value)


def parse_param(text: str) -> Param:
    """A ``--param`` value: ``lr=1e-4:3e-3:log``, ``clip_eps=0.1:0.3`` or
    ``ent_coef=0,0.01`` (``none`` among the choices of an optional field).

    Raises:
        ConfigError: one sentence if the text has none of these forms (the
            field and values are checked by :func:`check_space`).
    """
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    try:
        if not sep or not name or not values.strip():
            raise ValueError("no FIELD=VALUES")
        return _param(name, values.strip())
    except ValueError as e:
        raise ConfigError("param", text, PARAM_FORMAT) from e


def _param(name: str, values: str) -> Param:
    if ":" in values:
        parts = [p.strip() for p in values.split(":")]
        if len(parts) == 3 and parts[2].lower() == "log":
            return Param(name, _number(parts[0]), _number(parts[1]), log=True)
        if len(parts) != 2:
            raise ValueError("LOW:HIGH or LOW:HIGH:log")
        return Param(name, _number(parts[0]), _number(parts[1]))
    return Param(name, choices=tuple(_choice(v) for v in values.split(",")))


def space_from_dict(data: Mapping[str, Any], source: str = "space") -> SearchSpace:
    """A space from a mapping ``field -> {low, high, log}`` or ``{choices:
    [...]}`` (or the ``--param`` text ``"1e-4:3e-3:log"``, or a list of
    choices), as a space file holds it.

    Raises:
        ConfigError: one sentence naming the entry that has none of these forms.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            source, type(data).__name__, "a mapping of fields to ranges or choices"
        )
    params = []
    for name, spec in data.items():
        try:
            params.append(_param_from_entry(str(name), spec))
        except (ValueError, TypeError) as e:
            raise ConfigError(
                source,
                f"{name}: {spec!r}",
                "{low = L, high = H, log = true/false} or {choices = [V1, V2, ...]} "
                f"for each field ({' '.join(str(e).split())})",
            ) from e
    return tuple(params)


def _param_from_entry(name: str, spec: Any) -> Param:
    if isinstance(spec, str):
        return _param(name, spec)
    if isinstance(spec, list):
        return Param(name, choices=tuple(_choice(v) for v in spec))
    if not isinstance(spec, Mapping):
        raise TypeError(f"a {type(spec).__name__}")
    keys = set(spec)
    if keys == {"choices"}:
        if not isinstance(spec["choices"], list):
            raise TypeError("choices must be a list")
        return Param(name, choices=tuple(_choice(v) for v in spec["choices"]))
    if keys in ({"low", "high"}, {"low", "high", "log"}):
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise TypeError("log must be true or false")
        return Param(name, _number(spec["low"]), _number(spec["high"]), log=log)
    raise ValueError(f"keys {sorted(keys)}")


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as a space file holds it (JSON: ``none`` choices as null)."""
    return {p.name: p.to_dict() for p in space}


def read_space_file(path: str | Path) -> SearchSpace:
    """A space file (TOML, JSON or YAML by its suffix): a regular file of at
    most 1 MiB of UTF-8 mapping fields to ranges or choices.

    Raises:
        ConfigError: one sentence: a missing, unreadable or malformed file.
    """
    path = Path(path)
    fmt = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(
        path.suffix.lower()
    )
    if fmt is None:
        raise ConfigError(
            "space", str(path), "a file ending in .toml, .json, .yaml or .yml"
        )
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError("space", str(path), "a readable file (Is a directory)")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                "space", str(path), "a regular file, not a device, pipe or socket"
            )
        with open(path, "rb") as f:
            data = f.read(MAX_SPACE_BYTES + 1)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError("space", str(path), f"a readable file ({reason})") from e
    if len(data) > MAX_SPACE_BYTES:
        raise ConfigError("space", str(path), "a space file of at most 1 MiB")
    try:
        text = data.decode("utf-8")
        if fmt == "json":
            parsed = json.loads(text)
        elif fmt == "toml":
            parsed = tomllib.loads(text)
        else:
            import yaml

            parsed = yaml.safe_load(text)
    except Exception as e:  # each parser has its own error class
        reason = " ".join(str(e).split())
        raise ConfigError(
            "space", str(path), f"valid UTF-8 {fmt.upper()} ({reason})"
        ) from e
    return space_from_dict(parsed, source=f"space file {path}")


def check_space(space: Iterable[Param], config: PPOConfig) -> SearchSpace:
    """Check a space against the base config before anything compiles.

    Raises:
        ConfigError: one sentence on the first problem: no field; an unknown
            or non-traceable field; a field given twice; an empty or inverted
            range; a log range whose low end is not positive; fewer than two
            choices; a bound or choice the config refuses.
    """
    space = tuple(space)
    if not space:
        raise EmptySpaceError()
    kinds = {kind.name: kind for kind in field_kinds(PPOConfig)}
    traceable = ", ".join(TRACEABLE_FIELDS)
    seen = set()
    for p in space:
        if p.name not in kinds:
            raise ConfigError(
                "param", p.name, f"a PPOConfig field; a search varies the traceable "
                f"ones: {traceable}",
            )  # fmt: skip
        if p.name not in TRACEABLE_FIELDS:
            raise ConfigError(
                "param", p.name, "a traceable field (one that changes no shapes, so "
                f"that every trial runs in one compile): {traceable}; set "
                f"{kinds[p.name].flag} in the base config instead",
            )  # fmt: skip
        if p.name in seen:
            raise ConfigError("param", p.name, "each field searched once")
        seen.add(p.name)
        if p.choices is not None:
            values: Sequence[Choice] = p.choices
            if len(set(p.choices)) < 2 or len(set(p.choices)) != len(p.choices):
                raise ConfigError(
                    "param", p.text(), "at least two different choices (to fix a "
                    f"value, set {kinds[p.name].flag} in the base config)",
                )  # fmt: skip
        else:
            assert p.low is not None and p.high is not None
            if not (math.isfinite(p.low) and math.isfinite(p.high)):
                raise ConfigError("param", p.text(), "a range of finite numbers")
            if not p.low < p.high:
                raise ConfigError(
                    "param", p.text(), "a range LOW:HIGH with LOW < HIGH (to fix a "
                    f"value, set {kinds[p.name].flag} in the base config)",
                )  # fmt: skip
            if p.log and p.low <= 0:
                raise ConfigError(
                    "param", p.text(), "a log range with LOW > 0 (log-uniform "
                    "sampling needs positive bounds)",
                )  # fmt: skip
            values = (p.low, p.high)
        for value in values:
            if value is None and not kinds[p.name].optional:
                raise ConfigError(
                    "param", p.text(), f"numbers ({p.name} cannot be none)"
                )
            config.replace(**{p.name: value}).validate()
    return space
