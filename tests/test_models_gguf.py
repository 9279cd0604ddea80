"""GGUF files load as plain models: a tiny LLaMA written to GGUF in-process (float32 and Q4_1), no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from losia_cl.models import load_model, tiny_llama
from losia_cl.models.gguf_convert import load_gguf_raw, max_logit_diff

gguf = pytest.importorskip("gguf")

_LAYER_NAMES = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def _llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf's permute); transformers undoes it when reading."""
    rows = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, rows, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_tiny_gguf(path: Path, model, tokenizer, quantization: str = "F32") -> None:
    """Write a tied tiny LLaMA and its byte tokenizer the way llama.cpp's converter would."""
    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    tokens = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))  # 3 = control, 1 = normal
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)
    qtype = getattr(gguf.GGMLQuantizationType, quantization)
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied: GGUF stores no output.weight
        array = value.numpy()
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        else:
            _, _, layer, *rest = key.split(".")
            suffix = ".".join(rest)
            name = f"blk.{layer}.{_LAYER_NAMES[suffix]}"
            if suffix.startswith("self_attn.q_proj"):
                array = _llama_cpp_permute(array, cfg.num_attention_heads)
            elif suffix.startswith("self_attn.k_proj"):
                array = _llama_cpp_permute(array, cfg.num_key_value_heads)
        array = np.ascontiguousarray(array)
        if array.ndim == 2 and quantization != "F32":
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny():
    # transformers' init scale (0.02): small, nearly linear logits, which the 4-bit closeness bounds below assume;
    # at tiny-llama's default scale two random layers amplify 4-bit rounding to ~50 % of the logits
    return tiny_llama(seed=3, init_std=0.02)


def test_float32_gguf_loads_as_the_same_plain_model(tiny, tmp_path):
    model, tok = tiny
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, model, tok)
    loaded, loaded_tok = load_model(str(path))
    assert max_logit_diff(model, loaded) == 0.0
    assert getattr(loaded, "hf_quantizer", None) is None
    assert getattr(loaded.config, "quantization_config", None) is None
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    text = "gguf héllo 42 <|im_end|>"
    assert loaded_tok(text)["input_ids"] == tok(text)["input_ids"]
    assert (loaded_tok.bos_token_id, loaded_tok.eos_token_id, loaded_tok.pad_token_id) == (1, 2, 2)
    assert loaded_tok.chat_template == tok.chat_template
    assert loaded_tok.model_max_length == model.config.max_position_embeddings
    loaded.save_pretrained(tmp_path / "saved")  # a GGUF-flagged model would refuse this
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_q4_1_gguf_is_dequantized_exactly_like_transformers_does(tiny, tmp_path):
    model, tok = tiny
    directory = tmp_path / "dir-with-one-gguf"
    directory.mkdir()
    write_tiny_gguf(directory / "tiny-q4_1.gguf", model, tok, quantization="Q4_1")
    raw, _ = load_gguf_raw(directory / "tiny-q4_1.gguf")
    assert getattr(raw, "hf_quantizer", None) is not None  # transformers' own result is flagged as quantized
    loaded, _ = load_model(str(directory))  # a directory holding exactly one .gguf file
    assert max_logit_diff(raw, loaded) == 0.0
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        reference = model(ids).logits
        error = (loaded(ids).logits - reference).abs().max() / reference.abs().max()
    assert 0.0 < error < 0.25  # 4-bit weights: close to the float model, not equal


def test_directory_with_several_gguf_files_is_ambiguous(tiny, tmp_path):
    from losia_cl.models import ModelLoadError

    model, tok = tiny
    write_tiny_gguf(tmp_path / "a.gguf", model, tok)
    write_tiny_gguf(tmp_path / "b.gguf", model, tok)
    with pytest.raises(ModelLoadError, match=r"no config.json and 2 .gguf files \(a.gguf, b.gguf\)"):
        load_model(str(tmp_path))
