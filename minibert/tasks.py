"""Text in, answers out: fill-mask, sentence embeddings, sequence classification.

Each task is a plain function of a model and a tokenizer, so the steps stay visible:
tokenise, run the model, turn logits into what a person reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from minibert.errors import MinibertError
from minibert.pretrained import PreTrainedModel
from minibert.tokenization import PreTrainedTokenizer


@dataclass(frozen=True)
class Prediction:
    """One candidate: a token for a masked position, or a label for a text."""

    label: str
    score: float
    id: int


def fill_mask(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizer, text: str, top_k: int = 5
) -> list[list[Prediction]]:
    """For each mask token in ``text``, the ``top_k`` most likely tokens, with their probabilities."""
    if tokenizer.mask_token is None or tokenizer.mask_token not in text:
        raise MinibertError(f"text: write the mask token {tokenizer.mask_token!r} where a word should be predicted")
    inputs = tokenizer(text, return_tensors="pt", truncation=True)
    with torch.inference_mode():
        logits = model(**inputs).logits[0]  # (T, V)
    positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    probabilities = logits[positions].softmax(dim=-1)  # (masks, V)
    scores, ids = probabilities.topk(top_k, dim=-1)  # (masks, top_k)
    return [
        [Prediction(tokenizer.decode([i]).strip(), s, i) for s, i in zip(row_scores, row_ids, strict=True)]
        for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True)
    ]


def mean_pool(last_hidden_state: Tensor, attention_mask: Tensor) -> Tensor:
    """Average of the real tokens' vectors, as sentence-transformers pools all-MiniLM-L6-v2."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    return (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, H)


def embed(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizer,
    sentences: Sequence[str],
    *,
    normalize: bool = True,
    batch_size: int = 32,
    max_length: int | None = None,
) -> Tensor:
    """Sentence embeddings (N, H): mean pooling over the attention mask, then (by default) unit length."""
    chunks = []
    for start in range(0, len(sentences), batch_size):
        batch = list(sentences[start : start + batch_size])
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = model.base_model(**inputs).last_hidden_state  # (B, T, H)
        chunks.append(mean_pool(hidden, inputs["attention_mask"]))
    embeddings = torch.cat(chunks)  # (N, H)
    return F.normalize(embeddings, p=2, dim=1) if normalize else embeddings


def cosine_similarities(embeddings: Tensor) -> Tensor:
    """(N, N) cosine similarity of every pair of embeddings."""
    unit = F.normalize(embeddings, p=2, dim=1)
    return unit @ unit.T


def classify(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizer, texts: Sequence[str], top_k: int = 1
) -> list[list[Prediction]]:
    """The ``top_k`` labels of each text, named by the config's ``id2label``.

    Scores are softmax probabilities, or independent sigmoids for multi-label models.
    """
    inputs = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits  # (B, num_labels)
    multi_label = model.config.problem_type == "multi_label_classification"
    scores = logits.sigmoid() if multi_label else logits.softmax(dim=-1)
    top_scores, top_ids = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
    return [
        [Prediction(model.config.id2label[i], s, i) for s, i in zip(row_scores, row_ids, strict=True)]
        for row_scores, row_ids in zip(top_scores.tolist(), top_ids.tolist(), strict=True)
    ]
