"""PackedLinear: inference on the CPU multiplies with a packed copy of the weight, and gives F.linear's
results; the copy follows every change to the weight, and training, tracing and copies never see it.
JoinedLinear multiplies several layers as one; linear_then lets oneDNN's product apply GELU."""

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_outputs_close, inputs_for, ours_class
from torch import nn

from minibert import linear
from minibert.linear import MKL, ONEDNN, ONEDNN_BFLOAT16, JoinedLinear, PackedLinear, linear_then

pytestmark = pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN packed linear (not x86)")


@pytest.fixture(autouse=True)
def packed_from_the_second_call(monkeypatch):
    """As in use: conftest packs from the first call, for the rest of the suite."""
    monkeypatch.setattr(PackedLinear, "warm", False)
    monkeypatch.setattr(JoinedLinear, "warm", False)


@pytest.fixture
def threads():
    """Set torch's thread count for one test, then put it back."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def packed_layer(in_features: int = 48, out_features: int = 40, dtype: torch.dtype = torch.float32) -> PackedLinear:
    torch.manual_seed(0)
    layer = nn.Linear(in_features, out_features, dtype=dtype)
    layer.__class__ = PackedLinear
    return layer


@pytest.mark.parametrize("thread_count", [1, 2])
@pytest.mark.parametrize("rows", [1, 3, 16, 32, 300, 700, 1024, 1500, 2048])
@pytest.mark.parametrize("out_features", [40, 96])
def test_float32_products_equal_f_linear_and_take_the_kernel_measured_fastest(
    thread_count, rows, out_features, threads
):
    threads(thread_count)
    layer = packed_layer(out_features=out_features)
    x = torch.randn(rows, 48)
    with torch.no_grad():
        first, out = layer(x), layer(x)
    assert torch.equal(first, F.linear(x, layer.weight, layer.bias))  # a layer's first call never packs
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-6, atol=1e-6)
    assert set(layer.packed or {}) == expected_kernels(thread_count, rows, wide=out_features >= 2 * 48)


def expected_kernels(threads: int, rows: int, wide: bool) -> set[str]:
    """The kernel measured fastest (minibert.linear), as the set of packed copies a layer then keeps."""
    if threads == 1 and MKL:  # MKL's at any number of rows
        return {"mkl"}
    if threads == 2 and MKL and (rows % 1024 == 0 or (wide and 32 <= rows <= 512)):
        return {"mkl"}  # on whole multiples of the 1,024 rows it packs for, and on wide weights
    return {"onednn"} if 2 <= rows <= 512 else set()  # oneDNN's on few rows, F.linear on more


def test_a_layer_keeps_a_packed_copy_per_kernel_so_that_alternating_inputs_never_repack(threads):
    """At two threads short inputs take oneDNN's product and full batches MKL's: a server sees both."""
    if not MKL:
        pytest.skip("this PyTorch build has no MKL packed product")
    threads(2)
    layer = packed_layer()
    short, full = torch.randn(16, 48), torch.randn(8, 128, 48)
    with torch.no_grad():
        layer(short), layer(short), layer(full)
        packs = dict(layer.packed)
        for x in (short, full, short, full):
            torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-6, atol=1e-6)
    assert set(packs) == {"onednn", "mkl"}
    assert all(layer.packed[k][1] is packs[k][1] for k in packs)  # the same copies: none was made again
    with torch.no_grad():
        layer.weight.mul_(2)
        torch.testing.assert_close(layer(short), F.linear(short, layer.weight, layer.bias), rtol=1e-6, atol=1e-6)
    assert set(layer.packed) == {"onednn"}  # the copy for MKL was of the old weight: dropped, not kept


@pytest.mark.skipif(not ONEDNN_BFLOAT16, reason="oneDNN has no bf16 on this CPU")
def test_bfloat16_products_equal_f_linear():
    layer = packed_layer(dtype=torch.bfloat16)
    x = torch.randn(2, 7, 48, dtype=torch.bfloat16)  # (B, T, in): any leading shape
    with torch.no_grad():
        layer(x)
        out = layer(x)
    assert layer.packed is not None and out.shape == (2, 7, 40) and out.dtype == torch.bfloat16
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("thread_count", [1, 2])
def test_the_packed_copy_follows_every_change_to_the_weight(thread_count, threads):
    threads(thread_count)
    layer = packed_layer()
    x = torch.randn(5, 48)

    def check() -> None:
        with torch.no_grad():
            layer(x)  # warm: the second call packs
            out = layer(x)
        assert layer.packed is not None
        torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-6, atol=1e-6)

    check()
    with torch.no_grad():
        layer.weight.mul_(2)  # in place: an optimizer step
    check()
    layer.load_state_dict({"weight": torch.randn(40, 48), "bias": torch.randn(40)})
    check()
    layer.weight.data = torch.randn(40, 48)  # a new tensor behind the same parameter
    check()
    layer.weight = nn.Parameter(torch.randn(40, 48))  # a new parameter
    check()
    kept = layer.weight
    layer.weight = nn.Parameter(torch.randn(40, 48))  # a new parameter while the old one lives on
    check()
    del kept


def test_training_never_uses_the_packed_copy_and_its_gradients_are_nn_linears():
    layer = packed_layer()
    plain = copy.deepcopy(layer)
    plain.__class__ = nn.Linear
    x = torch.randn(6, 48)
    layer(x).square().sum().backward()
    plain(x).square().sum().backward()
    assert layer.packed is None
    assert torch.equal(layer.weight.grad, plain.weight.grad) and torch.equal(layer.bias.grad, plain.bias.grad)


def test_a_traced_layer_records_f_linear_not_the_packed_kernel():
    """An export (TorchScript, ONNX) must not depend on oneDNN's private operators."""
    layer = packed_layer()
    with torch.no_grad():
        traced = torch.jit.trace(layer, torch.randn(4, 48))
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert "aten::linear" in kinds and not any("mkl" in kind for kind in kinds)


@pytest.mark.parametrize("thread_count", [1, 2])
def test_models_pack_by_default_and_match_transformers_at_batch_one(thread_count, threads, checkpoint_dir, reference):
    threads(thread_count)
    model = ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is PackedLinear for m in linears)
    inputs = inputs_for("BertModel", "bert-a", batch=1, length=9)
    with torch.no_grad():
        model(**inputs)  # the first call of each layer runs unpacked
        ours = model(**inputs)
        theirs = reference("BertModel", "bert-a")(**inputs)
    for layer in model.encoder.layer:  # 9 rows each: query, key and value packed joined, the rest alone
        assert layer.attention.self.joined.packed is not None
        assert all(m.packed is None for m in layer.attention.self.projections())
        assert all(m.packed is not None for m in (layer.attention.output.dense, layer.intermediate.dense))
    assert_outputs_close(ours, theirs)


def test_copies_pickles_and_switching_packing_off_keep_the_outputs(checkpoint_dir):
    model = ours_class("BertForSequenceClassification").from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-a")
    )
    inputs = inputs_for("BertForSequenceClassification", "bert-a", batch=2, length=7)
    with torch.no_grad():
        model(**inputs)
        expected = model(**inputs).logits  # packs every layer
        copied = copy.deepcopy(model)
        pickled = pickle.loads(pickle.dumps(model))
        for other in (copied, pickled):
            assert all(getattr(m, "packed", None) is None for m in other.modules())
            assert all(m.joined.packed is None for m in other.modules() if hasattr(m, "joined"))
            other(**inputs)
            torch.testing.assert_close(other(**inputs).logits, expected, rtol=0, atol=0)  # packed again
        keys = list(model.state_dict())
        model.set_weight_packing(False)
        assert not any(isinstance(m, PackedLinear) for m in model.modules())
        assert all(m.joined.packed is None for m in model.modules() if hasattr(m, "joined"))  # freed at once
        torch.testing.assert_close(model(**inputs).logits, expected)
        model.set_weight_packing(True)
        assert list(model.state_dict()) == keys
        model(**inputs)
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=0, atol=0)


def test_packing_stays_as_chosen_through_float32_products_and_a_resized_vocabulary(checkpoint_dir):
    config = ours_class("BertForMaskedLM").from_pretrained(checkpoint_dir("BertForMaskedLM", "bert-a")).config
    model = ours_class("BertForMaskedLM")(config.replace(tie_word_embeddings=False))  # a decoder of its own
    model.resize_token_embeddings(model.config.vocab_size + 3)
    assert type(model.cls.predictions.decoder) is PackedLinear
    model.set_weight_packing(False)
    model.set_float32_matmuls(True)
    model.set_float32_matmuls(False)
    assert not any(isinstance(m, PackedLinear) for m in model.modules())
    model.set_weight_packing(True)
    model.set_float32_matmuls(True)
    model.set_float32_matmuls(False)
    assert all(type(m) is PackedLinear for m in model.modules() if isinstance(m, nn.Linear))


def projections(widths=(40, 40, 24), bias: bool = True) -> list[PackedLinear]:
    """Layers reading one 48-wide input, as attention's query, key and value do."""
    torch.manual_seed(0)
    layers = [nn.Linear(48, width, bias=bias) for width in widths]
    for layer in layers:
        layer.__class__ = PackedLinear
    return layers


def each_alone(layers: list[nn.Linear], x: torch.Tensor) -> list[torch.Tensor]:
    return [F.linear(x, layer.weight, layer.bias) for layer in layers]


@pytest.mark.parametrize("thread_count", [1, 2])
@pytest.mark.parametrize("rows", [1, 16, 64, 200, 512, 1500])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("widths", [(40, 40, 24), (8, 8, 8)])
def test_joined_projections_give_each_layers_own_output_from_one_packed_product(
    thread_count, rows, bias, widths, threads
):
    threads(thread_count)
    layers, joined = projections(widths, bias=bias), JoinedLinear()
    x = torch.randn(2, rows, 48)
    with torch.no_grad():
        first = joined(layers, x)
        assert joined.packed is None  # a first call runs each layer: nothing packed for a one-off call
        outputs = joined(layers, x)
    for out, expected in zip(outputs, each_alone(layers, x), strict=True):
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(first, each_alone(layers, x), strict=True))
    expected = expected_kernels(thread_count, 2 * rows, wide=sum(widths) >= 2 * 48)  # the joined weight's
    assert set(joined.packed or {}) == expected  # none: F.linear's rows, each layer as usual
    assert all(layer.packed is None for layer in layers)  # the joined copy stands in for theirs


def test_a_hook_on_a_projection_sees_its_own_call(threads):
    """A forward hook (activation patching, feature capture) must see and may replace a layer's output."""
    layers, joined = projections(), JoinedLinear()
    x = torch.randn(5, 48)
    seen = []
    handle = layers[1].register_forward_hook(lambda module, inputs, output: seen.append(output) or output * 0)
    with torch.no_grad():
        joined(layers, x)
        outputs = joined(layers, x)
    assert len(seen) == 2 and torch.equal(outputs[1], torch.zeros(5, 40))
    torch.testing.assert_close(outputs[0], each_alone(layers, x)[0], rtol=1e-6, atol=1e-6)
    handle.remove()
    everywhere = nn.modules.module.register_module_forward_pre_hook(lambda module, inputs: seen.append(module))
    try:
        with torch.no_grad():
            joined(layers, x)
    finally:
        everywhere.remove()
    assert seen[2:] == layers  # a global hook sees every layer's call too
    with torch.no_grad():
        joined(layers, x), joined(layers, x)
    assert joined.packed is not None  # no hook left: one product (from the second call the product could take)
    assert all(layer.packed is None for layer in layers)  # the copies they made while hooked are dropped


def test_the_joined_copy_follows_every_change_to_the_weights_and_biases():
    layers, joined = projections(), JoinedLinear()
    x = torch.randn(7, 48)

    def check() -> None:
        with torch.no_grad():
            joined(layers, x)
            outputs = joined(layers, x)
        assert joined.packed is not None
        for out, expected in zip(outputs, each_alone(layers, x), strict=True):
            torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)

    check()
    with torch.no_grad():
        layers[2].weight.mul_(2)  # in place, one of the three: an optimizer step
    check()
    with torch.no_grad():
        layers[0].bias.add_(1)
    check()
    layers[1].load_state_dict({"weight": torch.randn(40, 48), "bias": torch.randn(40)})
    check()
    layers[1].weight = nn.Parameter(torch.randn(40, 48))
    check()


def test_joined_projections_train_as_separate_layers_and_mixed_classes_stay_apart():
    layers, joined = projections(), JoinedLinear()
    joined.warm = True  # as after a first call: only training keeps the layers apart
    plain = copy.deepcopy(layers)
    for layer in plain:
        layer.__class__ = nn.Linear
    x = torch.randn(6, 48)
    sum(out.square().sum() for out in joined(layers, x)).backward()
    sum(out.square().sum() for out in each_alone(plain, x)).backward()
    assert joined.packed is None
    for ours, theirs in zip(layers, plain, strict=True):
        assert torch.equal(ours.weight.grad, theirs.weight.grad) and torch.equal(ours.bias.grad, theirs.bias.grad)
    with torch.no_grad():
        joined(layers, x)
    assert joined.packed is not None
    layers[0].__class__ = nn.Linear  # e.g. packing turned off, or int8 layers in their place
    with torch.no_grad():
        outputs = joined(layers, x)
    assert joined.packed is None  # the joined copy is not kept for layers it no longer serves
    torch.testing.assert_close(outputs, each_alone(layers, x))


def test_an_input_of_the_wrong_width_gets_f_linears_error_not_a_packed_kernels_garbage():
    layer, layers, joined = packed_layer(), projections(), JoinedLinear()
    x = torch.randn(4, 47)  # the layers take 48
    with torch.no_grad():
        for _ in range(2):  # the second call would take the packed product
            with pytest.raises(RuntimeError, match="cannot be multiplied"):
                layer(x)
            with pytest.raises(RuntimeError, match="cannot be multiplied"):
                joined(layers, x)


# -- a product then GELU -----------------------------------------------------------------------


@pytest.mark.parametrize("thread_count", [1, 2])
@pytest.mark.parametrize("rows", [1, 16, 700, 2048])
def test_gelu_applied_by_the_product_gives_the_product_then_gelu(thread_count, rows, threads):
    threads(thread_count)
    layer = packed_layer(out_features=96)
    x = torch.randn(rows, 48)
    expected = F.gelu(F.linear(x, layer.weight, layer.bias))
    with torch.no_grad():
        outputs = [linear_then(layer, x, F.gelu) for _ in range(2)]  # the second may take oneDNN's product
        packable = linear.kernel_for(x, layer.weight, layer.out_features) is not None
        fused = packable and rows >= linear.FUSED_GELU_MIN_ROWS
        # One copy: oneDNN's with GELU in it, or the layer's own product's (none where F.linear's is used).
        assert set(layer.packed or {}) == ({"onednn"} if fused else expected_kernels(thread_count, rows, wide=True))
        relu, product = linear_then(layer, x, F.relu), layer(x)
    for out in outputs:
        torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(relu, F.relu(product))  # another activation: the layer's product, then the activation


def test_gelu_stays_apart_on_large_weights_with_hooks_and_with_grad(monkeypatch, threads):
    threads(1)  # the layer's own product is then MKL's, not the oneDNN one GELU would be applied by
    layer, x = packed_layer(out_features=96), torch.randn(2048, 48)
    monkeypatch.setattr(linear, "FUSED_GELU_MAX_BYTES", layer.weight.numel() * 4 - 1)  # a weight too large
    with torch.no_grad():
        linear_then(layer, x, F.gelu), linear_then(layer, x, F.gelu)
    assert set(layer.packed or {}) == expected_kernels(1, 2048, wide=True)  # the layer's own product's
    assert "onednn" not in (layer.packed or {})
    monkeypatch.undo()
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        out = linear_then(layer, x, F.gelu)
    handle.remove()
    assert len(seen) == 1 and torch.equal(out, F.gelu(seen[0]))  # the hook saw the product before GELU
    layer.train()
    out = linear_then(layer, x, F.gelu)
    out.sum().backward()
    reference = nn.Linear(48, 96)
    reference.load_state_dict(layer.state_dict())
    F.gelu(reference(x)).sum().backward()
    assert torch.equal(layer.weight.grad, reference.weight.grad)
