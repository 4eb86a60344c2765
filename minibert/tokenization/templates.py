"""Templates, ids -> ids: the special tokens around one sequence or a pair, and each part's token type.

tokenizers calls them post-processors (TemplateProcessing, BertProcessing, RobertaProcessing); here each
is a ``Template``, built from the ``post_processor`` of ``tokenizer.json`` by ``template_from_json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.files import entry_type

TemplateItem = tuple[str | int, int]  # ("A" | "B" | a special token's id, token type id)


@dataclass(frozen=True)
class Template:
    """Where special tokens go around one sequence ``A`` or a pair ``A``, ``B``, and each part's token type.

    Items are ``("A" | "B" | special token id, token type id)``: tokenizers' post-processor. Without special
    tokens, the sequences keep the token types the template gives them.
    """

    single: tuple[TemplateItem, ...] = (("A", 0),)
    pair: tuple[TemplateItem, ...] = (("A", 0), ("B", 1))

    @classmethod
    def bert(cls, cls_id: int, sep_id: int) -> Template:
        """``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``, with ``B [SEP]`` of type 1."""
        single = ((cls_id, 0), ("A", 0), (sep_id, 0))
        return cls(single, (*single, ("B", 1), (sep_id, 1)))

    @classmethod
    def roberta(cls, cls_id: int, sep_id: int) -> Template:
        """``<s> A </s>`` and ``<s> A </s></s> B </s>``, all of type 0."""
        single = ((cls_id, 0), ("A", 0), (sep_id, 0))
        return cls(single, (*single, (sep_id, 0), ("B", 0), (sep_id, 0)))

    def apply(
        self, first: list[int], second: list[int] | None, add_special_tokens: bool
    ) -> tuple[list[int], list[int]]:
        """The ids of one or two sequences with special tokens added, and their token type ids.

        With ``Template.bert(101, 102)``: ``[7, 8], [9]`` -> ``[101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1]``.
        """
        ids: list[int] = []
        types: list[int] = []
        for item, type_id in self.single if second is None else self.pair:
            if not add_special_tokens and item not in ("A", "B"):
                continue
            part = first if item == "A" else second if item == "B" else [item]
            ids += part
            types += [type_id] * len(part)
        return ids, types

    def num_special_tokens(self, pair: bool) -> int:
        return sum(item not in ("A", "B") for item, _ in (self.pair if pair else self.single))


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
        return (Template.roberta if kind == "RobertaProcessing" else Template.bert)(pairs[0][1], pairs[1][1])
    raise TokenizerError(
        f"tokenizer.json: post-processor {kind!r} is not supported "
        "(supported: TemplateProcessing, RobertaProcessing, BertProcessing)"
    )


def is_id(value: Any) -> bool:
    """A token id, or a token type id: a non-negative integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
