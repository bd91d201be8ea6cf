"""Baselines are stored per problem, device, hardware and software stack, and reused only on the same stack."""
from akg import versions
from akg.store import Store


def test_baselines_are_keyed_by_software_stack(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.add_baselines("p", "cpu", "cpu-host", 2.0, 3.0, versions.stack_key())
        assert store.baselines("p", "cpu", "cpu-host", versions.stack_key()) == {"eager_ms": 2.0, "compile_ms": 3.0}
        assert store.baselines("p", "cpu", "cpu-host", "another-stack") is None
        assert store.baselines("p", "cuda", "cpu-host", versions.stack_key()) is None


def test_stack_names_torch_and_is_stable():
    assert "torch " in versions.stack() and versions.stack_key() == versions.stack_key()
