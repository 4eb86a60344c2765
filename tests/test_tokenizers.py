"""minibert's tokenizers give the ids, tensors and texts of transformers' fast tokenizers.

The tokenizer folders (see tokenizer_data.py) are trained with the ``tokenizers`` library (or, for the
SentencePiece ``.model`` files, with ``sentencepiece``) in the layout of a real folder of the BERT family;
minibert's AutoTokenizer and transformers' then read the very same files.
"""

import json
import pickle
import random
import shutil
import subprocess
import sys

import pytest
import torch
import transformers
from tokenizer_data import (
    CHARACTERS,
    CHARSMAP_RULES,
    CORPUS,
    GENERIC_ALBERT,
    SPECIAL_ALBERT,
    build_charsmap,
    save_folder,
)
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

import minibert
from minibert.tokenization import (
    AlbertTokenizer,
    AutoTokenizer,
    BertTokenizer,
    CamembertTokenizer,
    DistilBertTokenizer,
    MPNetTokenizer,
    PreTrainedTokenizer,
    RobertaTokenizer,
    TokenizerError,
    XLMRobertaTokenizer,
)
from minibert.tokenization.models import serde_json_float
from minibert.tokenization.normalizers import (
    BertNormalizer,
    Precompiled,
    lowercase,
    nmt,
    normalizer_from_json,
    strip_accents,
)
from minibert.tokenization.pre_tokenizers import BertPreTokenizer, ByteLevel, WhitespaceSplit

KINDS = [
    "minilm",
    "wordpiece",
    "wordpiece-vocab-txt",
    "distilbert",
    "distilbert-model-type",
    "electra",
    "mpnet",
    "mpnet-vocab-txt",
    "bpe",
    "bpe-prefix-space",
    "bpe-vocab-merges",
    "unigram",
    "unigram-byte-fallback",
    "unigram-precompiled",
    "unigram-first",
    "sentencepiece-unigram",
    "xlm-roberta",
    "albert-spiece",
    "xlm-roberta-spm",
    "camembert-spm",
    "xlm-roberta-model-type",
]


@pytest.fixture(scope="session")
def pairs(tokenizer_folders):
    """pairs(kind) -> (minibert's tokenizer, transformers' tokenizer), each its AutoTokenizer's for the same folder."""
    made = {}

    def get(kind: str):
        if kind not in made:
            folder = tokenizer_folders[kind]
            made[kind] = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
        return made[kind]

    return get


def reference_call(reference, kind: str, *args, **kwargs):
    """transformers' output, keys and all (ALBERT's has no token types unless asked, as minibert's)."""
    return reference(*args, **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_single_texts(pairs, kind):
    ours, theirs = pairs(kind)
    for text in CORPUS:
        assert ours(text) == dict(reference_call(theirs, kind, text)), text


@pytest.mark.parametrize("kind", KINDS)
def test_pairs_of_texts(pairs, kind):
    ours, theirs = pairs(kind)
    for first, second in zip(CORPUS, CORPUS[1:] + CORPUS[:1], strict=True):
        assert ours(first, second) == dict(reference_call(theirs, kind, first, second)), (first, second)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_batches(pairs, kind):
    ours, theirs = pairs(kind)
    for start in range(0, len(CORPUS), 8):
        batch = CORPUS[start : start + 8]
        other = (CORPUS[start + 1 :] + CORPUS)[: len(batch)]
        assert ours(batch, padding=True) == dict(reference_call(theirs, kind, batch, padding=True))
        longest = reference_call(theirs, kind, batch, other, padding="longest")
        assert ours(batch, other, padding="longest") == dict(longest)
        padded = reference_call(theirs, kind, batch, padding="max_length", max_length=40)
        assert ours(batch, padding="max_length", max_length=40) == dict(padded)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("truncation", [True, "longest_first", "only_first", "only_second"])
def test_truncated_batches(pairs, kind, truncation):
    ours, theirs = pairs(kind)

    def check(*texts, max_length: int) -> None:
        try:
            expected = reference_call(theirs, kind, *texts, truncation=truncation, max_length=max_length)
        except Exception:  # the Rust library found the cut impossible
            with pytest.raises(TokenizerError):
                ours(*texts, truncation=truncation, max_length=max_length)
            return
        assert ours(*texts, truncation=truncation, max_length=max_length) == dict(expected), (texts, max_length)

    for max_length in (2, 5, 9, 16):
        for i, (first, second) in enumerate(zip(CORPUS, CORPUS[3:] + CORPUS[:3], strict=True)):
            check(*((first,) if i % 3 == 0 else (first, second)), max_length=max_length)
    check(CORPUS[:8], CORPUS[8:16], max_length=30)


@pytest.mark.parametrize(
    "kind", ["minilm", "distilbert", "mpnet", "bpe", "unigram", "xlm-roberta-spm", "camembert-spm"]
)
def test_call_options(pairs, kind):
    ours, theirs = pairs(kind)
    options = [{"add_special_tokens": False}, {"return_attention_mask": False}]
    options += [{"return_token_type_ids": True}, {"return_token_type_ids": False}]
    for option in options:
        for texts in ((CORPUS[0],), (CORPUS[0], CORPUS[1]), (CORPUS[:4], CORPUS[4:8])):
            assert ours(*texts, **option) == dict(reference_call(theirs, kind, *texts, **option)), option
    assert ours.encode(CORPUS[0], CORPUS[1]) == theirs.encode(CORPUS[0], CORPUS[1])


@pytest.mark.parametrize("kind", KINDS)
def test_tensors(pairs, kind):
    ours, theirs = pairs(kind)
    options = {"padding": True, "truncation": True, "max_length": 24, "return_tensors": "pt"}
    got = ours(CORPUS[:12], CORPUS[12:24], **options)
    want = reference_call(theirs, kind, CORPUS[:12], CORPUS[12:24], **options)
    assert got.keys() == want.keys()
    for name in got:
        assert got[name].dtype == torch.long and torch.equal(got[name], want[name]), name
    single = ours(CORPUS[0], return_tensors="pt")["input_ids"]
    assert torch.equal(single, reference_call(theirs, kind, CORPUS[0], return_tensors="pt")["input_ids"])


@pytest.mark.parametrize("kind", KINDS)
def test_decode(pairs, kind):
    ours, theirs = pairs(kind)
    for text in CORPUS:
        ids = theirs(text)["input_ids"]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip), text
        cleaned = theirs.decode(ids, clean_up_tokenization_spaces=True)
        assert ours.decode(ids, clean_up_tokenization_spaces=True) == cleaned, text
    batch = theirs(CORPUS[:6], padding=True, return_tensors="pt")["input_ids"]
    assert ours.batch_decode(batch, skip_special_tokens=True) == theirs.batch_decode(batch, skip_special_tokens=True)


@pytest.mark.parametrize("kind", KINDS)
def test_tokens_and_vocabulary(pairs, kind):
    ours, theirs = pairs(kind)
    for text in CORPUS:
        assert ours.tokenize(text) == theirs.tokenize(text), text
    ids = theirs(CORPUS[0])["input_ids"]
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == theirs.convert_ids_to_tokens(ids, True)
    tokens = [*theirs.convert_ids_to_tokens(ids), "never-in-any-vocabulary"]
    assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
    assert (len(ours), ours.vocab_size, ours.model_max_length) == (
        len(theirs),
        theirs.vocab_size,
        theirs.model_max_length,
    )
    for name in ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token", "bos_token", "eos_token"):
        assert getattr(ours, name) == getattr(theirs, name), name
        assert getattr(ours, f"{name}_id") == getattr(theirs, f"{name}_id"), name


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (BertNormalizer(), normalizers.BertNormalizer()),
        (BertNormalizer(lowercase=False), normalizers.BertNormalizer(lowercase=False)),
        (
            BertNormalizer(lowercase=False, strip_accents=True),
            normalizers.BertNormalizer(lowercase=False, strip_accents=True),
        ),
        (normalizer_from_json({"type": "NFKD"}), normalizers.NFKD()),
        (strip_accents, normalizers.StripAccents()),
        (lowercase, normalizers.Lowercase()),
        (nmt, normalizers.Nmt()),
        (normalizer_from_json({"type": "NFKC"}), normalizers.NFKC()),
    ],
    ids=["bert-uncased", "bert-cased", "bert-cased-stripped", "nfkd", "strip-accents", "lowercase", "nmt", "nfkc"],
)
def test_normalizers_on_every_character_in_common_use(ours, theirs):
    assert [char for char in CHARACTERS if ours(char) != theirs.normalize_str(char)] == []


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (BertPreTokenizer(), pre_tokenizers.BertPreTokenizer()),
        (ByteLevel(), pre_tokenizers.ByteLevel(add_prefix_space=False)),
        (WhitespaceSplit(), pre_tokenizers.WhitespaceSplit()),
    ],
    ids=["bert", "byte-level", "whitespace"],
)
def test_pre_tokenizers_on_every_character_in_common_use(ours, theirs):
    def split(char: str):
        text = f"a{char}1{char}!{char} {char}{char}"
        return ours(text, True), [word for word, _ in theirs.pre_tokenize_str(text)]

    assert [char for char in CHARACTERS if split(char)[0] != split(char)[1]] == []


def test_precompiled_rules_replace_whole_graphemes_as_tokenizers_does():
    charsmap = build_charsmap(CHARSMAP_RULES | {"e": "E", "b\u0308": "B"})
    ours, theirs = Precompiled(charsmap), normalizers.Precompiled(charsmap)
    for text in [*CORPUS, "e\u0301\u0302 b\u0308\u0301 \r\n x\u0301"]:
        assert ours(text) == theirs.normalize_str(text), text


# The class each folder gets: tokenizer_config.json's tokenizer_class, else config.json's model_type, else
# tokenizer.json as it is (transformers' TokenizersBackend), else the class of the classic vocabulary files.
CLASSES = {
    "minilm": BertTokenizer,
    "distilbert": DistilBertTokenizer,
    "distilbert-model-type": BertTokenizer,  # transformers 5 maps model_type distilbert to BertTokenizer
    "electra": BertTokenizer,  # ElectraTokenizer is BertTokenizer in transformers 5
    "mpnet": MPNetTokenizer,
    "mpnet-vocab-txt": MPNetTokenizer,
    "bpe-vocab-merges": RobertaTokenizer,
    "unigram": AlbertTokenizer,
    "unigram-first": PreTrainedTokenizer,
    "sentencepiece-unigram": PreTrainedTokenizer,
    "xlm-roberta": XLMRobertaTokenizer,
    "albert-spiece": AlbertTokenizer,
    "xlm-roberta-spm": XLMRobertaTokenizer,
    "camembert-spm": CamembertTokenizer,
    "xlm-roberta-model-type": XLMRobertaTokenizer,  # not ALBERT's, with its token types
}


@pytest.mark.parametrize("kind", CLASSES)
def test_auto_tokenizer_picks_the_class_transformers_picks(pairs, kind):
    ours, theirs = pairs(kind)
    assert type(ours) is CLASSES[kind]
    theirs_name = "PreTrainedTokenizer" if type(theirs).__name__ == "TokenizersBackend" else type(theirs).__name__
    assert type(ours).__name__ == theirs_name
    assert ours.model_input_names == tuple(theirs.model_input_names)


def test_a_class_reads_the_files_of_its_model(tokenizer_folders):
    assert type(BertTokenizer.from_pretrained(tokenizer_folders["wordpiece"])) is BertTokenizer
    assert type(XLMRobertaTokenizer.from_pretrained(tokenizer_folders["camembert-spm"])) is XLMRobertaTokenizer
    with pytest.raises(TokenizerError, match="runs a Unigram model, the files hold WordPiece"):
        XLMRobertaTokenizer.from_pretrained(tokenizer_folders["wordpiece"])


def test_named_classes_build_their_own_steps_as_transformers_5_does(pairs, tokenizer_folders):
    """XLMRobertaTokenizer keeps tokenizer.json's vocabulary, not its Nmt and NFKC normalizers."""
    ours, theirs = pairs("xlm-roberta")
    as_written = PreTrainedTokenizer.from_pretrained(tokenizer_folders["xlm-roberta"])
    text = "\uff21\uff22\x07 tab\t"  # fullwidth AB, a bell, a tab
    assert ours(text) == dict(theirs(text)) != as_written(text)


@pytest.mark.parametrize("loader", [AutoTokenizer, BertTokenizer])
def test_from_pretrained_takes_transformers_keyword_for_the_folder(tokenizer_folders, loader):
    folder = tokenizer_folders["minilm"]
    by_keyword = loader.from_pretrained(pretrained_model_name_or_path=folder)
    assert by_keyword(CORPUS[:8], padding=True) == loader.from_pretrained(folder)(CORPUS[:8], padding=True)


def test_chinese_albert_with_a_bert_vocabulary_gets_the_wordpiece_tokenizer(tokenizer_folders, tmp_path):
    folder = tmp_path / "albert-chinese"
    shutil.copytree(tokenizer_folders["wordpiece-vocab-txt"], folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "AlbertTokenizer"}))
    (folder / "config.json").write_text(json.dumps({"model_type": "albert"}))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(tokenizer) is BertTokenizer
    assert tokenizer.tokenize("北京") == transformers.BertTokenizerFast.from_pretrained(folder).tokenize("北京")


def test_model_type_chooses_when_the_tokenizer_class_is_absent(tokenizer_folders, tmp_path):
    folder = tmp_path / "model-type"
    shutil.copytree(tokenizer_folders["bpe"], folder)
    (folder / "tokenizer_config.json").unlink()
    (folder / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    assert type(AutoTokenizer.from_pretrained(folder)) is RobertaTokenizer


def test_hub_ids_resolve_through_the_offline_cache(tokenizer_folders, tmp_path):
    repo = tmp_path / "models--org--tiny-bpe"
    shutil.copytree(tokenizer_folders["bpe"], repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    tokenizer = AutoTokenizer.from_pretrained("org/tiny-bpe", cache_dir=tmp_path)
    assert type(tokenizer) is RobertaTokenizer and tokenizer("hello")["input_ids"][0] == 0
    with pytest.raises(minibert.CheckpointNotFoundError, match="org/absent"):
        AutoTokenizer.from_pretrained("org/absent", cache_dir=tmp_path)


def test_a_folder_without_tokenizer_files_is_named_in_the_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(minibert.CheckpointNotFoundError, match=str(tmp_path)):
        AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(minibert.CheckpointNotFoundError, match="no such tokenizer folder"):
        AutoTokenizer.from_pretrained(tmp_path / "absent")


def test_unsupported_steps_are_named(tokenizer_folders, tmp_path):
    folder = tmp_path / "unsupported"
    shutil.copytree(tokenizer_folders["unigram-first"], folder)  # run as it is, as transformers' generic class does
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Digits", "individual_digits": True}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerError, match="pre-tokenizer 'Digits' is not supported"):
        AutoTokenizer.from_pretrained(folder)


def test_bad_arguments_are_clear_errors(pairs):
    ours, _ = pairs("minilm")
    with pytest.raises(TokenizerError, match="return_tensors"):
        ours("hi", return_tensors="tf")
    with pytest.raises(TokenizerError, match="padding must be"):
        ours("hi", padding="sideways")
    with pytest.raises(TokenizerError, match="different lengths"):
        ours(["hi", "hello there"], return_tensors="pt")
    with pytest.raises(TokenizerError, match="text_pair"):
        ours(["hi", "there"], "pair")
    with pytest.raises(TypeError, match="dispatcher"):
        AutoTokenizer()


def test_padding_without_a_pad_token_is_a_clear_error(tokenizer_folders, tmp_path):
    folder = tmp_path / "no-pad"
    shutil.copytree(tokenizer_folders["wordpiece-vocab-txt"], folder)
    vocab = (folder / "vocab.txt").read_text().replace("[PAD]\n", "[NOPAD]\n")
    (folder / "vocab.txt").write_text(vocab)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token_id is None
    with pytest.raises(TokenizerError, match="pad token"):
        tokenizer(["a", "b c"], padding=True)


def test_padding_side_from_the_config(tokenizer_folders, tmp_path):
    folder = tmp_path / "left"
    shutil.copytree(tokenizer_folders["wordpiece-vocab-txt"], folder)
    config = json.loads((folder / "tokenizer_config.json").read_text()) | {"padding_side": "left"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    assert ours(CORPUS[:5], padding=True) == dict(theirs(CORPUS[:5], padding=True))


@pytest.mark.parametrize("kind", ["minilm", "bpe-vocab-merges", "unigram-precompiled", "xlm-roberta-spm"])
def test_tokenizers_survive_pickling(pairs, kind):
    ours, _ = pairs(kind)
    assert pickle.loads(pickle.dumps(ours))(CORPUS[:10], padding=True) == ours(CORPUS[:10], padding=True)


def test_importing_the_tokenizers_stays_light():
    modules = ("transformers", "tokenizers", "huggingface_hub")
    code = f"import sys, minibert.tokenization; print([m for m in {modules} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("byte_fallback", [False, True])
def test_unigram_scores_are_read_as_tokenizers_reads_them(tmp_path, byte_fallback):
    """tokenizers reads ``-2.3784665294418526`` as ``-2.378466529441853``, one ulp off, and so cuts ``▁###``
    as ``▁ # ##`` where exact scores give ``▁ ## #``: the two sums are one ulp apart (a trained vocabulary met this)."""
    pieces = [(token, 0.0) for token in SPECIAL_ALBERT]
    pieces += [("▁", -2.3784665294418526), ("#", -5.930254670864665), ("##", -7.15646150383197)]
    pieces += [(f"<0x{byte:02X}>", -20.0) for byte in range(256)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=1, byte_fallback=byte_fallback))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    folder = save_folder(tmp_path / "unigram", tokenizer, GENERIC_ALBERT)
    ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    for text in ["###", "# ## ###", "a###é"]:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
        assert ours.tokenize(text) == theirs.tokenize(text), text


def test_serde_json_float_is_the_double_tokenizers_reads():
    """Scores of every magnitude a vocabulary has, read back from tokenizers after it parsed them from JSON."""
    rng = random.Random(0)
    scores = [rng.uniform(-30, 0) for _ in range(3000)] + [-(10 ** rng.uniform(-320, 3)) for _ in range(3000)]
    scores += [0.0, -0.0, -1.0, -20.0, -1e-5, -5e-324, -1.7976931348623157e308]
    spec = {"type": "Unigram", "unk_id": 0, "vocab": [[f"p{i}", score] for i, score in enumerate(scores)]}
    read = json.loads(Tokenizer.from_str(json.dumps({"version": "1.0", "model": spec})).to_str())["model"]["vocab"]
    assert [serde_json_float(score) for score in scores] == [score for _, score in read]
    assert any(serde_json_float(score) != score for score in scores)  # the rounding this mirrors does occur
