"""The tokenizer classes of the BERT family, each building its pipeline around the folder's vocabulary.

transformers 5 takes only the vocabulary from a folder and builds the other steps itself, in the
``__init__`` of each tokenizer class (models/*/tokenization_*.py), from the options of
tokenizer_config.json: its BertTokenizer lowercases when ``do_lower_case`` says so, whatever
tokenizer.json's normalizer says. The classes here do the same: ``spec`` writes the tokenizer.json
that transformers builds, and ``PreTrainedTokenizer`` runs it; the tokenizer's ``pipeline_source`` says
so, and ``from_pretrained(..., pipeline_from="tokenizer.json")`` runs the folder's file whole instead.
The vocabulary comes from whichever file holds it:

- WordPiece, from tokenizer.json or vocab.txt: ``BertTokenizer`` (ELECTRA's too), ``DistilBertTokenizer``
  and ``MPNetTokenizer``;
- BPE, from tokenizer.json or vocab.json + merges.txt: ``RobertaTokenizer``;
- Unigram, from tokenizer.json or a SentencePiece model: ``AlbertTokenizer``, ``XLMRobertaTokenizer`` and
  ``CamembertTokenizer``, whose vocabulary is the model's pieces rearranged as transformers' converters do,
  and ``DebertaV2Tokenizer``, over the pieces as they are, with steps of its own.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.characters import WHITESPACE
from minibert.tokenization.files import TOKENIZER_CONFIG_FILE, TokenizerFiles
from minibert.tokenization.sentencepiece_model import CONTROL, USER_DEFINED, SentencePieceModel
from minibert.tokenization.tokenizer import SPECIAL_TOKEN_NAMES, PreTrainedTokenizer

Spec = dict[str, Any]  # a tokenizer.json, or one of its entries


def special_ids(ids: dict[str, int], special: dict[str, str], names: tuple[str, ...], path: Path) -> list[int]:
    """The ids of the named special tokens, which the vocabulary (``path``) must hold."""
    missing = [f"{name} {special[name]!r}" for name in names if special[name] not in ids]
    if missing:
        raise TokenizerError(f"{path}: has no {', '.join(missing)}; name the right ones in {TOKENIZER_CONFIG_FILE}")
    return [ids[special[name]] for name in names]


def processor(kind: str, ids: dict[str, int], special: dict[str, str], names: tuple[str, str], path: Path) -> Spec:
    """A BertProcessing or RobertaProcessing entry around the special tokens ``names`` (first, then last).

    With ``[CLS]`` 2 and ``[SEP]`` 3: ``{"type": "BertProcessing", "cls": ["[CLS]", 2], "sep": ["[SEP]", 3]}``.
    """
    first, last = special_ids(ids, special, names, path)
    return {"type": kind, "cls": [special[names[0]], first], "sep": [special[names[1]], last]}


def token_ids(vocab: dict[str, int] | list[list[Any]], added_tokens: list[Spec]) -> dict[str, int]:
    """Token -> id over a vocabulary (a WordPiece/BPE dict or a Unigram list of pieces) and the added tokens."""
    ids = vocab if isinstance(vocab, dict) else {piece: id for id, (piece, _) in enumerate(vocab)}
    return ids | {token["content"]: token["id"] for token in added_tokens}


# --- WordPiece ---------------------------------------------------------------------------------------------------


class BertTokenizer(PreTrainedTokenizer):
    """BERT's WordPiece tokenizer, as ``transformers.BertTokenizer`` (ELECTRA's ``ElectraTokenizer`` is the same).

    BertNormalizer (clean, CJK, accents, lowercase) → BertPreTokenizer (whitespace and punctuation) →
    WordPiece, with ``[CLS] A [SEP] B [SEP]`` around the sequences.
    """

    model_kind = "WordPiece"
    rebuilds = True
    model_input_names = ("input_ids", "token_type_ids", "attention_mask")
    default_special_tokens = {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }

    @classmethod
    def spec(cls, files: TokenizerFiles) -> Spec:
        vocab, config, special = files.wordpiece_vocab(), files.config, cls.special_tokens(files)
        added_tokens = files.tokenizer_json.get("added_tokens", []) if files.tokenizer_json else []
        special_ids(vocab, special, ("unk_token",), files.vocab_path)  # WordPiece needs it
        return {
            "normalizer": {
                "type": "BertNormalizer",
                "clean_text": True,
                "handle_chinese_chars": config.get("tokenize_chinese_chars", True),
                "strip_accents": config.get("strip_accents"),
                "lowercase": config.get("do_lower_case", True),
            },
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "vocab": vocab, "unk_token": special["unk_token"]},
            "decoder": {"type": "WordPiece", "prefix": "##"},
            "post_processor": cls.processor(token_ids(vocab, added_tokens), special, files.vocab_path),
            "added_tokens": added_tokens,
        }

    @classmethod
    def processor(cls, ids: dict[str, int], special: dict[str, str], path: Path) -> Spec:
        return processor("BertProcessing", ids, special, ("cls_token", "sep_token"), path)


ElectraTokenizer = BertTokenizer  # transformers 5 has no class of its own for ELECTRA either


class DistilBertTokenizer(BertTokenizer):
    """DistilBERT's tokenizer, as ``transformers.DistilBertTokenizer``: BERT's, returning no token types."""

    model_input_names = ("input_ids", "attention_mask")


class MPNetTokenizer(BertTokenizer):
    """MPNet's tokenizer, as ``transformers.MPNetTokenizer``: BERT's steps, with RoBERTa's special tokens.

    ``<s> A </s></s> B </s>``, all of type 0 and none returned; ``<mask>`` takes the space before it.
    """

    model_input_names = ("input_ids", "attention_mask")
    default_special_tokens = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "[UNK]",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    lstrip_tokens = ("mask_token",)

    @classmethod
    def processor(cls, ids: dict[str, int], special: dict[str, str], path: Path) -> Spec:
        # transformers' MPNetTokenizer trims offsets and adds no prefix space (which they need to know).
        framing = processor("RobertaProcessing", ids, special, ("cls_token", "sep_token"), path)
        return framing | {"add_prefix_space": False}


# --- BPE ---------------------------------------------------------------------------------------------------------


class RobertaTokenizer(PreTrainedTokenizer):
    """RoBERTa's byte-level BPE tokenizer, as ``transformers.RobertaTokenizer``.

    ByteLevel pre-tokenizer (GPT-2's word split, bytes as characters) → BPE, with ``<s> A </s></s> B </s>``
    around the sequences. A leading space is part of a word, so "Hello" and " Hello" differ unless
    ``add_prefix_space`` is set.
    """

    model_kind = "BPE"
    rebuilds = True
    default_special_tokens = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }

    @classmethod
    def spec(cls, files: TokenizerFiles) -> Spec:
        (vocab, merges), special = files.bpe_vocab(), cls.special_tokens(files)
        added_tokens = files.tokenizer_json.get("added_tokens", []) if files.tokenizer_json else []
        ids = token_ids(vocab, added_tokens)
        return {
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": files.config.get("add_prefix_space", False)},
            "model": {"type": "BPE", "vocab": vocab, "merges": merges},
            "decoder": {"type": "ByteLevel"},
            "post_processor": processor("RobertaProcessing", ids, special, ("cls_token", "sep_token"), files.vocab_path)
            | {key: files.config.get(key, key == "trim_offsets") for key in ("trim_offsets", "add_prefix_space")},
            "added_tokens": added_tokens,
        }


# --- Unigram -----------------------------------------------------------------------------------------------------


class SentencePieceTokenizer(PreTrainedTokenizer):
    """What ALBERT's, XLM-R's and CamemBERT's tokenizers share: a SentencePiece Unigram model.

    Its normalizer → WhitespaceSplit + Metaspace (``▁`` before every word, or none without
    ``add_prefix_space``) → Unigram, with a Metaspace decoder. The vocabulary and the compiled
    normalisation rules (``precompiled_charsmap``) come from tokenizer.json or from the ``.model`` file.
    """

    model_kind = "Unigram"
    rebuilds = True
    model_input_names = ("input_ids", "attention_mask")

    @classmethod
    def spec(cls, files: TokenizerFiles) -> Spec:
        special = cls.special_tokens(files)
        if files.tokenizer_json is not None:
            vocab = files.tokenizer_json["model"]["vocab"]
            charsmap = precompiled_charsmap(files.tokenizer_json.get("normalizer"))
            added_tokens = files.tokenizer_json.get("added_tokens", [])
        elif files.sentencepiece is not None:
            vocab = cls.vocab_from_sentencepiece([[p.piece, p.score] for p in files.sentencepiece.pieces], special)
            charsmap = base64.b64encode(files.sentencepiece.normalizer_spec.precompiled_charsmap).decode() or None
            added_tokens = sentencepiece_added_tokens(files.sentencepiece, vocab)
        else:
            raise TokenizerError(f"{files.folder}: {cls.__name__} reads tokenizer.json or a SentencePiece model")
        prepend = {
            "replacement": "▁",
            "prepend_scheme": "always" if files.config.get("add_prefix_space", True) else "never",
        }
        ids = token_ids(vocab, added_tokens)
        return {
            "normalizer": cls.normalizer(charsmap, files.config),
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Metaspace", **prepend}],
            },
            "model": {"type": "Unigram", "vocab": vocab, "unk_id": cls.unk_id(vocab, special)},
            "decoder": {"type": "Metaspace", **prepend},
            "post_processor": cls.processor(ids, special, files),
            "added_tokens": added_tokens,
        }

    @classmethod
    def vocab_from_sentencepiece(cls, pieces: list[list[Any]], special: dict[str, str]) -> list[list[Any]]:
        """The ``[piece, score]`` vocabulary made of a SentencePiece model's pieces (id = position)."""
        return pieces

    @classmethod
    def normalizer(cls, charsmap: str | None, config: dict[str, Any]) -> Spec | None:
        """SentencePiece's own rules, compiled into the charsmap, if the model has them."""
        return None if charsmap is None else {"type": "Precompiled", "precompiled_charsmap": charsmap}

    @classmethod
    def unk_id(cls, vocab: list[list[Any]], special: dict[str, str]) -> int:
        """The first piece that is the unk_token, as transformers' CamembertTokenizer finds it (0 if none is)."""
        return next((id for id, (piece, _) in enumerate(vocab) if piece == special["unk_token"]), 0)

    @classmethod
    def processor(cls, ids: dict[str, int], special: dict[str, str], files: TokenizerFiles) -> Spec:
        """``<s> A </s></s> B </s>`` (XLM-R's and CamemBERT's bos and eos tokens), all of type 0."""
        # transformers 5 frames these with a TemplateProcessing, which leaves the offsets untrimmed.
        framing = processor("RobertaProcessing", ids, special, ("bos_token", "eos_token"), files.vocab_path)
        return framing | {"trim_offsets": False}


def precompiled_charsmap(normalizer: Spec | None) -> str | None:
    """The base64 charsmap of tokenizer.json's first Precompiled normalizer, as transformers 5 extracts it."""
    steps = [] if normalizer is None else normalizer.get("normalizers", [normalizer])
    return next((step.get("precompiled_charsmap") for step in steps if step["type"] == "Precompiled"), None)


def sentencepiece_added_tokens(model: SentencePieceModel, vocab: list[list[Any]]) -> list[Spec]:
    """A SentencePiece model's control pieces (special) and user-defined ones (not): tokens never split.

    As transformers' SentencePieceExtractor has them: matched in the raw text, never normalised.
    """
    ids = {piece: id for id, (piece, _) in enumerate(vocab)}
    return [
        {"id": ids[piece.piece], "content": piece.piece, "special": piece.type == CONTROL, "normalized": False}
        for piece in model.pieces
        if piece.type in (CONTROL, USER_DEFINED) and piece.piece in ids
    ]


class AlbertTokenizer(SentencePieceTokenizer):
    """ALBERT's SentencePiece tokenizer, as ``transformers.AlbertTokenizer``; it reads tokenizer.json or spiece.model.

    Its normalizer (quotes, NFKD, accents, lowercase, then the model's rules) → WhitespaceSplit + Metaspace
    → Unigram, with ``[CLS] A [SEP] B [SEP]`` around the sequences. As in transformers 5, a call returns no
    token types unless asked (``return_token_type_ids=True``), though the ALBERT models take them.
    """

    default_special_tokens = {
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "unk_token": "<unk>",
        "sep_token": "[SEP]",
        "pad_token": "<pad>",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }

    @classmethod
    def normalizer(cls, charsmap: str | None, config: dict[str, Any]) -> Spec:
        steps: list[Spec] = [
            {"type": "Replace", "pattern": {"String": "``"}, "content": '"'},
            {"type": "Replace", "pattern": {"String": "''"}, "content": '"'},
        ]
        if not config.get("keep_accents", False):
            steps += [{"type": "NFKD"}, {"type": "StripAccents"}]
        if config.get("do_lower_case", True):
            steps.append({"type": "Lowercase"})
        return {"type": "Sequence", "normalizers": [*steps, *filter(None, [super().normalizer(charsmap, config)])]}

    @classmethod
    def unk_id(cls, vocab: list[list[Any]], special: dict[str, str]) -> int:
        return 1  # transformers' AlbertTokenizer fixes it: ALBERT's pieces start <pad> <unk>

    @classmethod
    def processor(cls, ids: dict[str, int], special: dict[str, str], files: TokenizerFiles) -> Spec:
        """tokenizer.json's post-processor, which transformers keeps for ALBERT; else ``[CLS] A [SEP] B [SEP]``."""
        if files.tokenizer_json is not None and files.tokenizer_json.get("post_processor") is not None:
            return files.tokenizer_json["post_processor"]
        return processor("BertProcessing", ids, special, ("cls_token", "sep_token"), files.vocab_path)


class XLMRobertaTokenizer(SentencePieceTokenizer):
    """XLM-R's SentencePiece tokenizer, as ``transformers.XLMRobertaTokenizer``; it reads sentencepiece.bpe.model too.

    The model's rules → WhitespaceSplit + Metaspace → Unigram, with ``<s> A </s></s> B </s>`` around the
    sequences and no token types returned.
    """

    default_special_tokens = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }

    @classmethod
    def vocab_from_sentencepiece(cls, pieces: list[list[Any]], special: dict[str, str]) -> list[list[Any]]:
        """fairseq's ids: ``<s> <pad> </s> <unk>`` replace the model's ``<unk> <s> </s>``, and ``<mask>`` comes last.

        As transformers' XLMRobertaConverter.convert_from_spm: every other piece's id is one more than in the model.
        """
        first = [[special[name], 0.0] for name in ("bos_token", "pad_token", "eos_token", "unk_token")]
        return [*first, *pieces[3:], [special["mask_token"], 0.0]]

    @classmethod
    def unk_id(cls, vocab: list[list[Any]], special: dict[str, str]) -> int:
        return 3  # transformers' XLMRobertaTokenizer fixes it, where fairseq's ids put <unk>


class CamembertTokenizer(SentencePieceTokenizer):
    """CamemBERT's SentencePiece tokenizer, as ``transformers.CamembertTokenizer``; it reads its .model file too.

    XLM-R's steps, with a vocabulary of its own: ``<mask>`` takes the space before it.
    """

    default_special_tokens = XLMRobertaTokenizer.default_special_tokens
    lstrip_tokens = ("mask_token",)

    @classmethod
    def vocab_from_sentencepiece(cls, pieces: list[list[Any]], special: dict[str, str]) -> list[list[Any]]:
        """Five entries of fairseq's before the model's pieces (its ``<unk>`` left out), ``<mask>`` last.

        As transformers' CamembertConverter.convert_from_spm: the model's own ``<s>`` and ``</s>`` are the ones used.
        """
        first = [["<s>NOTUSED", 0.0], [special["pad_token"], 0.0], ["</s>NOTUSED", 0.0], [special["unk_token"], 0.0]]
        return [*first, ["<unk>NOTUSED", -100.0], *pieces[1:], [special["mask_token"], 0.0]]


class DebertaV2Tokenizer(PreTrainedTokenizer):
    """DeBERTa-v2's and v3's SentencePiece tokenizer, as ``transformers.DebertaV2Tokenizer``; it reads spm.model alone.

    Lowercase (``do_lower_case``), whitespace runs and tabs or newlines to one space, NFC, right strip →
    Metaspace (``▁`` before every word; only at the input's start without ``add_prefix_space``) → Unigram
    over the model's pieces as they are, with ``[CLS] A [SEP] B [SEP]`` (``B [SEP]`` of type 1) around the
    sequences. As in transformers 5, the model's compiled normalisation rules are not used. Named special
    tokens the pieces lack (``[MASK]`` in microsoft/deberta-v3-*) are added after them, in transformers' order.
    """

    model_kind = "Unigram"
    rebuilds = True
    model_input_names = ("input_ids", "attention_mask", "token_type_ids")
    default_special_tokens = {
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    # transformers' Replace(Regex(r"\s{2,}|[\n\r\t]")), with Rust's \s (Unicode's White_Space) spelt out for re.
    spaces = f"[{re.escape(WHITESPACE)}]{{2,}}|[\n\r\t]"

    @classmethod
    def spec(cls, files: TokenizerFiles) -> Spec:
        config, special = files.config, cls.special_tokens(files)
        if config.get("split_by_punct", False):
            raise TokenizerError(
                f"{files.folder}: split_by_punct=True (punctuation split off as words of its own) is not supported"
            )
        if files.tokenizer_json is not None:
            vocab = files.tokenizer_json["model"]["vocab"]
            added_tokens = list(files.tokenizer_json.get("added_tokens", []))
            unk_id = 1  # transformers' default, where the vocabulary has no (unk_token, 0.0)
        elif files.sentencepiece is not None:
            vocab = [[p.piece, p.score] for p in files.sentencepiece.pieces]
            added_tokens = sentencepiece_added_tokens(files.sentencepiece, vocab)
            unk_id = files.sentencepiece.trainer_spec.unk_id
        else:
            raise TokenizerError(f"{files.folder}: {cls.__name__} reads tokenizer.json or spm.model")
        unk_id = next((id for id, entry in enumerate(vocab) if entry == [special["unk_token"], 0.0]), unk_id)
        ids = token_ids(vocab, added_tokens)
        for content in dict.fromkeys(special[name] for name in SPECIAL_TOKEN_NAMES if name in special):
            if content not in ids:
                ids[content] = max(ids.values(), default=-1) + 1
                added_tokens.append({"id": ids[content], "content": content, "special": True, "normalized": False})
        steps = [{"type": "Lowercase"}] if config.get("do_lower_case", False) else []
        steps += [
            {"type": "Replace", "pattern": {"Regex": cls.spaces}, "content": " "},
            {"type": "NFC"},
            {"type": "Strip", "strip_left": False, "strip_right": True},
        ]
        prepend = {"replacement": "▁", "prepend_scheme": "always" if config.get("add_prefix_space", True) else "first"}
        return {
            "normalizer": {"type": "Sequence", "normalizers": steps},
            "pre_tokenizer": {"type": "Metaspace", **prepend},
            "model": {"type": "Unigram", "vocab": vocab, "unk_id": unk_id},
            "decoder": {"type": "Metaspace", **prepend},
            "post_processor": processor("BertProcessing", ids, special, ("cls_token", "sep_token"), files.vocab_path),
            "added_tokens": added_tokens,
        }
