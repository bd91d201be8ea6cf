"""Paths of the example problems, importable from any test module."""
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "problems"
EXAMPLE_PROBLEMS = sorted(EXAMPLES.glob("[0-9]*.py"))
