"""A DSL plugin living outside akg: pointwise groups rendered as torch expressions.

The same shape as akg's own DSLs: dsl.py (the plugin object), render.py, schedules.py, exprs.py
(the expression dialect), guide.md and templates/.
"""
from akg.plugins import hookimpl

from .dsl import TorchExprDSL


@hookimpl
def akg_dsls():
    return [TorchExprDSL()]
