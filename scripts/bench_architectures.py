"""Every architecture minibert loads, against its transformers twin, on one padded workload.

Each architecture gets a base-sized checkpoint with random weights (hidden 768, 12 heads, made
here with transformers, no download; 6 layers to keep the run short) and the same batch: 32
sequences of U(16, 128) tokens padded to the longest, the shape of an embedding or classification
batch. Both libraries run their default inference path (minibert's unpads the batch by itself).
ONNX Runtime, where it is installed (``pip install -e '.[bench]'``), runs a TorchScript ONNX export of
transformers' model beside them: the one engine of ``scripts/bench_engines.py`` that takes every
architecture (CTranslate2 and ONNX Runtime's optimiser know BERT-like graphs only). Before timing,
every engine's outputs are compared with transformers' at the real tokens; the engines then
alternate, round by round, and the table gives medians and the ratios to transformers (lower is
faster). Results go to docs/architectures.md.

Run: .venv/bin/python scripts/bench_architectures.py [--quick] [--threads N] [--only bert,gte]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import cpu_name

DOCS = Path(__file__).resolve().parents[1] / "docs"
BASE = {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072, "num_hidden_layers": 6}

# model_type -> (transformers config class, fields on top of BASE); the vocabulary is kept at
# BERT's size everywhere: it changes the embedding lookup only, not the time of a forward.
ARCHITECTURES: dict[str, tuple[str, dict]] = {
    "bert": ("BertConfig", {}),
    "roberta": ("RobertaConfig", {}),
    "xlm-roberta": ("XLMRobertaConfig", {"vocab_size": 30522}),
    "albert": ("AlbertConfig", {"embedding_size": 128}),
    "distilbert": ("DistilBertConfig", {"dim": 768, "n_heads": 12, "hidden_dim": 3072, "n_layers": 6}),
    "electra": ("ElectraConfig", {"embedding_size": 768}),
    "mpnet": ("MPNetConfig", {}),
    "deberta-v2": (  # v3's layout: relative positions only, log buckets, shared keys
        "DebertaV2Config",
        {
            "relative_attention": True,
            "position_buckets": 256,
            "pos_att_type": ["p2c", "c2p"],
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "max_relative_positions": -1,
            "position_biased_input": False,
        },
    ),
    "modernbert": ("ModernBertConfig", {"intermediate_size": 1152, "vocab_size": 30522, "pad_token_id": 0}),
    "nomic_bert": ("NomicBertConfig", {"vocab_size": 30522}),
    "gte": ("GteConfig", {"vocab_size": 30522}),
}


def make_inputs(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """32 rows of U(16, 128) real tokens, padded on the right to the longest."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(16, 129, (32,), generator=generator)  # (B,)
    mask = (torch.arange(int(lengths.max())) < lengths[:, None]).long()  # (B, T)
    ids = torch.randint(5, min(vocab_size, 30000), mask.shape, generator=generator) * mask  # (B, T)
    return {"input_ids": ids, "attention_mask": mask}


def seconds(run: Callable[[], object]) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        run()
        return time.perf_counter() - start


class HiddenStates(torch.nn.Module):
    """transformers' model with positional inputs and one output, the form ``torch.onnx.export`` traces."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def onnxruntime_run(folder: str, inputs: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor] | str:
    """A call of ONNX Runtime on an export of transformers' model, or why there is none."""
    try:
        import onnxruntime
        import transformers

        model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
        path = str(Path(folder) / "model.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                HiddenStates(model),
                (inputs["input_ids"], inputs["attention_mask"]),
                path,
                dynamo=False,
                opset_version=17,
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask")},
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        # Its idle threads spin by default, taking the cores from whichever engine runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # shown in the table: an engine failing must not stop the others
        return f"{type(error).__name__}: {str(error).splitlines()[0][:80]}" if str(error) else type(error).__name__
    feed = {name: tensor.numpy() for name, tensor in inputs.items()}
    return lambda: torch.from_numpy(session.run(["last_hidden_state"], feed)[0])


def real_token_difference(run: Callable[[], torch.Tensor], expected: torch.Tensor, mask: torch.Tensor) -> float:
    """Largest |engine - transformers| of last_hidden_state over the real tokens."""
    with torch.inference_mode():
        hidden = run()  # (B, T, H)
    real = mask.bool()  # (B, T)
    return float((hidden[real] - expected[real]).abs().max())


def measure(model_type: str, repeats: int) -> dict[str, tuple[float, float, float] | str]:
    """Per engine: (median seconds, median ratio to transformers, max real-token difference), or why not run."""
    import transformers

    import minibert

    config_class, fields = ARCHITECTURES[model_type]
    config = getattr(transformers, config_class)(**{**BASE, **fields})
    inputs = make_inputs(config.vocab_size)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        transformers.AutoModel.from_config(config).save_pretrained(folder)
        ours = minibert.AutoModel.from_pretrained(folder)
        theirs = transformers.AutoModel.from_pretrained(folder).eval()
        runs: dict[str, Callable[[], torch.Tensor] | str] = {
            "transformers": lambda: theirs(**inputs).last_hidden_state,
            "minibert": lambda: ours(**inputs).last_hidden_state,
            "onnxruntime": onnxruntime_run(folder, inputs),
        }
    with torch.inference_mode():
        expected = theirs(**inputs).last_hidden_state  # (B, T, H)
    differences: dict[str, float] = {}
    for name, run in list(runs.items()):
        if callable(run):
            differences[name] = real_token_difference(run, expected, inputs["attention_mask"])  # also the warm-up
            if differences[name] > 1e-4:
                runs[name] = f"outputs differ from transformers' by {differences[name]:.1e}: not timed"
    timed = {name: run for name, run in runs.items() if callable(run)}
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(repeats):
        for name, run in timed.items():
            samples[name].append(seconds(run))
    results: dict[str, tuple[float, float, float] | str] = {}
    for name, run in runs.items():
        if name not in timed:
            results[name] = run
            continue
        ratios = [a / b for a, b in zip(samples[name], samples["transformers"], strict=True)]
        results[name] = (statistics.median(samples[name]), statistics.median(ratios), differences[name])
    return results


def cell(result: tuple[float, float, float] | str) -> str:
    return "failed" if isinstance(result, str) else f"{result[0]:.3f} s, {result[1]:.2f}x, diff {result[2]:.0e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", default="", help="comma-separated model types (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    chosen = [t for t in args.only.split(",") if t] or list(ARCHITECTURES)
    unknown = sorted(set(chosen) - set(ARCHITECTURES))
    if unknown:
        sys.exit(f"--only: unknown model types {unknown}; known: {', '.join(ARCHITECTURES)}")

    lines = [
        "# Every architecture against transformers",
        "",
        f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {args.threads} threads, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; `scripts/bench_architectures.py` on {time.strftime('%Y-%m-%d')}.",
        "Random base-sized weights (hidden 768, 12 heads, 6 layers); 32 sequences of U(16, 128) tokens padded "
        "to the longest; fp32, each library's default path. Medians of alternated rounds.",
        "",
        "Each cell: median time, median of the per-round ratios to transformers, max |difference| from",
        "transformers' last_hidden_state at the real tokens.",
        "",
        "| model_type | transformers | minibert (default) | ONNX Runtime (export of transformers' model) |",
        "|---|---|---|---|",
    ]
    failures: list[str] = []
    for model_type in chosen:
        results = measure(model_type, 3 if args.quick else 7)
        lines.append(f"| {model_type} | " + " | ".join(cell(r) for r in results.values()) + " |")
        failures += [f"- {model_type}, {name}: {r}" for name, r in results.items() if isinstance(r, str)]
        print(lines[-1], flush=True)
    real = int(make_inputs(30522)["attention_mask"].sum())
    lines += ["", f"Each batch holds {real} real tokens of 32 x {make_inputs(30522)['input_ids'].shape[1]}."]
    lines += ["", "Not timed:", *failures] if failures else []
    DOCS.mkdir(exist_ok=True)
    (DOCS / "architectures.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
