"""The plugin manager: finds DSLs, backends and passes through the ``akg`` entry-point group."""
from __future__ import annotations

import functools

import pluggy

from akg import hookspecs
from akg.targets import DSL, Backend, HardwareSpec, Pass

hookimpl = pluggy.HookimplMarker("akg")
ENTRY_POINT_GROUP = "akg"


class PluginError(LookupError):
    """A requested DSL/backend/hardware does not exist, or a plugin is broken."""


@functools.lru_cache(maxsize=1)
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("akg")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    # A misspelled hook name in a plugin must fail loudly rather than be ignored.
    pm.check_pending()
    return pm


def _collect(results: list[list]) -> list:
    return [obj for batch in results for obj in (batch or [])]


@functools.lru_cache(maxsize=1)
def dsls() -> dict[str, DSL]:
    return {d.name: d for d in _collect(manager().hook.akg_dsls())}


@functools.lru_cache(maxsize=1)
def backends() -> dict[str, Backend]:
    return {b.name: b for b in _collect(manager().hook.akg_backends())}


@functools.lru_cache(maxsize=1)
def passes() -> list[Pass]:
    return sorted(_collect(manager().hook.akg_passes()), key=lambda p: (p.stage, p.order, p.name))


def get_dsl(name: str) -> DSL:
    found = dsls()
    if name not in found:
        raise PluginError(f"unknown DSL {name!r}; installed: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def get_backend(name: str) -> Backend:
    found = backends()
    if name not in found:
        raise PluginError(f"unknown device {name!r}; installed backends: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def worker_environment(device: str) -> dict[str, str]:
    """Environment variables DSLs ask for in worker processes on ``device`` (optional
    ``worker_env(device)`` of a DSL plugin), e.g. a DSL that runs only interpreted there."""
    env: dict[str, str] = {}
    for dsl in dsls().values():
        hook = getattr(dsl, "worker_env", None)
        if callable(hook):
            env.update(hook(device) or {})
    return env


def hardware_descriptors() -> list[HardwareSpec]:
    return [h for b in backends().values() for h in b.descriptors()]


def find_hardware(name: str) -> HardwareSpec:
    for h in hardware_descriptors():
        if h.name == name:
            return h
    raise PluginError(f"unknown hardware {name!r}; known: {', '.join(h.name for h in hardware_descriptors())}")
