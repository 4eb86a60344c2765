"""Text in, answers out: fill-mask, sentence embeddings, classification of texts and of tokens, answers.

Each task is a plain function of a model and a tokenizer, so the steps stay visible:
tokenise, run the model, turn logits into what a person reads. They share one way of running
many texts fast (``run_by_length``): texts of similar token counts go in the same batch, and the
model runs on the real tokens only, so little is spent on padding. The answers are those of one
plain padded batch, in the order the texts came.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from minibert.errors import MinibertError
from minibert.pretrained import PreTrainedModel, forward_parameters
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
    """``run`` on padded batches of similar length, without autograd; one result per item, in the items' order.

    The items are tokenised a chunk at a time (``tokenize`` returns unpadded id lists), sorted by
    token count, longest first, and cut into batches: lengths [3, 9, 5, 9] in batches of 2 run as
    items [1, 3] then [2, 0]. ``run`` gets each batch as the inputs ``model`` takes, padded on the
    right and on the model's device, and returns one result per row. Right padding whatever the
    tokenizer says: with absolute positions, left padding would shift every token's position and
    make a text's result depend on its batch. Under inference mode the model's default
    (``set_unpadding("auto")``) runs each batch unpadded where that is faster.
    """
    if pad_token_id is None and batch_size > 1:
        raise MinibertError("batches need a pad token, and the tokenizer has none: pass batch_size=1")
    names = set(forward_parameters(type(model)))
    results: list[Any] = [None] * len(items)
    chunk = batch_size * CHUNK_BATCHES
    progress = tqdm(total=math.ceil(len(items) / batch_size), desc="Batches", disable=not show_progress_bar)
    with torch.inference_mode(), progress as bar:
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


# -- token-level tasks: a label per token, an answer span -----------------------------------------
# Both map tokens back to the text with the tokenizer's ``offset_mapping`` (return_offsets_mapping),
# ``sequence_ids`` (None for special tokens) and ``word_ids``, which transformers' fast tokenizers
# give as well, so either kind of tokenizer serves.

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


def check_head(model: PreTrainedModel, head: str, task: str) -> None:
    """``model`` must carry the ``head`` a task reads (a ``...For{head}`` class, as transformers names them)."""
    if not type(model).__name__.endswith(f"For{head}"):
        raise MinibertError(
            f"model: {task} reads the scores of a {head} head, and {type(model).__name__} has none; "
            f"load the checkpoint with minibert.AutoModelFor{head}"
        )


def tokens_to_text(tokenizer: PreTrainedTokenizer, tokens: list[str]) -> str:
    """Tokens back to text through the tokenizer's decoder, as transformers' ``convert_tokens_to_string``."""
    convert = getattr(tokenizer, "convert_tokens_to_string", None)  # a transformers tokenizer
    return convert(tokens) if convert is not None else tokenizer.decoder(tokens)


def continuing_subword_prefix(tokenizer: PreTrainedTokenizer) -> str | None:
    """WordPiece's ``##``, which marks a word's later pieces; None where tokens do not mark words (BPE, Unigram)."""
    model = getattr(tokenizer, "backend_tokenizer", tokenizer).model  # transformers' tokenizer wraps tokenizers'
    return getattr(model, "continuing_subword_prefix", getattr(model, "prefix", None)) or None  # tokenizers' BPE: ""


@dataclass(frozen=True)
class TokenScores:
    """A token of a text (or a word, once aggregated) and its label probabilities."""

    word: str  # as the vocabulary spells it; the text's characters for an unknown token
    scores: Tensor  # (num_labels,)
    start: int  # character offsets in the text
    end: int
    index: int  # position in the model's input, special tokens included
    is_subword: bool  # continues the word of the token before


def token_classification(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizer,
    texts: str | Sequence[str],
    *,
    aggregation_strategy: str = "simple",
    ignore_labels: Sequence[str] = ("O",),
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> Any:
    """The labelled tokens or entities of each text, as transformers' ``TokenClassificationPipeline`` finds them.

    ``aggregation_strategy``: "none" gives every token (``entity``, ``score``, ``index``, ``word``,
    ``start``, ``end``); "simple" joins adjacent tokens of one entity (B-PER I-PER -> PER) into
    ``entity_group`` dicts; "first", "average" and "max" first give each word one label: that of its
    first token, of its tokens' average scores, or of its most confident token. Labels in
    ``ignore_labels`` are left out. Texts longer than the model reads are cut. One string gives one
    list of dicts, a list of texts a list of those.
    """
    texts, single = check_texts(texts)
    check_positive(batch_size, "batch_size")
    if aggregation_strategy not in AGGREGATION_STRATEGIES:
        raise ValueError(
            f"aggregation_strategy must be one of {', '.join(map(repr, AGGREGATION_STRATEGIES))}, "
            f"got {aggregation_strategy!r}"
        )
    check_head(model, "TokenClassification", "token classification")
    warn_if_untrained(model, "token classification")
    max_length = max_length_of(model, tokenizer)
    encodings = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)

    def run(inputs: dict[str, Tensor]) -> list[Tensor]:
        probabilities = model(**inputs).logits.float().softmax(dim=-1).cpu()  # (B, T, num_labels)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [row[:length] for row, length in zip(probabilities, lengths, strict=True)]  # (T_i, num_labels) each

    rows = run_by_length(
        range(len(texts)),
        lambda chunk: {name: [encodings[name][i] for i in chunk] for name in encodings if name in ENCODER_INPUTS},
        run,
        batch_size=batch_size,
        model=model,
        pad_token_id=tokenizer.pad_token_id,
        show_progress_bar=show_progress_bar,
    )
    prefix = continuing_subword_prefix(tokenizer)
    if prefix is None and aggregation_strategy in ("first", "average", "max"):
        warnings.warn(
            "the tokenizer does not mark where words continue, so a token continues a word when no space is "
            f"next to its start (transformers' fallback for aggregation_strategy={aggregation_strategy!r})",
            stacklevel=2,
        )
    id2label = model.config.id2label
    answers = []
    for i, (text, probabilities) in enumerate(zip(texts, rows, strict=True)):
        tokens = token_scores(tokenizer, text, encodings, i, probabilities, prefix)
        if aggregation_strategy == "none":
            key, entities = "entity", [token_entity(token, id2label) for token in tokens]
        else:
            if aggregation_strategy != "simple":
                tokens = [aggregate_word(tokenizer, word, aggregation_strategy) for word in split_words(tokens)]
            key, entities = "entity_group", group_entities(tokenizer, tokens, id2label)
        answers.append([entity for entity in entities if entity[key] not in ignore_labels])
    return answers[0] if single else answers


# The columns of an encoding that go into the model (pad_rows adds the attention mask).
ENCODER_INPUTS = ("input_ids", "token_type_ids")


def token_scores(
    tokenizer: PreTrainedTokenizer,
    text: str,
    encodings: Any,
    row: int,
    probabilities: Tensor,  # (T, num_labels)
    prefix: str | None,
) -> list[TokenScores]:
    """The text's tokens, special tokens left out, as transformers' ``gather_pre_entities`` reads them.

    A token continues a word if the vocabulary spells it longer than its characters in the text
    (``##ing`` for "ing"); without such a prefix, if neither its first character nor the one before
    is a space. An unknown token is spelt as the text has it, and starts a word.
    """
    ids, offsets = encodings["input_ids"][row], encodings["offset_mapping"][row]
    tokens = []
    for index, (id, sequence) in enumerate(zip(ids, encodings.sequence_ids(row), strict=True)):
        if sequence is None:
            continue
        start, end = offsets[index]
        word, characters = tokenizer.convert_ids_to_tokens(id), text[start:end]
        if id == tokenizer.unk_token_id:
            word, is_subword = characters, False
        elif prefix is not None:
            is_subword = len(word) != len(characters)
        else:
            is_subword = start > 0 and " " not in text[start - 1 : start + 1]
        tokens.append(TokenScores(word, probabilities[index], start, end, index, is_subword))
    return tokens


def token_entity(token: TokenScores, id2label: dict[int, str]) -> dict[str, Any]:
    """A token with its likeliest label, as aggregation_strategy="none" gives it."""
    return {
        "entity": id2label[int(token.scores.argmax())],
        "score": token.scores.max().item(),
        "index": token.index,
        "word": token.word,
        "start": token.start,
        "end": token.end,
    }


def split_words(tokens: list[TokenScores]) -> list[list[TokenScores]]:
    """The tokens in words: a new word at each token that does not continue one."""
    words: list[list[TokenScores]] = []
    for token in tokens:
        if token.is_subword and words:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def aggregate_word(tokenizer: PreTrainedTokenizer, tokens: list[TokenScores], strategy: str) -> TokenScores:
    """One word's tokens as one, with the scores ``strategy`` picks (transformers' ``aggregate_word``)."""
    if strategy == "first":
        scores = tokens[0].scores
    elif strategy == "max":
        scores = max(tokens, key=lambda token: token.scores.max().item()).scores  # the first of equals
    else:
        scores = torch.stack([token.scores for token in tokens]).mean(dim=0)  # (num_labels,)
    word = tokens_to_text(tokenizer, [token.word for token in tokens])
    return TokenScores(word, scores, tokens[0].start, tokens[-1].end, tokens[0].index, False)


def group_entities(
    tokenizer: PreTrainedTokenizer, tokens: list[TokenScores], id2label: dict[int, str]
) -> list[dict[str, Any]]:
    """Adjacent tokens (or words) of one entity as one group, as transformers' ``group_entities`` forms them.

    A token joins the group before it if its tag is the group's and it does not begin an entity:
    ``B-PER I-PER B-PER O`` -> ``PER``, ``PER``, ``O``; a label with neither ``B-`` nor ``I-`` counts as ``I-``.
    The group's score is the mean of its tokens' scores.
    """
    groups: list[list[tuple[str, float, TokenScores]]] = []
    for token in tokens:
        label = id2label[int(token.scores.argmax())]
        begins, tag = (label[:2] == "B-", label[2:]) if label[:2] in ("B-", "I-") else (False, label)
        if groups and not begins and tag == groups[-1][-1][0]:
            groups[-1].append((tag, token.scores.max().item(), token))
        else:
            groups.append([(tag, token.scores.max().item(), token)])
    return [
        {
            "entity_group": id2label[int(group[0][2].scores.argmax())].split("-", 1)[-1],
            "score": sum(score for _, score, _ in group) / len(group),
            "word": tokens_to_text(tokenizer, [token.word for _, _, token in group]),
            "start": group[0][2].start,
            "end": group[-1][2].end,
        }
        for group in groups
    ]


@dataclass(frozen=True)
class Window:
    """A model input: one question with a stretch of its context, as positions in the pair's whole encoding."""

    pair: int
    positions: list[int]


def question_answering(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizer,
    question: str | Sequence[str],
    context: str | Sequence[str],
    *,
    top_k: int = 1,
    max_answer_len: int = 15,
    doc_stride: int | None = None,
    max_seq_len: int | None = None,
    max_question_len: int = 64,
    handle_impossible_answer: bool = False,
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> Any:
    """The ``top_k`` answers to a question found in its context, as transformers 4's ``QuestionAnsweringPipeline``.

    An answer is ``{"score", "start", "end", "answer"}``: the probability of the token span (summed
    over the spans that give the same text, in any letter case), and its characters in the context,
    widened to whole words. A context too long for ``max_seq_len`` tokens (default: the model's
    limit, at most 384) is read in windows that overlap by ``doc_stride`` tokens (default: half of
    ``max_seq_len``, at most 128), each scored on its own. ``handle_impossible_answer`` adds "no
    answer" (``""`` at 0, 0), scored by the first token. A question longer than ``max_question_len``
    tokens is cut (transformers' fast tokenizers ignore that argument, and fail if it leaves no room).

    As in transformers, one answer comes back as a dict, several as a list; a list of questions (with
    a context each, or one context for all) gives such a result for each.
    """
    questions, single = check_texts(question, "question")
    contexts, single_context = check_texts(context, "context")
    if single_context and not single:
        contexts *= len(questions)
    elif single and not single_context:
        questions *= len(contexts)
    elif len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions and {len(contexts)} contexts: give one context, or one each")
    for name, values in (("question", questions), ("context", contexts)):
        if empty := [i for i, value in enumerate(values) if not value]:
            raise ValueError(f"{name} {', '.join(map(str, empty))}: empty, there is nothing to read")
    for value, name in ((top_k, "top_k"), (max_answer_len, "max_answer_len"), (max_question_len, "max_question_len")):
        check_positive(value, name)
    check_positive(batch_size, "batch_size")
    max_seq_len = min(max_length_of(model, tokenizer), 384) if max_seq_len is None else max_seq_len
    check_positive(max_seq_len, "max_seq_len")
    doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
    if isinstance(doc_stride, bool) or not isinstance(doc_stride, int) or doc_stride < 0:
        raise ValueError(f"doc_stride must be an integer from 0, got {doc_stride!r}")
    if getattr(tokenizer, "padding_side", "right") != "right":
        raise MinibertError(
            "question_answering puts the question first: a tokenizer that pads on the left is not supported"
        )
    check_head(model, "QuestionAnswering", "question answering")
    warn_if_untrained(model, "question answering")

    encodings = tokenizer(questions, contexts, return_offsets_mapping=True)
    windows = [
        Window(pair, positions)
        for pair in range(len(questions))
        for positions in context_windows(encodings.sequence_ids(pair), max_seq_len, doc_stride, max_question_len)
    ]

    def run(inputs: dict[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
        outputs = model(**inputs)
        starts, ends = outputs.start_logits.float().cpu(), outputs.end_logits.float().cpu()  # (B, T) each
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [(s[:n], e[:n]) for s, e, n in zip(starts, ends, lengths, strict=True)]

    logits = run_by_length(
        windows,
        lambda chunk: {
            name: [[encodings[name][w.pair][p] for p in w.positions] for w in chunk]
            for name in encodings
            if name in ENCODER_INPUTS
        },
        run,
        batch_size=batch_size,
        model=model,
        pad_token_id=tokenizer.pad_token_id,
        show_progress_bar=show_progress_bar,
    )
    found: list[list[dict[str, Any]]] = [[] for _ in questions]
    null_scores = [1e6] * len(questions)  # the least "no answer" score of the pair's windows
    for window, (start_logits, end_logits) in zip(windows, logits, strict=True):
        pick = [encodings["input_ids"][window.pair], encodings["offset_mapping"][window.pair]]
        pick += [encodings.sequence_ids(window.pair), encodings.word_ids(window.pair)]
        ids, offsets, sequences, words = ([column[p] for p in window.positions] for column in pick)
        # Answers lie in the context; the [CLS] token is kept for the "no answer" score.
        allowed = torch.tensor([s == 1 or i == tokenizer.cls_token_id for s, i in zip(sequences, ids, strict=True)])
        # More candidates than asked for, as transformers takes, since spans in the same words merge.
        spans, null_score = best_spans(start_logits, end_logits, allowed, 2 * top_k + 10, max_answer_len)
        null_scores[window.pair] = min(null_scores[window.pair], null_score)
        for score, first, last in spans:
            begin, stop = span_characters(offsets, words, sequences, first, last)
            add_answer(found[window.pair], contexts[window.pair], score, begin, stop)
    answers = []
    for pair_answers, null_score in zip(found, null_scores, strict=True):
        if handle_impossible_answer:
            pair_answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        pair_answers = sorted(pair_answers, key=lambda answer: answer["score"], reverse=True)[:top_k]
        answers.append(pair_answers[0] if len(pair_answers) == 1 else pair_answers)
    return answers[0] if single and single_context else answers


def context_windows(
    sequence_ids: list[int | None], max_seq_len: int, doc_stride: int, max_question_len: int
) -> list[list[int]]:
    """The positions of each window of a (question, context) encoding, as transformers' fast tokenizers cut them.

    A window is the special tokens, the question (its first ``max_question_len`` tokens) and as many
    context tokens as ``max_seq_len`` leaves room for; the next window starts ``doc_stride`` tokens
    before the last one ends, and the last ends with the context (tokenizers' ``Encoding::truncate``):
    10 context tokens, room for 4, stride 1: context tokens 0-3, 3-6, 6-9.
    """
    cut = set([p for p, s in enumerate(sequence_ids) if s == 0][max_question_len:])
    context = [p for p, s in enumerate(sequence_ids) if s == 1]
    if not context:  # a context of spaces: no tokens to cut
        return [[p for p in range(len(sequence_ids)) if p not in cut]]
    before = [p for p in range(context[0]) if p not in cut]
    after = list(range(context[-1] + 1, len(sequence_ids)))
    room = max_seq_len - len(before) - len(after)
    if len(context) <= room:
        return [before + context + after]
    if room <= doc_stride:
        raise ValueError(
            f"max_seq_len={max_seq_len} leaves {room} tokens of context per window beside the question and special "
            f"tokens ({len(before) + len(after)}), which must be more than doc_stride={doc_stride}"
        )
    windows, start = [], 0
    while True:
        stop = min(start + room, len(context))
        windows.append(before + context[start:stop] + after)
        if stop == len(context):
            return windows
        start += room - doc_stride


def best_spans(
    start_logits: Tensor,  # (T,)
    end_logits: Tensor,  # (T,)
    allowed: Tensor,  # (T,) bool: the tokens an answer may hold, and the first token
    candidates: int,
    max_answer_len: int,
) -> tuple[list[tuple[float, int, int]], float]:
    """The likeliest spans ``(score, first, last)`` of a window, best first, and its "no answer" score.

    As transformers' ``select_starts_ends`` and ``decode_spans`` (pipelines/question_answering.py in
    transformers 4, document_question_answering.py in 5): a softmax of the start and of the end scores
    over the allowed tokens, the first token's product as "no answer", then the products of every
    start with every end at most ``max_answer_len`` tokens after it, the first token left out.
    transformers may also list spans of score zero (outside the allowed tokens, or backwards) when
    fewer spans remain than asked for; they are no answers, and are left out here.
    """
    start = start_logits.masked_fill(~allowed, -10000.0).softmax(dim=-1)  # (T,)
    end = end_logits.masked_fill(~allowed, -10000.0).softmax(dim=-1)  # (T,)
    null_score = (start[0] * end[0]).item()
    start[0] = end[0] = 0.0
    spans = (start[:, None] * end[None, :]).triu().tril(max_answer_len - 1)  # (T, T): first <= last < first + len
    scores, flat = spans.flatten().topk(min(candidates, spans.numel()))
    best = [(score, *divmod(i, len(start))) for score, i in zip(scores.tolist(), flat.tolist(), strict=True)]
    return [span for span in best if span[0] > 0], null_score


def span_characters(
    offsets: list[tuple[int, int]], words: list[int | None], sequences: list[int | None], first: int, last: int
) -> tuple[int, int]:
    """The characters of the context from token ``first`` to token ``last``, widened to whole words.

    As transformers' ``get_indices`` with ``align_to_words``: a word cut by the window's edge widens
    to the part in the window; a token outside any word (a special token) keeps its own offsets.
    """
    if words[first] is None or words[last] is None:
        return offsets[first][0], offsets[last][1]
    in_context = [(word, offset) for word, offset, s in zip(words, offsets, sequences, strict=True) if s == 1]
    begin = next(offset[0] for word, offset in in_context if word == words[first])
    stop = next(offset[1] for word, offset in reversed(in_context) if word == words[last])
    return begin, stop


def add_answer(answers: list[dict[str, Any]], context: str, score: float, start: int, end: int) -> None:
    """Add a span's score to the answer of the same text (any letter case), or add it as a new answer."""
    text = context[start:end]
    same = next((answer for answer in answers if answer["answer"].lower() == text.lower()), None)
    if same is None:
        answers.append({"score": score, "start": start, "end": end, "answer": text})
    else:
        same["score"] += score
