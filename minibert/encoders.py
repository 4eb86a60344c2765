"""Sentence embeddings and reranking, as sentence-transformers computes them.

A sentence-transformers folder is a pipeline written down in ``modules.json``: first a
Transformer (an encoder and its tokenizer, set up by ``sentence_bert_config.json``), then the
modules that turn its token vectors into one sentence vector: ``Pooling``, ``Dense``,
``Normalize``. ``SentenceEncoder`` reads that pipeline and runs it with minibert's models and
tokenizers; ``CrossEncoder`` scores text pairs with a sequence-classification model. They mirror
sentence-transformers 6.2: ``SentenceTransformer.encode`` and ``similarity``, ``CrossEncoder.predict``
and ``rank``, with the same defaults and return types.

Both run texts by token count on the unpadded path (``minibert.tasks.run_by_length``): the
vectors are those of plain padded batches, in the order the texts came.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert import hub
from minibert.auto import AutoConfig, AutoModel, AutoModelForSequenceClassification
from minibert.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from minibert.files import confined, read_json
from minibert.pretrained import PreTrainedModel
from minibert.tasks import check_positive, check_texts, check_top_k, run_by_length, warn_if_untrained
from minibert.tokenization import AutoTokenizer, PreTrainedTokenizer
from minibert.tokenization.normalizers import lowercase

MODULES_FILE = "modules.json"
MODEL_CONFIG_FILE = "config_sentence_transformers.json"
# The Transformer module's settings; the other names are what sentence-transformers 0.x wrote.
TRANSFORMER_CONFIG_FILES = [
    f"sentence_{name}_config.json"
    for name in ("bert", "roberta", "distilbert", "camembert", "albert", "xlm-roberta", "xlnet")
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


# -- the files of a folder, local or on the Hub ----------------------------------------------------


class ModelFiles:
    """The files of a sentence-transformers folder: a local folder, or a Hub repository fetched file by file."""

    def __init__(self, name_or_path: str | Path, revision: str | None = None, cache_dir: str | Path | None = None):
        self.name = name_or_path
        self.local = hub.is_local(name_or_path)
        self.where = {"revision": revision, "cache_dir": cache_dir}
        if self.local and not Path(name_or_path).expanduser().is_dir():
            raise CheckpointNotFoundError(f"{name_or_path}: no such folder")

    def get(self, relative: str) -> Path | None:
        """The path of a file of the folder (``1_Pooling/config.json``), None if it has none.

        A module path in ``modules.json`` is data from the folder: one that leads outside it is refused.
        """
        if self.local:
            folder = Path(self.name).expanduser()
            path = folder / relative
            if path.exists():
                confined(path, folder, CheckpointError, entry=relative)
            return path if path.is_file() else None
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise CheckpointError(f"{self.name}: {relative}: a path outside the repository")
        return hub.hub_download(str(self.name), relative, self.where["revision"], self.where["cache_dir"])

    def json(self, relative: str) -> Any:
        """A JSON file of the folder (regular, bounded in size and depth), None if it has none."""
        path = self.get(relative)
        if path is None:
            return None
        root = path.parents[len(Path(relative).parts) - 1]  # the folder (or Hub snapshot) the file belongs to
        return read_json(path, root, CheckpointError)

    def where_is(self, relative: str) -> str:
        """A file's name for error messages."""
        return f"{Path(self.name).expanduser() / relative}" if self.local else f"{self.name}: {relative}"

    def model_source(self, path: str) -> str | Path:
        """What minibert's ``from_pretrained`` reads for the Transformer module kept in ``path``.

        A local sub-folder, or a Hub repository; the older layout keeps it in ``0_Transformer/``, whose files
        are fetched one by one (``from_pretrained`` itself only reads a repository's top level).
        """
        if self.local:
            return Path(self.name).expanduser() / path
        if not path:
            return str(self.name)
        config = self.get(f"{path}/config.json")
        single_files = [name for name in hub.WEIGHT_FILES if not name.endswith(".index.json")]
        weights = next((w for w in (self.get(f"{path}/{name}") for name in single_files) if w is not None), None)
        if config is None or weights is None:
            raise CheckpointNotFoundError(f"{self.where_is(path)}: no config.json and unsharded weights there")
        for name in TOKENIZER_FILES:
            self.get(f"{path}/{name}")
        return config.parent


def known_keys(config: dict[str, Any], known: set[str], where: str) -> dict[str, Any]:
    """``config`` if every key is one minibert reads: an unknown one could change the outputs."""
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"{where}: minibert does not support the setting(s) {', '.join(unknown)}")
    return config


def torch_module(path: str | None, where: str) -> nn.Module:
    """A torch module named by its class path, e.g. ``torch.nn.modules.activation.Tanh`` -> ``nn.Tanh()``.

    Only classes of torch itself: sentence-transformers runs others with ``trust_remote_code`` only.
    """
    if path is None:
        return nn.Identity()
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None) if path.startswith("torch.") else None
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"{where}: activation {path!r} is not a torch.nn module class; minibert runs only those")
    return cls()


# -- the modules after the Transformer ---------------------------------------------------------


class Pooling(nn.Module):
    """Token vectors -> one sentence vector (sentence-transformers' ``Pooling``).

    Mirrors ``Pooling._forward_padded`` in sentence_transformers/sentence_transformer/modules/pooling.py
    for right-padded batches (the only kind ``run_by_length`` makes). Several modes are concatenated,
    in the order given; ``include_prompt=False`` leaves the prompt's tokens out.
    """

    MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
    # Older folders name each mode by a flag; a folder setting several concatenates them in this order.
    LEGACY_FLAGS = {
        "pooling_mode_cls_token": "cls",
        "pooling_mode_max_tokens": "max",
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens": "weightedmean",
        "pooling_mode_lasttoken": "lasttoken",
    }

    def __init__(
        self, embedding_dimension: int, pooling_mode: str | Sequence[str] = "mean", include_prompt: bool = True
    ) -> None:
        super().__init__()
        self.modes = (pooling_mode,) if isinstance(pooling_mode, str) else tuple(pooling_mode)
        for mode in self.modes:
            if mode not in self.MODES:
                raise ConfigError(f"pooling mode {mode!r} is not one of {', '.join(self.MODES)}")
        self.embedding_dimension = embedding_dimension
        self.include_prompt = include_prompt

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> Pooling:
        config = dict(config)
        flags = {key: config.pop(key) for key in cls.LEGACY_FLAGS if key in config}
        if flags and "pooling_mode" not in config:
            config["pooling_mode"] = [mode for key, mode in cls.LEGACY_FLAGS.items() if flags.get(key)] or "mean"
        if "word_embedding_dimension" in config:
            config.setdefault("embedding_dimension", config.pop("word_embedding_dimension"))
        known_keys(config, {"embedding_dimension", "pooling_mode", "include_prompt"}, where)
        if "embedding_dimension" not in config:
            raise ConfigError(f"{where}: a Pooling module needs embedding_dimension")
        try:
            return cls(**config)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error

    def output_dimension(self) -> int:
        return len(self.modes) * self.embedding_dimension

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        tokens = features["token_embeddings"]  # (B, T, H)
        mask = features["attention_mask"]  # (B, T)
        prompt_length = features.get("prompt_length")
        if prompt_length and not self.include_prompt:
            mask = mask.clone()
            mask[:, :prompt_length] = 0
        features["sentence_embedding"] = torch.cat([self.pool(mode, tokens, mask) for mode in self.modes], dim=-1)
        return features

    @staticmethod
    def pool(mode: str, tokens: Tensor, mask: Tensor) -> Tensor:
        """One mode's (B, H) vectors; sums accumulate in float32 for half-precision tokens, as there."""
        _, length, width = tokens.shape  # (B, T, H)
        accumulate = torch.float32 if tokens.dtype in (torch.float16, torch.bfloat16) else tokens.dtype
        if mode == "cls":  # the first token counted (after the prompt, if it is left out)
            first = mask.to(torch.int).argmax(dim=1)  # (B,)
            return tokens.gather(1, first.view(-1, 1, 1).expand(-1, 1, width)).squeeze(1)
        if mode == "max":
            return tokens.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).max(dim=1).values
        if mode in ("mean", "mean_sqrt_len_tokens"):
            counted = mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
            total = (tokens * counted).sum(dim=1, dtype=accumulate)  # (B, H)
            count = counted.sum(dim=1, dtype=accumulate).clamp(min=1e-9)  # (B, 1)
            return (total / (count if mode == "mean" else count.sqrt())).to(tokens.dtype)
        if mode == "weightedmean":  # token i (from 1) weighs i
            weights = torch.arange(1, length + 1, device=tokens.device, dtype=accumulate).view(1, -1, 1)
            weights = mask.unsqueeze(-1).to(accumulate) * weights  # (B, T, 1)
            total = (tokens * weights).sum(dim=1)  # (B, H)
            return (total / weights.sum(dim=1).clamp(min=1e-9)).to(tokens.dtype)
        # lasttoken: the last token counted; a row with none counts position T - 1 (a zero vector)
        found, from_end = mask.flip(1).max(dim=1)  # (B,)
        last = length - 1 - torch.where(found == 0, length - 1, from_end)
        kept = tokens * mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, H)
        return kept.gather(1, last.view(-1, 1, 1).expand(-1, 1, width)).squeeze(1)


class Dense(nn.Module):
    """A linear layer and its activation, optionally with a residual (sentence-transformers' ``Dense``).

    State-dict keys ``linear.weight``, ``linear.bias`` (and ``residual.weight``), as in its folder's weights.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation_function: nn.Module | None = None,
        module_input_name: str = "sentence_embedding",
        module_output_name: str | None = None,
        use_residual: bool = False,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation_function = nn.Tanh() if activation_function is None else activation_function
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name or module_input_name
        self.use_residual = use_residual
        if use_residual and in_features != out_features:
            self.residual = nn.Linear(in_features, out_features, bias=False)

    @classmethod
    def from_files(cls, files: ModelFiles, path: str) -> Dense:
        where = files.where_is(f"{path}/config.json")
        config = dict(files.json(f"{path}/config.json") or {})
        known = {"in_features", "out_features", "bias", "activation_function", "module_input_name"}
        known |= {"module_output_name", "use_residual"}
        known_keys(config, known, where)
        if not {"in_features", "out_features"} <= config.keys():
            raise ConfigError(f"{where}: a Dense module needs in_features and out_features")
        if "activation_function" in config:  # absent: sentence-transformers' default, tanh
            config["activation_function"] = torch_module(config["activation_function"], where)
        dense = cls(**config)
        weights = files.get(f"{path}/model.safetensors")
        if weights is not None:
            from safetensors.torch import load_file

            state = load_file(weights)
        else:
            weights = files.get(f"{path}/pytorch_model.bin")
            if weights is None:
                raise CheckpointError(
                    f"{files.where_is(path)}: the Dense module has no model.safetensors or pytorch_model.bin"
                )
            state = torch.load(weights, map_location="cpu", weights_only=True)
        expected = dense.state_dict().keys()
        if state.keys() != expected:
            raise CheckpointError(
                f"{weights}: the Dense module's weights are {sorted(state)}, expected {sorted(expected)}"
            )
        dense.load_state_dict(state)
        return dense

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        x = features[self.module_input_name]  # (B, in_features)
        out = self.activation_function(self.linear(x))  # (B, out_features)
        if self.use_residual:
            out = out + (self.residual(x) if hasattr(self, "residual") else x)
        features[self.module_output_name] = out
        return features


class Normalize(nn.Module):
    """Unit length (L2) vectors (sentence-transformers' ``Normalize``)."""

    def __init__(self, module_input_name: str = "sentence_embedding", module_output_name: str | None = None) -> None:
        super().__init__()
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name or module_input_name

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        features[self.module_output_name] = F.normalize(features[self.module_input_name], p=2, dim=-1)
        return features


# What may follow the Transformer in modules.json.
MODULE_KINDS = ("Pooling", "Dense", "Normalize")


# -- reading the Transformer module's settings ----------------------------------------------------


def transformer_settings(files: ModelFiles, path: str, task: str) -> dict[str, Any]:
    """The Transformer module's ``sentence_bert_config.json`` (or an older name): what minibert honours of it.

    Returns ``max_seq_length``, ``model_max_length`` (a tokenizer limit set there) and ``do_lower_case``;
    settings that would change the outputs and minibert cannot honour are an error naming them.
    """
    prefix = f"{path}/" if path else ""
    name = next((n for n in TRANSFORMER_CONFIG_FILES if files.get(prefix + n) is not None), None)
    config = dict(files.json(prefix + name) or {}) if name else {}
    where = files.where_is(prefix + (name or TRANSFORMER_CONFIG_FILES[0]))
    if config.get("transformer_task", task) != task:
        other = {"feature-extraction": "SentenceEncoder", "sequence-classification": "CrossEncoder"}
        other = other.get(config["transformer_task"], "another library")
        raise ConfigError(f"{where}: transformer_task is {config['transformer_task']!r}, not {task!r}: use {other}")
    output = "last_hidden_state" if task == "feature-extraction" else "logits"
    modality = config.get("modality_config", {"text": {"method": "forward", "method_output_name": output}})
    if modality != {"text": {"method": "forward", "method_output_name": output}}:
        raise ConfigError(f"{where}: modality_config {modality} is not plain text through forward: unsupported")
    limits: dict[str, Any] = {}
    for key in ("processor_kwargs", "tokenizer_args", "model_kwargs", "model_args", "config_kwargs", "config_args"):
        # trust_remote_code is dropped by sentence-transformers too; a tokenizer limit is honoured.
        settings = {k: v for k, v in (config.pop(key, None) or {}).items() if k != "trust_remote_code"}
        if key in ("processor_kwargs", "tokenizer_args") and "model_max_length" in settings:
            limits["model_max_length"] = settings.pop("model_max_length")
        if settings:
            raise ConfigError(f"{where}: minibert does not support the {key} {settings}")
    produced = "token_embeddings" if task == "feature-extraction" else "scores"
    if config.get("module_output_name", produced) != produced:
        raise ConfigError(f"{where}: module_output_name {config['module_output_name']!r} is not {produced!r}")
    known = {"max_seq_length", "do_lower_case", "transformer_task", "modality_config", "module_output_name"}
    known_keys({k: v for k, v in config.items() if k != "unpad_inputs"}, known, where)  # unpadding: speed only
    return {
        "max_seq_length": config.get("max_seq_length"),
        "do_lower_case": config.get("do_lower_case", False),
    } | limits


def max_seq_length_of(settings: dict[str, Any], tokenizer: PreTrainedTokenizer, model: PreTrainedModel) -> int:
    """sentence-transformers' rule: a limit the folder sets, else the tokenizer's, capped at the model's positions.

    Mirrors ``Transformer.__init__`` in sentence_transformers/base/modules/transformer.py.
    """
    for key in ("model_max_length", "max_seq_length"):
        if settings.get(key) is not None:
            return int(settings[key])
    return min(tokenizer.model_max_length, model.config.max_position_embeddings)


def lowercase_first(tokenizer: PreTrainedTokenizer) -> None:
    """``do_lower_case``: lowercase before the tokenizer's own normalisation, unless it lowercases already.

    As sentence-transformers does: it prepends tokenizers' ``Lowercase`` to the normalizer unless the normalizer
    is, or holds, a ``Lowercase`` (a BERT normalizer that lowercases does not count).
    """
    spec = (tokenizer.files.tokenizer_json or {}).get("normalizer") if tokenizer.files else None
    parts = (spec.get("normalizers") or [spec]) if spec else []
    if any(part.get("type") == "Lowercase" for part in parts):
        return
    inner = tokenizer.normalizer
    tokenizer.normalizer = lowercase if inner is None else lambda text: inner(lowercase(text))


def resolve_prompt(prompts: dict[str, str], default: str | None, prompt: str | None, name: str | None) -> str | None:
    """The prompt to prepend: ``prompt``, else the one named ``name``, else the default prompt's (as there)."""
    if prompt is not None:
        if name is not None:
            warnings.warn("both prompt and prompt_name given: prompt_name is ignored", stacklevel=3)
        return prompt
    if name is not None:
        if name not in prompts:
            raise ValueError(f"prompt_name {name!r} is not one of the prompts {sorted(prompts)}")
        return prompts[name]
    return prompts.get(default) if default is not None else None


def read_model_config(files: ModelFiles, kind: str) -> dict[str, Any]:
    """``config_sentence_transformers.json`` (empty if absent); a folder saved as another kind is refused."""
    config = files.json(MODEL_CONFIG_FILE) or {}
    saved = config.get("model_type", kind)
    if saved != kind:
        raise ConfigError(f"{files.where_is(MODEL_CONFIG_FILE)}: the folder holds a {saved}, not a {kind}")
    return config


def merged_prompts(
    config: dict[str, Any], prompts: dict[str, str] | None, default: str | None, where: str
) -> tuple[dict[str, str], str | None]:
    """The folder's prompts under the caller's, and the default prompt's name (the caller's first), checked."""
    merged = {**(config.get("prompts") or {}), **(prompts or {})}
    default = default if default is not None else config.get("default_prompt_name")
    if default is not None and default not in merged:
        raise ConfigError(f"{where}: default_prompt_name {default!r} is not one of the prompts {sorted(merged)}")
    return merged, default


def default_device() -> str:
    """A GPU if there is one, as sentence-transformers picks."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def output(rows: Tensor, single: bool, convert_to_numpy: bool, convert_to_tensor: bool) -> Any:
    """sentence-transformers' return types: one tensor, a numpy array (the default), or a list of tensors."""
    if convert_to_tensor:
        result: Any = rows
    elif convert_to_numpy:
        result = (rows.float() if rows.dtype == torch.bfloat16 else rows).cpu().numpy()
    else:
        result = list(rows)
    return result[0] if single else result


# -- sentence embeddings ------------------------------------------------------------------------


SIMILARITIES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cosine": lambda a, b: F.normalize(a, p=2, dim=-1) @ F.normalize(b, p=2, dim=-1).T,
    "dot": lambda a, b: a @ b.T,
    "euclidean": lambda a, b: -torch.cdist(a, b, p=2.0),
    "manhattan": lambda a, b: -torch.cdist(a, b, p=1.0),
}


class SentenceEncoder(nn.Module):
    """A sentence-transformers model, run with minibert: ``sentence_transformers.SentenceTransformer``.

    ``model_name_or_path`` is a sentence-transformers folder (or Hub id), or a plain encoder checkpoint,
    which gets mean pooling as sentence-transformers gives it. ``encode`` takes its arguments and
    returns what it returns; ``similarity`` compares embeddings with the folder's function (cosine
    unless it says otherwise). The encoder is ``self.model`` (a minibert model of any architecture
    minibert supports), its tokenizer ``self.tokenizer``, and the modules after it ``self.steps``.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        super().__init__()
        files = ModelFiles(model_name_or_path, revision, cache_dir)
        entries = files.json(MODULES_FILE)
        path = ""
        if entries is None:
            warnings.warn(
                f"{model_name_or_path}: no {MODULES_FILE}, so not a sentence-transformers folder: its sentence "
                "vectors are the mean of its token vectors, as sentence-transformers makes them for such a folder",
                stacklevel=2,
            )
        else:
            path = self.check_modules(entries, files)
        # Without modules.json sentence-transformers reads no sentence_bert_config.json either.
        settings = {} if entries is None else transformer_settings(files, path, "feature-extraction")
        source = files.model_source(path)
        self.model = AutoModel.from_pretrained(source, dtype=dtype, device=device or default_device(), **files.where)
        warn_if_untrained(self.model, "sentence embedding", unused=("pooler.",))
        self.tokenizer = AutoTokenizer.from_pretrained(source, **files.where)
        self.max_seq_length = max_seq_length_of(settings, self.tokenizer, self.model)
        if settings.get("do_lower_case"):
            lowercase_first(self.tokenizer)
        if entries is None:
            steps: list[nn.Module] = [Pooling(self.model.config.hidden_size, "mean")]
        else:
            steps = [self.read_module(entry, files) for entry in entries[1:]]
        self.steps = nn.ModuleList(steps).to(self.model.device, self.model.dtype)

        config = read_model_config(files, "SentenceTransformer")
        where = files.where_is(MODEL_CONFIG_FILE)
        self.prompts, self.default_prompt_name = merged_prompts(config, prompts, default_prompt_name, where)
        self.truncate_dim = truncate_dim if truncate_dim is not None else config.get("truncate_dim")
        self.similarity_fn_name = config.get("similarity_fn_name") or "cosine"
        if self.similarity_fn_name not in SIMILARITIES:
            raise ConfigError(
                f"{where}: similarity_fn_name {self.similarity_fn_name!r} is not one of {list(SIMILARITIES)}"
            )
        self.eval()

    @staticmethod
    def check_modules(entries: Any, files: ModelFiles) -> str:
        """The Transformer module's folder; every module must be one minibert runs, the Transformer first."""
        where = files.where_is(MODULES_FILE)
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{where}: expected a list of modules, got {entries!r:.80}")
        for entry in entries:
            kind = module_kind(entry)
            if kind not in ("Transformer", *MODULE_KINDS):
                raise ConfigError(
                    f"{where}: module {entry.get('name')!r} is a {entry.get('type')!r}, which minibert cannot run; "
                    f"it runs Transformer, {', '.join(MODULE_KINDS)}"
                )
        if module_kind(entries[0]) != "Transformer" or any(module_kind(e) == "Transformer" for e in entries[1:]):
            raise ConfigError(f"{where}: minibert runs one Transformer module, first; the modules are {entries}")
        return entries[0].get("path", "")

    @staticmethod
    def read_module(entry: dict[str, Any], files: ModelFiles) -> nn.Module:
        path, kind = entry.get("path", ""), module_kind(entry)
        if kind == "Dense":
            return Dense.from_files(files, path)
        where = files.where_is(f"{path}/config.json")
        config = files.json(f"{path}/config.json") or {}
        if kind == "Pooling":
            return Pooling.from_config(config, where)
        return Normalize(**known_keys(config, {"module_input_name", "module_output_name"}, where))

    @property
    def device(self) -> torch.device:
        return self.model.device

    def get_embedding_dimension(self) -> int | None:
        """The width of the vectors ``encode`` returns."""
        width = None
        for step in self.steps:
            if isinstance(step, Pooling):
                width = step.output_dimension()
            elif isinstance(step, Dense) and step.module_output_name == "sentence_embedding":
                width = step.linear.out_features
        return min(width, self.truncate_dim) if width and self.truncate_dim else width

    get_sentence_embedding_dimension = get_embedding_dimension  # its name before sentence-transformers 6

    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
    ) -> Any:
        """Embeddings of the sentences: an (N, D) numpy array by default, one (D,) vector for one string.

        As ``SentenceTransformer.encode``: ``convert_to_tensor=True`` gives one tensor on the model's device,
        both flags False a list of tensors; ``output_value="token_embeddings"`` gives each text's token
        vectors. A prompt (``prompt``, or one named by ``prompt_name``, else the folder's default) is put
        before each text. ``show_progress_bar=None`` shows none. ``device`` moves the model there first.
        """
        texts, single = check_texts(sentences, "sentences")
        check_positive(batch_size, "batch_size")
        if output_value not in ("sentence_embedding", "token_embeddings"):
            raise ValueError(f"output_value must be 'sentence_embedding' or 'token_embeddings', got {output_value!r}")
        if precision != "float32":
            raise ValueError(
                f"precision {precision!r} is not supported: minibert returns float32 embeddings; quantize them with "
                "sentence_transformers.quantization.quantize_embeddings"
            )
        truncate_dim = self.truncate_dim if truncate_dim is None else truncate_dim
        if truncate_dim is not None:
            check_positive(truncate_dim, "truncate_dim")
        if device is not None:
            self.to(device)
        convert_to_numpy = convert_to_numpy and not convert_to_tensor
        prompt = resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)
        prompt_length = self.prompt_length(prompt) if prompt else None

        def run(inputs: dict[str, Tensor]) -> list[Tensor] | Tensor:
            features = self.forward(inputs, prompt_length)
            if output_value == "token_embeddings":
                lengths = inputs["attention_mask"].sum(dim=1).tolist()
                return [vectors[:n] for vectors, n in zip(features["token_embeddings"], lengths, strict=True)]
            embeddings = features["sentence_embedding"][:, :truncate_dim]  # (B, D)
            if normalize_embeddings:
                embeddings = F.normalize(embeddings, p=2, dim=1)
            return embeddings.cpu() if convert_to_numpy else embeddings

        rows = run_by_length(
            [(prompt or "") + text for text in texts],
            lambda chunk: self.tokenizer(chunk, truncation=True, max_length=self.max_seq_length),
            run,
            model=self.model,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=batch_size,
            show_progress_bar=bool(show_progress_bar),
        )
        if output_value == "token_embeddings":
            return rows[0] if single else rows
        return output(torch.stack(rows), single, convert_to_numpy, convert_to_tensor)

    def forward(self, inputs: dict[str, Tensor], prompt_length: int | None = None) -> dict[str, Any]:
        """One batch through the pipeline: the features dict (``sentence_embedding``, ``token_embeddings``, ...)."""
        hidden = self.model(**inputs).last_hidden_state  # (B, T, H)
        features: dict[str, Any] = {"token_embeddings": hidden, "attention_mask": inputs["attention_mask"]}
        if prompt_length:
            features["prompt_length"] = prompt_length
        for step in self.steps:
            features = step(features)
        return features

    def prompt_length(self, prompt: str) -> int:
        """The prompt's tokens at the start of each text, a final special token not counted (as there)."""
        ids = self.tokenizer(prompt, truncation=True, max_length=self.max_seq_length)["input_ids"]
        return len(ids) - 1 if ids and ids[-1] in self.tokenizer.special_ids else len(ids)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """(N, M) scores of every pair, with ``similarity_fn_name``'s function (cosine by default).

        Takes what ``encode`` returns: tensors, numpy arrays, lists of vectors, single vectors.
        """
        function = SIMILARITIES[self.similarity_fn_name]
        return function(as_matrix(embeddings1), as_matrix(embeddings2))


def module_kind(entry: dict[str, Any]) -> str | None:
    """``sentence_transformers.models.Pooling`` (or any module path of the package) -> ``Pooling``."""
    kind = str(entry.get("type", ""))
    return kind.rpartition(".")[2] if kind.startswith("sentence_transformers.") else None


def as_matrix(embeddings: Any) -> Tensor:
    """A float (N, D) tensor from a tensor, an array, a list of either, or one vector (N = 1)."""
    if isinstance(embeddings, list | tuple) and embeddings and not isinstance(embeddings[0], float | int):
        embeddings = torch.stack([torch.as_tensor(e) for e in embeddings])
    matrix = torch.as_tensor(embeddings)
    matrix = matrix.float() if matrix.dtype in (torch.float16, torch.bfloat16) else matrix
    return matrix.unsqueeze(0) if matrix.dim() == 1 else matrix


# -- reranking ---------------------------------------------------------------------------------


class CrossEncoder(nn.Module):
    """Scores text pairs with a sequence-classification model: ``sentence_transformers.CrossEncoder``.

    The scores go through ``activation_fn``: the one given, else the folder's, else sigmoid for a
    one-label model and none (the logits) for more, as sentence-transformers 6.2 does;
    ``apply_softmax=True`` turns several labels into probabilities. ``max_length`` caps the pair's
    tokens (default: the folder's limit).
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        max_length: int | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
        device: str | torch.device | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        super().__init__()
        files = ModelFiles(model_name_or_path, revision, cache_dir)
        entries = files.json(MODULES_FILE)
        path = ""
        if entries is not None:
            if not isinstance(entries, list) or len(entries) != 1 or module_kind(entries[0]) != "Transformer":
                raise ConfigError(
                    f"{files.where_is(MODULES_FILE)}: minibert runs cross-encoders of one Transformer module, "
                    f"got {entries!r:.200}"
                )
            path = entries[0].get("path", "")
        settings = {} if entries is None else transformer_settings(files, path, "sequence-classification")
        if max_length is not None:
            check_positive(max_length, "max_length")
            settings["model_max_length"] = max_length
        source = files.model_source(path)
        config = AutoConfig.from_pretrained(source, **files.where)
        # A checkpoint without a classifier gets a new one-label head, as sentence-transformers gives it.
        heads = [a for a in config.architectures or [] if a.endswith("ForSequenceClassification")]
        overrides = {} if heads else {"num_labels": 1}
        self.model = AutoModelForSequenceClassification.from_pretrained(
            source, dtype=dtype, device=device or default_device(), **files.where, **overrides
        )
        warn_if_untrained(self.model, "reranking")
        self.tokenizer = AutoTokenizer.from_pretrained(source, **files.where)
        self.max_seq_length = max_seq_length_of(settings, self.tokenizer, self.model)
        if settings.get("do_lower_case"):
            lowercase_first(self.tokenizer)
        saved = read_model_config(files, "CrossEncoder")
        where = files.where_is(MODEL_CONFIG_FILE)
        self.prompts, self.default_prompt_name = merged_prompts(saved, prompts, default_prompt_name, where)
        self.activation_fn = self.saved_activation(saved, files) if activation_fn is None else activation_fn
        self.eval()

    def saved_activation(self, saved: dict[str, Any], files: ModelFiles) -> Callable[[Tensor], Tensor]:
        """The folder's activation: config_sentence_transformers.json's, then config.json's, then the default.

        Mirrors ``CrossEncoder._parse_model_config`` and ``get_default_activation_fn``.
        """
        extra = self.model.config.extra
        named = saved.get("activation_fn") or (extra.get("sentence_transformers") or {}).get("activation_fn")
        named = named or extra.get("sbert_ce_default_activation_function")
        if named:
            return torch_module(
                named, files.where_is(MODEL_CONFIG_FILE if saved.get("activation_fn") else "config.json")
            )
        return nn.Sigmoid() if self.num_labels == 1 else nn.Identity()

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    @property
    def device(self) -> torch.device:
        return self.model.device

    def predict(
        self,
        sentences: Sequence[str] | Sequence[Sequence[str]],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Scores of text pairs: (N,) for a one-label model, (N, num_labels) otherwise; one pair gives one score.

        Returns a numpy array by default, one tensor with ``convert_to_tensor=True``, else a list of tensors.
        A prompt goes before the first text of each pair.
        """
        pairs, single = check_pairs(sentences)
        check_positive(batch_size, "batch_size")
        activation = self.activation_fn if activation_fn is None else activation_fn
        prompt = resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name) or ""

        def run(inputs: dict[str, Tensor]) -> Tensor:
            scores = self.model(**inputs).logits  # (B, num_labels)
            scores = activation(scores.float() if torch.finfo(scores.dtype).bits < 32 else scores)
            if self.num_labels == 1:
                scores = scores.squeeze(-1)  # (B,)
            elif apply_softmax:
                scores = scores.softmax(dim=1)
            return scores

        rows = run_by_length(
            [(prompt + first, second) for first, second in pairs],
            lambda chunk: self.tokenizer(
                [first for first, _ in chunk],
                [second for _, second in chunk],
                truncation="longest_first",
                max_length=self.max_seq_length,
            ),
            run,
            model=self.model,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=batch_size,
            show_progress_bar=bool(show_progress_bar),
        )
        return output(torch.stack(rows), single, convert_to_numpy and not convert_to_tensor, convert_to_tensor)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> list[dict[str, Any]]:
        """The documents by decreasing score against the query: ``{"corpus_id", "score"[, "text"]}`` each.

        ``top_k`` keeps the best ones (default: all). For one-label models, as in sentence-transformers.
        """
        if self.num_labels != 1:
            raise ValueError(
                f"rank() needs a one-label model, and this one has {self.num_labels} labels: use predict() on pairs"
            )
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        documents, _ = check_texts(documents, "documents")
        if top_k is not None:
            check_top_k(top_k, len(documents), "documents")
        scores = self.predict(
            [(query, document) for document in documents],
            prompt_name=prompt_name,
            prompt=prompt,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            activation_fn=activation_fn,
            convert_to_tensor=True,
        ).tolist()
        results = [{"corpus_id": i, "score": score} for i, score in enumerate(scores)]
        if return_documents:
            for result in results:
                result["text"] = documents[result["corpus_id"]]
        return sorted(results, key=lambda result: result["score"], reverse=True)[:top_k]


def check_pairs(sentences: Any) -> tuple[list[tuple[str, str]], bool]:
    """The pairs as a list, and whether one pair was given (a list or tuple of two strings)."""
    if isinstance(sentences, list | tuple) and sentences and isinstance(sentences[0], str):
        sentences, single = [sentences], True
    else:
        single = False
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError(f"sentences must be a list of (text, text) pairs, got {type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError("sentences is empty: give at least one (text, text) pair")
    for i, pair in enumerate(sentences):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise TypeError(f"sentences[{i}] must be a pair of two strings, got {pair!r:.80}")
    return [(first, second) for first, second in sentences], single
