"""minibert reads SentencePiece .model files as the sentencepiece package does, without it.

The models are trained here with sentencepiece's own trainer; its protobuf classes are the reference for
what the file holds, and transformers' conversion of the same file for the ids (here and in test_tokenizers.py).
"""

import json
import shutil
import subprocess
import sys

import pytest
import transformers
from sentencepiece import sentencepiece_model_pb2
from tokenizer_data import CHARACTERS, CORPUS, sentencepiece_model
from tokenizers import normalizers

from minibert.tokenization import AutoTokenizer, TokenizerError
from minibert.tokenization.normalizers import Precompiled
from minibert.tokenization.sentencepiece_model import NormalizerSpec, SentencePieceModel, TrainerSpec

# Models trained with the options real checkpoints use, and with the rarer ones the reader must get right.
OPTIONS = {
    "fairseq": {},
    "albert": {"pad_id": 0, "unk_id": 1, "bos_id": -1, "eos_id": -1, "control_symbols": "[CLS],[SEP],[MASK]"},
    "byte-fallback": {"vocab_size": 800, "byte_fallback": True, "user_defined_symbols": "<sep>,@@", "pad_id": 3},
    "albert-extras": {
        "vocab_size": 800,
        "byte_fallback": True,
        "user_defined_symbols": "<sep>,@@",
        "pad_id": 0,
        "unk_id": 1,
        "bos_id": -1,
        "eos_id": -1,
        "control_symbols": "[CLS],[SEP],[MASK]",
    },
    "identity": {"normalization_rule_name": "identity", "add_dummy_prefix": False, "remove_extra_whitespaces": False},
    "bpe": {"model_type": "bpe", "unk_piece": "[UNK]", "bos_piece": "[BOS]", "eos_id": -1},
}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The trained models, and one edited with protobuf where the trainer allows no choice (escaped spaces)."""
    root = tmp_path_factory.mktemp("spm")
    paths = {name: root / f"{name}.model" for name in [*OPTIONS, "edited"]}
    for name in OPTIONS:
        paths[name].write_bytes(sentencepiece_model(**OPTIONS[name]))
    edited = sentencepiece_model_pb2.ModelProto.FromString(paths["fairseq"].read_bytes())
    edited.normalizer_spec.escape_whitespaces = False
    edited.normalizer_spec.name = "nmt_nfkc, edited"
    edited.trainer_spec.eos_piece = "[EOS]"
    paths["edited"].write_bytes(edited.SerializeToString())
    return paths


@pytest.mark.parametrize("name", [*OPTIONS, "edited"])
def test_the_reader_sees_what_sentencepiece_sees(model_files, name):
    ours = SentencePieceModel.read(model_files[name])
    theirs = sentencepiece_model_pb2.ModelProto.FromString(model_files[name].read_bytes())
    assert [(p.piece, p.score, p.type) for p in ours.pieces] == [(p.piece, p.score, p.type) for p in theirs.pieces]
    for spec, proto in ((ours.trainer_spec, theirs.trainer_spec), (ours.normalizer_spec, theirs.normalizer_spec)):
        for field in type(spec).__dataclass_fields__:
            assert getattr(spec, field) == getattr(proto, field), field


def test_absent_fields_take_the_defaults_of_sentencepiece_model_proto():
    empty_specs = sentencepiece_model_pb2.ModelProto()
    for spec, proto in ((TrainerSpec(), empty_specs.trainer_spec), (NormalizerSpec(), empty_specs.normalizer_spec)):
        assert {field: getattr(proto, field) for field in type(spec).__dataclass_fields__} == vars(spec)


def test_the_compiled_nmt_nfkc_rules_normalise_as_tokenizers_does(model_files):
    charsmap = SentencePieceModel.read(model_files["fairseq"]).normalizer_spec.precompiled_charsmap
    ours, theirs = Precompiled(charsmap), normalizers.Precompiled(charsmap)
    assert [char for char in CHARACTERS if ours(char) != theirs.normalize_str(char)] == []
    assert [text for text in CORPUS if ours(text) != theirs.normalize_str(text)] == []


def damaged_copies(data: bytes) -> dict[str, bytes]:
    """The model cut short at 60 places, bytes that are no model at all, and a field with the wrong wire type."""
    cuts = {f"cut at {end}": data[:end] for end in range(0, len(data), max(1, len(data) // 60))}
    wrong_type = bytes([0x10, 0x01]) + data  # field 2 (trainer_spec) written as a number
    return cuts | {"json": b'{"model": "Unigram"}', "random": bytes(range(7, 256)), "wrong wire type": wrong_type}


def test_damaged_files_are_errors_that_name_the_file(model_files, tmp_path):
    path = tmp_path / "spiece.model"
    accepted = []
    for what, data in damaged_copies(model_files["albert"].read_bytes()).items():
        path.write_bytes(data)
        try:
            SentencePieceModel.read(path)
        except TokenizerError as error:
            assert str(error).startswith(f"{path}: not a SentencePiece model, or a damaged one ("), what
        else:
            accepted.append(what)
    assert accepted == []


def test_a_damaged_model_in_a_folder_is_named(tokenizer_folders, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(tokenizer_folders["albert-spiece"], folder)
    (folder / "spiece.model").write_bytes((folder / "spiece.model").read_bytes()[:1000])
    with pytest.raises(TokenizerError, match=str(folder / "spiece.model")):
        AutoTokenizer.from_pretrained(folder)


def test_models_other_than_unigram_are_refused_by_name(model_files, tmp_path):
    shutil.copy(model_files["bpe"], tmp_path / "spiece.model")
    with pytest.raises(TokenizerError, match="a SentencePiece BPE model is not supported"):
        AutoTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "config_file, config, error",
    [
        ("config.json", {"model_type": "t5"}, "tokenizer_class None, model_type 't5' is not supported"),
        (
            "tokenizer_config.json",
            {"tokenizer_class": "T5Tokenizer"},
            "tokenizer_class 'T5Tokenizer', model_type None is not supported",
        ),
    ],
)
def test_sentencepiece_tokenizers_of_other_models_are_refused_by_name(
    tokenizer_folders, tmp_path, config_file, config, error
):
    """A T5 folder holds a spiece.model too, but T5's steps are not ALBERT's."""
    folder = tmp_path / "t5"
    shutil.copytree(tokenizer_folders["albert-spiece"], folder)
    (folder / "tokenizer_config.json").unlink()
    (folder / config_file).write_text(json.dumps(config))
    with pytest.raises(TokenizerError, match=error):
        AutoTokenizer.from_pretrained(folder)


def test_a_hub_repository_with_only_a_model_file_resolves(tokenizer_folders, tmp_path):
    repo = tmp_path / "models--org--tiny-xlmr"
    shutil.copytree(tokenizer_folders["xlm-roberta-spm"], repo / "snapshots" / ("b" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    ours = AutoTokenizer.from_pretrained("org/tiny-xlmr", cache_dir=tmp_path)
    assert ours(CORPUS[:4], padding=True) == AutoTokenizer.from_pretrained(tokenizer_folders["xlm-roberta-spm"])(
        CORPUS[:4], padding=True
    )


def test_reading_a_model_file_needs_neither_sentencepiece_nor_protobuf(tokenizer_folders):
    code = (
        "import sys; from minibert.tokenization import AutoTokenizer; "
        f"AutoTokenizer.from_pretrained({str(tokenizer_folders['camembert-spm'])!r})('hello'); "
        "print([m for m in ('sentencepiece', 'google.protobuf', 'transformers', 'tokenizers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "model, file_name, tokenizer_class",
    [
        ("albert-extras", "spiece.model", "AlbertTokenizer"),
        ("byte-fallback", "sentencepiece.bpe.model", "XLMRobertaTokenizer"),
        ("byte-fallback", "sentencepiece.bpe.model", "CamembertTokenizer"),
    ],
)
def test_user_defined_and_byte_pieces_give_transformers_ids(model_files, tmp_path, model, file_name, tokenizer_class):
    """User-defined pieces are never split, and byte pieces stay unused: transformers turns byte_fallback off."""
    shutil.copy(model_files[model], tmp_path / file_name)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class}))
    ours, theirs = AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    texts = [*CORPUS, "a@@b <sep>c@@ @@<sep>", "unseen ☃ 𓀀"]
    assert [ours(text) for text in texts] == [dict(theirs(text)) for text in texts]
    for ids in theirs(texts)["input_ids"]:
        assert ours.decode(ids) == theirs.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
