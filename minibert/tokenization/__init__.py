"""Tokenizers written from scratch: BERT's WordPiece, RoBERTa's byte-level BPE and SentencePiece's Unigram.

They read a Hugging Face tokenizer folder and give the ids of ``transformers``' fast tokenizers, because
they run the pipeline of the Rust ``tokenizers`` library stage by stage. The modules follow the text
through it, and each imports only the ones before it:

1. ``files``: the folder (a local path or a Hub id), read once into ``TokenizerFiles``, with
   ``sentencepiece_model``, the reader of SentencePiece's ``.model`` protobuf files;
2. ``characters``: whitespace and Unicode categories, shared by the stages;
3. ``normalizers``: text -> text (cleaning, lowercasing, accents, SentencePiece's rules);
4. ``pre_tokenizers``: text -> words (whitespace and punctuation, GPT-2's bytes, ``▁``);
5. ``models``: word -> tokens, the three algorithms: WordPiece, BPE, Unigram;
6. ``templates``: ids -> ids with special tokens and token types;
7. ``decoders``: tokens -> text;
8. ``tokenizer``: added tokens, the stages put together as a tokenizer.json describes them, and
   transformers' call interface (``PreTrainedTokenizer``, transformers' ``TokenizersBackend``);
9. ``families``: each model family's tokenizer, which builds its stages around the folder's vocabulary
   as transformers 5 does: ``BertTokenizer`` (also ELECTRA's), ``DistilBertTokenizer``, ``MPNetTokenizer``,
   ``RobertaTokenizer``, ``AlbertTokenizer``, ``XLMRobertaTokenizer``, ``CamembertTokenizer``,
   ``DebertaV2Tokenizer``;
10. ``auto``: ``AutoTokenizer``, which picks one of them for a folder.

Where Rust and Python define something differently, the stages follow Rust, since the aim is the ids of
``transformers``' fast tokenizers: whitespace is Unicode's White_Space (not ``str.isspace``), and
lowercasing goes character by character (no word-final ς). The Unicode tables differ too (those
inside tokenizers are Unicode 8 and 9 for normal forms and categories, Python 3.11's are Unicode 14):
``characters`` answers from ``unicode_overrides.json``, the few hundred code points where the two
disagree, written and checked by ``scripts/unicode_tables.py`` over all of Unicode.
"""

from minibert.errors import TokenizerError
from minibert.tokenization.auto import AutoTokenizer
from minibert.tokenization.families import (
    AlbertTokenizer,
    BertTokenizer,
    CamembertTokenizer,
    DebertaV2Tokenizer,
    DistilBertTokenizer,
    ElectraTokenizer,
    MPNetTokenizer,
    RobertaTokenizer,
    XLMRobertaTokenizer,
)
from minibert.tokenization.tokenizer import AddedToken, BatchEncoding, PreTrainedTokenizer

__all__ = [
    "AddedToken",
    "AlbertTokenizer",
    "AutoTokenizer",
    "BatchEncoding",
    "BertTokenizer",
    "CamembertTokenizer",
    "DebertaV2Tokenizer",
    "DistilBertTokenizer",
    "ElectraTokenizer",
    "MPNetTokenizer",
    "PreTrainedTokenizer",
    "RobertaTokenizer",
    "TokenizerError",
    "XLMRobertaTokenizer",
]
