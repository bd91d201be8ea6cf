"""Optional TOML config file (``--config akg.toml``): defaults for search and harness options.

```toml
[search]
budget = 24
time_limit = 600      # seconds
policy = "strict"

[harness]
seeds = 3
trials = 30
warmup = 5
timeout_s = 120
measure_compile = true
```
Command-line flags override the file. Unknown sections or keys are errors, so a typo never
silently falls back to a default.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from akg.errors import ConfigError

SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "search": {"budget": int, "time_limit": (int, float), "policy": str},
    "harness": {"seeds": int, "trials": int, "warmup": int, "timeout_s": (int, float), "measure_compile": bool},
}


def load_config(path: str | Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {section: {} for section in SCHEMA}
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"config {path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path}: not valid TOML ({e})") from None
    return _checked(path, data)


def _checked(path: Path, data: dict) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {section: {} for section in SCHEMA}
    for section, values in data.items():
        if section not in SCHEMA or not isinstance(values, dict):
            raise ConfigError(f"config {path}: unknown section [{section}]; known: {', '.join(SCHEMA)}")
        for key, value in values.items():
            expected = SCHEMA[section].get(key)
            if expected is None:
                raise ConfigError(f"config {path}: unknown key {section}.{key}; known: {', '.join(SCHEMA[section])}")
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
                raise ConfigError(f"config {path}: {section}.{key} = {value!r} has the wrong type")
            result[section][key] = value
    policy = result["search"].get("policy")
    if policy is not None and policy not in ("strict", "standard"):
        raise ConfigError(f"config {path}: search.policy must be 'strict' or 'standard', not {policy!r}")
    return result
