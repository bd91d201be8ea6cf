"""LLM mode's parts against a real local OpenAI-compatible server: client, cassette, parsing,
static screen, store migration, endpoint errors. Scripted replies test the machinery only."""
from __future__ import annotations

import json
import socket
import sqlite3

import pytest

from akg import screen
from akg.agents import prompts
from akg.errors import EXIT_LLM
from akg.ir import Design, IRError
from akg.llm import LLMClient, LLMError, LLMSettings, TurnFailed
from akg.plugins import get_dsl
from akg.store import Store
from llm_server import REPLIES, ScriptedServer, design_reply, kernel_reply

PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.sigmoid(torch.cummax(x, dim=0).values)


def get_inputs():
    return [torch.randn(16, 8)]


def get_init_inputs():
    return []
'''


def _client(server, **kw) -> LLMClient:
    return LLMClient(LLMSettings(server.model, server.url, backoff_s=0.01, **kw))


def _ask(client, text="hi"):
    return client.chat([{"role": "user", "content": text}], "coder")


# -- client --------------------------------------------------------------------------------------

def test_client_retries_429_and_5xx_and_counts_tokens():
    with ScriptedServer([(429, "slow down"), (503, "overloaded"), "hello"], tokens=(7, 3)) as server:
        client = _client(server)
        reply = _ask(client)
    assert reply.text == "hello" and len(server.requests) == 3
    report = client.report()
    assert report["retries"] == 2 and report["tokens"] == {"prompt": 7, "completion": 3, "total": 10}
    assert report["cost"] is None


def test_client_cost_and_token_budget():
    from akg.llm import BudgetExhausted
    with ScriptedServer(["a", "b"], tokens=(1000, 500)) as server:
        client = _client(server, token_budget=1200, price_in=2.0, price_out=10.0)
        _ask(client)
        with pytest.raises(BudgetExhausted):
            _ask(client, "again")
    assert len(server.requests) == 1
    assert client.report()["cost"] == pytest.approx(1000 * 2 / 1e6 + 500 * 10 / 1e6)


def test_bad_key_unknown_model_and_rejected_request():
    with ScriptedServer([(401, "invalid api key"), (400, "context too long")]) as server:
        client = _client(server)
        with pytest.raises(LLMError, match="refused the API key") as e:
            _ask(client)
        assert e.value.exit_code == EXIT_LLM
        with pytest.raises(TurnFailed, match="context too long"):
            _ask(client)
        other = LLMClient(LLMSettings("no-such-model", server.url, backoff_s=0.01))
        with pytest.raises(LLMError, match="does not know model 'no-such-model'"):
            _ask(other)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_is_llm_error():
    client = LLMClient(LLMSettings("m", f"http://127.0.0.1:{_closed_port()}/v1", retries=1, backoff_s=0.01))
    with pytest.raises(LLMError, match="unreachable"):
        client.check_endpoint()
    with pytest.raises(LLMError, match="unreachable"):
        _ask(client)


def test_cassette_records_and_replays_content_addressed(tmp_path):
    cassette = tmp_path / "c.jsonl"
    with ScriptedServer(["first", "second", "third"]) as server:
        client = _client(server, record=str(cassette))
        texts = [_ask(client, "same").text, _ask(client, "same").text, _ask(client, "other").text]
    assert texts == ["first", "second", "third"]
    assert len(cassette.read_text().splitlines()) == 3
    replay = LLMClient(LLMSettings("scripted-model", "http://127.0.0.1:9/v1", replay=str(cassette)))
    again = [_ask(replay, "same"), _ask(replay, "same"), _ask(replay, "other")]
    assert [r.text for r in again] == texts and all(r.replayed for r in again)
    assert replay.report()["tokens"]["total"] == 3 * 150
    with pytest.raises(LLMError, match="holds no reply"):
        _ask(replay, "never asked")


def test_replay_that_drifts_takes_the_next_recorded_reply_of_its_role(tmp_path):
    """A prompt whose judged results changed (say a candidate timed out while recording) still gets
    the reply the recorded run got at that point; the drift is counted, and asking past the
    recording is an error."""
    cassette = tmp_path / "c.jsonl"
    with ScriptedServer(["first", "second"]) as server:
        client = _client(server, record=str(cassette))
        [_ask(client, "candidate c1 timed out"), _ask(client, "then this")]
    replay = LLMClient(LLMSettings("scripted-model", "http://127.0.0.1:9/v1", replay=str(cassette)))
    assert _ask(replay, "candidate c1: 0.74 ms").text == "first"
    assert _ask(replay, "then this").text == "second"
    assert replay.report()["replay_drifted"] == 1
    with pytest.raises(LLMError, match="asks more than the recorded one"):
        _ask(replay, "then this")


# -- replies and designs -------------------------------------------------------------------------

def test_reply_contract():
    assert prompts.extract_source("no code here")[1].startswith("the reply holds no ```python block")
    assert "defines no class ModelNew" in prompts.extract_source("```python\nx = 1\n```")[1]
    two = "```python\nclass ModelNew: pass\n```\n```python\nclass ModelNew: pass\n```"
    assert "one complete file" in prompts.extract_source(two)[1]
    source, reason = prompts.extract_source(kernel_reply("cpp_fast.py"))
    assert reason == "" and source == (REPLIES / "cpp_fast.py").read_text()
    assert prompts.extract_source("")[1] == "empty reply"


def test_design_is_validated_from_json():
    design, reason = prompts.extract_design(design_reply("fuse it"))
    assert reason == "" and design.idea == "fuse it" and design.kernels[0].ops == ("cummax", "sigmoid")
    assert Design.from_json(design.to_json()) == design
    for bad, message in (('{"kernels": [], "idea": "x"}', "lists no kernel"),
                         ('{"kernels": [{"name": "k", "ops": ["a"]}], "idea": ""}', "'idea' is empty"),
                         ('{"kernels": [{"name": "k", "ops": ["a"]}], "idea": "x", "speed": 1}', "unknown key"),
                         ("{not json", "not valid JSON")):
        with pytest.raises(IRError, match=message):
            Design.from_json(bad)
    assert prompts.extract_design("I cannot help with that.")[1] == "the reply holds no ```json block with the design"


def test_feedback_names_failed_checks_and_build_errors():
    from akg.agents.tester import feedback
    from akg.ir import Check, Verdict
    built = Verdict("c1", "build", False, False, errors=("build: C++ build failed: /tmp/x/y/kernels.cpp:15:41: error: "
                                                         "'bias' was not declared in this scope",))
    text = feedback(built)
    assert "did not build" in text and "kernels.cpp:15:41: error: 'bias' was not declared" in text and "/tmp/x" not in text
    wrong = Verdict("c2", "correctness", True, False, (Check("allclose", False, "seed 0 output 0: max abs err 0.5"),),
                    max_abs_err=0.5, rel_err=0.01)
    assert "check allclose failed: seed 0 output 0: max abs err 0.5" in feedback(wrong)
    timed = Verdict("c3", "done", True, True, time_ms=2.0, speedups=(("vs_eager", 3.0),), roofline_fraction=0.25)
    text = feedback(timed)
    assert "2 ms, 3x vs eager" in text and "25% of the roofline floor" in text and "no hardware counters" in text


# -- static screen -------------------------------------------------------------------------------

def _checks(name, dsl="cpp", policy="strict"):
    return {c.name: c for c in screen.findings((REPLIES / name).read_text(), get_dsl(dsl), policy)}


def test_static_screen_passes_a_real_kernel():
    assert all(c.passed for c in _checks("cpp_fast.py").values())
    assert set(_checks("cpp_fast.py")) == {"static_kernel", "static_framework_ops", "static_tricks"}
    assert all(c.passed for c in _checks("triton_ok.py", "triton").values())


def test_static_screen_findings():
    cheat = _checks("cpp_cheat_torch.py")
    assert not cheat["static_framework_ops"].passed and "torch.sigmoid" in cheat["static_framework_ops"].detail
    assert _checks("cpp_cheat_torch.py", policy="standard").keys() == {"static_kernel", "static_tricks"}
    cpp, triton = get_dsl("cpp"), get_dsl("triton")
    no_kernel = PROBLEM + "\n\nclass ModelNew(Model):\n    def forward(self, x):\n        return torch.sigmoid(x)\n"
    assert "no C++ kernel" in cpp.kernel_findings(no_kernel)[0]
    assert "no @triton.jit kernel" in triton.kernel_findings(no_kernel)[0]
    unlaunched = (REPLIES / "cpp_fast.py").read_text().replace("_LIB.cummax_sigmoid(", "print(")
    assert "never called" in cpp.kernel_findings(unlaunched)[0]
    unlaunched = (REPLIES / "triton_ok.py").read_text().replace("cummax_sigmoid_kernel[(triton.cdiv(cols, block),)](", "print(")
    assert "never launched" in triton.kernel_findings(unlaunched)[0]
    tricky = (REPLIES / "cpp_fast.py").read_text().replace(
        "        x = x.contiguous()", "        import sys\n        ref = sys._getframe(2).f_locals\n        x = x.contiguous()")
    found = {c.name: c for c in screen.findings(tricky, cpp, "strict")}
    assert not found["static_tricks"].passed and "._getframe" in found["static_tricks"].detail


def test_declared_library_ops_and_problem_code_are_not_findings():
    source = (REPLIES / "cpp_cheat_torch.py").read_text().replace(
        "class ModelNew", "AKG_LIBRARY_OPS = ('aten.sigmoid.default',)\n\n\nclass ModelNew")
    assert screen.framework_calls(__import__("ast").parse(source)) == []
    embedded = PROBLEM + "\n\n" + (REPLIES / "cpp_fast.py").read_text()
    assert screen.framework_calls(__import__("ast").parse(embedded)) == []   # Model.forward is the problem's


# -- store ---------------------------------------------------------------------------------------

def test_old_store_gains_llm_tables_and_exports(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    from akg.store import _SCHEMA
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO problems VALUES ('d', 'p', NULL, 'src', 0)")
    db.execute("INSERT INTO candidates VALUES ('c', 'd', 'cpp', 'template', NULL, 'plan', 'desc', 'class ModelNew: pass', 0)")
    db.commit()
    db.close()
    with Store(path) as store:
        records = list(store.export_records())
        assert store.turns() == [] and store.lineage("c")[0]["origin"] == "template"
    assert len(records) == 1 and records[0]["candidate"] == "c" and records[0]["verdict"] is None
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1


def test_optimize_with_unreachable_endpoint_exits_7(tmp_path, capsys):
    from akg.cli import main
    problem = tmp_path / "p.py"
    problem.write_text(PROBLEM)
    code = main(["optimize", str(problem), "--dsl", "cpp", "--device", "cpu", "--llm", "m",
                 "--llm-url", f"http://127.0.0.1:{_closed_port()}/v1", "--store", str(tmp_path / "s.db"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 7 and len(err) == 1 and "unreachable" in err[0], err


def test_mode_llm_needs_a_model(tmp_path, capsys):
    from akg.cli import main
    problem = tmp_path / "p.py"
    problem.write_text(PROBLEM)
    assert main(["optimize", str(problem), "--dsl", "cpp", "--mode", "llm", "--store", str(tmp_path / "s.db")]) == 2
    assert "needs a model" in capsys.readouterr().err


def test_concurrency_limit_holds_requests_in_flight():
    import threading
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    with ScriptedServer(["r"] * 6) as server:
        in_flight, peak, lock = [0], [0], threading.Lock()
        original = server._httpd.RequestHandlerClass.do_POST

        def slow_post(handler):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            _time.sleep(0.3)
            try:
                original(handler)
            finally:
                with lock:
                    in_flight[0] -= 1

        server._httpd.RequestHandlerClass.do_POST = slow_post
        client = _client(server, concurrency=2)
        with ThreadPoolExecutor(6) as pool:
            texts = list(pool.map(lambda i: _ask(client, f"q{i}").text, range(6)))
    assert texts == ["r"] * 6 and peak[0] == 2
