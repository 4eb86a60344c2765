"""Text in, answers out: fill-mask, sentence embeddings, sequence classification.

Each task is a plain function of a model and a tokenizer, so the steps stay visible:
tokenise, run the model, turn logits into what a person reads. They share one way of running
many texts fast (``run_by_length``): texts of similar token counts go in the same batch, and the
model runs on the real tokens only, so little is spent on padding. The answers are those of one
plain padded batch, in the order the texts came.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from minibert.errors import MinibertError
from minibert.pretrained import PreTrainedModel
from minibert.tokenization import PreTrainedTokenizer

# Texts are tokenised this many batches at a time, so memory stays bounded on long inputs.
CHUNK_BATCHES = 64


@dataclass(frozen=True)
class Prediction:
    """One candidate: a token for a masked position, or a label for a text."""

    label: str
    score: float
    id: int


# -- arguments ----------------------------------------------------------------------------


def check_texts(texts: str | Sequence[str], name: str = "texts") -> tuple[list[str], bool]:
    """The texts as a list, and whether one string was given (it counts as one text, not as characters)."""
    if isinstance(texts, str):
        return [texts], True
    if hasattr(texts, "tolist"):  # a numpy array of strings, as sentence-transformers accepts
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty: give at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(text).__name__}: {text!r:.60}")
    return list(texts), False


def check_positive(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_top_k(top_k: int, limit: int, what: str) -> None:
    """``top_k`` must pick between 1 and ``limit`` candidates (there are ``limit`` ``what``)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= limit:
        raise ValueError(f"top_k must be an integer from 1 to {limit} (the number of {what}), got {top_k!r}")


def warn_if_untrained(model: PreTrainedModel, task: str, unused: tuple[str, ...] = ()) -> None:
    """Warn when weights the task needs were initialised at random, not loaded (a base checkpoint in a head).

    ``unused``: key prefixes the task does not read (the pooler, for sentence embeddings).
    """
    report = model.load_report
    initialised = [] if report is None else [*report.missing, *report.mismatched]
    initialised = [key for key in initialised if not key.startswith(unused)]
    if initialised:
        warnings.warn(
            f"{report.source}: {', '.join(initialised)}: not in the checkpoint (or of another shape there), so "
            f"initialised at random: the {task} outputs mean nothing until the model is trained for it",
            stacklevel=3,
        )


def max_length_of(model: PreTrainedModel, tokenizer: PreTrainedTokenizer) -> int:
    """The tokenizer's limit, within the model's positions (sentence-transformers' rule, less RoBERTa's offset)."""
    config = model.config
    offset = config.pad_token_id + 1 if getattr(model.base_model, "padded_positions", False) else 0
    return min(tokenizer.model_max_length, config.max_position_embeddings - offset)


# -- the fast path --------------------------------------------------------------------------


@contextmanager
def fast_path(model: PreTrainedModel) -> Iterator[None]:
    """Run ``model`` on real tokens only (``set_unpadding``) where it allows it, and put the setting back after."""
    previous = getattr(model.base_model, "unpad", False)
    with suppress(ValueError):  # refused by heads that read padding (ELECTRA's "last" and "mean" summaries)
        model.set_unpadding(True)
    try:
        with torch.inference_mode():
            yield
    finally:
        model.set_unpadding(previous)


def run_by_length(
    items: Sequence[Any],
    tokenize: Callable[[list[Any]], dict[str, list[list[int]]]],
    run: Callable[[dict[str, Tensor]], Sequence[Any]],
    *,
    model: PreTrainedModel,
    pad_token_id: int | None,
    batch_size: int,
    show_progress_bar: bool = False,
) -> list[Any]:
    """``run`` on padded batches of similar length, on the fast path; one result per item, in the items' order.

    The items are tokenised a chunk at a time (``tokenize`` returns unpadded id lists), sorted by
    token count, longest first, and cut into batches: lengths [3, 9, 5, 9] in batches of 2 run as
    items [1, 3] then [2, 0]. ``run`` gets each batch as the inputs ``model`` takes, padded on the
    right and on the model's device, and returns one result per row. Right padding whatever the
    tokenizer says: with absolute positions, left padding would shift every token's position and
    make a text's result depend on its batch.
    """
    if pad_token_id is None and batch_size > 1:
        raise MinibertError("batches need a pad token, and the tokenizer has none: pass batch_size=1")
    names = set(inspect.signature(model.forward).parameters)
    results: list[Any] = [None] * len(items)
    chunk = batch_size * CHUNK_BATCHES
    progress = tqdm(total=math.ceil(len(items) / batch_size), desc="Batches", disable=not show_progress_bar)
    with fast_path(model), progress as bar:
        for start in range(0, len(items), chunk):
            encodings = tokenize(list(items[start : start + chunk]))
            lengths = [len(ids) for ids in encodings["input_ids"]]
            order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                inputs = pad_rows(encodings, rows, pad_token_id or 0, names, model.device)
                for row, result in zip(rows, run(inputs), strict=True):
                    results[start + row] = result
                bar.update()
    return results


def pad_rows(
    encodings: dict[str, list[list[int]]], rows: list[int], pad_token_id: int, names: set[str], device: torch.device
) -> dict[str, Tensor]:
    """The ``rows`` of ``encodings`` as (B, T) tensors padded on the right, with their attention mask.

    Only the inputs in ``names`` are kept (DistilBERT takes no token types).
    """
    length = max(len(encodings["input_ids"][row]) for row in rows)
    pads = {"input_ids": pad_token_id, "token_type_ids": 0}
    inputs = {
        name: torch.tensor([column[row] + [pads[name]] * (length - len(column[row])) for row in rows])
        for name, column in encodings.items()
        if name in pads and name in names
    }
    lengths = torch.tensor([len(encodings["input_ids"][row]) for row in rows])
    inputs["attention_mask"] = (torch.arange(length) < lengths[:, None]).long()  # (B, T)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


# -- the tasks ------------------------------------------------------------------------------


def fill_mask(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizer,
    text: str | Sequence[str],
    top_k: int = 5,
    *,
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> Any:
    """For each mask token in ``text``, the ``top_k`` most likely tokens, with their probabilities.

    One text gives a list (one entry per mask) of lists of predictions; a list of texts gives that for each.
    """
    texts, single = check_texts(text, "text")
    check_positive(batch_size, "batch_size")
    check_top_k(top_k, model.config.vocab_size, "tokens in the vocabulary")
    for i, one in enumerate(texts):
        if tokenizer.mask_token is None or tokenizer.mask_token not in one:
            where = "text" if single else f"text[{i}]"
            raise MinibertError(
                f"{where}: write the mask token {tokenizer.mask_token!r} where a word should be predicted"
            )
    warn_if_untrained(model, "fill-mask")
    max_length = max_length_of(model, tokenizer)

    def run(inputs: dict[str, Tensor]) -> list[list[tuple[list[float], list[int]]]]:
        logits = model(**inputs).logits  # (B, T, V)
        masks = inputs["input_ids"] == tokenizer.mask_token_id  # (B, T)
        scores, ids = logits[masks].softmax(dim=-1).topk(top_k, dim=-1)  # (masks, top_k)
        per_row = masks.sum(dim=1).tolist()
        rows, scores, ids = [], scores.tolist(), ids.tolist()
        for count in per_row:
            rows.append(list(zip(scores[:count], ids[:count], strict=True)))
            scores, ids = scores[count:], ids[count:]
        return rows

    results = run_by_length(
        texts,
        lambda chunk: tokenizer(chunk, truncation=True, max_length=max_length),
        run,
        batch_size=batch_size,
        model=model,
        pad_token_id=tokenizer.pad_token_id,
        show_progress_bar=show_progress_bar,
    )
    cut = [i for i, masks in enumerate(results) if not masks]
    if cut:
        warnings.warn(
            f"text {', '.join(map(str, cut))}: the mask tokens lie past the {max_length} tokens the model reads, "
            "so there is nothing to predict",
            stacklevel=2,
        )
    answers = [
        [
            [Prediction(tokenizer.decode([i]).strip(), s, i) for s, i in zip(s_row, i_row, strict=True)]
            for s_row, i_row in masks
        ]
        for masks in results
    ]
    return answers[0] if single else answers


def mean_pool(last_hidden_state: Tensor, attention_mask: Tensor) -> Tensor:
    """Average of the real tokens' vectors, as sentence-transformers pools all-MiniLM-L6-v2."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    return (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, H)


def embed(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizer,
    sentences: str | Sequence[str],
    *,
    normalize: bool = True,
    batch_size: int = 32,
    max_length: int | None = None,
    show_progress_bar: bool = False,
) -> Tensor:
    """Sentence embeddings (N, H), or (H,) for one string: mean pooling over the attention mask, then unit length.

    ``max_length`` defaults to the tokenizer's limit. For a sentence-transformers folder (its own
    pooling, Dense layers, prompts), ``minibert.encoders.SentenceEncoder`` reads how it pools.
    """
    texts, single = check_texts(sentences, "sentences")
    check_positive(batch_size, "batch_size")
    max_length = max_length_of(model, tokenizer) if max_length is None else max_length
    warn_if_untrained(model, "sentence embedding", unused=("pooler.",))

    def run(inputs: dict[str, Tensor]) -> Tensor:
        hidden = model.base_model(**inputs).last_hidden_state  # (B, T, H)
        return mean_pool(hidden, inputs["attention_mask"])  # (B, H)

    rows = run_by_length(
        texts,
        lambda chunk: tokenizer(chunk, truncation=True, max_length=max_length),
        run,
        batch_size=batch_size,
        model=model,
        pad_token_id=tokenizer.pad_token_id,
        show_progress_bar=show_progress_bar,
    )
    embeddings = torch.stack(rows)  # (N, H)
    if normalize:
        embeddings = F.normalize(embeddings, p=2, dim=1)
    return embeddings[0] if single else embeddings


def cosine_similarities(embeddings: Tensor) -> Tensor:
    """(N, N) cosine similarity of every pair of embeddings."""
    unit = F.normalize(embeddings, p=2, dim=1)
    return unit @ unit.T


def classify(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizer,
    texts: str | Sequence[str],
    top_k: int = 1,
    *,
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> Any:
    """The ``top_k`` labels of each text (of the one text, if a string is given), named by ``id2label``.

    Scores are softmax probabilities, or independent sigmoids for multi-label models.
    """
    texts, single = check_texts(texts, "texts")
    check_positive(batch_size, "batch_size")
    check_top_k(top_k, model.config.num_labels, "labels")
    warn_if_untrained(model, "classification")
    multi_label = model.config.problem_type == "multi_label_classification"
    max_length = max_length_of(model, tokenizer)

    def run(inputs: dict[str, Tensor]) -> Tensor:
        logits = model(**inputs).logits  # (B, num_labels)
        return logits.sigmoid() if multi_label else logits.softmax(dim=-1)

    rows = run_by_length(
        texts,
        lambda chunk: tokenizer(chunk, truncation=True, max_length=max_length),
        run,
        batch_size=batch_size,
        model=model,
        pad_token_id=tokenizer.pad_token_id,
        show_progress_bar=show_progress_bar,
    )
    top_scores, top_ids = torch.stack(rows).topk(top_k, dim=-1)  # (N, top_k)
    answers = [
        [Prediction(model.config.id2label[i], s, i) for s, i in zip(row_scores, row_ids, strict=True)]
        for row_scores, row_ids in zip(top_scores.tolist(), top_ids.tolist(), strict=True)
    ]
    return answers[0] if single else answers
