"""Property-based tests: mutated files and inputs either work as transformers' do, or fail with minibert's errors.

Each test takes a valid input (a safetensors header, a config.json, a sharded index, a tokenizer.json,
forward inputs), mutates it as hypothesis chooses, and checks the promise: minibert raises one of its own
documented errors (``MinibertError``: ConfigError, CheckpointError, TokenizerError, InputError), or it
succeeds and its outputs equal transformers' (or tokenizers') on the same input, within a time and a
memory bound. ``MINIBERT_FUZZ_EXAMPLES`` sets how many examples each test runs (``scripts/fuzz.py`` runs
thousands); the default keeps the file within the test suite's budget.
"""

import json
import math
import os
import resource
import shutil
import struct
import time
import warnings
from contextlib import contextmanager

import pytest
import tokenizers
import torch
import transformers
from conftest import make_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert
from minibert.config import field_types

EXAMPLES = int(os.environ.get("MINIBERT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the bound is checked below, generously: the machine may be shared
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECONDS = 10  # per example
MEMORY = 1 << 30  # peak resident memory may grow this much over a whole test


@contextmanager
def bounded():
    """Fail if the block takes more than SECONDS, or the process's peak memory grows by more than MEMORY."""
    peak, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter()
    yield
    assert time.perf_counter() - start < SECONDS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak < MEMORY


@pytest.fixture(autouse=True)
def small_models(monkeypatch):
    """Mutated widths and counts are refused past 64 MB, so no example builds a large model."""
    monkeypatch.setenv("MINIBERT_MAX_MODEL_SIZE", "64MB")


def attempt(call):
    """``call()``'s result, or None if it raised one of minibert's errors; any other exception fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    except minibert.MinibertError:
        return None


def real_token_outputs(model, inputs):
    with torch.no_grad():
        hidden = model(**inputs, return_dict=True).last_hidden_state  # (B, T, H)
    return hidden[inputs["attention_mask"] != 0]


def same_as_transformers(folder, ours):
    """Ours, loaded from ``folder``, computes what transformers computes from it (unless it initialised weights)."""
    report = ours.load_report
    if report.missing or report.mismatched:  # random weights on both sides: nothing to compare
        return
    try:
        theirs = transformers.BertModel.from_pretrained(folder, dtype=torch.float32).eval()
    except Exception as error:
        pytest.fail(f"minibert loaded {folder}, transformers refused it: {error!r}")
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    for name in ours_state.keys() & theirs_state.keys():  # the very tensors: bit for bit, NaN included
        torch.testing.assert_close(ours_state[name], theirs_state[name], rtol=0, atol=0, equal_nan=True, msg=name)
    # Outputs too. A mutated header can point a tensor at misaligned bytes: huge values and NaN, where
    # two correct kernels differ in rounding by far more than an absolute 1e-4.
    inputs = make_inputs("bert-a")
    ours_out, theirs_out = real_token_outputs(ours, inputs), real_token_outputs(theirs, inputs)
    torch.testing.assert_close(ours_out, theirs_out, atol=1e-4, rtol=1e-4, equal_nan=True)


def json_values(max_leaves=4):
    """Any JSON value: what a hostile file may hold in place of the expected one."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-3, 130)
        | st.integers(-(2**63), 2**64)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
        max_leaves=max_leaves,
    )


# -- a safetensors header ------------------------------------------------------------------


def split_safetensors(data):
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def join_safetensors(header, body):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


@st.composite
def header_mutations(draw, header):
    """A function of (header, data) -> file bytes: one edit of the header's entries, or of the raw bytes."""
    keys = sorted(k for k in header if k != "__metadata__")
    key = draw(st.sampled_from(keys))
    dtypes = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "U32", "BOOL", "F8_E4M3", "F8_E5M2", "Q4", 5]
    edits = {
        "dtype": lambda h: h[key].update(dtype=draw(st.sampled_from(dtypes))),
        "shape": lambda h: h[key].update(shape=draw(st.lists(st.integers(-2, 4000), max_size=3))),
        "offsets": lambda h: h[key].update(data_offsets=draw(st.lists(st.integers(-1, 200_000), max_size=3))),
        "same offsets as another": lambda h: h[key].update(data_offsets=h[draw(st.sampled_from(keys))]["data_offsets"]),
        "entry": lambda h: h.update({key: draw(json_values())}),
        "delete": lambda h: h.pop(key),
        "rename": lambda h: h.update({draw(st.text(max_size=30) | st.sampled_from(keys)): h.pop(key)}),
        "metadata": lambda h: h.setdefault("__metadata__", {}).update({draw(st.text(max_size=5)): draw(json_values())}),
    }
    kind = draw(st.sampled_from([*edits, "length prefix", "flip byte", "truncate"]))
    if kind in edits:
        edited = json.loads(json.dumps(header))
        edits[kind](edited)
        return lambda data: join_safetensors(edited, split_safetensors(data)[1])
    if kind == "length prefix":
        value = draw(st.integers(0, 2**64 - 1))
        return lambda data: struct.pack("<Q", value) + data[8:]
    position = draw(st.integers(0, 8 + len(json.dumps(header))))
    if kind == "flip byte":
        byte = draw(st.integers(0, 255))
        return lambda data: data[:position] + bytes([byte]) + data[position + 1 :]
    return lambda data: data[:position]


@pytest.fixture(scope="module")
def safetensors_base(checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-a")
    data = (folder / "model.safetensors").read_bytes()
    return folder, data, split_safetensors(data)[0]


@FUZZ
@given(data=st.data())
def test_mutated_safetensors_header(safetensors_base, tmp_path_factory, data):
    source, original, header = safetensors_base
    mutate = data.draw(header_mutations(header))
    folder = tmp_path_factory.mktemp("safetensors")
    shutil.copyfile(source / "config.json", folder / "config.json")
    (folder / "model.safetensors").write_bytes(mutate(original))
    with bounded():
        ours = attempt(lambda: minibert.BertModel.from_pretrained(folder))
        if ours is not None:
            same_as_transformers(folder, ours)


# -- a config.json ---------------------------------------------------------------------------

CONFIG_FIELDS = [*sorted(field_types(minibert.BertConfig)), "model_type", "my_own_key"]


def config_mutations():
    """One to three edits: a field set to a nearby number, or to any JSON value; or removed."""
    nearby = st.integers(-2, 130) | st.sampled_from([0.0, 0.5, 1, 1e-5, 10**9, float("nan"), "gelu", "relu", True])
    value = nearby | json_values()
    edit = st.tuples(st.sampled_from(CONFIG_FIELDS), st.one_of(st.just("delete"), value))
    return st.lists(edit, min_size=1, max_size=3)


def as_transformers_types(values):
    """transformers 5's configs refuse an int where a float is typed; minibert takes it as that float."""
    floats = {name for name, hint in field_types(minibert.BertConfig).items() if "float" in str(hint)}
    return {k: float(v) if k in floats and type(v) is int else v for k, v in values.items()}


@FUZZ
@given(edits=config_mutations())
def test_mutated_config(checkpoint_dir, tmp_path_factory, edits):
    source = checkpoint_dir("BertModel", "bert-a")
    folder = tmp_path_factory.mktemp("config")
    shutil.copyfile(source / "model.safetensors", folder / "model.safetensors")
    values = json.loads((source / "config.json").read_text())
    for name, value in edits:
        if value == "delete":
            values.pop(name, None)
        else:
            values[name] = value
    (folder / "config.json").write_text(json.dumps(values))
    with bounded():
        ours = attempt(lambda: minibert.BertModel.from_pretrained(folder))
        if ours is not None:
            (folder / "config.json").write_text(json.dumps(as_transformers_types(values)))
            same_as_transformers(folder, ours)


# -- a sharded index -------------------------------------------------------------------------


@st.composite
def index_mutations(draw, index):
    """One to three edits of the weight_map (or of the index as a whole)."""
    weight_map = dict(index["weight_map"])
    keys, shards = sorted(weight_map), sorted(set(weight_map.values()))
    names = st.sampled_from(
        [*shards, "../model-00001.safetensors", "/etc/hostname", "", ".", "absent.safetensors", "sub/../x"]
    )
    result = {"metadata": index.get("metadata", {}), "weight_map": weight_map}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["move", "rename shard", "delete", "add", "junk map", "junk entry", "junk index"]))
        key = draw(st.sampled_from(keys))
        if kind == "move" and key in weight_map:
            weight_map[key] = draw(st.sampled_from(shards))
        elif kind == "rename shard" and key in weight_map:
            weight_map[key] = draw(names | st.text(max_size=12))
        elif kind == "delete":
            weight_map.pop(key, None)
        elif kind == "add":
            weight_map[draw(st.text(max_size=20))] = draw(st.sampled_from(shards))
        elif kind == "junk entry":
            weight_map[key] = draw(json_values())
        elif kind == "junk map":
            result["weight_map"] = draw(json_values())
        elif kind == "junk index":
            return draw(json_values())
    return result


@pytest.fixture(scope="module")
def sharded_base(checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-a", "sharded-safetensors")
    return folder, json.loads((folder / "model.safetensors.index.json").read_text())


@FUZZ
@given(data=st.data())
def test_mutated_index(sharded_base, tmp_path_factory, data):
    source, index = sharded_base
    folder = tmp_path_factory.mktemp("index")
    shutil.copytree(source, folder, dirs_exist_ok=True)
    (folder / "model.safetensors.index.json").write_text(json.dumps(data.draw(index_mutations(index))))
    with bounded():
        ours = attempt(lambda: minibert.BertModel.from_pretrained(folder))
        if ours is not None:
            same_as_transformers(folder, ours)


# -- a tokenizer.json ------------------------------------------------------------------------


def base_tokenizers():
    """A small WordPiece, byte-level BPE and Unigram tokenizer.json, written by tokenizers."""
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", "a", "b", "##b"])}
    wordpiece = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="[UNK]"))
    wordpiece.normalizer = tokenizers.normalizers.BertNormalizer()
    wordpiece.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = tokenizers.processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = tokenizers.pre_tokenizers.ByteLevel.alphabet()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=290, initial_alphabet=alphabet, show_progress=False)
    bpe.train_from_iterator(["hello world", "lower lowest low", "abab ab"], trainer)
    pieces = [("<unk>", 0.0), ("▁", -2.0), ("a", -3.0), ("b", -3.0), ("ab", -2.5), ("▁hello", -2.0)]
    unigram = tokenizers.Tokenizer(tokenizers.models.Unigram(pieces, unk_id=0))
    unigram.normalizer = tokenizers.normalizers.Sequence(
        [tokenizers.normalizers.NFKC(), tokenizers.normalizers.Replace(tokenizers.Regex(" {2,}"), " ")]
    )
    unigram.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
    return [json.loads(t.to_str()) for t in (wordpiece, bpe, unigram)]


BASE_TOKENIZERS = base_tokenizers()
TEXTS = ["hello world", "a b ab abab", "Héllo  WORLD!", "", "hellos [SEP] b", "lower  lowest"]


def paths(value, prefix=(), depth=0):
    """Every path into a JSON value, down to four levels (long lists and maps: their first entries)."""
    yield prefix
    if depth == 4 or not isinstance(value, dict | list):
        return
    for key, child in list(value.items() if isinstance(value, dict) else enumerate(value))[:12]:
        yield from paths(child, (*prefix, key), depth + 1)


# Parts of tokenizer.json minibert does not read (tokenizers does): minibert has no offsets, nor a default
# truncation or padding of its own.
UNREAD = {"version", "truncation", "padding", "trim_offsets"}


@st.composite
def tokenizer_mutations(draw):
    """A base tokenizer.json, and a copy with one to three entries deleted or replaced by any JSON value."""
    base = draw(st.sampled_from(BASE_TOKENIZERS))
    spec = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in paths(spec) if p and not UNREAD & set(p)]))
        parent = spec
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values())
    return base, spec


def with_defaults(spec, base, top=True):
    """``spec`` with the fields its entries lack (or hold as null) taken from ``base``: those minibert gives defaults.

    At the top, null means "none" (no normalizer, no pre-tokenizer) for both: those stay as they are; a
    vocabulary is data, not fields, and stays as it is too.
    """
    if not (isinstance(spec, dict) and isinstance(base, dict)):
        return spec
    filled = dict(spec)
    for key, value in base.items():
        if filled.get(key) is None and not top:
            filled[key] = value
        elif key in filled and key not in ("vocab", "merges"):
            filled[key] = with_defaults(filled[key], value, top=False)
    return filled


@FUZZ
@given(mutation=tokenizer_mutations())
def test_mutated_tokenizer_json(tmp_path_factory, mutation):
    """tokenizers refuses a file that lacks a field it has no default for; minibert takes the default (a
    missing continuing_subword_prefix is "##"). So where tokenizers refuses what minibert reads, the same
    file with those fields filled in must be one tokenizers reads, to the same ids as minibert's."""
    base, spec = mutation
    folder = tmp_path_factory.mktemp("tokenizer")
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    with bounded():
        ours = attempt(lambda: minibert.PreTrainedTokenizer.from_pretrained(folder))
        if ours is None:
            return
        try:
            theirs = tokenizers.Tokenizer.from_str(json.dumps(spec))
        except Exception as refused:
            try:
                theirs = tokenizers.Tokenizer.from_str(json.dumps(with_defaults(spec, base)))
            except Exception as error:
                pytest.fail(f"minibert read what tokenizers refuses ({refused}; {error}): {json.dumps(spec)[:400]}")
        for text in TEXTS:
            ids = attempt(lambda text=text: ours.encode(text))
            if ids is not None:
                assert ids == theirs.encode(text).ids, text


# -- forward inputs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(checkpoint_dir, reference):
    return minibert.BertModel.from_pretrained(checkpoint_dir("BertModel", "bert-a")), reference("BertModel", "bert-a")


ID_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.float32, torch.bool]
MASK_VALUES = [0, 1, 0.5, 2, -1, float("nan")]
SPECIAL_FLOATS = [float("nan"), float("inf"), -float("inf"), 1e30]


@st.composite
def forward_inputs(draw):
    batch, length = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 5, 11, 64, 65]))

    def tensor(values, dtype, shape=(batch, length)):
        count = math.prod(shape)
        return torch.tensor(draw(st.lists(values, min_size=count, max_size=count))).reshape(shape).to(dtype)

    inputs = {}
    if draw(st.booleans()):
        inputs["input_ids"] = tensor(st.integers(-3, 101), draw(st.sampled_from(ID_DTYPES)))
    else:
        embeds = torch.randn(batch, length, draw(st.sampled_from([32, 32, 31])))
        for _ in range(draw(st.integers(0, 3))):
            row, position = draw(st.integers(0, batch - 1)), draw(st.integers(0, length - 1))
            embeds[row, position] = draw(st.sampled_from(SPECIAL_FLOATS))
        inputs["inputs_embeds"] = embeds.to(draw(st.sampled_from([torch.float32, torch.float32, torch.float64])))
    if draw(st.booleans()):
        mask_dtype = draw(st.sampled_from([torch.float32, torch.long, torch.bool]))
        inputs["attention_mask"] = tensor(st.sampled_from(MASK_VALUES), mask_dtype)
    if draw(st.booleans()):
        inputs["token_type_ids"] = tensor(st.integers(-1, 2), torch.long)
    if draw(st.booleans()):
        shape = draw(st.sampled_from([(batch, length), (1, length), (length,), (batch, length + 1)]))
        inputs["position_ids"] = tensor(st.integers(-1, 65), draw(st.sampled_from([torch.long, torch.float32])), shape)
    return inputs


def transformers_reading(inputs):
    """The inputs as transformers would compute what minibert computes: ids as int64, padding embeddings finite.

    minibert accepts ids of any integer dtype (transformers: int32 and int64), and hides padding keys and
    values, so that NaN or Inf in padding embeddings never reaches real tokens (in transformers it does).
    """
    fixed = dict(inputs)
    for name in ("input_ids", "token_type_ids", "position_ids"):
        value = fixed.get(name)
        if value is not None and not value.dtype.is_floating_point and value.dtype != torch.bool:
            fixed[name] = value.long()
    embeds, mask = fixed.get("inputs_embeds"), fixed.get("attention_mask")
    if embeds is not None and mask is not None and embeds.shape[:2] == mask.shape:
        fixed["inputs_embeds"] = embeds.masked_fill((mask == 0)[..., None], 0.0)
    return fixed


@FUZZ
@given(inputs=forward_inputs())
def test_mutated_forward_inputs(models, inputs):
    ours, theirs = models
    with bounded():
        with torch.no_grad():
            result = attempt(lambda: ours(**inputs))
        if result is None:
            return
        fixed = transformers_reading(inputs)
        try:
            with torch.no_grad():
                expected = theirs(**fixed).last_hidden_state
        except Exception as error:
            pytest.fail(f"minibert ran inputs transformers refuses ({error!r})")
        mask = inputs.get("attention_mask")
        real = torch.ones(result.last_hidden_state.shape[:2], dtype=torch.bool) if mask is None else mask != 0
        torch.testing.assert_close(result.last_hidden_state[real], expected[real], atol=1e-4, rtol=0, equal_nan=True)
