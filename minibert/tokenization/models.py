"""Models, word -> tokens: WordPiece, BPE and Unigram split one pre-tokenized word into vocabulary entries.

They read from the simplest up, each adding one thing to the one before:

- WordPiece (BERT) needs only a vocabulary: it takes the longest entry that starts the rest of the word.
- BPE (RoBERTa, GPT-2) adds an ordered list of merges: it builds the word up from characters, joining
  the adjacent pair whose merge comes first in the list.
- Unigram (ALBERT, SentencePiece) adds a score per piece: of all the ways to cut the word into pieces,
  it takes the one whose scores sum highest.

Each has a ``vocab`` (token -> id), its inverse ``id_to_token`` and an ``unk_token`` (None where it has
none), all the tokenizer asks of it besides the split, and ``split_with_offsets``: the same tokens, each
with the span of the word it covers, for character offsets. ``model_from_json`` builds one from the
``model`` entry of ``tokenizer.json``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.files import model_type, option

MAX_ID = 2**32 - 1  # ids are tokenizers' u32
# Unigram keeps every beginning of every piece: their characters add up to about sum(len(piece) ** 2) / 2.
MAX_PREFIX_CHARACTERS = 2**27
TokenSpan = tuple[str, int, int]  # a token and the characters [start, end) of the word it covers


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

    def split_with_offsets(self, word: str) -> list[TokenSpan]:
        """``"unaffable"`` -> ``[("un", 0, 2), ("##aff", 2, 5), ("##able", 5, 9)]``; an unknown word is one span."""
        spans, start = [], 0
        for i, token in enumerate(tokens := self(word)):
            end = start + len(token) - (len(self.prefix) if i else 0)
            spans.append((token, start, end))
            start = end
        return spans if start == len(word) else [(token, 0, len(word)) for token in tokens]


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
        tokens: list[str] = []
        for part in self.merge(word):
            if part in self.vocab:
                tokens.append(part)
            elif not (self.fuse_unk and tokens and tokens[-1] == self.unk_token):
                tokens.append(self.unk_token)
        return tokens

    def split_with_offsets(self, word: str) -> list[TokenSpan]:
        """The tokens with their spans: a fused unknown token covers its run; dropped characters none."""
        if self.ignore_merges and word in self.vocab:
            return [(word, 0, len(word))]
        kept = [i for i, char in enumerate(word) if char in self.vocab or self.unk_token is not None]
        spans: list[TokenSpan] = []
        done = 0  # the kept characters the parts so far cover
        for part in self.merge(word):
            start, end = kept[done], kept[done + len(part) - 1] + 1
            done += len(part)
            if part in self.vocab:
                spans.append((part, start, end))
            elif self.fuse_unk and spans and spans[-1][0] == self.unk_token:
                spans[-1] = (self.unk_token, spans[-1][1], end)
            else:
                spans.append((self.unk_token, start, end))
        return spans

    def merge(self, word: str) -> list[str]:
        """The word's characters (those kept: in the vocabulary, or any with an unknown token) merged.

        As tokenizers' ``Word::merge_all`` (models/bpe/word.rs) does it, in O(n log n) for n characters:
        the parts form a linked list (``after`` / ``before``), and a heap holds each candidate merge as
        (rank, position, result), lowest rank first, then leftmost. A popped candidate whose pair has
        changed since it was pushed (a neighbour merged first) is skipped; each merge pushes the new
        pairs on both sides of the merged part.
        """
        parts: list[str | None] = [char for char in word if char in self.vocab or self.unk_token is not None]
        end = len(parts)
        after = list(range(1, end + 1))  # after[i]: the part following part i (end: none)
        before = list(range(-1, end - 1))  # before[i]: the part preceding part i (-1: none)
        ranks = self.ranks
        pairs = enumerate(itertools.pairwise(parts))
        heap = [(rank, i, a + b) for i, (a, b) in pairs if (rank := ranks.get((a, b))) is not None]
        heapq.heapify(heap)
        while heap:
            _, i, merged = heapq.heappop(heap)
            left, j = parts[i], after[i]
            if left is None or j == end:  # merged into its left neighbour, or the last part
                continue
            right = parts[j]
            if left + right != merged or (left, right) not in ranks:  # the pair changed since it was pushed
                continue
            parts[i], parts[j] = merged, None
            k = after[i] = after[j]
            if k < end:
                before[k] = i
                if (rank := ranks.get((merged, parts[k]))) is not None:
                    heapq.heappush(heap, (rank, i, merged + parts[k]))
            if (h := before[i]) >= 0 and (rank := ranks.get((parts[h], merged))) is not None:
                heapq.heappush(heap, (rank, h, parts[h] + merged))
        return list(filter(None, parts))


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
        tokens = self.segment(word)
        return [byte for token in tokens for byte in self.spell_unknown(token)] if self.byte_fallback else tokens

    def split_with_offsets(self, word: str) -> list[TokenSpan]:
        """The pieces with their spans; the byte pieces of an unknown one each cover all of it, as in tokenizers."""
        spans, start = [], 0
        for token in self.segment(word):
            end = start + len(token)
            spans += [(piece, start, end) for piece in (self.spell_unknown(token) if self.byte_fallback else [token])]
            start = end
        return spans

    def segment(self, word: str) -> list[str]:
        """The Viterbi search: the best cut of the word, neighbouring unknown pieces fused."""
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
        return tokens

    def spell_unknown(self, token: str) -> list[str]:
        """A token as it is if it is a piece; else its ``<0xNN>`` byte pieces, if the vocabulary has them all.

        ``"é"`` -> ``["<0xC3>", "<0xA9>"]``, its two UTF-8 bytes.
        """
        if token in self.vocab:
            return [token]
        pieces = [f"<0x{byte:02X}>" for byte in token.encode("utf-8")]
        return pieces if all(piece in self.vocab for piece in pieces) else [token]


Model = WordPiece | BPE | Unigram


def model_from_json(spec: dict[str, Any], where: str = "tokenizer.json", scores_from_text: bool = True) -> Model:
    """The model of a ``tokenizer.json`` (read from ``where``): its vocabulary and how it splits a word.

    The entries are checked first, as tokenizers checks them when it builds a model (and a little
    more): a vocabulary maps strings to distinct ids in [0, 2**32); WordPiece's unknown token is in it;
    every BPE merge joins two of its entries into a third; Unigram's scores are finite and its
    ``unk_id`` one of its pieces. A TokenizerError names the file and the entry.

    ``scores_from_text``: Unigram's scores were written in tokenizer.json, so they are taken as tokenizers
    reads them (``serde_json_float``); False for a SentencePiece model's float32 scores, which transformers
    hands to tokenizers as they are.
    """
    kind = model_type(spec)
    if kind == "WordPiece":
        vocab = check_vocab(spec.get("vocab"), where)
        unk_token = spec.get("unk_token")
        if not isinstance(unk_token, str) or unk_token not in vocab:
            raise TokenizerError(f"{where}: WordPiece's unk_token {unk_token!r} is not in the vocabulary")
        prefix = option(spec, "continuing_subword_prefix", str, "##")
        longest = option(spec, "max_input_chars_per_word", int, 100)
        if longest < 1:
            raise TokenizerError(f"{where}: max_input_chars_per_word must be positive, got {longest}")
        return WordPiece(vocab, unk_token, prefix, longest)
    if kind == "BPE":
        kinds = {
            "dropout": int | float,
            "continuing_subword_prefix": str,
            "end_of_word_suffix": str,
            "byte_fallback": bool,
        }
        unsupported = {key: option(spec, key, kind) for key, kind in kinds.items()}
        if any(unsupported.values()):
            raise TokenizerError(f"{where}: BPE options {unsupported} are not supported")
        vocab = check_vocab(spec.get("vocab"), where)
        merges = check_merges(spec.get("merges"), vocab, where)
        unk_token = option(spec, "unk_token", str, None)
        fuse_unk = option(spec, "fuse_unk", bool, False)
        return BPE(vocab, merges, unk_token, fuse_unk, option(spec, "ignore_merges", bool, False))
    if kind == "Unigram":
        pieces = check_pieces(spec.get("vocab"), where)
        unk_id = option(spec, "unk_id", int, None)
        if unk_id is not None and not 0 <= unk_id < len(pieces):
            raise TokenizerError(f"{where}: Unigram's unk_id {unk_id} is not one of its {len(pieces)} pieces")
        if scores_from_text:
            pieces = [(piece, serde_json_float(score)) for piece, score in pieces]
        return Unigram(pieces, unk_id, option(spec, "byte_fallback", bool, False))
    raise TokenizerError(f"{where}: model {kind!r} is not supported (supported: WordPiece, BPE, Unigram)")


def serde_json_float(score: float) -> float:
    """The double tokenizers holds for ``score`` written in shortest form, as Python and tokenizers write it.

    serde_json (built without its float_roundtrip feature) reads a decimal's digits as an integer, then
    multiplies or divides it by a power of ten (``f64_from_parts`` in serde_json's de.rs): two roundings,
    so a 17-digit score can land one ulp off the nearest double, and two Viterbi paths whose sums were one
    ulp apart can swap. ``-2.3784665294418526`` -> ``-2.378466529441853``.
    """
    mantissa, _, exponent = repr(abs(score)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    value, power = float(int(whole + fraction)), int(exponent or 0) - len(fraction)
    while power < -308:  # serde_json's table of powers stops at 1e308
        value, power = value / 1e308, power + 308
    value = value * float(f"1e{power}") if power >= 0 else value / float(f"1e{-power}")
    return math.copysign(value, score)


def check_vocab(vocab: Any, where: str) -> dict[str, int]:
    """A token -> id mapping whose ids are distinct integers in [0, 2**32): ``{"a": 0, "b": 0}`` is refused."""
    if not isinstance(vocab, dict):
        raise TokenizerError(f"{where}: the vocabulary must map tokens to ids, got {type(vocab).__name__}")
    owners: dict[int, str] = {}
    for token, id in vocab.items():
        if not isinstance(id, int) or isinstance(id, bool) or not 0 <= id <= MAX_ID:
            raise TokenizerError(f"{where}: token {token!r} has id {id!r}; ids are integers in [0, 2**32)")
        other = owners.setdefault(id, token)
        if other != token:
            raise TokenizerError(f"{where}: tokens {other!r} and {token!r} both have id {id}; each id names one token")
    return vocab


def check_merges(merges: Any, vocab: dict[str, int], where: str) -> list[tuple[str, str]]:
    """BPE's merges as pairs, each joining two vocabulary entries into a third, as tokenizers requires.

    A merge is ``"a b"`` (tokenizers' older files and merges.txt) or ``["a", "b"]``.
    """
    if not isinstance(merges, list):
        raise TokenizerError(f"{where}: BPE's merges must be a list, got {type(merges).__name__}")
    pairs = []
    for number, merge in enumerate(merges):
        pair = tuple(merge.split(" ", 1)) if isinstance(merge, str) else merge
        if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise TokenizerError(f"{where}: merge {number} ({merge!r}) is not a pair of tokens")
        a, b = pair
        absent = next((token for token in (a, b, a + b) if token not in vocab), None)
        if absent is not None:
            raise TokenizerError(
                f"{where}: merge {number} ({a!r} + {b!r}) needs {absent!r}, which is not in the vocabulary"
            )
        pairs.append((a, b))
    return pairs


def check_pieces(vocab: Any, where: str) -> list[tuple[str, float]]:
    """Unigram's ``[[piece, score], ...]`` with finite scores, and not so long that their prefixes fill memory."""
    if not isinstance(vocab, list) or not vocab:
        raise TokenizerError(f"{where}: Unigram's vocabulary must be a non-empty list of [piece, score]")
    pieces = []
    prefix_characters = 0
    for id, entry in enumerate(vocab):
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            raise TokenizerError(f"{where}: Unigram piece {id} ({entry!r}) is not a [piece, score] pair")
        piece, score = entry
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise TokenizerError(f"{where}: Unigram piece {id} ({piece!r}) has score {score!r}, not a finite number")
        prefix_characters += len(piece) * (len(piece) + 1) // 2
        pieces.append((piece, float(score)))
    if prefix_characters > MAX_PREFIX_CHARACTERS:
        raise TokenizerError(
            f"{where}: Unigram pieces too long to index ({prefix_characters:,} characters of prefixes; "
            f"real vocabularies need a few million)"
        )
    return pieces
