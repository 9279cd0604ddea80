"""tiny-llama: determinism, the byte tokenizer, forward and generation, size validation."""

from __future__ import annotations

import pytest
import torch

from losia_cl.errors import ConfigError
from losia_cl.models import byte_tokenizer, load_model, tiny_llama
from losia_cl.models.tiny import BYTE_VOCAB_SIZE


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = tiny_llama(seed=7)
    b, _ = tiny_llama(seed=7)
    c, _ = tiny_llama(seed=8)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_llama(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_default_architecture_and_conventions():
    model, tok = tiny_llama()
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (2, 64, 128)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 2)
    assert cfg.vocab_size == len(tok) == BYTE_VOCAB_SIZE
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, like SmolLM2
    assert (tok.bos_token, tok.bos_token_id) == ("<|im_start|>", 1)
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)
    assert tok.pad_token_id == 2 and tok.unk_token_id == 0
    gen = model.generation_config
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (1, 2, 2)
    assert not model.training
    assert model.dtype == torch.float32


def test_sizes_are_configurable():
    model, _ = tiny_llama(seed=1, num_layers=3, hidden_size=32, intermediate_size=48, num_heads=2, num_kv_heads=1)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (3, 32, 48)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (2, 1)
    untied, _ = tiny_llama(tie_word_embeddings=False)
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()


def test_weights_scale_with_the_width_so_logits_can_be_confident():
    """Default std hidden**-0.5; transformers' 0.02 caps tied-embedding logits at |h|·|e| ≈ 8 · 0.16."""
    for hidden, kwargs, std in ((64, {}, 0.125), (128, {"num_heads": 4}, 128**-0.5), (64, {"init_std": 0.02}, 0.02)):
        model, _ = tiny_llama(hidden_size=hidden, **kwargs)
        for weight in (model.model.embed_tokens.weight, model.model.layers[0].mlp.up_proj.weight):
            assert weight.std().item() == pytest.approx(std, rel=0.05)
    ids = torch.arange(3, 60).unsqueeze(0)
    caps = []
    for model, _ in (tiny_llama(init_std=0.02), tiny_llama()):
        # the final RMSNorm (weight 1) gives |h| = sqrt(64) = 8, so |logit| <= 8 * max |embedding row|
        cap = 8 * model.model.embed_tokens.weight.norm(dim=1).max().item()
        with torch.no_grad():
            assert model(ids).logits.abs().max().item() <= cap * 1.001
        caps.append(cap)
    assert caps[0] < 2.5 < 8 < caps[1]  # 0.02: every softmax stays near uniform over 259 tokens


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_layers": 0}, "num_layers"),
        ({"hidden_size": 66}, "divisible by num_heads"),
        ({"num_kv_heads": 3}, "divisible by num_kv_heads"),
        ({"seed": 1.5}, "seed"),
        ({"hidden_size": True}, "hidden_size"),
        ({"init_std": 0}, "init_std"),
    ],
)
def test_bad_sizes_raise_config_error(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        tiny_llama(**kwargs)


@pytest.mark.parametrize(
    "text", ["hello world", "héllo wörld 漢字 😀", "  tabs\tand\nnewlines  ", "", "123 + 4 = 127"]
)
def test_byte_tokenizer_is_lossless_one_token_per_byte(text):
    tok = byte_tokenizer()
    ids = tok(text)["input_ids"]
    assert ids == [3 + b for b in text.encode("utf-8")]  # no BOS added, id = 3 + byte
    assert tok.decode(ids) == text


def test_special_tokens_stay_whole_and_chat_template():
    tok = byte_tokenizer()
    assert tok("a<|im_end|>")["input_ids"] == [3 + ord("a"), 2]
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_forward_shapes_and_loss():
    model, tok = tiny_llama()
    batch = tok(["abc", "hello"], padding=True, return_tensors="pt")
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (2, batch["input_ids"].shape[1], BYTE_VOCAB_SIZE)
    assert torch.isfinite(out.loss)


def test_greedy_generation_is_deterministic_and_batched_with_left_padding():
    model, tok = tiny_llama(seed=2)
    tok.padding_side = "left"
    prompts = ["The cat", "A"]
    batch = tok(prompts, padding=True, return_tensors="pt")
    first = model.generate(**batch, max_new_tokens=6, do_sample=False)
    again = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert torch.equal(first, again)
    assert first.shape[0] == 2 and first.shape[1] <= batch["input_ids"].shape[1] + 6
    single = tok(["A"], return_tensors="pt")
    alone = model.generate(**single, max_new_tokens=6, do_sample=False)
    width = alone.shape[1] - single["input_ids"].shape[1]
    assert torch.equal(first[1, batch["input_ids"].shape[1] :][:width], alone[0, single["input_ids"].shape[1] :])


def test_load_model_tiny_llama_dtype_and_seed_zero():
    model, tok = load_model("tiny-llama", dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    reference, _ = tiny_llama(seed=0)
    assert _same_weights(model, reference.to(torch.bfloat16))
    assert tok.pad_token_id == model.generation_config.pad_token_id == 2
    assert load_model("TINY-LLAMA")[0].config.num_hidden_layers == 2  # names are case-insensitive


def test_load_model_seed_reaches_tiny_llama():
    seeded, _ = load_model("tiny-llama", seed=9)
    reference, _ = tiny_llama(seed=9)
    assert _same_weights(seeded, reference)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        load_model("tiny-llama", seed="9")
