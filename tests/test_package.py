import importlib

import tensorflow as tf

import lucidtl


def test_memory_growth_enabled_for_every_gpu_on_import(monkeypatch):
    gpus = ["GPU:0", "GPU:1"]
    calls = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda d, on: calls.append((d, on)))
    monkeypatch.delenv("LUCIDTL_MEMORY_GROWTH", raising=False)
    importlib.reload(lucidtl)
    assert calls == [("GPU:0", True), ("GPU:1", True)]
    calls.clear()
    monkeypatch.setenv("LUCIDTL_MEMORY_GROWTH", "0")
    importlib.reload(lucidtl)
    assert calls == []


def test_optvis_imports_no_training_or_cli_code():
    """The Lucid core knows nothing of models/, data/, train/ or the CLIs (ARCHITECTURE.md)."""
    import pathlib
    import re

    root = pathlib.Path(lucidtl.__file__).parent / "optvis"
    for path in root.rglob("*.py"):
        text = path.read_text()
        bad = re.findall(r"^\s*(?:from|import) lucidtl\.(models|data|train|render|cli|export)\b", text, re.M)
        assert not bad, (path, bad)
