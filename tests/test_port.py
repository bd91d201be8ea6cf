"""``akg port``: a small library (a Triton kernel file and a broken file) ported to C++ on the CPU
into an importable package with custom ops, report.json and report.html; a second run resumes."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from akg.port import identifier
from example_paths import EXAMPLES
from headless import blank_png_bytes, dump_dom, screenshot
from test_migrate import FAST

LIBRARY = EXAMPLES.parent / "library"


def _port(library, out, store, *extra, timeout=900):
    return subprocess.run([sys.executable, "-m", "akg.cli", "port", str(library), "--to", "cpp", "--device", "cpu",
                           "--out", str(out), "--store", str(store), *extra],
                          capture_output=True, text=True, timeout=timeout)


def test_identifiers_are_importable_names():
    assert identifier("01_softmax") == "op_01_softmax"
    assert identifier("layer-norm") == "layer_norm"
    assert identifier("kernels") == "op_kernels" and identifier("class") == "op_class"


def test_port_sub_library_to_cpp(tmp_path):
    lib = tmp_path / "minilib"
    lib.mkdir()
    shutil.copy(LIBRARY / "add_relu.py", lib / "add_relu.py")
    (lib / "broken.py").write_text("import torch\nclass ModelNew(torch.nn.Module):\n    pass\n")
    (tmp_path / "fast.toml").write_text(FAST)
    out, store = tmp_path / "out", tmp_path / "akg.db"
    done = _port(lib, out, store, "--budget", "1", "--config", str(tmp_path / "fast.toml"), "--jobs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    ops = {r["op"]: r for r in report["ops"]}
    assert set(ops) == {"add_relu", "broken"}
    # Every op verified, or with a one-line reason.
    assert ops["broken"]["error"] and "\n" not in ops["broken"]["fallback_reason"]
    assert "defines no Model" in ops["broken"]["fallback_reason"]
    add = ops["add_relu"]
    assert add["verified"] and add["source_runs"] and add["source_ms"] is None
    assert add["ported"] or add["fallback_reason"]
    assert report["summary"]["ops"] == 2 and report["summary"]["errors"] == 1

    # The package: each op as an nn.Module class by its file's name, and as a torch custom op.
    check = textwrap.dedent('''
        import torch, minilib
        import minilib.kernels.add_relu as mod
        assert minilib.OPS == ("add_relu",), minilib.OPS
        x, y = mod.get_inputs()
        expected = torch.relu(x + y)
        assert torch.allclose(minilib.add_relu()(x, y), expected)
        ops = minilib.register_custom_ops("minilib_test")
        layer = ops["add_relu"]()
        assert torch.allclose(torch.ops.minilib_test.add_relu([x, y], []), expected)
        assert torch.allclose(torch.compile(layer, fullgraph=True)(x, y), expected)
        print("package ok", minilib.PORTED)
    ''')
    ran = subprocess.run([sys.executable, "-c", check], cwd=out, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(out)})
    assert ran.returncode == 0 and "package ok" in ran.stdout, ran.stderr[-3000:]

    # The page, in a real browser: one row per op.
    profile = tmp_path / "profile"
    dom = dump_dom(out / "report.html", profile)
    table = dom[dom.index('<table id="problems">'):]
    table = table[:table.index("</table>")]
    assert table.count('data-name="add_relu"') == 1 and table.count('data-name="broken"') == 1
    assert table.count("<tr") == 3
    assert "speedup distribution" in dom and "roofline fraction per op" in dom
    png = screenshot(out / "report.html", tmp_path / "shot.png", profile)
    assert len(png) > 3 * blank_png_bytes(tmp_path, profile)

    # A second run keeps what is done: no op is measured again.
    again = _port(lib, out, store, "--budget", "1", "--config", str(tmp_path / "fast.toml"), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout)
    assert {r["op"]: r["reused"] for r in second["ops"]} == {"add_relu": True, "broken": False}
    assert second["ops"][0]["time_ms"] == add["time_ms"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_port_example_library_to_cpp(tmp_path):
    """The whole example library: every op verified, or with a one-line reason."""
    out = tmp_path / "out"
    done = _port(LIBRARY, out, tmp_path / "akg.db", "--budget", "4", timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert len(report["ops"]) >= 8
    for row in report["ops"]:
        assert row["verified"] or (row["fallback_reason"] and "\n" not in row["fallback_reason"]), row
    assert (out / "library" / "__init__.py").is_file() and (out / "report.html").is_file()
