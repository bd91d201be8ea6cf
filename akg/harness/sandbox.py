"""Isolation of a worker process. Conductor side: the environment a worker starts with.
Worker side: what it does to itself before any candidate code exists.

What each measure guarantees and what it cannot is written down in docs/verification.md.
"""
from __future__ import annotations

import ctypes
import os
import resource
import socket
import sys
from pathlib import Path

# Substrings of environment variable names that may hold credentials.
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION")
SECRET_PREFIXES = ("OPENAI_", "HF_", "HUGGING", "AWS_", "AZURE_", "GOOGLE_", "GCP_", "ANTHROPIC_",
                   "GITHUB_", "GH_", "GITLAB_", "WANDB_", "NPM_", "PYPI_", "TWINE_", "SSH_", "GPG_",
                   "DOCKER_", "KUBE", "DATABASE_", "REDIS_", "SLACK_", "MLFLOW_")

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(m in upper for m in SECRET_MARKERS) or upper.startswith(SECRET_PREFIXES)


def worker_environment(scratch: Path, cache_dirs: dict[str, str]) -> dict[str, str]:
    """The parent's environment without anything that looks like a secret, with temporary files
    and build caches pointed where the worker may write."""
    env = {k: v for k, v in os.environ.items() if not is_secret_name(k)}
    env.update(cache_dirs)
    env.update({"TMPDIR": str(scratch), "TEMP": str(scratch), "TMP": str(scratch),
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                # torch.compile (the baseline) compiles in the worker itself: a pool of compile
                # subprocesses would run into the worker's process cap and outlive its process group.
                "TORCHINDUCTOR_COMPILE_THREADS": "1"})
    return env


def cache_dirs(scratch_root: Path) -> dict[str, str]:
    """Build caches a worker may write: torch's own, and those every installed DSL names (the
    caches its candidates compile into)."""
    from akg import plugins
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    dirs = {
        "AKG_CACHE_DIR": os.environ.get("AKG_CACHE_DIR", str(home_cache / "akg")),
        "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(home_cache / "torch_extensions")),
        "TORCHINDUCTOR_CACHE_DIR": os.environ.get("TORCHINDUCTOR_CACHE_DIR", str(scratch_root / "inductor")),
    }
    for dsl in plugins.dsls().values():
        dirs.update(dsl.worker_environment())
    return dirs


# ---- worker side -------------------------------------------------------------------------------

def leave_network() -> bool:
    """Move into a new user + network namespace: only a loopback device, which is down.
    Must run before any thread starts (unshare of a user namespace fails in a threaded process).
    Returns False where the kernel or container forbids it; the audit hook then blocks sockets."""
    uid, gid = os.getuid(), os.getgid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return False
        # Map our own ids so files we create keep their owner (unmapped ids cannot create files).
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
        return True
    except OSError:
        return False


def count_user_tasks(uid: int) -> int:
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                total += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return total


def limit_resources(memory_limit_mb: int | None, max_processes: int) -> None:
    """Address-space and process-count limits. Call after heavy imports: the limit on address
    space is counted from what the worker already maps, so it bounds what the candidate adds."""
    if memory_limit_mb:
        current = _mapped_bytes()
        limit = current + memory_limit_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    tasks = count_user_tasks(os.getuid()) + max_processes
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    cap = tasks if hard == resource.RLIM_INFINITY else min(tasks, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _mapped_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                "shutil.rmtree", "shutil.copyfile", "shutil.move", "os.symlink", "os.link"}
_TWO_PATH_EVENTS = {"os.rename", "os.replace"}
_SOCKET_EVENTS = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
                  "socket.sendto", "socket.gethostbyname"}


class SandboxViolation(PermissionError):
    pass


def install_audit_hook(writable: list[Path], block_sockets: bool) -> None:
    """Refuse writes outside ``writable`` and (optionally) sockets, for Python-level code.
    Native code (ctypes, extensions, subprocesses) does not pass through audit hooks."""
    roots = tuple(str(Path(p).resolve()) for p in writable) + ("/dev/null", "/dev/shm")

    def allowed(path) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor was checked when it was opened
        try:
            resolved = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return any(resolved == r or resolved.startswith(r.rstrip("/") + "/") for r in roots)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (flags & _WRITE_FLAGS)
            if writing and path is not None and not allowed(path):
                raise SandboxViolation(f"write to {path} outside the worker's scratch directory")
        elif event in _PATH_EVENTS:
            if args and not allowed(args[0]):
                raise SandboxViolation(f"{event} on {args[0]} outside the worker's scratch directory")
        elif event in _TWO_PATH_EVENTS:
            if not all(allowed(p) for p in args[:2]):
                raise SandboxViolation(f"{event} outside the worker's scratch directory")
        elif block_sockets and event in _SOCKET_EVENTS:
            if event == "socket.__new__" and len(args) > 1 and args[1] == socket.AF_UNIX:
                return
            raise SandboxViolation("network access is not allowed in a worker")

    sys.addaudithook(hook)
