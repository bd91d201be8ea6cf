"""What a new user meets first: version, plugin table, missing toolchains, bad paths, damaged stores,
file modes and temp folders. In-process where possible (cli.main), so the file stays fast."""
import importlib.util
import os
import sqlite3
import stat
import tempfile
from pathlib import Path

import pytest

from akg import cli
from akg.pipeline import atomic_write
from akg.store import Store

PROBLEM = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0

def get_inputs():
    return [torch.randn(64, 64)]

def get_init_inputs():
    return []
'''


@pytest.fixture
def problem(tmp_path):
    p = tmp_path / "relu.py"
    p.write_text(PROBLEM)
    return p


def one_line_error(capsys) -> str:
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith("akg: error:"), err
    return err[0]


@pytest.fixture
def no_triton(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    from akg import __version__
    assert capsys.readouterr().out.strip() == f"akg {__version__}"


def test_missing_toolchain_exits_5_before_any_work(problem, tmp_path, capsys, no_triton):
    rc = cli.main(["optimize", str(problem), "--dsl", "triton", "--device", "cpu", "--out", str(tmp_path / "o"),
                   "--store", str(tmp_path / "s.db")])
    assert rc == 5
    assert "triton is not installed: pip install 'akg[triton]'" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_plugins_shows_availability_with_reason_in_aligned_columns(capsys, no_triton):
    assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    dsl_rows = lines[1:lines.index("Backends:")]
    triton = next(l for l in dsl_rows if l.split()[0] == "triton")
    assert "not available: triton is not installed" in triton
    # every column of a section starts at the same offset in every row
    header = dsl_rows[0]
    for row in dsl_rows[1:]:
        assert row.index(row.split()[1]) == header.index("status")
    backends = lines[lines.index("Backends:") + 1:lines.index("Hardware descriptors:")]
    assert len({row.index(row.split()[1]) for row in backends}) == 1


@pytest.mark.parametrize("flag", ["--out", "--store"])
def test_output_under_a_file_exits_2_before_any_work(problem, tmp_path, capsys, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    paths = {"--out": str(tmp_path / "o"), "--store": str(tmp_path / "s.db")}
    paths[flag] = str(blocker / "sub" / ("s.db" if flag == "--store" else "o"))
    rc = cli.main(["optimize", str(problem), "--dsl", "cpp", "--out", paths["--out"], "--store", paths["--store"]])
    assert rc == 2
    line = one_line_error(capsys)
    assert flag in line and "a_file is a file" in line
    assert not (tmp_path / "s.db").exists()  # nothing started


def test_bench_out_that_is_a_folder_exits_2(problem, tmp_path, capsys):
    rc = cli.main(["bench", str(tmp_path), "--dsl", "cpp", "--out", str(tmp_path), "--store", str(tmp_path / "s.db")])
    assert rc == 2 and "is a folder" in one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_out_in_read_only_folder_exits_2(problem, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc = cli.main(["optimize", str(problem), "--dsl", "cpp", "--out", str(ro / "o"), "--store", str(tmp_path / "s.db")])
    finally:
        ro.chmod(0o700)
    assert rc == 2 and "not writable" in one_line_error(capsys)


def _damaged_store(path: Path) -> None:
    with Store(path) as s:
        for i in range(400):
            s.add_problem(f"d{i}", "p" * 200, None, "source " * 200)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[3 * page:6 * page] = os.urandom(3 * page)  # pages in the middle: the header still reads fine
    path.write_bytes(bytes(data))
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)


def test_damaged_store_exits_6_with_its_name_and_advice(problem, tmp_path, capsys):
    store = tmp_path / "damaged.db"
    _damaged_store(store)
    rc = cli.main(["optimize", str(problem), "--dsl", "cpp", "--out", str(tmp_path / "o"), "--store", str(store)])
    assert rc == 6
    line = one_line_error(capsys)
    assert str(store) in line and "--store" in line


def test_damaged_store_found_when_opened(tmp_path):
    from akg.store import StoreError
    store = tmp_path / "damaged.db"
    _damaged_store(store)
    with pytest.raises(StoreError, match="damaged.db"):
        Store(store)


def test_results_are_world_readable(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "best.py", "x = 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "best.py").stat().st_mode) == 0o644


def test_suite_temp_dir_is_private(tmp_path_factory):
    # conftest points TMPDIR (this process and its children) into pytest's own tree, so folders a
    # killed conductor or the API leaves behind never reach the system temp dir.
    base = tmp_path_factory.getbasetemp()
    assert Path(tempfile.gettempdir()).is_relative_to(base)
    assert Path(os.environ["TMPDIR"]).is_relative_to(base)


@pytest.mark.parametrize("command", [
    ["migrate", "k.py", "--to", "cpp"],
    ["port", "lib", "--to", "cpp"],
    ["report", "run"],
    ["export", "--store", "{store}"],
])
def test_every_command_checks_out_before_work(tmp_path, capsys, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    store = tmp_path / "s.db"
    Store(store).close()
    argv = [a.replace("{store}", str(store)) for a in command] + ["--out", str(blocker / "x")]
    assert cli.main(argv) == 2
    assert "a_file is a file" in one_line_error(capsys)
