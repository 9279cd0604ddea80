"""load_model: spec resolution, local-path round trips, options validation, and what failures say."""

from __future__ import annotations

import pytest
import torch

from losia_cl.errors import ConfigError, LosiaError
from losia_cl.models import BUILTIN_MODELS, ModelLoadError, load_model, model_names, tiny_llama
from losia_cl.models import loading as loading_module
from losia_cl.models.loading import is_hub_id


@pytest.fixture
def saved_tiny(tmp_path):
    model, tok = tiny_llama(seed=4)
    path = tmp_path / "tiny-checkpoint"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok, path


def test_model_names_lists_builtins_with_descriptions():
    names = model_names()
    assert list(names) == ["smollm2-135m", "tiny-llama"]
    assert "SmolLM2-135M-Instruct" in names["smollm2-135m"]
    assert all(isinstance(d, str) and d and "\n" not in d for d in names.values())
    assert [name for name, _ in BUILTIN_MODELS.items()] == list(names)
    assert BUILTIN_MODELS.get("Tiny-Llama").description == names["tiny-llama"]


def test_local_directory_round_trip_same_logits_and_tokenizer(saved_tiny):
    model, tok, path = saved_tiny
    loaded, loaded_tok = load_model(str(path))
    ids = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    text = "round trip: héllo <|im_end|>"
    assert loaded_tok(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded_tok.chat_template == tok.chat_template
    assert (loaded_tok.bos_token_id, loaded_tok.eos_token_id, loaded_tok.pad_token_id) == (1, 2, 2)
    assert loaded.generation_config.pad_token_id == 2
    assert not loaded.training


def test_path_objects_and_dtype_auto(saved_tiny):
    _, _, path = saved_tiny
    loaded, _ = load_model(path, dtype="auto")
    assert loaded.dtype == torch.float32
    half, _ = load_model(path, dtype=torch.float16)
    assert half.dtype == torch.float16


def test_missing_pad_token_becomes_eos(tmp_path):
    model, tok = tiny_llama()
    tok.pad_token = None
    model.config.pad_token_id = None
    model.generation_config.pad_token_id = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_model(str(tmp_path))
    assert loaded_tok.pad_token == loaded_tok.eos_token == "<|im_end|>"
    assert loaded.generation_config.pad_token_id == loaded.config.pad_token_id == loaded_tok.eos_token_id


def test_unknown_name_message_lists_steps_and_builtins():
    with pytest.raises(ModelLoadError) as info:
        load_model("tiny_llama", offline=True)
    message = str(info.value)
    assert "tried, in order" in message
    assert (
        "1. built-in names: 'tiny_llama' is not one of smollm2-135m, tiny-llama (did you mean 'tiny-llama'?)"
    ) in message
    assert "2. local path: nothing at" in message
    assert "3. hub id 'tiny_llama' from the local Hugging Face cache (offline):" in message
    assert "4. hub id 'tiny_llama' online: not tried (offline mode" in message
    assert message.endswith("built-in models: smollm2-135m, tiny-llama (losia-cl models describes them)")
    assert "\n" not in message  # one line, as the CLI prints every error
    assert isinstance(info.value, ConfigError) and isinstance(info.value, LosiaError)
    assert isinstance(info.value, ValueError)


def test_missing_path_message(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelLoadError) as info:
        load_model(str(missing))
    message = str(info.value)
    assert f"local path: nothing at {missing}" in message
    assert "Hugging Face hub: not tried" in message and "is not a hub id" in message
    assert "smollm2-135m" in message and "tiny-llama" in message


def test_existing_directory_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError) as info:
        load_model(str(tmp_path))
    message = str(info.value)
    assert f"local path {tmp_path}: exists, but loading it failed" in message
    assert "has no config.json and no .gguf file" in message
    assert "not tried (the spec is an existing local path)" in message


def test_existing_file_that_is_not_gguf(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 8)
    with pytest.raises(ModelLoadError, match="is a file but not a .gguf file"):
        load_model(str(path))


def test_online_attempt_reported_with_one_line_summary(monkeypatch):
    calls = []

    def fake_load_pretrained(source, options, *, local_files_only):
        calls.append(local_files_only)
        where = "cache" if local_files_only else "network"
        raise OSError(f"no {where} for {source}\nsecond line that must not appear")

    monkeypatch.setattr(loading_module, "load_pretrained", fake_load_pretrained)
    with pytest.raises(ModelLoadError) as info:
        load_model("someone/some-model", offline=False)
    message = str(info.value)
    assert calls == [True, False]  # the local Hugging Face cache first, then the hub
    assert "hub id 'someone/some-model' from the local Hugging Face cache (offline): OSError: no cache" in message
    assert "hub id 'someone/some-model' online (huggingface.co): OSError: no network for someone/some-model" in message
    assert "second line" not in message


def test_offline_follows_environment(monkeypatch):
    calls = []

    def fake_load_pretrained(source, options, *, local_files_only):
        calls.append(local_files_only)
        raise OSError("nope")

    monkeypatch.setattr(loading_module, "load_pretrained", fake_load_pretrained)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="online: not tried"):
        load_model("someone/some-model")
    assert calls == [True]


def test_hub_from_local_cache_is_used_when_it_works(monkeypatch):
    model, tok = tiny_llama()
    monkeypatch.setattr(loading_module, "load_pretrained", lambda source, options, *, local_files_only: (model, tok))
    assert load_model("someone/cached-model", offline=True) == (model, tok)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gpt2", True),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", True),
        ("a/b/c", False),
        ("/abs/path", False),
        ("./relative", False),
        ("bad--name", False),
        ("name.", False),
        ("~/models/x", False),
    ],
)
def test_is_hub_id(spec, expected):
    assert is_hub_id(spec) is expected


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"dtype": "int8"}, "dtype must be one of"),
        ({"dtype": torch.int64}, "dtype must be a floating dtype"),
        ({"device": "gpu7"}, "not a valid torch device"),
        ({"offline": "yes"}, "offline must be"),
    ],
)
def test_bad_options_raise_config_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        load_model("tiny-llama", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_model("tiny-llama", device="cuda")


def test_empty_spec():
    with pytest.raises(ModelLoadError, match="non-empty string"):
        load_model("  ")
