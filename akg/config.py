"""Optional TOML config file (``--config akg.toml``): defaults for the search and the harness.

```toml
[search]
budget = 24
time_limit = 600      # seconds
policy = "strict"

[harness]             # any HarnessConfig field, see docs/verification.md
seeds = [0, 1, 2]
trials = 30
measure_compile = true
```
Command-line flags override the file. Unknown sections or keys are errors, so a typo never
silently falls back to a default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from akg.errors import ConfigError
from akg.harness.config import HarnessConfig, config_from_dict, read_toml

SEARCH_KEYS: dict[str, type | tuple[type, ...]] = {"budget": int, "time_limit": (int, float), "policy": str}


def load_config(path: str | Path | None) -> tuple[dict[str, Any], HarnessConfig]:
    """The [search] table (checked) and the HarnessConfig built from [harness]."""
    if path is None:
        return {}, HarnessConfig()
    path = Path(path)
    data = read_toml(path)
    unknown = [s for s in data if s not in ("search", "harness", "llm") or not isinstance(data[s], dict)]
    if unknown:
        raise ConfigError(f"config {path}: unknown section [{unknown[0]}]; known: [search], [harness], [llm]")
    search = _search(path, data.get("search", {}))
    harness = config_from_dict(data.get("harness", {}), where=f"config {path}: [harness]")
    return search, harness


def _search(path: Path, values: dict) -> dict[str, Any]:
    for key, value in values.items():
        expected = SEARCH_KEYS.get(key)
        if expected is None:
            raise ConfigError(f"config {path}: unknown key search.{key}; known: {', '.join(SEARCH_KEYS)}")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"config {path}: search.{key} = {value!r} has the wrong type")
    if values.get("policy", "strict") not in ("strict", "standard"):
        raise ConfigError(f"config {path}: search.policy must be 'strict' or 'standard', not {values['policy']!r}")
    return dict(values)


def load_llm_config(path: str | Path | None) -> dict[str, Any]:
    """The [llm] table (checked): model, url, api_key_env, mode, agents, budgets, prices; see docs/llm.md."""
    if path is None:
        return {}
    from akg.evolve import check_llm_values
    path = Path(path)
    return dict(check_llm_values(read_toml(path).get("llm", {}), f"config {path}"))
