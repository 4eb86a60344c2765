"""Character offsets, word ids and sequence ids equal those of transformers' fast tokenizers.

Each folder of tokenizer_data.py is read by minibert's AutoTokenizer and by transformers'; offsets are
compared where both give the same ids (some code points differ between Unicode versions, and the ids
have tests of their own in test_tokenizers.py), and most texts must give the same ids, so that no
comparison passes for want of cases.
"""

import json

import pytest
import torch
import transformers
from test_tokenizers import KINDS
from tokenizer_data import CORPUS, sentencepiece_model
from tokenizers import NormalizedString, PreTokenizedString, Regex, normalizers

from minibert.tokenization import AutoTokenizer
from minibert.tokenization.normalizers import Replace, align, normalizer_from_json

ALIGNED = ("offset_mapping", "special_tokens_mask")
DEBERTA = ["deberta-v3", "deberta-lower"]
ALBERT_STEPS = [
    {"type": "Replace", "pattern": {"String": "``"}, "content": '"'},
    {"type": "NFKD"},
    {"type": "StripAccents"},
    {"type": "Lowercase"},
]


@pytest.fixture(scope="module")
def deberta_folders(tmp_path_factory):
    """DeBERTa-v3's layout: spm.model alone, config.json's model_type naming the class; then lowercased."""
    root = tmp_path_factory.mktemp("deberta-offsets")
    pieces = {"pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]"}
    model = sentencepiece_model(pad_id=0, bos_id=1, eos_id=2, unk_id=3, **pieces)
    configs = {"deberta-v3": {"do_lower_case": False}, "deberta-lower": {"do_lower_case": True}}
    for name, config in configs.items():
        (root / name).mkdir()
        (root / name / "spm.model").write_bytes(model)
        (root / name / "tokenizer_config.json").write_text(json.dumps(config))
        (root / name / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    return {name: root / name for name in configs}


@pytest.fixture(scope="module")
def pairs(tokenizer_folders, deberta_folders):
    """pairs(kind) -> (minibert's tokenizer, transformers' tokenizer) for the same folder."""
    made = {}

    def get(kind: str):
        if kind not in made:
            folder = {**tokenizer_folders, **deberta_folders}[kind]
            made[kind] = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
        return made[kind]

    return get


def assert_rows_equal(ours, theirs, rows: int) -> int:
    """Offsets, special-token masks, word ids and sequence ids of each row whose ids agree; how many did."""
    agreeing = 0
    for row in range(rows):
        if ours["input_ids"][row] != theirs["input_ids"][row]:
            continue
        agreeing += 1
        for name in ALIGNED:
            assert ours[name][row] == theirs[name][row], (name, row)
        assert ours.word_ids(row) == theirs.word_ids(row), row
        assert ours.sequence_ids(row) == theirs.sequence_ids(row), row
    return agreeing


def call_both(kind: str, pairs, *texts, **options):
    ours, theirs = pairs(kind)
    options |= {name: True for name in ("return_offsets_mapping", "return_special_tokens_mask")}
    return ours(*texts, **options), theirs(*texts, **options)


@pytest.mark.parametrize("kind", KINDS + DEBERTA)
def test_offsets_of_single_texts(pairs, kind):
    got, want = call_both(kind, pairs, CORPUS)
    assert assert_rows_equal(got, want, len(CORPUS)) >= 0.9 * len(CORPUS)


@pytest.mark.parametrize("kind", KINDS + DEBERTA)
def test_offsets_of_pairs_are_into_each_text(pairs, kind):
    got, want = call_both(kind, pairs, CORPUS, CORPUS[1:] + CORPUS[:1])
    assert assert_rows_equal(got, want, len(CORPUS)) >= 0.8 * len(CORPUS)


@pytest.mark.parametrize("kind", KINDS)
def test_offsets_of_padded_and_truncated_batches(pairs, kind):
    for options in ({"padding": True}, {"padding": "max_length", "truncation": True, "max_length": 12}):
        for texts in ((CORPUS[:16],), (CORPUS[:16], CORPUS[16:32])):
            got, want = call_both(kind, pairs, *texts, **options)
            assert assert_rows_equal(got, want, 16) >= 12, options


@pytest.mark.parametrize("kind", ["minilm", "bpe", "bpe-prefix-space", "mpnet", "unigram", "xlm-roberta-spm"])
def test_offsets_without_special_tokens_and_from_the_left(pairs, kind):
    ours, theirs = pairs(kind)
    got, want = call_both(kind, pairs, CORPUS[:16], add_special_tokens=False)
    assert assert_rows_equal(got, want, 16) >= 12
    for tokenizer in (ours, theirs):
        tokenizer.padding_side = tokenizer.truncation_side = "left"
    try:
        got, want = call_both(kind, pairs, CORPUS[:16], CORPUS[16:32], padding=True, truncation=True, max_length=10)
        assert assert_rows_equal(got, want, 16) >= 12
    finally:
        for tokenizer in (ours, theirs):
            tokenizer.padding_side = tokenizer.truncation_side = "right"


@pytest.mark.parametrize("kind", ["minilm", "wordpiece", "bpe", "unigram"])
def test_offsets_as_a_tensor(pairs, kind):
    options = {"padding": True, "truncation": True, "max_length": 24, "return_tensors": "pt"}
    got, want = call_both(kind, pairs, CORPUS[:12], **options)
    assert got["offset_mapping"].shape == (12, got["input_ids"].shape[1], 2)
    assert got["offset_mapping"].dtype == torch.long
    same = [row for row in range(12) if torch.equal(got["input_ids"][row], want["input_ids"][row])]
    assert len(same) >= 10
    assert torch.equal(got["offset_mapping"][same], want["offset_mapping"][same])
    assert got.word_ids(same[-1]) == want.word_ids(same[-1])


@pytest.mark.parametrize("kind", ["minilm", "bpe"])
def test_word_and_sequence_ids_without_asking_for_offsets(pairs, kind):
    ours, theirs = pairs(kind)
    got = ours(CORPUS[:8], CORPUS[8:16], padding=True, truncation=True, max_length=20)
    want = theirs(CORPUS[:8], CORPUS[8:16], padding=True, truncation=True, max_length=20)
    assert set(got) == set(want) and not set(got) & set(ALIGNED)
    assert [got.word_ids(i) for i in range(8)] == [want.word_ids(i) for i in range(8)]
    assert [got.sequence_ids(i) for i in range(8)] == [want.sequence_ids(i) for i in range(8)]
    single = ours(CORPUS[0], return_offsets_mapping=True)
    assert single["offset_mapping"] == theirs(CORPUS[0], return_offsets_mapping=True)["offset_mapping"]
    assert single.word_ids() == theirs(CORPUS[0]).word_ids()


def test_offsets_point_into_the_original_text_through_lowercasing_and_accents(pairs):
    """NFD and lowercasing change the length of a text; the offsets still slice the original words out."""
    ours, theirs = pairs("mpnet")
    text = "Ünïcödé ÇAFÉ İstanbul ﬁne 北京 straße Ωmega"
    got = ours(text, return_offsets_mapping=True)
    assert got["offset_mapping"] == theirs(text, return_offsets_mapping=True)["offset_mapping"]
    words = {text[start:end] for start, end in got["offset_mapping"] if end > start}
    assert {"北", "京"} <= words


@pytest.mark.parametrize(
    "spec, theirs",
    [
        ({"type": "BertNormalizer", "lowercase": True}, normalizers.BertNormalizer(lowercase=True)),
        ({"type": "NFD"}, normalizers.NFD()),
        ({"type": "NFKC"}, normalizers.NFKC()),
        ({"type": "NFKD"}, normalizers.NFKD()),
        ({"type": "Nmt"}, normalizers.Nmt()),
        ({"type": "Lowercase"}, normalizers.Lowercase()),
        ({"type": "Strip"}, normalizers.Strip()),
        (
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"},
            normalizers.Replace(Regex(" {2,}"), "▁"),
        ),
        (
            {"type": "Sequence", "normalizers": [*ALBERT_STEPS, {"type": "NFKC"}]},
            normalizers.Sequence(
                [
                    normalizers.Replace("``", '"'),
                    normalizers.NFKD(),
                    normalizers.StripAccents(),
                    normalizers.Lowercase(),
                    normalizers.NFKC(),
                ]
            ),
        ),
    ],
    ids=["bert", "nfd", "nfkc", "nfkd", "nmt", "lowercase", "strip", "replace", "sequence"],
)
def test_each_normalised_character_comes_from_where_tokenizers_says(spec, theirs):
    """Per normalised character, its original span, as tokenizers' NormalizedString aligns it."""
    texts = [*CORPUS, " e\u0301 A\u0308\u0323 ﬁ ① \u1100\u1161\u11a8 Å  x  ", "ΣΑΣ İı ǅ ß"]
    ours = normalizer_from_json(spec)
    for text in texts:
        normalized, origins = align(ours, text, list(range(len(text))))
        assert normalized == theirs.normalize_str(text), text
        assert [(origin, origin + 1) for origin in origins] == character_spans(theirs, text), text


def character_spans(normalizer, text: str) -> list[tuple[int, int]]:
    """The original span of each normalised character, read from tokenizers by splitting after each one."""
    pretokenized = PreTokenizedString(text)
    pretokenized.normalize(lambda normalized: normalizer.normalize(normalized))

    def each_character(_: int, normalized: NormalizedString) -> list[NormalizedString]:
        return [normalized[i : i + 1] for i in range(len(normalized.normalized))]

    pretokenized.split(each_character)
    return [offsets for _, offsets, _ in pretokenized.get_splits(offset_referential="original", offset_type="char")]


def test_a_replacement_is_aligned_with_the_last_character_it_replaces():
    text = "a``b''"
    assert align(Replace("``", '"'), text, list(range(len(text)))) == ("a\"b''", [0, 2, 3, 4, 5])
