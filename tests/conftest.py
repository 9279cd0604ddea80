"""Shared fixtures: tiny randomly initialised models built from a config in-process (no downloads)."""

from __future__ import annotations

import os

import pytest
import torch

# Two pytest-xdist workers share two cores: one intra-op thread each.
torch.set_num_threads(int(os.environ.get("LOSIA_CL_TEST_THREADS", "1")))

#: galore-torch, the package behind the ``galore`` method, declares bitsandbytes; installed, bitsandbytes is
#: imported by peft for every LoRA-family adapter (seconds per process, and a warning on stderr). So the test
#: extra leaves the ``galore`` extra out, and the tests put the pure-Python galore-torch wheel alone (no
#: dependencies) into a cache folder once, on the path of this process and of the processes it starts.
GALORE_TORCH = "galore-torch==1.0"


def _provide_galore_torch() -> None:
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    from filelock import FileLock

    if importlib.util.find_spec("galore_torch") is not None:
        return
    cache = Path(os.environ.get("LOSIA_CL_TEST_CACHE", Path.home() / ".cache" / "losia-cl-test"))
    target = cache / GALORE_TORCH.replace("==", "-")
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".galore.lock")):  # two xdist workers: one installs, the other waits
        if not (target / "galore_torch").is_dir():
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                            "--target", str(target), GALORE_TORCH], check=False, capture_output=True, timeout=600)
    if (target / "galore_torch").is_dir():
        sys.path.insert(0, str(target))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))


_provide_galore_torch()


def make_tiny_llama(seed: int = 0, layers: int = 2, hidden: int = 64, intermediate: int = 128, vocab: int = 128):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def max_abs_diff(model_a, model_b) -> float:
    """Largest absolute difference between two models' state dicts (LoSiA-Pro's gradient sinks are not in them)."""
    a, b = model_a.state_dict(), model_b.state_dict()
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture
def tiny_llama():
    return make_tiny_llama()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, 128, (4, 16), generator=generator)
