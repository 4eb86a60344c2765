"""minibert's tokenizers give transformers' ids and offsets on any Unicode text hypothesis can draw.

Texts come from the whole of Unicode (``st.text()``) and from strategies biased towards what tokenizers
get wrong: combining marks after letters, Hangul syllables and jamo, CJK ideographs, runs of whitespace
and control characters, special-token strings inside text, and very long words. Each is encoded as a
single, a pair and in padded and truncated batches by minibert's AutoTokenizer and by transformers' on a
representative folder of each layout; every key must be equal, offsets included. The examples are
derandomized, so that every run (CI's too) draws the same ones.
"""

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tokenizer_corpus import add_layouts, same

EXAMPLES = int(os.environ.get("MINIBERT_TOKENIZER_FUZZ_EXAMPLES", "60"))  # per test and layout; more by hand
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
# One folder of each layout: WordPiece (the real all-MiniLM-L6-v2), byte-level BPE, ALBERT's Unigram,
# XLM-R (its pipeline rebuilt by transformers 5, and from a .model file) and DeBERTa-v3's spm.model.
LAYOUTS = ["minilm", "bpe", "unigram", "xlm-roberta", "xlm-roberta-spm", "deberta-v3"]
OFFSETS = {"return_offsets_mapping": True}

SPECIAL = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>", "▁"]
SPACES = " \t\n\r\x0b\x0c\x00\x07\x1b\x1c\x1f\x7f\x85\xa0\xad\u1680\u2000\u2009\u200b\u200d\u2028\u3000\ufeff"
letters = st.characters(categories=["Lu", "Ll", "Lt", "Lo"])
marks = st.characters(categories=["Mn", "Mc", "Me"])
pieces = st.one_of(
    st.text(),  # the whole of Unicode
    st.tuples(letters, st.lists(marks, min_size=1, max_size=4)).map(lambda lm: lm[0] + "".join(lm[1])),
    st.text(st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), min_size=1, max_size=6),  # Hangul syllables
    st.text(st.characters(min_codepoint=0x1100, max_codepoint=0x11FF), min_size=1, max_size=6),  # Hangul jamo
    st.text(st.sampled_from([chr(c) for c in (*range(0x4E00, 0x4E40), 0x3400, 0xF900, 0x20000, 0x2A6D6)]), max_size=6),
    st.text(st.sampled_from(SPACES), min_size=1, max_size=6),
    st.sampled_from(SPECIAL),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzé"), min_size=90, max_size=300),  # very long words
    st.sampled_from(["Hello", "world", ",", ".", "don't", "naïve", "1234", " "]),
)
texts = st.lists(pieces, max_size=8).map("".join)


@pytest.fixture(scope="module")
def folders(tokenizer_folders, tmp_path_factory) -> dict[str, Path]:
    return add_layouts(tokenizer_folders, tmp_path_factory.mktemp("fuzz-tokenizers"))


@pytest.mark.parametrize("kind", LAYOUTS)
@FUZZ
@given(first=texts, second=texts)
def test_fuzzed_texts_as_singles_and_pairs(pair_of, kind, first, second):
    ours, theirs = pair_of(kind)
    assert same(ours, theirs, first, **OFFSETS)
    assert same(ours, theirs, first, second, **OFFSETS)


@pytest.mark.parametrize("kind", LAYOUTS)
@FUZZ
@given(batch=st.lists(texts, min_size=1, max_size=4))
def test_fuzzed_texts_in_padded_and_truncated_batches(pair_of, kind, batch):
    ours, theirs = pair_of(kind)
    other = batch[::-1]
    assert same(ours, theirs, batch, padding=True, **OFFSETS)
    assert same(ours, theirs, batch, other, padding="longest", truncation="longest_first", max_length=20, **OFFSETS)
    assert same(ours, theirs, batch, padding="max_length", truncation=True, max_length=12, **OFFSETS)
    assert same(ours, theirs, batch, other, truncation="only_second", max_length=24, **OFFSETS)


# -- what the fuzzing found ------------------------------------------------------------------------------------------

FOUND = [
    "\u0670\ua953",  # NFD reorders the marks (classes 35, 9): the kept U+A953 takes the first position, 0
    "a\u0670\ua953b \u05b8\u05b4\u0591x",
    "\u0300\U0001e000",  # two marks of class 230, in order: the kept U+1E000 keeps its own position, 1
    "\u074a\U00011a99",  # U+11A99 (Unicode 10) is no mark to tokenizers: nothing to reorder, it keeps 1
    "A\u06df\u0325",  # NFC composes A with U+0325 across U+06DF: the cluster is all three, (0, 3)
    " a <mask>  b\u00a0c <mask>\n d",  # byte-level BPE's shortcut at single spaces, and a <mask> taking them
]


@pytest.mark.parametrize("kind", LAYOUTS)
def test_what_the_fuzzing_found(pair_of, kind):
    ours, theirs = pair_of(kind)
    assert [text for text in FOUND if not same(ours, theirs, text, **OFFSETS)] == []
    assert same(ours, theirs, FOUND, padding=True, **OFFSETS)
