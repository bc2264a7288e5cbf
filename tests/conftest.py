"""Shared test settings."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine two spinning threads are far slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def benchmark_script():
    """``benchmark_script("copy_probe")``: a script of ``benchmarks/`` imported as a module (they are scripts,
    not a package)."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def run_benchmark():
    """``run_benchmark("copy_probe", "--n", "4")``: a script of ``benchmarks/`` run in a subprocess from the
    repository root; its ``CompletedProcess`` (text output)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def run(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(root / "benchmarks" / f"{name}.py"), *args], capture_output=True,
                              text=True, timeout=300, cwd=root)

    return run


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny randomly initialised default-architecture model (1 layer, hidden 32) saved as a plain transformers
    directory, to train runs from in seconds."""
    import torch

    from retune.models import build_default_model

    path = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    model, tokenizer = build_default_model(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=2)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
