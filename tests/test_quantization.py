"""int8 inference (minibert.quantization): the integer arithmetic is exact, the models stay close to
transformers' float32, and what a quantized model cannot do fails with an error that says so."""

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from conftest import hf_model, make_inputs, ours_class
from sentence_transformers import SentenceTransformer
from torch import nn

import minibert.quantization
from minibert.encoders import SentenceEncoder
from minibert.linear import PackedLinear
from minibert.quantization import Int8Linear, quantize

# One architecture of each kind of layer stack: BERT's, ALBERT's shared layers, DistilBERT's, GTE's, DeBERTa's.
BASE_MODELS = [("BertModel", "bert-a"), ("AlbertModel", "albert-a"), ("DistilBertModel", "distilbert-a")]
BASE_MODELS += [("GteModel", "gte-a"), ("DebertaV2Model", "deberta-v3"), ("RobertaModel", "roberta-a")]
TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "Un homme mange du pain à Zürich 🍞",
    "The girl is carrying a baby.",
    "A much longer sentence that keeps going, so that the batch needs padding for every other text in it, "
    "and the rows of one batch differ in length by a lot.",
    "short",
]


def integer_reference(x: torch.Tensor, linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """The int8 product written out: symmetric per-row int8 of x and of W, int64 sums, float64 scaling.

    Returns the output and W's int8 values.
    """

    def int8(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = rows.abs().amax(dim=1, keepdim=True) / 127
        scale[scale == 0] = 1  # an all-zero row: values 0 whatever the scale
        return torch.round(rows / scale).long(), scale.double()

    values, scale = int8(x.reshape(-1, x.shape[-1]))
    weight, weight_scale = int8(linear.weight.detach())
    sums = values @ weight.T  # int64: exact
    out = sums.double() * scale * weight_scale.T + linear.bias.detach().double()
    return out.view(*x.shape[:-1], -1), weight


@pytest.fixture(params=["onednn", "int_mm"])
def kernel(request, monkeypatch):
    """Both kernels: oneDNN's int8 linear (this CPU build has it), and torch._int_mm (GPUs, other builds)."""
    if request.param == "int_mm":
        monkeypatch.setattr(minibert.quantization, "onednn_int8", lambda: False)
    elif not minibert.quantization.onednn_int8():
        pytest.skip("this PyTorch build has no oneDNN int8 linear")
    return request.param


@pytest.mark.parametrize(("shape", "k", "n"), [((64,), 384, 96), ((3, 5), 7, 5), ((1,), 1, 1), ((2, 17), 48, 37)])
def test_int8_linear_is_the_integer_product_scaled(kernel, shape, k, n):
    """Same int8 weights, exactly; outputs within float32 rounding of the scaling of exact integer sums."""
    torch.manual_seed(0)
    linear = nn.Linear(k, n)
    x = torch.randn(*shape, k) * torch.rand(*shape, 1) * 10  # rows of different ranges
    x.view(-1, k)[0] = 0  # an all-zero row
    layer = Int8Linear(linear)
    expected, weight = integer_reference(x, linear)
    assert torch.equal(layer.weight.long(), weight)
    with torch.inference_mode():
        out = layer(x)
    assert out.shape == (*shape, n) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))


def test_rows_are_quantized_alone(kernel):
    """Per-row scales: a token's output does not depend on the other rows of the batch, to the bit."""
    torch.manual_seed(0)
    layer = Int8Linear(nn.Linear(64, 32))
    x = torch.randn(10, 64)
    x[3] *= 100  # an outlier token: with one scale for the batch it would cost every other row precision
    with torch.inference_mode():
        together = layer(x)
        alone = torch.cat([layer(row[None]) for row in x])
    assert torch.equal(together, alone)


@pytest.mark.parametrize(("class_name", "config_name"), BASE_MODELS)
def test_quantized_model_stays_close_to_transformers_float32(class_name, config_name, tmp_path):
    """Within 2% (relative L2 norm, per token) of transformers' float32 hidden states, and truly quantized.

    Weights of std 0.1 (not 0.02) so that each block's projections weigh as much as the residual
    they are added to: at 0.02 the residual dominates and hides any error. Why 2%: each int8 operand
    is off by at most half a step, 1/254 of its row's largest value, so a layer's output is off by
    well under 1% of its scale, and LayerNorm rescales after every block, so two or three layers stay
    within about 1%. Measured: 0.4-0.7% at most, 0.3-0.5% on average.
    """
    theirs = hf_model(class_name, config_name, initializer_range=0.1)
    theirs.save_pretrained(tmp_path)
    model = quantize(ours_class(class_name).from_pretrained(tmp_path))
    inputs = make_inputs(config_name, batch=4, length=13)
    with torch.no_grad():
        ours = model(**inputs).last_hidden_state
        expected = theirs(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    error = (ours - expected)[real].norm(dim=-1) / expected[real].norm(dim=-1)  # (tokens,)
    assert float(error.max()) < 0.02
    assert float(error.mean()) > 1e-3  # int8 really ran: the float32 paths agree to 1e-6


def test_layers_in_the_blocks_are_quantized_and_the_rest_stays_float(checkpoint_dir):
    model = ours_class("BertForSequenceClassification").from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-a")
    )
    assert not any(isinstance(m, Int8Linear) for m in model.modules())  # never on by default
    with pytest.raises(ValueError, match="matches none of the layers"):  # the "bert." prefix is missing
        quantize(model, skip=["encoder.layer.*.output.dense"])
    with pytest.raises(ValueError, match="no nn.Linear inside a layer stack"):
        quantize(nn.Linear(2, 2))
    assert not any(isinstance(m, Int8Linear) for m in model.modules())  # refused before changing anything
    quantize(model, skip=["bert.encoder.layer.*.output.dense"])
    kinds = {name: type(module) for name, module in model.named_modules()}
    layer = "bert.encoder.layer.1"
    for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        assert kinds[f"{layer}.{name}"] is Int8Linear
    assert kinds[f"{layer}.intermediate.dense"] is Int8Linear
    assert kinds[f"{layer}.output.dense"] is PackedLinear  # skipped
    assert kinds["bert.pooler.dense"] is PackedLinear and kinds["classifier"] is PackedLinear
    attention = model.bert.encoder.layer[1].attention.self
    assert attention.query.shared is attention.key.shared is attention.value.shared  # one quantized input


def test_albert_shared_layer_is_quantized_once(checkpoint_dir):
    model = quantize(ours_class("AlbertModel").from_pretrained(checkpoint_dir("AlbertModel", "albert-a")))
    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert len(layers) == len({id(m) for m in layers}) == 6  # query, key, value, dense, ffn, ffn_output


def test_sentence_encoder_on_real_minilm_stays_within_int8_accuracy(minilm_dir):
    """The real all-MiniLM-L6-v2 through SentenceEncoder: cosine >= 0.99 to sentence-transformers' float32.

    scripts/bench_int8.py measures 0.9976 mean and 0.990 minimum over 500 real texts (torch.ao's
    dynamic int8: 0.937 and 0.67); these short texts sit well inside that.
    """
    encoder = SentenceEncoder(minilm_dir, device="cpu")
    quantize(encoder.model)
    ours = encoder.encode(TEXTS, convert_to_tensor=True)
    theirs = SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS, convert_to_tensor=True)
    cosine = F.cosine_similarity(ours, theirs)
    assert float(cosine.min()) > 0.99
    assert float(cosine.min()) < 0.99999  # int8 really ran


def test_backward_raises_and_forward_with_autograd_on_gives_the_same_values(checkpoint_dir):
    model = quantize(ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a")))
    model.set_unpadding(False)  # the layout autograd runs in, for inference too: same values expected
    inputs = make_inputs("bert-a")
    with torch.inference_mode():
        expected = model(**inputs).last_hidden_state
    model.train()
    outputs = model(**inputs).last_hidden_state  # autograd on: the embeddings' weights need gradients
    assert outputs.requires_grad
    model.eval()
    torch.testing.assert_close(model(**inputs).last_hidden_state.detach(), expected, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="int8 layers have no gradient"):
        outputs.sum().backward()


def test_save_pretrained_quantize_twice_and_pruning_refuse(checkpoint_dir, tmp_path):
    model = quantize(ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a")))
    with pytest.raises(ValueError, match=r"quantized.*save the model before quantize\(\)"):
        model.save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()
    with pytest.raises(ValueError, match="already quantized"):
        quantize(model)
    with pytest.raises(RuntimeError, match=r"prune heads or change layers on the float model, then quantize"):
        model.prune_heads({0: [1]})


def test_copies_and_pickles_compute_the_same(checkpoint_dir):
    """oneDNN's packed weights cannot be copied: they are left out, and packed again by the copy."""
    model = quantize(ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a")))
    inputs = make_inputs("bert-a")
    with torch.inference_mode():
        expected = model(**inputs).last_hidden_state  # packs the weights
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert torch.equal(other(**inputs).last_hidden_state, expected)


def test_shared_input_is_quantized_again_when_changed_in_place():
    torch.manual_seed(0)
    first, linear = Int8Linear(nn.Linear(16, 8)), nn.Linear(16, 8)
    second, alone = Int8Linear(linear, shared=first.shared), Int8Linear(linear)
    x = torch.randn(4, 16)
    with torch.no_grad():
        first(x)
        x.mul_(3)  # bumps the version counter: the cached int8 values are stale
        assert torch.equal(second(x), alone(x))


def test_bfloat16_models_quantize_and_keep_their_dtype(checkpoint_dir, reference):
    """Inputs are quantized from float32 whatever the model's dtype; outputs come back in that dtype.

    Within 3% of transformers' float32: bf16's own rounding (8 bits of mantissa, 0.4% a value) adds
    to int8's. Also after ``model.to(torch.bfloat16)``, which would cast the scales if left alone.
    """
    folder = checkpoint_dir("BertModel", "bert-a")
    inputs = make_inputs("bert-a", batch=4, length=13)
    with torch.no_grad():
        expected = reference("BertModel", "bert-a")(**inputs).last_hidden_state
    loaded = quantize(ours_class("BertModel").from_pretrained(folder, dtype=torch.bfloat16))
    cast = quantize(ours_class("BertModel").from_pretrained(folder)).to(torch.bfloat16)
    real = inputs["attention_mask"].bool()
    for model in (loaded, cast):
        with torch.inference_mode():
            ours = model(**inputs).last_hidden_state
        assert ours.dtype == torch.bfloat16
        error = (ours.float() - expected)[real].norm(dim=-1) / expected[real].norm(dim=-1)  # (tokens,)
        assert float(error.max()) < 0.03
