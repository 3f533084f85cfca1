"""Config files: read YAML, TOML or JSON into config fields; write a config out.

A config file is a flat mapping of :class:`~ppo_jax.config.ppo_config.PPOConfig` field
names (as in ``--help``, with underscores: ``num_envs``, ``lr``, ...) to values,
plus an optional ``preset``. The command line resolves a run's config as: the
preset (``--preset``, else the file's, else ``tutorial``) with its per-env
overrides, then the file's fields, then the flags given. A run's own
``config.json`` is such a file (every field), so ``--config RUN/config.json``
repeats a run.

Values are the file format's own (numbers, booleans, lists for
``hidden_sizes``, ``null`` in YAML/JSON) or the command line's text (``"none"``
for an unset optional field: TOML has no null; ``"3e-4"``, which YAML reads as
text). Every value is then checked like a flag's.
"""

from __future__ import annotations

import json
import math
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.schema import (
    ConfigError,
    FieldKind,
    expected_text,
    field_kinds,
    parse_text,
)

ConfigFormat = Literal["yaml", "toml", "json"]
FORMATS: dict[str, ConfigFormat] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".json": "json",
}
PRESET_KEY = "preset"
# A config file is a few hundred bytes; anything past this is not one (and a
# device such as /dev/zero behind a .yaml name would never end).
MAX_CONFIG_BYTES = 1 << 20


def file_format(path: Path) -> ConfigFormat:
    """The format named by ``path``'s suffix; one sentence if there is none."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            "config",
            str(path),
            "a file ending in " + ", ".join(FORMATS) + " (YAML, TOML or JSON)",
        )
    return fmt


def read_config_file(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """``(preset or None, {field: value})`` from a config file.

    Raises:
        ConfigError: one sentence: a missing or unreadable file, a syntax
            error, something other than a mapping, an unknown field, a value
            of the wrong kind.
    """
    path = Path(path)
    fmt = file_format(path)
    data = _parse(_read_text(path), fmt, path)
    if not isinstance(data, dict):
        raise ConfigError(
            "config",
            str(path),
            f"a mapping of config fields to values, not a {type(data).__name__}",
        )
    kinds = {kind.name: kind for kind in field_kinds(PPOConfig)}
    preset = data.pop(PRESET_KEY, None)
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(PRESET_KEY, preset, "a preset's name")
    fields = {}
    for key, value in data.items():
        if key not in kinds:
            hint = f" (did you mean {key.replace('-', '_')}?)" if "-" in key else ""
            raise ConfigError(
                "config",
                str(path),
                f"a file of PPOConfig fields; {key!r} is not one{hint}",
            )
        fields[key] = _coerce(kinds[key], value)
    return preset, fields


def _read_text(path: Path) -> str:
    """The file's text: a regular file of at most ``MAX_CONFIG_BYTES``, UTF-8."""

    def refuse(allowed: str) -> ConfigError:
        return ConfigError("config", str(path), allowed)

    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise refuse("a readable file (Is a directory)")
        if not stat.S_ISREG(info.st_mode):
            # Checked before opening: a FIFO would block, a device never end.
            raise refuse("a regular file, not a device, pipe or socket")
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise refuse(f"a readable file ({reason})") from e
    if len(data) > MAX_CONFIG_BYTES:
        raise refuse(f"a config file of at most {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise refuse(
            f"a UTF-8 text file (byte 0x{data[e.start]:02x} at offset {e.start} "
            "is not UTF-8: save the file as UTF-8)"
        ) from e


def _parse(text: str, fmt: ConfigFormat, path: Path) -> Any:
    try:
        if fmt == "json":
            return json.loads(text)
        if fmt == "toml":
            return tomllib.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as e:  # each parser has its own error class
        reason = " ".join(str(e).split())
        raise ConfigError("config", str(path), f"valid {fmt.upper()} ({reason})") from e


def _coerce(kind: FieldKind, value: Any) -> Any:
    """A file's value as the field's type; the config's validation then checks
    ranges and choices."""
    if isinstance(value, str) and (kind.base is not str or kind.optional):
        try:
            return parse_text(kind, value)
        except ValueError as e:
            raise ConfigError(kind.name, value, expected_text(kind, value)) from e
    if kind.base is int and isinstance(value, float) and value.is_integer():
        # 4e3 in JSON or TOML is a float: say how to write the integer.
        raise ConfigError(kind.name, value, f"an integer (write {int(value)})")
    if kind.base is tuple and isinstance(value, list):
        return tuple(value)
    if kind.base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def dump_config(config: PPOConfig, fmt: ConfigFormat) -> str:
    """``config`` as a file that :func:`read_config_file` reads back to it."""
    data = config.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False)
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items())


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'  # TOML has no null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string uses JSON's escapes
    return str(value)
