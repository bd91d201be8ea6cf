"""The plugin manager: finds DSLs, backends and passes through the ``akg`` entry-point group."""
from __future__ import annotations

import functools

import pluggy

from akg import hookspecs
from akg.errors import EXIT_USAGE
from akg.targets import DSL, Backend, HardwareSpec, Pass

hookimpl = pluggy.HookimplMarker("akg")
ENTRY_POINT_GROUP = "akg"


class PluginError(LookupError):
    """A requested DSL/backend/hardware does not exist, or a plugin is broken."""
    exit_code = EXIT_USAGE


# Protocol methods documented as optional: the core asks for them with getattr and a default.
OPTIONAL_MEMBERS = frozenset({"kernel_findings", "toolchain_problem"})


def protocol_members(protocol: type) -> tuple[str, ...]:
    """The attributes and methods a plugin object must have to be a ``protocol``."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return tuple(sorted(names - OPTIONAL_MEMBERS))


def check_plugin(obj, protocol: type, kind: str) -> None:
    """Refuse an object that lacks part of its protocol, naming what is missing, at load time
    rather than at the first call deep inside a search."""
    missing = [n for n in protocol_members(protocol) if not hasattr(obj, n)]
    if missing:
        name = getattr(obj, "name", type(obj).__name__)
        raise PluginError(f"{kind} plugin {name!r} ({type(obj).__module__}) lacks {', '.join(missing)} "
                          f"of the {protocol.__name__} protocol")


def _by_name(objects: list, protocol: type, kind: str) -> dict:
    found: dict = {}
    for obj in objects:
        check_plugin(obj, protocol, kind)
        if obj.name in found:
            raise PluginError(f"two {kind} plugins are named {obj.name!r} ({type(found[obj.name]).__module__} and "
                              f"{type(obj).__module__}); uninstall one")
        found[obj.name] = obj
    return found


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
    return _by_name(_collect(manager().hook.akg_dsls()), DSL, "DSL")


@functools.lru_cache(maxsize=1)
def backends() -> dict[str, Backend]:
    return _by_name(_collect(manager().hook.akg_backends()), Backend, "backend")


@functools.lru_cache(maxsize=1)
def passes() -> list[Pass]:
    found = _collect(manager().hook.akg_passes())
    for p in found:
        check_plugin(p, Pass, "pass")
    return sorted(found, key=lambda p: (p.stage, p.order, p.name))


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


def backend_for(device: str) -> Backend:
    """The backend of a torch-style device string ("name" or "name:index")."""
    return get_backend(device.split(":")[0])


def worker_environment(device: str) -> dict[str, str]:
    """Environment variables DSLs ask for in worker processes on ``device`` (optional
    ``worker_env(device)`` of a DSL plugin), e.g. a DSL that runs only interpreted there."""
    env: dict[str, str] = {}
    for dsl in dsls().values():
        hook = getattr(dsl, "worker_env", None)
        if callable(hook):
            env.update(hook(device) or {})
    return env


def preload_worker(device: str) -> None:
    """Run each DSL's optional ``worker_preload(device)`` in the process workers are forked from:
    work every worker would otherwise repeat before its first candidate (imports, a compiler's
    cache key). A preload that fails only loses the saving."""
    for dsl in dsls().values():
        hook = getattr(dsl, "worker_preload", None)
        if callable(hook):
            try:
                hook(device)
            except Exception:
                pass
    # The device's backend likewise (optional ``worker_preload()``): state every worker makes the
    # same way, made once and shared by the forked workers.
    hook = getattr(backends().get(device.split(":")[0]), "worker_preload", None)
    if callable(hook):
        try:
            hook()
        except Exception:
            pass


def hardware_descriptors() -> list[HardwareSpec]:
    return [h for b in backends().values() for h in b.descriptors()]


def find_hardware(name: str) -> HardwareSpec:
    for h in hardware_descriptors():
        if h.name == name:
            return h
    raise PluginError(f"unknown hardware {name!r}; known: {', '.join(h.name for h in hardware_descriptors())}")


def toolchain_problem(dsl: DSL) -> str | None:
    """Why ``dsl`` cannot build candidates on this machine (one line), or None when it can.
    A plugin that does not say is taken at its word that it needs nothing."""
    check = getattr(dsl, "toolchain_problem", None)
    return check() if callable(check) else None
