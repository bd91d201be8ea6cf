"""What the harness checks and how hard: seeds, value distributions, tolerances, timing, limits."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from akg.harness.errors import ConfigError

# How the float inputs of one test case are drawn, applied to the problem's own draw for a seed:
# "problem" keeps it; the others keep its shape and rough value range but move the values, so a
# candidate that only works on the problem's usual inputs (a range shortcut, a hard-wired seed)
# meets values it did not expect.
DISTRIBUTIONS = ("problem", "uniform", "large", "small", "shifted")


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol * scale + rtol * |expected|`` elementwise, where ``scale`` is
    max(1, max |expected|), plus ``||actual - expected|| / ||expected|| <= rel_norm``."""
    rtol: float
    atol: float
    rel_norm: float


# fp32 is meant as fp32: the relative-norm bound sits below fp16/bf16/tf32 rounding (~3e-4 rms),
# so a candidate that quietly computes in lower precision is rejected, while a different
# summation order (~1e-6) passes with room to spare.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-7, atol=1e-8, rel_norm=1e-8),
    "float32": Tolerance(rtol=1e-4, atol=1e-5, rel_norm=5e-5),
    "float16": Tolerance(rtol=1e-2, atol=1e-3, rel_norm=5e-3),
    "bfloat16": Tolerance(rtol=2e-2, atol=1e-2, rel_norm=1e-2),
}
EXACT = Tolerance(rtol=0.0, atol=0.0, rel_norm=0.0)


@dataclass(frozen=True)
class HarnessConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    distributions: tuple[str, ...] = ("problem", "uniform", "large", "small", "shifted")
    tolerances: tuple[tuple[str, Tolerance], ...] = tuple(DEFAULT_TOLERANCES.items())
    warmup: int = 3
    trials: int = 30
    time: bool = True                  # False: correctness only
    measure_compile: bool = True       # torch.compile baseline (slow on CPUs)
    timeout_s: float = 120.0           # per phase: start, load, each correctness case, timing
    memory_limit_mb: int = 16384       # address-space limit of a CPU worker
    max_processes: int = 256           # processes a worker may add (fork bombs stop here)
    floor_slack: float = 0.5           # a time below floor_ms * floor_slack is a suspect
    async_delay_s: float = 0.02        # how long to wait before re-reading outputs for late writes
    network: bool = False              # True lets candidates open sockets (never for untrusted code)
    random_samples: int = 16           # seeds of the statistical check (models that draw random numbers)

    def tolerance(self, dtype: str) -> Tolerance:
        return dict(self.tolerances).get(dtype, EXACT)

    def cases(self) -> list[tuple[int, str]]:
        """(seed, distribution) pairs: every seed with the problem's own values, then each other
        distribution once, each with a different seed so that no two cases share a draw."""
        cases = [(s, "problem") for s in self.seeds] if "problem" in self.distributions else []
        others = [d for d in self.distributions if d != "problem"]
        base = max(self.seeds, default=0) + 1
        cases += [(base + i, d) for i, d in enumerate(others)]
        return cases

    def validate(self) -> "HarnessConfig":
        unknown = [d for d in self.distributions if d not in DISTRIBUTIONS]
        if unknown:
            raise ConfigError(f"unknown distribution {unknown[0]!r}; choose from {', '.join(DISTRIBUTIONS)}")
        if not self.seeds or not self.distributions:
            raise ConfigError("harness config needs at least one seed and one distribution")
        for name in ("trials", "timeout_s", "memory_limit_mb", "max_processes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"harness config: {name} must be positive, got {getattr(self, name)!r}")
        if self.random_samples < 4:
            raise ConfigError(f"harness config: random_samples must be at least 4, got {self.random_samples!r}")
        if self.warmup < 0:
            raise ConfigError(f"harness config: warmup must be >= 0, got {self.warmup!r}")
        return self

    def replace(self, **changes) -> "HarnessConfig":
        return dataclasses.replace(self, **changes).validate()


_FIELDS = {f.name: f for f in dataclasses.fields(HarnessConfig)}


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict; unreadable or malformed files are a one-line ConfigError."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"config {path}: cannot read ({e.strerror}); check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path}: not valid TOML ({e}); fix the syntax") from None


def load_config(path: str | Path) -> HarnessConfig:
    """Read a ``[harness]`` table (or a bare table) from TOML. Tolerances are a sub-table
    ``[harness.tolerances.float32] rtol = ..`` merged over the defaults."""
    data = read_toml(path)
    return config_from_dict(data.get("harness", data), where=str(path))


def config_from_dict(data: dict, where: str = "harness config") -> HarnessConfig:
    values = {}
    for key, value in data.items():
        if key == "tolerances":
            values[key] = _tolerances(value, where)
        elif key not in _FIELDS:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(_FIELDS))}")
        elif key in ("seeds", "distributions"):
            values[key] = tuple(value) if isinstance(value, list) else value
        else:
            values[key] = value
    for key, value in values.items():
        _check_type(key, value, where)
    return HarnessConfig(**values).validate()


def _check_type(key: str, value, where: str) -> None:
    default = getattr(HarnessConfig(), key)
    if key == "tolerances":
        return
    if isinstance(default, tuple):
        ok = isinstance(value, tuple) and all(isinstance(v, type(default[0])) for v in value)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{where}: {key} should be like {default!r}, got {value!r}")


def _tolerances(table, where: str) -> tuple[tuple[str, Tolerance], ...]:
    merged = dict(DEFAULT_TOLERANCES)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: tolerances must be a table of dtype -> {{rtol, atol, rel_norm}}")
    for dtype, fields in table.items():
        if dtype not in DEFAULT_TOLERANCES or not isinstance(fields, dict):
            raise ConfigError(f"{where}: tolerances.{dtype} is not a float dtype table; use one of {', '.join(DEFAULT_TOLERANCES)}")
        try:
            merged[dtype] = dataclasses.replace(merged[dtype], **{k: float(v) for k, v in fields.items()})
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: tolerances.{dtype} takes numbers rtol, atol, rel_norm") from None
    return tuple(merged.items())
