"""minibert next to the CPU inference engines people switch to, on the same inputs, in one run.

The engines: minibert's default path; transformers, the reference; sentence-transformers (embeddings);
ONNX Runtime on transformers' model exported to ONNX, raw and after its BERT graph optimiser;
OpenVINO on the same export; CTranslate2 through its converter and Encoder API. All run in float32,
and their int8 modes in a table of their own. Before anything is timed, every engine's outputs are
checked against transformers' (max abs difference at real tokens; for int8, cosines): an engine that
fails is reported, not timed. The engines then run in turns, round by round (a different one first
each round), so drift on a shared machine hits all alike. The report gives medians, the median of
each round's ratio to transformers, the CPU, its ISA and thread count, and for bert-base the fraction
of the matrix-multiply bound reached (the real tokens' forward FLOPs over the rate of a large
``torch.matmul`` measured in the same run). Results go to docs/engines.md and docs/engines.png.

The workloads: all-MiniLM-L6-v2 embeddings of real texts of 5 to 128 tokens, the model alone (batches
of 32 in the texts' order, padded to the longest) and with tokenisation (each library's own way:
minibert's tokenizer and SentenceEncoder, sentence-transformers; for the others the transformers fast
tokenizer and sentence-transformers' batching, longest texts first, then mean pooling); bert-base with
random weights (made once, kept in ~/.cache/minibert-bench) on full 8x128 batches, 32 texts of 16 to
128 tokens padded to the longest, and batch-1 latency at 16 and 128 tokens. Each at 1 thread and at
all cores.

Run: make bench-engines   (or: .venv/bin/python scripts/bench_engines.py [--quick])
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from bench import forward_flops, matmul_peak
from bench_encode import TOKENS, cpu_name, embedding_texts, padded
from sentence_transformers import SentenceTransformer

import minibert
from minibert.allocator import huge_pages
from minibert.cli import default_checkpoint
from minibert.encoders import SentenceEncoder

DOCS = Path(__file__).resolve().parents[1] / "docs"
CACHE = Path.home() / ".cache" / "minibert-bench"
ENGINE_PACKAGES = ("onnxruntime", "onnx", "openvino", "ctranslate2")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REFERENCE = "transformers"
ENGINES = (  # the columns, in this order
    REFERENCE,
    "minibert",
    "sentence-transformers",
    "ONNX Runtime",
    "ONNX Runtime optimised",
    "OpenVINO",
    "CTranslate2",
    "minibert int8",
    "ONNX Runtime int8",
    "CTranslate2 int8",
)
FP32_TOLERANCE = 1e-4  # max abs difference at real tokens; fp32 engines land near 1e-6
INT8_MIN_COSINE = 0.9  # mean cosine of the real tokens' vectors: below it an int8 engine is broken, not coarse
BATCH_SIZE = 32
ISA_FLAGS = ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")

Batch = dict[str, torch.Tensor]
WORKERS: list[tuple[Any, Any]] = []  # (connection, process) of engines running in processes of their own


@dataclass
class Engine:
    """One way of running a checkpoint: ``prepare`` makes the engine's own inputs (untimed), ``run`` the hidden states.

    ``run`` returns the last hidden states (B, T, H) as a float tensor, whatever the engine's array type.
    """

    name: str
    prepare: Callable[[Batch], Any]
    run: Callable[[Any], torch.Tensor]


@dataclass
class Workload:
    """Padded batches that every engine runs; one timed sample runs them all ``calls`` times (then per call)."""

    name: str
    batches: list[Batch]
    calls: int = 1
    flops: float | None = None  # forward FLOPs of the real tokens, for the fraction of the GEMM bound

    @property
    def real_fraction(self) -> float:
        masks = [batch["attention_mask"] for batch in self.batches]
        return sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)


@dataclass
class Cell:
    """One engine on one workload: its check, and its timing unless the check failed."""

    check: str  # what the check measured, e.g. "3.1e-06" or "cos 0.998"
    failed: str | None = None
    seconds: float | None = None
    ratio: float | None = None
    gemm: float | None = None


@dataclass
class Table:
    """Rows of workloads, columns of engines, for one precision and thread count."""

    title: str
    engines: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)
    real: dict[str, float] = field(default_factory=dict)  # workload: real tokens per padded position
    rates: dict[str, float] = field(default_factory=dict)  # workload: torch.matmul FLOP/s measured just before
    accuracy: dict[str, str] = field(default_factory=dict)  # int8 engine: MiniLM embeddings' cosines against fp32
    notes: list[str] = field(default_factory=list)

    def add(self, workload: str, cells: dict[str, Cell], real: float | None = None, rate: float | None = None) -> None:
        self.rows[workload] = cells
        self.engines = sorted({*self.engines, *cells}, key=ENGINES.index)
        self.notes += [f"{name} failed: {cell.failed}" for name, cell in cells.items() if cell.failed]
        if real is not None:
            self.real[workload] = real
        if rate is not None:
            self.rates[workload] = rate


# -- checkpoints and exports ----------------------------------------------------------------


def bert_base_folder(vocabulary: Path) -> Path:
    """bert-base with random weights (``BertConfig()`` defaults), made once, with a vocabulary for CTranslate2."""
    folder = CACHE / "bert-base"
    if not (folder / "model.safetensors").is_file():
        torch.manual_seed(0)
        # CTranslate2 4.8's converter reads position_embedding_type, which transformers 5 no longer writes.
        config = transformers.BertConfig(position_embedding_type="absolute")
        transformers.BertModel(config).save_pretrained(folder)
        shutil.copy(vocabulary, folder / "vocab.txt")  # bert-base-uncased's, as bert-base's 30522 ids
    return folder


class LastHiddenState(torch.nn.Module):
    """transformers' model with positional inputs and one output, the form ``torch.onnx.export`` traces."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def export(folder: Path, out: Path) -> tuple[dict[str, Path | str], list[str]]:
    """Each engine's model file made from ``folder`` (or why it could not be made), and notes on how.

    The ONNX export is the TorchScript one of eager attention: the graph ONNX Runtime's BERT optimiser
    recognises (it fuses no attention in the dynamo export, nor in the export of SDPA attention).
    """
    import ctranslate2
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    config = transformers.AutoConfig.from_pretrained(folder)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path | str] = {}
    notes: list[str] = []
    steps = {
        "onnx": lambda path: export_onnx(folder, path),
        "onnx-optimised": lambda path: optimize(optimize_model, files["onnx"], path, config, notes),
        # The fused operators' outputs carry no type, which the quantiser needs: they are float32.
        "onnx-int8": lambda path: quantize_dynamic(
            files["onnx-optimised"],
            path,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        ),
        "ctranslate2": lambda path: ctranslate2.converters.TransformersConverter(str(folder)).convert(
            str(path), force=True
        ),
    }
    for name, make in steps.items():
        path = out / (name if name == "ctranslate2" else f"{name}.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                logging.disable(logging.WARNING)  # the quantiser's advice, on the root logger
                make(path)
            files[name] = path
        except Exception as error:  # reported in the table: one engine failing must not stop the others
            files[name] = failure(error)
        finally:
            logging.disable(logging.NOTSET)
    return files, notes


def export_onnx(folder: Path, path: Path) -> None:
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])  # a padded row, so the mask is traced as data
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    torch.onnx.export(
        LastHiddenState(model),
        (ids, mask, torch.zeros_like(ids)),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=list(INPUTS),
        output_names=["last_hidden_state"],
        dynamic_axes=axes,
    )


def optimize(optimize_model: Callable, source: Path, path: Path, config: Any, notes: list[str]) -> None:
    model = optimize_model(
        str(source), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    fused = {name: count for name, count in model.get_fused_operator_statistics().items() if count}
    notes.append("ONNX Runtime's optimiser fused: " + ", ".join(f"{name} {count}" for name, count in fused.items()))
    model.save_model_to_file(str(path))


# -- engines --------------------------------------------------------------------------------


def torch_engine(name: str, model: torch.nn.Module) -> Engine:
    return Engine(name, lambda batch: batch, lambda batch: model(**batch).last_hidden_state)


def onnxruntime_engine(name: str, path: Path, threads: int) -> Engine:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return Engine(
        name,
        lambda batch: {n: batch[n].numpy() for n in names},
        lambda feed: torch.from_numpy(session.run(["last_hidden_state"], feed)[0]),
    )


def openvino_engine(name: str, path: Path, threads: int) -> Engine:
    import openvino

    core = openvino.Core()
    # Without the hint OpenVINO runs bf16 on CPUs that have AVX512_BF16 or AMX: this table is fp32.
    settings = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", settings)
    names = [i.get_any_name() for i in compiled.inputs]
    return Engine(
        name,
        lambda batch: {n: batch[n].numpy() for n in names},
        lambda feed: torch.from_numpy(compiled(feed)[0]),
    )


def ctranslate2_engine(name: str, path: Path, threads: int, compute_type: str) -> Engine:
    """CTranslate2 in a process of its own (``ctranslate2_worker``): in this one it would slow PyTorch's engines.

    The time of a call includes handing the ids over and the hidden states back through shared
    memory: ~1 ms for a MiniLM batch of 32 x 128, under 1% of its forward.
    """
    import multiprocessing
    from multiprocessing import shared_memory

    from ctranslate2_worker import serve

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's runtimes
    ours, theirs = spawn.Pipe()
    worker = spawn.Process(target=serve, args=(theirs, str(path), threads, compute_type), daemon=True)
    worker.start()
    if (answer := ours.recv()) != "ready":
        raise RuntimeError(answer)
    WORKERS.append((ours, worker))

    def prepare(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        return batch["input_ids"].int().numpy(), batch["attention_mask"].sum(dim=1).int().numpy()

    blocks: dict[str, shared_memory.SharedMemory] = {}

    def run(inputs: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
        ours.send(inputs)
        name, shape = ours.recv()
        if name not in blocks:  # the worker owns the block and unlinks it (one resource tracker serves both)
            blocks[name] = shared_memory.SharedMemory(name=name)
        # A view of the worker's block, valid until the next call: the check clones what it keeps.
        return torch.from_numpy(np.ndarray(shape, np.float32, buffer=blocks[name].buf))  # (B, T, H)

    return Engine(name, prepare, run)


def stop_workers() -> None:
    """End the engine processes of the table just measured."""
    while WORKERS:
        connection, worker = WORKERS.pop()
        connection.send(None)
        worker.join(timeout=30)


def minibert_int8(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """minibert's own int8 path where it exists, else torch's dynamic quantisation of every Linear; and which."""
    try:
        from minibert.quantization import quantize
    except ImportError:
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return quantized, "torch.ao.quantization.quantize_dynamic"
    return quantize(copy.deepcopy(model)), "minibert.quantization.quantize"


def build_engines(
    folder: Path, files: dict[str, Path | str], threads: int, int8: bool
) -> tuple[dict[str, Engine | str], dict[str, str]]:
    """The engines of one table (fp32, or int8 next to the fp32 reference), or why each could not be built."""
    # No pooler: the tables time the token vectors, and the ONNX export leaves the unused pooler out too.
    reference = transformers.AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    built: dict[str, Callable[[], Engine]] = {REFERENCE: lambda: torch_engine(REFERENCE, reference)}
    how: dict[str, str] = {}
    mini = minibert.AutoModel.from_pretrained(folder, add_pooling_layer=False)
    if int8:

        def minibert_int8_engine() -> Engine:
            quantized, how["minibert int8"] = minibert_int8(mini)
            return torch_engine("minibert int8", quantized)

        built["minibert int8"] = minibert_int8_engine
        built["ONNX Runtime int8"] = lambda: onnxruntime_engine("ONNX Runtime int8", need(files, "onnx-int8"), threads)
        built["CTranslate2 int8"] = lambda: ctranslate2_engine(
            "CTranslate2 int8", need(files, "ctranslate2"), threads, "int8"
        )
    else:
        built["minibert"] = lambda: torch_engine("minibert", mini)
        built["ONNX Runtime"] = lambda: onnxruntime_engine("ONNX Runtime", need(files, "onnx"), threads)
        built["ONNX Runtime optimised"] = lambda: onnxruntime_engine(
            "ONNX Runtime optimised", need(files, "onnx-optimised"), threads
        )
        built["OpenVINO"] = lambda: openvino_engine("OpenVINO", need(files, "onnx"), threads)
        built["CTranslate2"] = lambda: ctranslate2_engine("CTranslate2", need(files, "ctranslate2"), threads, "float32")
    engines: dict[str, Engine | str] = {}
    for name, make in built.items():
        try:
            engines[name] = make()
        except Exception as error:  # reported in the table
            engines[name] = failure(error)
    return engines, how


def failure(error: Exception) -> str:
    """An error in one line, for a table cell."""
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"


def need(files: dict[str, Path | str], name: str) -> Path:
    made = files[name]
    if isinstance(made, str):
        raise RuntimeError(f"its model file was not made: {made}")
    return made


# -- workloads ------------------------------------------------------------------------------


def bert_base_workloads(config: Any, quick: bool) -> list[Workload]:
    generator = torch.Generator().manual_seed(0)

    def ids(batch: int, length: int) -> torch.Tensor:
        return torch.randint(1000, 30000, (batch, length), generator=generator)

    def flops(lengths: Sequence[int]) -> float:
        return sum(forward_flops(config, 1, n) for n in lengths)

    full, texts = (2, 8) if quick else (8, 32)
    lengths = torch.randint(16, 129, (texts,), generator=generator)
    longest = int(lengths.max())
    return [
        Workload(
            f"bert-base, {full}x128 full batch",
            [padded(ids(full, 128), torch.full((full,), 128))],
            flops=flops([128] * full),
        ),
        Workload(
            f"bert-base, {texts} texts of 16-128 tokens padded to the longest",
            [padded(ids(texts, longest), lengths)],
            flops=flops(lengths.tolist()),
        ),
        Workload(
            "bert-base, batch 1 x 16 tokens",
            [padded(ids(1, 16), torch.tensor([16]))],
            calls=20,
            flops=flops([16]),
        ),
        Workload(
            "bert-base, batch 1 x 128 tokens",
            [padded(ids(1, 128), torch.tensor([128]))],
            calls=5,
            flops=flops([128]),
        ),
    ]


def minilm_workload(texts: list[str], tokenizer: Any) -> Workload:
    batches = [
        dict(tokenizer(texts[start : start + BATCH_SIZE], padding=True, return_tensors="pt"))
        for start in range(0, len(texts), BATCH_SIZE)
    ]
    return Workload(f"all-MiniLM-L6-v2, {len(texts)} texts, batch {BATCH_SIZE}, model only", batches)


def mean_unit(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' vectors (B, H), at unit length: all-MiniLM-L6-v2's sentence embedding."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return F.normalize((hidden * weights).sum(dim=1) / weights.sum(dim=1), dim=-1)  # (B, H)


def embedding_pipeline(engine: Engine, tokenizer: Any) -> Callable[[list[str]], torch.Tensor]:
    """Texts to embeddings (N, H) as an engine's user writes it: sentence-transformers' batching, longest first."""

    def embed(texts: list[str]) -> torch.Tensor:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        rows: list[torch.Tensor] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = dict(
                tokenizer(
                    [texts[i] for i in order[start : start + BATCH_SIZE]],
                    padding=True,
                    truncation=True,
                    max_length=TOKENS[1],
                    return_tensors="pt",
                )
            )
            rows.append(mean_unit(engine.run(engine.prepare(batch)), batch["attention_mask"]))
        embeddings = torch.cat(rows)  # (N, H), longest text first
        return embeddings[torch.argsort(torch.tensor(order))]

    return embed


# -- checking and timing --------------------------------------------------------------------


def alternate(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each run, ``rounds`` times, in turns; each round starts with a different run."""
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(rounds):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            start = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def summarise(
    samples: dict[str, list[float]], cells: dict[str, Cell], per: int, flops: float | None, peak: float | None
) -> None:
    """Medians and the median of the per-round ratios to transformers into ``cells``; the GEMM fraction."""
    reference = samples[REFERENCE]
    for name, values in samples.items():
        cell = cells[name]
        cell.seconds = statistics.median(values) / per
        cell.ratio = statistics.median(v / r for v, r in zip(values, reference, strict=True))
        if flops and peak:
            cell.gemm = flops / cell.seconds / peak


def check_hidden(outputs: list[torch.Tensor], expected: list[torch.Tensor], batches: list[Batch], int8: bool) -> Cell:
    """Max abs difference from transformers at real tokens (fp32), or the mean cosine of real tokens' vectors (int8)."""
    differences, cosines = [], []
    for got, want, batch in zip(outputs, expected, batches, strict=True):
        if got.shape != want.shape:
            return Cell("-", failed=f"output shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        real = batch["attention_mask"].bool()  # (B, T)
        differences.append(float((got[real].float() - want[real]).abs().max()))
        cosines.append(F.cosine_similarity(got[real].float(), want[real], dim=-1))
    difference, cosine = max(differences), float(torch.cat(cosines).mean())
    if not int8:
        failed = None if difference <= FP32_TOLERANCE else f"max abs difference {difference:.1e} > {FP32_TOLERANCE:g}"
        return Cell(f"{difference:.1e}", failed=failed)
    failed = None if cosine >= INT8_MIN_COSINE else f"mean token cosine {cosine:.3f} < {INT8_MIN_COSINE}"
    return Cell(f"{difference:.1e} (token cos {cosine:.4f})", failed=failed)


def run_workload(
    workload: Workload, engines: dict[str, Engine | str], rounds: int, int8: bool
) -> tuple[dict[str, Cell], dict[str, list[torch.Tensor]], float | None]:
    """Check every engine against transformers, then time those that passed, alternating; and the matmul rate."""
    outputs: dict[str, list[torch.Tensor]] = {}
    cells: dict[str, Cell] = {}
    inputs: dict[str, list[Any]] = {}
    for name, engine in engines.items():
        if isinstance(engine, str):
            cells[name] = Cell("-", failed=engine)
            continue
        try:
            inputs[name] = [engine.prepare(batch) for batch in workload.batches]
            outputs[name] = [engine.run(prepared).clone() for prepared in inputs[name]]  # also the warm-up
            for prepared in inputs[name]:  # a second warm-up: minibert packs its weights on a layer's second call
                engine.run(prepared)
        except Exception as error:  # reported in the table: the other engines still run
            cells[name] = Cell("-", failed=failure(error))
            continue
        if name == REFERENCE:
            cells[name] = Cell("reference")
        else:
            cells[name] = check_hidden(outputs[name], outputs[REFERENCE], workload.batches, int8)

    def timed(engine: Engine, prepared: list[Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(workload.calls):
                for one in prepared:
                    engine.run(one)

        return run

    runs = {
        name: timed(engine, inputs[name])
        for name, engine in engines.items()
        if not isinstance(engine, str) and cells[name].failed is None
    }
    before = matmul_peak(torch.float32) if workload.flops else None  # FLOP/s at this thread count
    samples = alternate(runs, rounds)
    # The better of the rates just before and just after: a neighbour's burst must not inflate the fraction.
    peak = max(before, matmul_peak(torch.float32)) if before else None
    summarise(samples, cells, workload.calls, workload.flops, peak)
    return cells, outputs, peak


def embedding_cosines(outputs: list[torch.Tensor], reference: list[torch.Tensor], batches: list[Batch]) -> str:
    """Mean and minimum cosine of the sentence embeddings against fp32 transformers'."""
    cosines = torch.cat(
        [
            (mean_unit(got.float(), b["attention_mask"]) * mean_unit(want, b["attention_mask"])).sum(dim=-1)
            for got, want, b in zip(outputs, reference, batches, strict=True)
        ]
    )
    return f"mean {float(cosines.mean()):.4f}, min {float(cosines.min()):.4f}"


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads and 2 rounds: checks the plumbing")
    parser.add_argument("--rounds", type=int, help="timed rounds per workload (default 5, 2 with --quick)")
    parser.add_argument("--texts", type=int, help="embedding texts (default 1000, 64 with --quick)")
    parser.add_argument("--threads", default="1,all", help="thread counts to run, e.g. 1,all or 4")
    args = parser.parse_args()
    missing = [name for name in ENGINE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"{', '.join(missing)} not installed: pip install -e '.[bench]' (or: make bench-engines)")
    rounds = args.rounds or (2 if args.quick else 5)
    cores = torch.get_num_threads()
    thread_counts = sorted({cores if t == "all" else int(t) for t in args.threads.split(",")})
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    header = machine(thread_counts)
    print("\n".join(header), flush=True)

    minilm = default_checkpoint()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
    texts = embedding_texts(args.texts or (64 if args.quick else 1000), tokenizer)
    folders = {"minilm": minilm, "bert-base": bert_base_folder(minilm / "vocab.txt")}
    bert_config = transformers.AutoConfig.from_pretrained(folders["bert-base"])
    workloads = {
        "minilm": [minilm_workload(texts, tokenizer)],
        "bert-base": bert_base_workloads(bert_config, args.quick),
    }
    tables = {
        (int8, threads): Table(f"{'int8' if int8 else 'float32'}, {threads} thread{'s' * (threads > 1)}")
        for threads in thread_counts
        for int8 in (False, True)
    }
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for checkpoint, folder in folders.items():
            files, export_notes = export(folder, Path(scratch) / checkpoint)
            notes += [f"{checkpoint}: {note}" for note in export_notes]
            notes += [f"{checkpoint}: {name} not made: {why}" for name, why in files.items() if isinstance(why, str)]
            for (int8, threads), table in tables.items():
                torch.set_num_threads(threads)
                engines, how = build_engines(folder, files, threads, int8)
                table.notes += [f"{name}: {value}" for name, value in how.items()]
                with torch.inference_mode():
                    for workload in workloads[checkpoint]:
                        print(f"{table.title}: {workload.name}", flush=True)
                        cells, outputs, peak = run_workload(workload, engines, rounds, int8)
                        table.add(workload.name, cells, workload.real_fraction, peak)
                        show(cells)
                        if int8 and checkpoint == "minilm":
                            table.accuracy = {
                                name: embedding_cosines(out, outputs[REFERENCE], workload.batches)
                                for name, out in outputs.items()
                                if name != REFERENCE
                            }
                    if checkpoint == "minilm" and not int8:
                        name = f"all-MiniLM-L6-v2, {len(texts)} texts, batch {BATCH_SIZE}, with tokenisation"
                        print(f"{table.title}: {name}", flush=True)
                        table.add(name, run_pipelines(engines, folder, tokenizer, texts, rounds))
                        show(table.rows[name])
                del engines
                stop_workers()
            write_results(list(tables.values()), header, notes, args)  # so far: an interrupted run leaves these


def show(cells: dict[str, Cell]) -> None:
    """One workload's results as they come: ratio (median), GEMM fraction, check or failure."""
    for name, cell in cells.items():
        gemm = f", {cell.gemm:.0%} of the GEMM bound" if cell.gemm else ""
        result = f"failed: {cell.failed}" if cell.failed else f"{cell_text(cell, 'time')}{gemm}; check {cell.check}"
        print(f"  {name:<24} {result}", flush=True)


def run_pipelines(
    engines: dict[str, Engine | str], folder: Path, tokenizer: Any, texts: list[str], rounds: int
) -> dict[str, Cell]:
    """Texts to sentence embeddings, tokenisation included: minibert and sentence-transformers their own way."""
    embedders: dict[str, Callable[[list[str]], torch.Tensor]] = {}
    cells: dict[str, Cell] = {}
    settings = {"batch_size": BATCH_SIZE, "convert_to_tensor": True}
    for name, engine in engines.items():
        if isinstance(engine, str):
            cells[name] = Cell("-", failed=engine)
        elif name == "minibert":
            embedders[name] = partial(SentenceEncoder(folder, device="cpu").encode, **settings)
        else:
            embedders[name] = embedding_pipeline(engine, tokenizer)
        if name == REFERENCE:
            theirs = SentenceTransformer(str(folder), device="cpu")
            embedders["sentence-transformers"] = partial(theirs.encode, **settings)
    runs = {name: partial(embed, texts) for name, embed in embedders.items()}
    expected = runs[REFERENCE]()
    for name, run in runs.items():
        if name == REFERENCE:
            cells[name] = Cell("reference")
            continue
        try:
            difference = float((run() - expected).abs().max())
        except Exception as error:  # reported in the table: the other engines still run
            cells[name] = Cell("-", failed=failure(error))
            continue
        failed = None if difference <= FP32_TOLERANCE else f"max abs difference {difference:.1e} > {FP32_TOLERANCE:g}"
        cells[name] = Cell(f"{difference:.1e} (embeddings)", failed=failed)
    passed = {name: run for name, run in runs.items() if cells[name].failed is None}
    summarise(alternate(passed, rounds), cells, 1, None, None)
    return cells


# -- the report -----------------------------------------------------------------------------


def machine(thread_counts: list[int]) -> list[str]:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    present = ", ".join(flag for flag in ISA_FLAGS if flag in flags.split()) or "none of " + ", ".join(ISA_FLAGS)
    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("torch", "transformers", "sentence-transformers", "onnxruntime", "openvino", "ctranslate2")
    )
    return [
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; torch ISA level "
        f"`{torch.backends.cpu.get_cpu_capability()}`; flags: {present}",
        f"- threads: {', '.join(map(str, thread_counts))} (every engine set to the same count)",
        f"- load average at the start: {os.getloadavg()[0]:.1f} (above 0 when other work shares the cores)",
        f"- huge pages for large CPU tensors (`minibert.allocator`): {'on' if huge_pages() else 'off'}, "
        "for every PyTorch engine here (they share the process)",
        f"- {versions}",
    ]


def cell_text(cell: Cell | None, show: str) -> str:
    if cell is None:
        return "-"
    if cell.failed:
        return "failed"
    if show == "check":
        return cell.check
    if show == "gemm":
        return f"{cell.gemm:.0%}" if cell.gemm is not None else "-"
    seconds = f"{cell.seconds * 1e3:.1f} ms" if cell.seconds < 1 else f"{cell.seconds:.2f} s"
    return f"{cell.ratio:.2f} ({seconds})"


def markdown(table: Table, show: str) -> list[str]:
    """One of a table's views: times and ratios, fractions of the GEMM bound, or the checks."""
    extra = {"time": "real tokens", "gemm": "matmul rate"}.get(show)
    lines = ["| workload | " + " | ".join([extra] * bool(extra) + table.engines) + " |"]
    lines.append("|---" * (len(table.engines) + 1 + bool(extra)) + "|")
    if show == "time" and table.accuracy:
        cosines = [table.accuracy.get(name, "-") for name in table.engines]
        lines.append("| all-MiniLM-L6-v2 embeddings: cosine against fp32 (mean, min) | | " + " | ".join(cosines) + " |")
    for workload, cells in table.rows.items():
        if show == "gemm" and workload not in table.rates:
            continue
        first = {
            "time": f"{table.real[workload]:.0%}" if workload in table.real else "-",
            "gemm": f"{table.rates.get(workload, 0) / 1e9:.0f} GFLOP/s",
        }
        columns = ([first[show]] if show in first else []) + [
            cell_text(cells.get(name), show) for name in table.engines
        ]
        lines.append(f"| {workload} | " + " | ".join(columns) + " |")
    return lines


HOW = """\
How each engine runs (same inputs, same thread count; `torch.inference_mode()` for the torch ones):

- transformers: `AutoModel.from_pretrained` (SDPA attention), the reference every other engine is checked against.
- minibert: `minibert.AutoModel.from_pretrained`, its default settings; with tokenisation, its own tokenizer and
  `minibert.encoders.SentenceEncoder.encode` (batches of similar lengths, as its tasks run them).
- sentence-transformers: `SentenceTransformer.encode` (with tokenisation only).
- ONNX Runtime: transformers' model (eager attention) exported by `torch.onnx.export` (TorchScript exporter,
  opset 17, dynamic batch and length), `CPUExecutionProvider`, intra-op threads as above, inter-op 1;
  "optimised": the same after `onnxruntime.transformers.optimizer.optimize_model(..., model_type="bert")`.
- OpenVINO: the raw ONNX export on the CPU plugin, `INFERENCE_PRECISION_HINT=f32` (it would pick bf16 on CPUs
  with AVX512_BF16 or AMX), `INFERENCE_NUM_THREADS` as above.
- CTranslate2: `ctranslate2.converters.TransformersConverter`, then `Encoder.forward_batch` on the padded ids and
  the lengths, `compute_type="float32"` (int8 table: `"int8"`), `intra_threads` as above.
- int8: ONNX Runtime `quantize_dynamic` (int8 weights) of the optimised model; CTranslate2 `compute_type="int8"`;
  minibert as noted under its table.
- Model only: pre-tokenised batches in the texts' order, padded to the longest (engine-specific input arrays
  made before timing). With tokenisation, for transformers, ONNX Runtime, OpenVINO and CTranslate2: the
  transformers fast tokenizer on sentence-transformers' batches (longest texts first), mean pooling, unit length.
"""


def write_results(tables: list[Table], header: list[str], notes: list[str], args: argparse.Namespace) -> None:
    options = " ".join(sys.argv[1:])
    command = "make bench-engines" + (f" ARGS='{options}'" if options else "")
    lines = [
        "# minibert next to ONNX Runtime, OpenVINO and CTranslate2 on CPU",
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d')}, {args.rounds or (2 if args.quick else 5)} rounds in which "
        "the engines take turns (a different one first each round).",
        "",
        *header,
        "",
        "Each time cell: the engine's time relative to transformers, the median of the per-round ratios (lower is",
        "faster), and in brackets its median time per pass (bert-base batch 1: per call). An engine whose outputs",
        f"differ from transformers' by more than {FP32_TOLERANCE:g} at real tokens (fp32), or whose int8 token vectors",
        f'have a mean cosine below {INT8_MIN_COSINE} against them, is not timed: "failed", with the reason below.',
        "",
    ]
    for table in tables:
        lines += [f"## {table.title}", "", *markdown(table, "time"), ""]
        if table.rates and not table.title.startswith("int8"):
            lines += ["Fraction of the matrix-multiply bound: forward FLOPs of the real tokens over the rate of a"]
            lines += ["1024x768x3072 `torch.matmul` (the better of just before and just after that workload, at the"]
            lines += ["same thread count).", ""]
            lines += [*markdown(table, "gemm"), ""]
        lines += ["Check before timing: max abs difference from transformers at real tokens.", ""]
        lines += [*markdown(table, "check"), ""]
        lines += [f"- {note}" for note in dict.fromkeys(table.notes)]
        lines += [""]
    lines += [HOW, *[f"- {note}" for note in notes]]
    DOCS.mkdir(exist_ok=True)
    (DOCS / "engines.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print("\n".join(lines))
    plot(tables)


def plot(tables: list[Table]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tables), 1, figsize=(12, 3.2 * len(tables)), squeeze=False)
    for ax, table in zip(axes[:, 0], tables, strict=True):
        engines = [name for name in table.engines if name != REFERENCE]
        rows = list(table.rows)
        height = 0.8 / max(1, len(engines))
        for index, engine in enumerate(engines):
            cells = [table.rows[row].get(engine) for row in rows]
            ratios = [cell.ratio if cell and cell.ratio is not None else 0.0 for cell in cells]
            ys = [y + index * height for y in range(len(rows))]
            ax.barh(ys, ratios, height=height, label=engine, color=f"C{ENGINES.index(engine) % 10}")
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks([y + 0.4 - height / 2 for y in range(len(rows))], [row.replace(", ", ",\n", 1) for row in rows])
        ax.tick_params(axis="y", labelsize="small")
        ax.invert_yaxis()
        ax.set_title(f"{table.title}: time relative to transformers (lower is faster; no bar: failed or not run)")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(DOCS / "engines.png", dpi=100)


if __name__ == "__main__":
    main()
