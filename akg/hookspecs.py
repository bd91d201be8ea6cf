"""Hook specifications for akg plugins. Signatures and docstrings only.

A plugin is any module or object registered under the ``akg`` entry-point group that implements
some of these hooks (decorated with ``akg.hookimpl``). Built-in DSLs, backends and passes are
registered the same way as third-party ones.
"""
import pluggy

hookspec = pluggy.HookspecMarker("akg")


@hookspec
def akg_dsls():
    """Return a list of DSL objects (see ``akg.targets.DSL``) this plugin provides."""


@hookspec
def akg_backends():
    """Return a list of Backend objects (see ``akg.targets.Backend``) this plugin provides."""


@hookspec
def akg_passes():
    """Return a list of Pass objects (see ``akg.targets.Pass``) this plugin provides."""
