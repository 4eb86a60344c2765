"""Models, word -> tokens: WordPiece, BPE and Unigram split one pre-tokenized word into vocabulary entries.

They read from the simplest up, each adding one thing to the one before:

- WordPiece (BERT) needs only a vocabulary: it takes the longest entry that starts the rest of the word.
- BPE (RoBERTa, GPT-2) adds an ordered list of merges: it builds the word up from characters, joining
  the adjacent pair whose merge comes first in the list.
- Unigram (ALBERT, SentencePiece) adds a score per piece: of all the ways to cut the word into pieces,
  it takes the one whose scores sum highest.

Each has a ``vocab`` (token -> id), its inverse ``id_to_token`` and an ``unk_token`` (None where it has
none), all the tokenizer asks of it besides the split. ``model_from_json`` builds one from the ``model``
entry of ``tokenizer.json``.
"""

from __future__ import annotations

import itertools
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.files import model_type


class WordPiece:
    """Greedy longest-match-first: take the longest vocabulary entry at the start, continue with ``##`` entries.

    A word with a piece no entry covers, or longer than ``max_input_chars_per_word``, is one unknown token.
    """

    def __init__(
        self, vocab: dict[str, int], unk_token: str, prefix: str = "##", max_input_chars_per_word: int = 100
    ) -> None:
        self.vocab = vocab
        self.id_to_token = {id: token for token, id in vocab.items()}
        self.unk_token = unk_token
        self.prefix = prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        # The ## entries without their prefix, so that looking one up builds no string.
        self.continuations = {token[len(prefix) :] for token in vocab if token.startswith(prefix)}
        self.longest = max(map(len, vocab), default=0)  # no longer slice can match

    def __call__(self, word: str) -> list[str]:
        """The word's entries; with ``un``, ``##aff`` and ``##able`` in the vocabulary:

        ``"unaffable"`` -> ``["un", "##aff", "##able"]``; ``"unaffablex"`` -> ``["[UNK]"]`` (the whole word).
        """
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        tokens = []
        start = 0
        while start < len(word):
            entries = self.vocab if start == 0 else self.continuations
            for end in range(min(len(word), start + self.longest), start, -1):
                if word[start:end] in entries:
                    break
            else:
                return [self.unk_token]
            tokens.append(word[start:end] if start == 0 else self.prefix + word[start:end])
            start = end
        return tokens


class BPE:
    """Byte-pair encoding: start from characters, and keep merging the adjacent pair with the lowest merge rank.

    Where several pairs share that rank the leftmost merges first, as in tokenizers. Characters outside the
    vocabulary become ``unk_token`` (consecutive ones fused into one if ``fuse_unk``), or vanish without one.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        unk_token: str | None = None,
        fuse_unk: bool = False,
        ignore_merges: bool = False,
    ) -> None:
        self.vocab = vocab
        self.id_to_token = {id: token for token, id in vocab.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.unk_token = unk_token
        self.fuse_unk = fuse_unk
        self.ignore_merges = ignore_merges  # a word found whole in the vocabulary skips the merges

    def __call__(self, word: str) -> list[str]:
        """The word's entries; with the merges ``l o``, ``lo w``, ``e r`` (ranks 0, 1, 2):

        ``"lower"``: ``l o w e r`` -> ``lo w e r`` -> ``low e r`` -> ``low er``, so ``["low", "er"]``.
        """
        if self.ignore_merges and word in self.vocab:
            return [word]
        parts = [char for char in word if char in self.vocab or self.unk_token is not None]
        no_merge = len(self.ranks)
        ranks = [self.ranks.get(pair, no_merge) for pair in itertools.pairwise(parts)]  # ranks[i]: parts i, i + 1
        while ranks and (rank := min(ranks)) != no_merge:
            i = ranks.index(rank)  # the leftmost
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
            del ranks[i]  # only the merged part's pairs with its neighbours change
            if i > 0:
                ranks[i - 1] = self.ranks.get((parts[i - 1], parts[i]), no_merge)
            if i < len(ranks):
                ranks[i] = self.ranks.get((parts[i], parts[i + 1]), no_merge)
        tokens: list[str] = []
        for part in parts:
            if part in self.vocab:
                tokens.append(part)
            elif not (self.fuse_unk and tokens and tokens[-1] == self.unk_token):
                tokens.append(self.unk_token)
        return tokens


class Unigram:
    """SentencePiece's unigram model: the segmentation whose pieces' log-probabilities sum highest (Viterbi).

    A character no piece covers becomes ``unk`` (scored below every piece); neighbouring unknowns are fused.
    With ``byte_fallback`` an unknown span is spelt as ``<0xNN>`` byte pieces instead, when they all exist.
    """

    unk_penalty = 10.0  # how far below the rarest piece an unknown character scores

    def __init__(self, pieces: list[tuple[str, float]], unk_id: int | None, byte_fallback: bool = False) -> None:
        self.pieces = {piece: (id, score) for id, (piece, score) in enumerate(pieces)}
        self.vocab = {piece: id for piece, (id, _) in self.pieces.items()}
        # A piece listed twice keeps its last id in vocab, as in tokenizers, but each id still has its piece.
        self.id_to_token = {id: piece for id, (piece, _) in enumerate(pieces)}
        # Every beginning of a piece: the search for pieces at a position stops where none begins (a trie's job).
        self.prefixes = {piece[:end] for piece in self.pieces for end in range(1, len(piece) + 1)}
        self.unk_id = unk_id
        self.unk_token = None if unk_id is None else pieces[unk_id][0]
        self.unk_score = min(score for _, score in pieces) - self.unk_penalty
        self.byte_fallback = byte_fallback

    def __call__(self, word: str) -> list[str]:
        """The word's best segmentation; with ``▁he`` -3, ``llo`` -3, ``▁hello`` -5 and each character -9:

        ``"▁hello"`` -> ``["▁hello"]``, since -5 beats ``▁he`` + ``llo`` (-6) and every cut into characters.
        """
        # best[end] = (score of the best segmentation of word[:end], start of its last piece, that piece's id)
        best: list[tuple[float, int, int] | None] = [None] * (len(word) + 1)
        best[0] = (0.0, 0, 0)
        pieces, prefixes = self.pieces, self.prefixes  # locals: this loop is the hot path
        for start in range(len(word)):
            score_so_far = best[start][0]
            has_single_character_piece = False
            end = start + 1
            while end <= len(word) and word[start:end] in prefixes:  # pieces from shortest to longest
                if (entry := pieces.get(word[start:end])) is not None:
                    id, score = entry
                    if best[end] is None or score + score_so_far > best[end][0]:
                        best[end] = (score + score_so_far, start, id)
                    has_single_character_piece |= end == start + 1
                end += 1
            if not has_single_character_piece:
                if self.unk_id is None:
                    raise TokenizerError(f"Unigram: no piece covers {word[start]!r} and the model has no unk_id")
                if best[start + 1] is None or self.unk_score + score_so_far > best[start + 1][0]:
                    best[start + 1] = (self.unk_score + score_so_far, start, self.unk_id)
        tokens: list[str] = []
        end = len(word)
        unknown_run = ""  # consecutive unknown pieces, fused into one token
        while end > 0:
            _, start, id = best[end]
            if id == self.unk_id:
                unknown_run = word[start:end] + unknown_run
            else:
                if unknown_run:
                    tokens.append(unknown_run)
                    unknown_run = ""
                tokens.append(word[start:end])
            end = start
        if unknown_run:
            tokens.append(unknown_run)
        tokens.reverse()
        return [byte for token in tokens for byte in self.spell_unknown(token)] if self.byte_fallback else tokens

    def spell_unknown(self, token: str) -> list[str]:
        """A token as it is if it is a piece; else its ``<0xNN>`` byte pieces, if the vocabulary has them all.

        ``"é"`` -> ``["<0xC3>", "<0xA9>"]``, its two UTF-8 bytes.
        """
        if token in self.vocab:
            return [token]
        pieces = [f"<0x{byte:02X}>" for byte in token.encode("utf-8")]
        return pieces if all(piece in self.vocab for piece in pieces) else [token]


Model = WordPiece | BPE | Unigram


def model_from_json(spec: dict[str, Any]) -> Model:
    """The model of a ``tokenizer.json``: its vocabulary and how it splits a word."""
    kind = model_type(spec)
    if kind == "WordPiece":
        return WordPiece(
            spec["vocab"],
            spec["unk_token"],
            spec.get("continuing_subword_prefix", "##"),
            spec.get("max_input_chars_per_word", 100),
        )
    if kind == "BPE":
        unsupported = {key: spec.get(key) for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix")}
        if any(unsupported.values()):
            raise TokenizerError(f"tokenizer.json: BPE options {unsupported} are not supported")
        merges = [tuple(merge.split(" ", 1)) if isinstance(merge, str) else tuple(merge) for merge in spec["merges"]]
        return BPE(
            spec["vocab"], merges, spec.get("unk_token"), spec.get("fuse_unk", False), spec.get("ignore_merges", False)
        )
    if kind == "Unigram":
        pieces = [(piece, float(score)) for piece, score in spec["vocab"]]
        return Unigram(pieces, spec.get("unk_id"), spec.get("byte_fallback", False))
    raise TokenizerError(f"tokenizer.json: model {kind!r} is not supported (supported: WordPiece, BPE, Unigram)")
