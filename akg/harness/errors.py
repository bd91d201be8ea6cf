"""Errors the harness raises for bad input. A candidate that fails is a Verdict, never one of these.

Each class carries ``exit_code`` so the command line can map it without knowing the harness.
"""
from __future__ import annotations


class HarnessError(Exception):
    """Base class: the message is one line saying what was wrong and what to do."""
    exit_code = 2


class CandidateError(HarnessError):
    """A candidate file cannot be evaluated at all (unreadable, not Python text, no ModelNew)."""
    exit_code = 3


class ConfigError(HarnessError):
    """A harness configuration (object or TOML file) is malformed."""
    exit_code = 4
