"""``akg migrate``: a hand-written Triton kernel file regenerated in C++ on the CPU, its oracle cut
from the file itself, the source kernel judged on the device as a baseline."""
import json
import subprocess
import sys
import textwrap

import pytest

from akg.cli import main
from akg.migrate import oracle_source

# A scaled row softmax written in Triton, as a user would: kernels, ModelNew and the PyTorch Model
# in one file, with helpers only the kernel side uses.
TRITON_KERNEL = textwrap.dedent('''
    import os
    import torch
    import torch.nn as nn
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import triton
    import triton.language as tl

    ROWS, COLS = 8, 96
    SCALE = 0.5


    def _scaled(x):
        return x * SCALE


    class Model(nn.Module):
        def forward(self, x):
            return torch.softmax(_scaled(x), dim=-1)


    def _grid(x):
        return (x.shape[0],)


    @triton.jit
    def _kernel(x_ptr, y_ptr, n, scale, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * n + cols, mask=cols < n, other=-float("inf")) * scale
        e = tl.exp(x - tl.max(x, axis=0))
        tl.store(y_ptr + row * n + cols, e / tl.sum(e, axis=0), mask=cols < n)


    class ModelNew(nn.Module):
        def forward(self, x):
            x = x.contiguous()
            y = torch.empty_like(x)
            _kernel[_grid(x)](x, y, x.shape[1], SCALE, BLOCK=triton.next_power_of_2(x.shape[1]))
            return y


    def get_inputs():
        return [torch.randn(ROWS, COLS)]


    def get_init_inputs():
        return []
''')

FAST = '[harness]\nseeds = [0]\ndistributions = ["problem", "uniform"]\nwarmup = 1\ntrials = 3\nmeasure_compile = false\n'


def test_oracle_keeps_the_pytorch_program_and_drops_the_kernels():
    oracle = oracle_source(TRITON_KERNEL, "k.py")
    namespace = {}
    exec(compile(oracle, "oracle", "exec"), namespace)
    assert {"Model", "get_inputs", "get_init_inputs", "_scaled", "SCALE", "ROWS", "COLS"} <= set(namespace)
    assert not {"ModelNew", "_kernel", "_grid", "triton", "tl", "os"} & set(namespace)
    x = namespace["get_inputs"]()[0]
    assert tuple(x.shape) == (8, 96)


def test_a_file_without_an_oracle_is_one_line_and_exit_2(tmp_path, capsys):
    kernel = tmp_path / "no_oracle.py"
    kernel.write_text(TRITON_KERNEL.replace("def get_inputs", "def not_inputs"))
    assert main(["migrate", str(kernel), "--to", "cpp", "--device", "cpu", "--out", str(tmp_path / "out"),
                 "--store", str(tmp_path / "akg.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "defines no get_inputs" in err and "--problem" in err
    assert main(["migrate", str(tmp_path / "missing.py"), "--to", "cpp", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--store", str(tmp_path / "akg.db")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_migrate_triton_kernel_to_cpp_on_cpu(tmp_path):
    kernel = tmp_path / "scaled_softmax.py"
    kernel.write_text(TRITON_KERNEL)
    (tmp_path / "fast.toml").write_text(FAST)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "akg.cli", "migrate", str(kernel), "--to", "cpp", "--device", "cpu",
                           "--out", str(out), "--store", str(tmp_path / "akg.db"), "--budget", "1",
                           "--config", str(tmp_path / "fast.toml")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    mig = report["migration"]
    assert report["dsl"] == "cpp" and mig["mode"] == "compiler"
    assert mig["oracle"] == "the Model of scaled_softmax.py"
    # The Triton source runs on the CPU only in Triton's interpreter: verified there, not timed.
    assert mig["source"]["dsl"] == "triton" and mig["source"]["runs"], mig["source"]
    assert not mig["source"]["timed"] and "not meaningful" in mig["source"]["reason"]
    assert mig["baselines_timed"] == ["eager"]
    best = report["best"]
    assert best["correct"]
    generated = [c for c in report["candidates"] if c["origin"] == "template"]
    assert generated and all(c["dsl"] == "cpp" for c in generated)
    assert any(c["correct"] for c in generated), [c["reason"] for c in generated]
    source = (out / "best.py").read_text()
    assert "triton" not in source            # the oracle carried no source-DSL code into the result
    assert "source (triton)" in done.stdout


def test_llm_mode_shows_the_source_kernel_to_designer_and_coder(tmp_path, capsys):
    """With --llm the designer's and coder's prompts carry the kernel being ported, and its DSL."""
    from llm_server import ScriptedServer, design_reply
    kernel = tmp_path / "scaled_softmax.py"
    kernel.write_text(TRITON_KERNEL)
    (tmp_path / "fast.toml").write_text(FAST + "[llm]\nislands = 1\nrepairs = 0\n")
    script = [design_reply("port the row softmax"), "No code this time."]
    with ScriptedServer(script) as server:
        code = main(["migrate", str(kernel), "--to", "cpp", "--device", "cpu", "--out", str(tmp_path / "out"),
                     "--store", str(tmp_path / "akg.db"), "--config", str(tmp_path / "fast.toml"),
                     "--llm", "scripted-model", "--llm-url", server.url, "--mode", "llm", "--llm-budget", "1",
                     "--json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["migration"]["mode"] == "llm"
    assert len(server.requests) == 2
    for i in range(2):
        prompt = server.prompt(i)
        assert "The kernel to port (written in triton)" in prompt
        assert "_kernel[_grid(x)](x, y, x.shape[1], SCALE" in prompt
    assert report["best"]["origin"] == "reference"   # the scripted coder wrote nothing usable
