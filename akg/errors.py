"""Exit codes and the user-facing error type.

Every way bad input can reach akg maps to one exit code, so scripts can tell them apart:

    0  success (verify: the candidate was accepted)
    1  verify: the candidate was rejected
    2  bad usage, unknown DSL/device name, or a malformed problem file
    3  a malformed candidate file (unreadable, not Python)
    4  a malformed config file
    5  the requested device, or the DSL's toolchain, is not available on this machine
    6  the store cannot be opened
    7  the LLM endpoint is unreachable or refuses requests
   70  an internal error in akg (a bug: please report it with --debug output)
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_CANDIDATE = 3
EXIT_CONFIG = 4
EXIT_DEVICE = 5
EXIT_STORE = 6
EXIT_LLM = 7
EXIT_INTERNAL = 70


class AkgError(Exception):
    """An error caused by input, with the exit code the CLI should return. Message: one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class CandidateFileError(AkgError):
    exit_code = EXIT_CANDIDATE


class ConfigError(AkgError):
    exit_code = EXIT_CONFIG


class DeviceUnavailable(AkgError):
    exit_code = EXIT_DEVICE
