"""The core (akg/) names no DSL or vendor: DSLs and backends are plugins it only asks questions."""
import re
from pathlib import Path

from akg import plugins
from akg.harness import HarnessConfig
from akg.targets import Target

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("triton", "cuda", "cuda_c", "cpp", "nvidia", "nvcc", "nvrtc", "metal", "msl", "mps", "hip", "hipcc",
         "rocm", "amd", "tilelang", "cupy", "apple", "intel")
# A name as a word of its own (a literal, a module, a comment), or an environment variable it
# prefixes (TRITON_INTERPRET). A longer identifier of torch's own that contains one
# (reductions.rebuild_cuda_tensor) is torch's API, not a choice the core makes by name.
_WORDS = re.compile(r"\b(%s)\b" % "|".join(NAMES), re.IGNORECASE)
_ENV = re.compile(r"\b(%s)_[A-Z0-9_]+\b" % "|".join(n.upper() for n in NAMES))


class _Pattern:
    def finditer(self, line):
        yield from _WORDS.finditer(line)
        yield from _ENV.finditer(line)

    def search(self, line):
        return next(self.finditer(line), None)


PATTERN = _Pattern()


def test_the_core_names_no_dsl_or_vendor():
    found = []
    for path in sorted((ROOT / "akg").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in PATTERN.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert not found, "\n".join(found)


def test_the_pattern_catches_names_in_code_and_comments():
    assert PATTERN.search('if device.startswith("cuda"):')
    assert PATTERN.search("os.environ['TRITON_INTERPRET']")
    assert PATTERN.search("# hip kernels")
    assert PATTERN.search("x = torch.cuda.Event()") and PATTERN.search("dsl = 'cuda_c'")
    assert not PATTERN.search("relationship chip cppx")
    assert not PATTERN.search("reductions.rebuild_cuda_tensor(")


def test_target_answers_timing_and_harness_settings():
    cpu = plugins.get_backend("cpu")
    hw = cpu.descriptors()[0]

    class Interpreted:  # a DSL whose timings mean nothing on the cpu
        name, timing_meaningful_on = "interp", ()

        def versions(self):
            return {"interp": "1.0"}

    target = Target(Interpreted(), cpu, hw)
    assert target.device == "cpu" and not target.timing_meaningful
    settings = target.harness_settings(HarnessConfig())
    assert settings.time is False and len(settings.seeds) == 1
    assert target.versions()["interp"] == "1.0" and target.versions()["hardware"] == hw.name
    native = Target(plugins.get_dsl("cpp"), cpu, hw)
    assert native.timing_meaningful and native.harness_settings(HarnessConfig()) == HarnessConfig()
