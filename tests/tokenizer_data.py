"""Tokenizer folders for the tests, in the layouts of real checkpoints of the BERT family.

Every vocabulary but all-MiniLM-L6-v2's is trained here on the test corpus, with the ``tokenizers``
library or, for the SentencePiece ``.model`` files, with the ``sentencepiece`` package; minibert and
transformers then read the very same files.
"""

import base64
import io
import json
import struct
from pathlib import Path

import sentencepiece
from tokenizers import (
    AddedToken,
    SentencePieceUnigramTokenizer,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

CORPUS = (Path(__file__).parent / "data" / "tokenizer_corpus.txt").read_text(encoding="utf-8").split("\n")
TRAINING_TEXT = CORPUS * 3
# Lines left out of training, so that unknown characters occur, and what a text file cannot show.
CORPUS += [
    "unseen characters: ☃ ♞ ⚙ ᚠᛇᚻ ꙮ 𓀀 𝄞 and q̃ȥ",
    "",
    " ",
    "  ",
    "\t tab\tand\nnewline\r\nwindows\u000bvertical\u000cform feed",
    "nul\x00char, bell\x07, escape\x1b[0m, delete\x7f, replacement \ufffd",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u2060word joiner\u00adsoft hyphen",
    "no-break\u00a0space, thin\u2009space, ideographic\u3000space, line\u2028separator\u0085next line",
    "info\x1cseparators\x1dare\x1enot\x1fspaces",
    "private \ue000\uf8ff use and unassigned \u0378 code points",
    "ΟΔΟΣ Σ ΣΑΣ final sigma and İ dotted I",
    "[MASK][MASK] [SEP][CLS]<mask><mask> </s></s>",
    "[SEP]",
    "<mask>",
]
# The Unicode blocks text is written in: Latin to Arabic, Devanagari, Thai, Hangul, Greek and Latin extended,
# punctuation and symbols, CJK and kana, fullwidth forms, emoji.
BLOCKS = [(0x0000, 0x06FF), (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x1100, 0x11FF), (0x1E00, 0x27BF)]
BLOCKS += [(0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFFFF)]
BLOCKS += [(0x1F000, 0x1FAFF)]
CHARACTERS = [chr(cp) for a, b in BLOCKS for cp in range(a, b + 1) if not 0xD800 <= cp <= 0xDFFF]
SPECIAL_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIAL_ROBERTA = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SPECIAL_ALBERT = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
SPECIAL_MPNET = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
# What transformers' TokenizersBackend (PreTrainedTokenizerFast) needs named to pad: it has no defaults.
GENERIC_ALBERT = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64}
GENERIC_ALBERT |= dict(
    zip(["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"], SPECIAL_ALBERT, strict=True)
)
# A few rules in the style of SentencePiece's nmt_nfkc normalisation, for the Precompiled normalizer.
CHARSMAP_RULES = {
    "\uff21": "A",  # fullwidth A
    "\uff54": "t",
    "①": "1",
    "\u3000": " ",
    "ﬁ": "fi",
    "\x07": "",
    "\r": " ",
    "e\u0301": "é",
    "é": "e",
}


def save_folder(folder: Path, tokenizer: Tokenizer, config: dict, edit=None) -> Path:
    """tokenizer.json (after ``edit`` of its JSON) and tokenizer_config.json in ``folder``."""
    folder.mkdir(parents=True)
    spec = json.loads(tokenizer.to_str())
    if edit is not None:
        edit(spec)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def build_charsmap(rules: dict[str, str]) -> bytes:
    """A SentencePiece charsmap: a darts-clone double array over the keys' UTF-8 bytes, then the replacements.

    Each trie node gets a block of 256 units of its own: its children sit at ``block ^ byte``, its value at
    ``block ^ 0``, and the node's unit stores its label, a leaf flag and the XOR offset to its block.
    """
    trie: dict = {}
    replacements = bytearray()
    for key, value in rules.items():
        node = trie
        for byte in key.encode():
            node = node.setdefault(byte, {})
        node[None] = len(replacements)
        replacements += value.encode() + b"\0"
    units = [0] * 256

    def place(node: dict, position: int, label: int) -> None:
        block = len(units)
        units.extend([0] * 256)
        units[position] = label | ((None in node) << 8) | ((position ^ block) << 10)
        if None in node:
            units[block] = (1 << 31) | node[None]
        for byte, child in node.items():
            if byte is not None:
                place(child, block + byte, byte)

    place(trie, 0, 0)
    array = struct.pack(f"<{len(units)}I", *units)
    return len(array).to_bytes(4, "little") + array + bytes(replacements)


def train_wordpiece(folder: Path) -> None:
    """A cased BERT tokenizer, as tokenizers' BertWordPieceTokenizer(lowercase=False) makes it, in two layouts."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(TRAINING_TEXT, trainers.WordPieceTrainer(vocab_size=700, special_tokens=SPECIAL_BERT))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": 64}
    save_folder(folder, tokenizer, config)
    classic = folder.with_name(folder.name + "-vocab-txt")  # vocab.txt with its options in tokenizer_config.json
    classic.mkdir()
    tokenizer.model.save(str(classic))
    (classic / "tokenizer_config.json").write_text(json.dumps(config))

    # BERT's vocabulary under the names of the models that share it: DistilBERT returns no token types
    # when its class is named, ELECTRA's class is BERT's; with config.json's model_type alone, both are BERT's.
    for name, tokenizer_class in (("distilbert", "DistilBertTokenizer"), ("electra", "ElectraTokenizerFast")):
        save_folder(folder.with_name(name), tokenizer, config | {"tokenizer_class": tokenizer_class})
    model_type = folder.with_name("distilbert-model-type")
    model_type.mkdir()
    tokenizer.model.save(str(model_type))
    (model_type / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "model_max_length": 64}))
    (model_type / "config.json").write_text(json.dumps({"model_type": "distilbert"}))


def train_mpnet(folder: Path) -> None:
    """An MPNet tokenizer: BERT's steps, lowercased, with <s> A </s></s> B </s> and a <mask> that takes the space."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=700, special_tokens=SPECIAL_MPNET)
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    save_folder(folder, tokenizer, {"tokenizer_class": "MPNetTokenizer", "do_lower_case": True, "model_max_length": 64})
    classic = folder.with_name(folder.name + "-vocab-txt")  # vocab.txt, config.json's model_type alone
    classic.mkdir()
    tokenizer.model.save(str(classic))
    (classic / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    (classic / "config.json").write_text(json.dumps({"model_type": "mpnet"}))


def train_bpe(folder: Path) -> None:
    """RoBERTa tokenizers: byte-level BPE, <s> A </s></s> B </s>, a <mask> that takes the space before it."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=900, special_tokens=SPECIAL_ROBERTA, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    config = {"tokenizer_class": "RobertaTokenizer", "add_prefix_space": False, "model_max_length": 64}
    save_folder(folder, tokenizer, config)

    def add_prefix_space(spec: dict) -> None:
        spec["pre_tokenizer"]["add_prefix_space"] = True

    prefixed = folder.with_name(folder.name + "-prefix-space")
    save_folder(prefixed, tokenizer, config | {"add_prefix_space": True}, edit=add_prefix_space)

    classic = folder.with_name(folder.name + "-vocab-merges")  # vocab.json + merges.txt, as roberta-base ships
    classic.mkdir()
    tokenizer.model.save(str(classic))
    flags = {"lstrip": False, "rstrip": False, "normalized": False, "single_word": False, "special": True}
    added = {str(i): flags | {"content": token} for i, token in enumerate(SPECIAL_ROBERTA)}
    added["4"]["lstrip"] = True
    (classic / "tokenizer_config.json").write_text(json.dumps(config | {"added_tokens_decoder": added}))


def train_unigram(folder: Path) -> None:
    """ALBERT tokenizers: albert-base-v2's normalizers and pre-tokenizers around a SentencePiece Unigram."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace("``", '"'),
            normalizers.Replace("''", '"'),
            normalizers.NFKD(),
            normalizers.StripAccents(),
            normalizers.Lowercase(),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=500, special_tokens=SPECIAL_ALBERT, unk_token="<unk>")
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    config = {"tokenizer_class": "AlbertTokenizer", "model_max_length": 64}
    save_folder(folder, tokenizer, config)

    def byte_fallback(spec: dict) -> None:
        """Spell unknown characters as <0xNN> byte pieces, as Llama-style SentencePiece models do."""
        spec["model"]["byte_fallback"] = True
        spec["model"]["vocab"] += [[f"<0x{byte:02X}>", -20.0] for byte in range(256)]

    def precompiled(spec: dict) -> None:
        """albert-base-v2's last normalizer: SentencePiece's own rules, compiled."""
        charsmap = base64.b64encode(build_charsmap(CHARSMAP_RULES)).decode()
        spec["normalizer"]["normalizers"].append({"type": "Precompiled", "precompiled_charsmap": charsmap})

    def prepend_first(spec: dict) -> None:
        """A ▁ only before the start of the input, not before every word."""
        spec["pre_tokenizer"]["pretokenizers"][1]["prepend_scheme"] = "first"
        spec["decoder"]["prepend_scheme"] = "first"

    save_folder(folder.with_name(f"{folder.name}-precompiled"), tokenizer, config, edit=precompiled)
    # transformers 5 would rebuild ALBERT's own steps over these two: only its generic class runs them as they are.
    for name, edit in (("byte-fallback", byte_fallback), ("first", prepend_first)):
        save_folder(folder.with_name(f"{folder.name}-{name}"), tokenizer, GENERIC_ALBERT, edit=edit)


def train_sentencepiece_unigram(folder: Path) -> None:
    """tokenizers' SentencePieceUnigramTokenizer (Nmt, NFKC, space runs -> Metaspace -> Unigram) with XLM-R's template.

    Read as it is by transformers' generic class; with XLMRobertaTokenizer named, transformers 5 keeps its
    vocabulary and builds XLM-R's steps instead (no Nmt, no NFKC), and so must minibert.
    """
    trained = SentencePieceUnigramTokenizer()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trained.train_from_iterator(
        TRAINING_TEXT, vocab_size=500, special_tokens=special, unk_token="<unk>", show_progress=False
    )
    tokenizer = trained._tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    names = ["bos_token", "pad_token", "eos_token", "unk_token", "mask_token"]
    generic = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64} | dict(
        zip(names, special, strict=True)
    )
    save_folder(folder, tokenizer, generic)
    save_folder(
        folder.with_name("xlm-roberta"), tokenizer, {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 64}
    )


def train_sentencepiece_models(root: Path) -> None:
    """SentencePiece .model files alone, as ALBERT (spiece.model), XLM-R and CamemBERT (sentencepiece.bpe.model) ship.

    ALBERT's pieces start <pad> <unk> [CLS] [SEP] [MASK]; fairseq's models start <unk> <s> </s>, which
    transformers' converters rearrange. The default normalisation, nmt_nfkc, comes compiled in the file.
    """
    albert = sentencepiece_model(pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols="[CLS],[SEP],[MASK]")
    fairseq = sentencepiece_model()
    layouts = [
        ("albert-spiece", "spiece.model", albert, {"tokenizer_class": "AlbertTokenizer"}),
        ("xlm-roberta-spm", "sentencepiece.bpe.model", fairseq, {"tokenizer_class": "XLMRobertaTokenizer"}),
        ("camembert-spm", "sentencepiece.bpe.model", fairseq, {"tokenizer_class": "CamembertTokenizer"}),
        ("xlm-roberta-model-type", "sentencepiece.bpe.model", fairseq, {}),
    ]
    for name, file_name, model, config in layouts:
        folder = root / name
        folder.mkdir()
        (folder / file_name).write_bytes(model)
        (folder / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 64}))
    (root / "xlm-roberta-model-type" / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))


def sentencepiece_model(vocab_size: int = 400, **options) -> bytes:
    """A .model trained on the test corpus with sentencepiece's trainer (its ``options``, e.g. ``unk_id=1``)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_TEXT),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def make_tokenizer_folders(root: Path) -> dict[str, Path]:
    """Tokenizer folders by name, each in the layout a Hub repository would have."""
    train_wordpiece(root / "wordpiece")
    train_bpe(root / "bpe")
    train_unigram(root / "unigram")
    train_mpnet(root / "mpnet")
    train_sentencepiece_unigram(root / "sentencepiece-unigram")
    train_sentencepiece_models(root)
    from minibert.cli import default_checkpoint

    return {"minilm": default_checkpoint()} | {path.name: path for path in root.iterdir()}
