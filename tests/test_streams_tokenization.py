"""Tokenization rules on real in-process tokenizers (a WordLevel one with known ids, a byte-level BPE)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from losia_cl.errors import ConfigError
from losia_cl.streams import Example, Task
from losia_cl.streams.tokenization import (
    IGNORE_INDEX,
    collate_for_generation,
    collate_for_training,
    decode_generated,
    encode_examples,
    encode_generation_prompt,
    encode_prompt,
    encode_training_example,
    pad_token_id,
    tokenize_split,
)

WORDS = ["<unk>", "<s>", "</s>", "<pad>", "hello", "world", "cat", "dog", "red", "blue", "user", "assistant",
         ":", ".", "?", "a", "b", "c", "d", "e", "f", "g", "h"]
ID = {word: i for i, word in enumerate(WORDS)}
UNK, BOS, EOS, PAD = 0, 1, 2, 3
CHAT = ("{{ bos_token }}{% for m in messages %}user : {{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %} assistant :{% endif %}")


def word_tokenizer(*, pad: bool = False, bos: bool = True, chat: bool = False) -> PreTrainedTokenizerFast:
    """Word-level tokenizer with fixed ids; adds <s> in front of every text encoded with special tokens."""
    tok = Tokenizer(models.WordLevel(ID, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    tok.decoder = decoders.WordPiece()
    kwargs = {"bos_token": "<s>"} if bos else {}
    if pad:
        kwargs["pad_token"] = "<pad>"
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", **kwargs)
    if chat:
        wrapped.chat_template = CHAT
    return wrapped


def ids(text: str) -> list[int]:
    return [ID[w] for w in text.split()]


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer()


def test_prompt_answer_eos_with_loss_only_on_the_answer(tok):
    features = encode_training_example(tok, "hello world?", "cat dog", max_length=32)
    assert features["input_ids"] == [BOS] + ids("hello world ?") + ids("cat dog") + [EOS]
    assert features["labels"] == [IGNORE_INDEX] * 4 + ids("cat dog") + [EOS]
    assert features["attention_mask"] == [1] * 7


def test_truncation_cuts_the_prompt_start_after_bos_and_never_the_answer(tok):
    features = encode_training_example(tok, "a b c d e f", "cat dog", max_length=6)
    assert features["input_ids"] == [BOS] + ids("e f cat dog") + [EOS]
    assert features["labels"] == [IGNORE_INDEX] * 3 + ids("cat dog") + [EOS]
    no_bos = word_tokenizer(bos=False)
    features = encode_training_example(no_bos, "a b c d e f", "cat dog", max_length=6)
    assert features["input_ids"] == ids("d e f cat dog") + [EOS]


def test_too_long_answer_is_cut_at_its_end_keeping_eos_and_the_last_prompt_token(tok):
    features = encode_training_example(tok, "a b c", "red blue cat dog red blue", max_length=6)
    assert features["input_ids"] == [BOS] + ids("c red blue cat") + [EOS]
    assert features["labels"] == [IGNORE_INDEX, IGNORE_INDEX] + ids("red blue cat") + [EOS]
    assert len(features["input_ids"]) == 6


def test_truncation_is_reported(tok, caplog):
    examples = [Example("a b c d e f", "cat"), Example("a", "red blue cat dog red blue"), Example("a", "b")]
    with caplog.at_level("WARNING", logger="losia_cl.streams.tokenization"):
        encoded = encode_examples(tok, examples, max_length=5)
    assert [len(f["input_ids"]) for f in encoded] == [5, 5, 4]
    assert "cut the start of 1 of 3 prompts and the end of 1 answers" in caplog.text


def test_max_length_must_leave_room(tok):
    with pytest.raises(ConfigError, match="max_length must be an integer ≥ 3"):
        encode_training_example(tok, "a", "b", max_length=2)


def test_separate_tokenization_keeps_the_boundary_with_a_real_bpe():
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["Answer:TOOL", "Answer:FRUIT", "Answer: TOOL", "TOOL", "FRUIT", "Answer:"] * 50
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    prompt, answer = "Items: 1. cat\nAnswer:", "TOOL"
    features = encode_training_example(tokenizer, prompt, answer, max_length=64)
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert features["input_ids"] == prompt_ids + answer_ids + [tokenizer.eos_token_id]
    labelled = [t for t, label in zip(features["input_ids"], features["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(labelled, skip_special_tokens=True) == "TOOL"
    # the generation prompt is exactly the training prompt
    assert encode_generation_prompt(tokenizer, prompt)["input_ids"] == prompt_ids


def test_pad_id_falls_back_to_eos():
    assert pad_token_id(word_tokenizer()) == EOS
    assert pad_token_id(word_tokenizer(pad=True)) == PAD


def test_training_collate_right_pads(tok):
    features = encode_examples(tok, [Example("hello", "cat"), Example("a b c", "red blue")], max_length=16)
    batch = collate_for_training(features, pad_token_id=pad_token_id(tok))
    assert batch["input_ids"].tolist() == [
        [BOS, ID["hello"], ID["cat"], EOS, EOS, EOS, EOS],
        [BOS] + ids("a b c red blue") + [EOS],
    ]
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, IGNORE_INDEX, ID["cat"], EOS] + [IGNORE_INDEX] * 3,
        [IGNORE_INDEX] * 4 + ids("red blue") + [EOS],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0, 0], [1] * 7]
    assert all(t.dtype == torch.long for t in batch.values())


def test_generation_collate_left_pads_and_passes_indices_through(tok):
    features = encode_examples(tok, [Example("hello", "x"), Example("a b c d", "y")], max_length=4,
                               for_generation=True)
    assert features[1]["input_ids"] == [BOS] + ids("b c d")  # prompt end kept, BOS kept
    batch = collate_for_generation(features, pad_token_id=PAD)
    assert batch["input_ids"].tolist() == [[PAD, PAD, BOS, ID["hello"]], [BOS] + ids("b c d")]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert batch["index"] == [0, 1]


def test_chat_template_path(tok):
    chat = word_tokenizer(chat=True)
    prompt_ids = encode_prompt(chat, "hello world", chat_template=True)
    assert prompt_ids == [BOS] + ids("user : hello world assistant :")  # one BOS: the template's
    features = encode_training_example(chat, "hello world", "cat", max_length=32, chat_template=True)
    assert features["input_ids"] == prompt_ids + [ID["cat"], EOS]
    assert features["labels"] == [IGNORE_INDEX] * len(prompt_ids) + [ID["cat"], EOS]
    assert encode_generation_prompt(chat, "hello world", chat_template=True)["input_ids"] == prompt_ids
    with pytest.raises(ConfigError, match="no chat template"):
        encode_prompt(tok, "hello", chat_template=True)


def test_datasets_path_matches_the_list_path_and_collates(tok):
    task = Task("t", train=[Example("hello", "cat"), Example("a b", "red blue")],
                test=[Example("hello world", "dog"), Example("c", "red")], metric="accuracy", max_new_tokens=4)
    train = tokenize_split(tok, task, "train", max_length=16)
    assert train.column_names == ["input_ids", "labels", "attention_mask"]
    assert [dict(row) for row in train] == encode_examples(tok, task.train, max_length=16)
    test = tokenize_split(tok, task, "test", max_length=16)
    assert set(test.column_names) == {"input_ids", "attention_mask", "index", "prompt", "answer"}
    loader = torch.utils.data.DataLoader(test, batch_size=2,
                                         collate_fn=lambda rows: collate_for_generation(rows, pad_token_id=PAD))
    batch = next(iter(loader))
    assert batch["input_ids"].tolist() == [[BOS] + ids("hello world"), [PAD, BOS, ID["c"]]]
    assert batch["answer"] == ["dog", "red"] and batch["prompt"] == ["hello world", "c"]


def test_decode_generated_stops_at_eos(tok):
    sequences = torch.tensor([[PAD, BOS, ID["a"], ID["cat"], ID["dog"], EOS, ID["red"]],
                              [BOS, ID["b"], ID["c"], ID["blue"], EOS, EOS, EOS]])
    assert decode_generated(tok, sequences, prompt_width=3) == ["cat dog", "blue"]


def tiny_model(vocab: int) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def test_left_padded_batched_generation_equals_one_by_one_generation(tok):
    model = tiny_model(len(WORDS))
    prompts = ["hello", "a b c d e", "red blue ?"]
    features = encode_examples(tok, [Example(p, "") for p in prompts], max_length=16, for_generation=True)
    batch = collate_for_generation(features, pad_token_id=PAD)
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    with torch.no_grad():
        together = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
        new_together = together[:, batch["input_ids"].shape[1]:].tolist()
        for row, f in zip(new_together, features):
            alone = model.generate(input_ids=torch.tensor([f["input_ids"]]), **kwargs)
            assert row == alone[0, len(f["input_ids"]):].tolist()


def test_labels_give_the_loss_of_the_answer_tokens_only(tok):
    model = tiny_model(len(WORDS))
    features = encode_examples(tok, [Example("a b c", "cat dog"), Example("hello", "red")], max_length=16)
    batch = collate_for_training(features, pad_token_id=pad_token_id(tok))
    with torch.no_grad():
        loss = model(**batch).loss
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # answer tokens + EOS: "cat dog </s>" at positions 4..6 of row 0, "red </s>" at 2..3 of row 1
    targets = [(0, 4, ID["cat"]), (0, 5, ID["dog"]), (0, 6, EOS), (1, 2, ID["red"]), (1, 3, EOS)]
    manual = torch.stack([-torch.log_softmax(logits[r, p - 1], -1)[t] for r, p, t in targets]).mean()
    assert torch.allclose(loss, manual, atol=1e-6)



def test_generation_prompts_leave_room_for_the_answer(tok, caplog):
    task = Task("t", train=[Example("a", "b")], test=[Example("a b c d e f g h", "cat"), Example("c", "dog")],
                metric="accuracy", max_new_tokens=4)
    with caplog.at_level("WARNING", logger="losia_cl.streams.tokenization"):
        test = tokenize_split(tok, task, "test", max_length=8)
    assert test["input_ids"] == [[BOS] + ids("f g h"), [BOS, ID["c"]]]  # 8 - 4 = 4 prompt tokens at most
    assert "cut the start of 1 of 2 generation prompts" in caplog.text
