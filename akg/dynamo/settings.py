"""How ``torch.compile(backend="akg")`` searches: ``akg.configure(...)`` over environment variables.

    AKG_MODE        compiler | llm | both   how candidates are proposed (default compiler)
    AKG_LLM         the model LLM mode asks (an OpenAI-compatible endpoint; see docs/llm.md)
    AKG_LLM_URL     the endpoint's base URL (key from AKG_LLM_API_KEY, else OPENAI_API_KEY)
    AKG_BUDGET      candidates measured per new subgraph; 0 = use the store only, never search (default 8)
    AKG_TIME_LIMIT  seconds of search per new subgraph, baselines included; 0: no limit (default 300)
    AKG_DSL         the DSL kernels are written in (default: of the installed DSLs whose timings
                    mean something on the graph's device, the one with the most kernel families)
    AKG_DEVICE      the akg device to target (default: the one the graph's tensors are on)
    AKG_STORE       the SQLite store (default .akg/akg.db)
    AKG_BASELINE    inductor | eager: what a kernel must be measured faster than to replace a
                    subgraph (default inductor: the search also times the subgraph under Inductor)

A value passed to ``akg.configure`` wins over the environment. Bad values are a ConfigError (one
line) from ``configure``; from the environment they turn akg off for the graph (Inductor runs it)
with one warning line, because a compile must never break the user's model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from akg.errors import ConfigError

MODES = ("compiler", "llm", "both")
BASELINES = ("inductor", "eager")

_ENV = {"mode": "AKG_MODE", "budget": "AKG_BUDGET", "time_limit": "AKG_TIME_LIMIT", "dsl": "AKG_DSL",
        "device": "AKG_DEVICE", "store": "AKG_STORE", "baseline": "AKG_BASELINE", "llm": "AKG_LLM",
        "llm_url": "AKG_LLM_URL"}


@dataclass(frozen=True)
class CompileSettings:
    mode: str = "compiler"
    budget: int = 8
    time_limit: float | None = 300.0
    dsl: str | None = None
    device: str | None = None
    store: str | None = None
    baseline: str = "inductor"
    llm: str | None = None
    llm_url: str | None = None

    def check(self) -> "CompileSettings":
        if self.mode not in MODES:
            raise ConfigError(f"akg mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.baseline not in BASELINES:
            raise ConfigError(f"akg baseline must be one of {', '.join(BASELINES)}, not {self.baseline!r}")
        if self.mode != "compiler" and not self.llm:
            raise ConfigError(f"akg mode {self.mode} needs a model: akg.configure(llm=MODEL) or AKG_LLM")
        if not isinstance(self.budget, int) or isinstance(self.budget, bool) or self.budget < 0:
            raise ConfigError(f"akg budget must be a whole number >= 0, not {self.budget!r}")
        if self.time_limit is not None and (isinstance(self.time_limit, bool) or not isinstance(self.time_limit, (int, float))
                                            or self.time_limit < 0):
            raise ConfigError(f"akg time_limit must be a number of seconds >= 0 (0: no limit), not {self.time_limit!r}")
        return self


_overrides: dict[str, Any] = {}


def _from_env(key: str, text: str) -> Any:
    if key == "budget":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{_ENV[key]}={text!r} is not a whole number") from None
    if key == "time_limit":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{_ENV[key]}={text!r} is not a number of seconds") from None
    return text


def current() -> CompileSettings:
    """Defaults, then the environment, then ``configure``. Raises ConfigError on a bad value."""
    values: dict[str, Any] = {}
    for f in fields(CompileSettings):
        text = os.environ.get(_ENV[f.name], "").strip()
        if text:
            values[f.name] = _from_env(f.name, text)
    values.update(_overrides)
    return CompileSettings(**values).check()


def configure(*, mode: str | None = None, budget: int | None = None, time_limit: float | None = None,
              dsl: str | None = None, device: str | None = None, store: str | os.PathLike | None = None,
              baseline: str | None = None, llm: str | None = None, llm_url: str | None = None,
              reset: bool = False) -> CompileSettings:
    """Set how ``torch.compile(backend="akg")`` searches; arguments left None keep their value.
    ``reset=True`` forgets earlier calls first. Returns the settings now in force."""
    given = {"mode": mode, "budget": budget, "time_limit": time_limit, "dsl": dsl, "device": device,
             "store": None if store is None else os.fspath(store), "baseline": baseline, "llm": llm,
             "llm_url": llm_url}
    given = {k: v for k, v in given.items() if v is not None}
    base = {} if reset else dict(_overrides)
    replace(CompileSettings(), **{**base, **given}).check()   # reject a bad value before keeping any
    if reset:
        _overrides.clear()
    _overrides.update(given)
    return current()
