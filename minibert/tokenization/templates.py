"""Templates, ids -> ids: the special tokens around one sequence or a pair, and each part's token type.

tokenizers calls them post-processors (TemplateProcessing, BertProcessing, RobertaProcessing); here each
is a ``Template``, built from the ``post_processor`` of ``tokenizer.json`` by ``template_from_json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.characters import WHITESPACE
from minibert.tokenization.files import entry_type

TemplateItem = tuple[str | int, int]  # ("A" | "B" | a special token's id, token type id)


@dataclass(frozen=True)
class Template:
    """Where special tokens go around one sequence ``A`` or a pair ``A``, ``B``, and each part's token type.

    Items are ``("A" | "B" | special token id, token type id)``: tokenizers' post-processor. Without special
    tokens, the sequences keep the token types the template gives them. ``trim_offsets`` (RobertaProcessing's)
    takes the spaces at either end of a token out of its character offsets.
    """

    single: tuple[TemplateItem, ...] = (("A", 0),)
    pair: tuple[TemplateItem, ...] = (("A", 0), ("B", 1))
    trim_offsets: bool = False
    add_prefix_space: bool = False  # whether a sequence's first token keeps the one space the pre-tokenizer added

    @classmethod
    def bert(cls, cls_id: int, sep_id: int) -> Template:
        """``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``, with ``B [SEP]`` of type 1."""
        single = ((cls_id, 0), ("A", 0), (sep_id, 0))
        return cls(single, (*single, ("B", 1), (sep_id, 1)))

    @classmethod
    def roberta(cls, cls_id: int, sep_id: int, trim_offsets: bool = True, add_prefix_space: bool = True) -> Template:
        """``<s> A </s>`` and ``<s> A </s></s> B </s>``, all of type 0."""
        single = ((cls_id, 0), ("A", 0), (sep_id, 0))
        return cls(single, (*single, (sep_id, 0), ("B", 0), (sep_id, 0)), trim_offsets, add_prefix_space)

    def apply(
        self, first: list[int], second: list[int] | None, add_special_tokens: bool
    ) -> tuple[list[int], list[int]]:
        """The ids of one or two sequences with special tokens added, and their token type ids.

        With ``Template.bert(101, 102)``: ``[7, 8], [9]`` -> ``[101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1]``.
        """
        ids: list[int] = []
        types: list[int] = []
        for item, type_id in self.items(second is not None, add_special_tokens):
            part = first if item == "A" else second if item == "B" else [item]
            ids += part
            types += [type_id] * len(part)
        return ids, types

    def items(self, pair: bool, add_special_tokens: bool) -> Iterator[TemplateItem]:
        """The items for one sequence or a pair, the special tokens left out without ``add_special_tokens``."""
        for item, type_id in self.pair if pair else self.single:
            if add_special_tokens or item in ("A", "B"):
                yield item, type_id

    def num_special_tokens(self, pair: bool) -> int:
        return sum(item not in ("A", "B") for item, _ in (self.pair if pair else self.single))

    def trim(self, token: str, offsets: tuple[int, int], first: bool) -> tuple[int, int]:
        """A token's offsets without its leading and trailing spaces, as tokenizers' ``process_offsets``.

        ``"Ġworld"`` at ``(5, 11)`` -> ``(6, 11)``; a sequence's first token keeps a single leading space
        where the pre-tokenizer added it (``add_prefix_space``).
        """
        start, end = offsets
        leading = len(token) - len(token.lstrip(SPACES))
        trailing = len(token) - len(token.rstrip(SPACES))
        if leading and not (leading == 1 and self.add_prefix_space and (first or start == 0)):
            start = min(start + leading, end)
        if trailing and end >= trailing:
            end = max(end - trailing, start)
        return start, end


SPACES = WHITESPACE + "Ġ"  # a space, or byte-level BPE's character for one


def template_from_json(spec: dict[str, Any] | None) -> Template:
    """tokenizers' TemplateProcessing, RobertaProcessing or BertProcessing as a Template."""
    if spec is None:
        return Template()
    kind = entry_type(spec, "post-processor")
    if kind == "TemplateProcessing":
        ids = {name: token["ids"] for name, token in spec["special_tokens"].items()}
        if not all(isinstance(i, list) and all(is_id(id) for id in i) for i in ids.values()):
            raise TokenizerError(f"tokenizer.json: TemplateProcessing's special tokens need lists of ids, got {ids!r}")

        def items(template: list[dict[str, Any]]) -> tuple[TemplateItem, ...]:
            result: list[TemplateItem] = []
            for piece in template:
                if "Sequence" in piece:
                    result.append((piece["Sequence"]["id"], piece["Sequence"]["type_id"]))
                else:
                    result += [(id, piece["SpecialToken"]["type_id"]) for id in ids[piece["SpecialToken"]["id"]]]
            if not all((item in ("A", "B") or is_id(item)) and is_id(type_id) for item, type_id in result):
                raise TokenizerError(f"tokenizer.json: TemplateProcessing's template {template!r} is malformed")
            return tuple(result)

        return Template(items(spec["single"]), items(spec["pair"]))
    if kind in ("RobertaProcessing", "BertProcessing"):
        pairs = [spec.get(name) for name in ("cls", "sep")]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and is_id(p[1]) for p in pairs):
            raise TokenizerError(f"tokenizer.json: {kind}'s cls and sep must be [token, id] pairs, got {pairs!r}")
        if kind == "BertProcessing":
            return Template.bert(pairs[0][1], pairs[1][1])
        trim_offsets, add_prefix_space = spec.get("trim_offsets", True), spec.get("add_prefix_space", True)
        if not isinstance(trim_offsets, bool) or not isinstance(add_prefix_space, bool):
            raise TokenizerError(f"tokenizer.json: {kind}'s trim_offsets and add_prefix_space must be true or false")
        return Template.roberta(pairs[0][1], pairs[1][1], trim_offsets, add_prefix_space)
    raise TokenizerError(
        f"tokenizer.json: post-processor {kind!r} is not supported "
        "(supported: TemplateProcessing, RobertaProcessing, BertProcessing)"
    )


def is_id(value: Any) -> bool:
    """A token id, or a token type id: a non-negative integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
