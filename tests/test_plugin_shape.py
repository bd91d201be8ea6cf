"""Every DSL package has one shape, plugins are checked against their protocol at load, and two
plugins with one name are refused."""
import subprocess
import sys
from pathlib import Path

import pytest

from akg import plugins
from akg.targets import DSL, Backend

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ("__init__.py", "dsl.py", "render.py", "schedules.py", "exprs.py", "guide.md")
PACKAGES = sorted(p for p in (ROOT / "dsls").iterdir() if (p / "__init__.py").exists())


@pytest.mark.parametrize("package", PACKAGES + [ROOT / "examples" / "plugin_example" / "akg_example_dsl"],
                         ids=lambda p: p.name)
def test_every_dsl_package_has_the_same_shape(package):
    missing = [name for name in SHAPE if not (package / name).is_file()]
    assert not missing, f"{package.name} lacks {missing}"
    templates = list((package / "templates").glob("*.j2"))
    assert templates, f"{package.name} has no templates/*.j2"


def test_no_templates_left_outside_the_dsl_packages():
    # templates/prompts/ holds the LLM roles' prompts, which belong to no DSL.
    assert not [p for p in (ROOT / "templates").rglob("*.j2") if p.parent.name != "prompts"]


def test_installed_templates_are_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    for package in PACKAGES:
        assert f'"akg.dsls.{package.name}" = ["guide.md", "templates/*.j2"' in text, package.name


class _Incomplete:
    name = "broken"
    devices = ("cpu",)


def test_a_plugin_lacking_part_of_its_protocol_is_refused_by_name():
    with pytest.raises(plugins.PluginError, match=r"DSL plugin 'broken' .* lacks .*render"):
        plugins._by_name([_Incomplete()], DSL, "DSL")


def test_two_plugins_with_one_name_are_refused():
    cpu = plugins.get_backend("cpu")
    with pytest.raises(plugins.PluginError, match="two backend plugins are named 'cpu'"):
        plugins._by_name([cpu, type(cpu)()], Backend, "backend")


def test_every_installed_plugin_passes_its_check():
    assert plugins.dsls() and plugins.backends()
    for dsl in plugins.dsls().values():
        plugins.check_plugin(dsl, DSL, "DSL")


def test_a_duplicate_name_reaches_the_user_as_one_line(tmp_path):
    # A second distribution registering a DSL named like a built-in one.
    (tmp_path / "dup_dsl.py").write_text(
        "from akg.plugins import hookimpl\n"
        "from akg.dsls.cpp.dsl import CppDSL\n"
        "@hookimpl\n"
        "def akg_dsls():\n"
        "    return [CppDSL()]\n")
    script = ("import sys, akg.plugins as p, dup_dsl\n"
              "p.manager().register(dup_dsl)\n"
              "from akg.cli import main\n"
              "sys.exit(main(['plugins']))\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "akg: error: two DSL plugins are named 'cpp' (akg.dsls.cpp.dsl and akg.dsls.cpp.dsl); uninstall one"]


def test_schedules_are_typed_and_validated_in_every_dsl():
    from akg.dsls.cpp.schedules import CppSchedule
    from akg.dsls.cuda_c.schedules import PointwiseSchedule
    from akg.dsls.metal.schedules import MetalSchedule
    from akg.dsls.triton.schedules import TritonSchedule
    from akg.ir import Schedule
    for bad in (lambda: CppSchedule(variant="diagonal"), lambda: CppSchedule(lanes=0),
                lambda: TritonSchedule(BLOCK=100), lambda: TritonSchedule(num_warps=3),
                lambda: TritonSchedule.from_schedule(Schedule((("BLOKC", 64),))),
                lambda: PointwiseSchedule(vec=3), lambda: MetalSchedule("split")):
        with pytest.raises(ValueError):
            bad()
    s = TritonSchedule(variant="looped", ROWS=2, RBLOCK=512, num_warps=4)
    assert TritonSchedule.from_schedule(s.to_schedule()) == s
    assert dict(s.to_schedule().knobs) == {"variant": "looped", "ROWS": 2, "RBLOCK": 512, "num_warps": 4}


def test_plugins_list_without_the_optional_dsl_packages():
    # Every optional DSL package made unimportable: akg still loads its plugins and lists each
    # DSL with the reason it is not available (a plugin that imports its package when it
    # registers breaks akg for every user without that package).
    import subprocess
    import sys
    code = ("import sys\n"
            "for name in ('tilelang', 'tvm', 'tvm_ffi', 'triton'):\n"
            "    sys.modules[name] = None\n"
            "from akg.cli import main\n"
            "sys.exit(main(['plugins']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert "not available" in lines["tilelang"] and "not available" in lines["triton"]
    assert lines["cpp"].split()[1] == "available"
