"""transformers' calling conventions work unchanged: each call a transformers user writes, against transformers."""

import inspect

import pytest
import torch
import transformers
from conftest import (
    CLASSES,
    assert_outputs_close,
    assert_real_tokens_close,
    config_names_for,
    inputs_for,
    make_inputs,
    ours_class,
)
from safetensors.torch import load_file

import minibert
from minibert.config import config_class_for

FIRST = [(c, config_names_for(c)[0]) for c in CLASSES]


# -- from_pretrained's arguments ---------------------------------------------------------


def test_from_pretrained_takes_transformers_keyword_for_the_path(checkpoint_dir, reference):
    folder = checkpoint_dir("BertForMaskedLM", "bert-a")
    inputs = make_inputs("bert-a")
    theirs = reference("BertForMaskedLM", "bert-a")
    for ours in (
        minibert.BertForMaskedLM.from_pretrained(pretrained_model_name_or_path=folder),
        minibert.AutoModelForMaskedLM.from_pretrained(pretrained_model_name_or_path=folder),
    ):
        with torch.no_grad():
            assert_outputs_close(ours(**inputs), theirs(**inputs))
    config = minibert.AutoConfig.from_pretrained(pretrained_model_name_or_path=folder)
    assert config == minibert.BertConfig.from_pretrained(pretrained_model_name_or_path=folder)


def test_trust_remote_code_is_accepted_and_runs_nothing(checkpoint_dir, reference):
    folder = checkpoint_dir("BertModel", "bert-a")
    ours = minibert.AutoModel.from_pretrained(folder, trust_remote_code=True)
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), reference("BertModel", "bert-a")(**inputs))


def test_torch_dtype_is_the_older_name_of_dtype(checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-a")
    theirs = transformers.BertModel.from_pretrained(folder, torch_dtype=torch.bfloat16)
    ours = minibert.BertModel.from_pretrained(folder, torch_dtype=torch.bfloat16)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not both"):
        minibert.BertModel.from_pretrained(folder, dtype=torch.float32, torch_dtype=torch.bfloat16)


def test_auto_model_uses_the_config_it_is_given(checkpoint_dir, reference):
    folder = checkpoint_dir("BertForSequenceClassification", "bert-a")
    config = minibert.AutoConfig.from_pretrained(folder, output_hidden_states=True)
    ours = minibert.AutoModelForSequenceClassification.from_pretrained(folder, config=config)
    hf_config = transformers.AutoConfig.from_pretrained(folder, output_hidden_states=True)
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(folder, config=hf_config).eval()
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        mine, expected = ours(**inputs), theirs(**inputs)
    assert mine.hidden_states is not None and expected.hidden_states is not None
    assert_outputs_close(mine, expected)


@pytest.mark.parametrize("class_name", ["BertForMaskedLM", "RobertaForSequenceClassification", "AlbertModel"])
def test_state_dict_without_a_folder_loads_as_in_transformers(class_name, reference):
    config_name = config_names_for(class_name)[0]
    source = reference(class_name, config_name)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    theirs = getattr(transformers, class_name).from_pretrained(None, config=source.config, state_dict=state).eval()
    values = source.config.to_dict()
    config = config_class_for(values).from_dict(values)
    ours = ours_class(class_name).from_pretrained(None, config=config, state_dict=state)
    assert ours.load_report.missing == [] and ours.load_report.source == "<state_dict>"
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))
    with pytest.raises(ValueError, match="needs both config= and state_dict="):
        ours_class(class_name).from_pretrained(None, state_dict=state)


def test_output_loading_info_is_transformers_dict(checkpoint_dir):
    base = checkpoint_dir("BertModel", "bert-a")
    head = checkpoint_dir("BertForSequenceClassification", "bert-a")
    for folder, kwargs in ((base, {}), (head, {"num_labels": 5, "ignore_mismatched_sizes": True})):
        _, expected = transformers.BertForSequenceClassification.from_pretrained(
            folder, output_loading_info=True, **kwargs
        )
        model, info = minibert.BertForSequenceClassification.from_pretrained(folder, output_loading_info=True, **kwargs)
        assert isinstance(model, minibert.BertForSequenceClassification)
        assert info.keys() == expected.keys()
        for key in ("missing_keys", "unexpected_keys", "error_msgs"):
            assert set(info[key]) == set(expected[key]), key
        expected_mismatched = {(k, tuple(a), tuple(b)) for k, a, b in expected["mismatched_keys"]}
        assert info["mismatched_keys"] == expected_mismatched


@pytest.mark.parametrize("auto", [False, True])
def test_class_arguments_of_from_pretrained_build_the_model_as_in_transformers(auto, checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-a")
    ours_loader = minibert.AutoModel if auto else minibert.BertModel
    theirs, expected = transformers.BertModel.from_pretrained(folder, add_pooling_layer=False, output_loading_info=True)
    ours, info = ours_loader.from_pretrained(folder, add_pooling_layer=False, output_loading_info=True)
    assert ours.pooler is None and theirs.pooler is None
    pooler = {"pooler.dense.weight", "pooler.dense.bias"}
    assert set(info["unexpected_keys"]) == set(expected["unexpected_keys"]) == pooler
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs.eval()(**inputs))
    with pytest.raises(minibert.ConfigError, match="add_pooling_layer"):  # a head has no pooler to leave out
        minibert.BertForMaskedLM.from_pretrained(folder, add_pooling_layer=False)


# -- output flags and return_dict ----------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), FIRST)
def test_output_flags_from_from_pretrained_are_the_defaults(class_name, config_name, checkpoint_dir):
    folder = checkpoint_dir(class_name, config_name)
    flags = {"output_hidden_states": True, "output_attentions": True}
    theirs = getattr(transformers, class_name).from_pretrained(folder, attn_implementation="eager", **flags).eval()
    ours = ours_class(class_name).from_pretrained(folder, **flags)
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        mine, expected = ours(**inputs), theirs(**inputs)
        assert mine.keys() == [k for k in expected.keys() if k != "cross_attentions"]  # decoders only (empty here)
        assert_outputs_close(mine, expected)
        assert ours(**inputs, output_hidden_states=False).hidden_states is None  # the call decides over the config


@pytest.mark.parametrize(("class_name", "config_name"), FIRST)
def test_return_dict_false_returns_transformers_tuple(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        mine = ours(**inputs, return_dict=False, output_hidden_states=True)
        expected = theirs(**inputs, return_dict=False, output_hidden_states=True)
    assert isinstance(mine, tuple) and len(mine) == len(expected)
    for a, b in zip(mine, expected, strict=True):
        for x, y in zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]:
            assert_real_tokens_close(x, y, inputs["attention_mask"])


def test_return_dict_in_config_json_is_honoured(tmp_path, reference):
    theirs = reference("BertForTokenClassification", "bert-a")
    theirs.config.return_dict = False
    theirs.save_pretrained(tmp_path)
    theirs.config.return_dict = True
    ours = minibert.BertForTokenClassification.from_pretrained(tmp_path)
    again = transformers.BertForTokenClassification.from_pretrained(tmp_path).eval()
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        mine, expected = ours(**inputs), again(**inputs)
        assert isinstance(mine, tuple) and isinstance(expected, tuple)
        assert_real_tokens_close(mine[0], expected[0], inputs["attention_mask"])
        assert isinstance(ours(**inputs, return_dict=True), minibert.outputs.LogitsOutput)


def test_outputs_read_like_transformers_model_output(checkpoint_dir, reference):
    ours = minibert.BertForSequenceClassification.from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-a")
    )
    theirs = reference("BertForSequenceClassification", "bert-a")
    inputs = {**make_inputs("bert-a"), "labels": torch.tensor([0, 1, 1])}
    with torch.no_grad():
        mine, expected = ours(**inputs), theirs(**inputs)
    assert mine.keys() == list(expected.keys()) == list(mine) == ["loss", "logits"]
    assert len(mine) == len(expected) and ("logits" in mine) == ("logits" in expected) is True
    assert ("hidden_states" in mine) == ("hidden_states" in expected) is False
    torch.testing.assert_close(mine["logits"], expected["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(mine[1], expected[1], atol=1e-5, rtol=0)
    assert [type(x) for x in mine[:2]] == [type(x) for x in expected[:2]]
    assert [name for name, _ in mine.items()] == [name for name, _ in expected.items()]
    assert len(mine.values()) == len(expected.values()) and len(mine.to_tuple()) == len(expected.to_tuple())
    assert dict(**mine).keys() == dict(**expected).keys()
    with pytest.raises(KeyError):
        expected["hidden_states"]
    with pytest.raises(KeyError, match="hidden_states"):
        mine["hidden_states"]
    mine["logits"] = mine.logits * 2
    assert torch.equal(mine.logits, mine[1])


def test_positional_inputs_follow_transformers_order(checkpoint_dir, reference):
    ours = minibert.BertForSequenceClassification.from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-a")
    )
    theirs = reference("BertForSequenceClassification", "bert-a")
    inputs = make_inputs("bert-a")
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    with torch.no_grad():
        assert_outputs_close(ours(*args), theirs(*args))


EVERY_CLASS = [c.__name__ for classes in minibert.auto.ARCHITECTURES.values() for c in classes]


@pytest.mark.parametrize("class_name", EVERY_CLASS)
def test_forward_names_transformers_inputs(class_name):
    """Trainer keeps only the dataset columns forward names, and exports pass inputs by position."""
    flags = {"output_hidden_states", "output_attentions", "return_dict", "use_cache", "cache_position"}
    left_out = flags | set(minibert.pretrained.REFUSED_INPUTS)

    def inputs(cls: type) -> list[str]:
        parameters = inspect.signature(cls.forward).parameters.items()
        return [name for name, p in parameters if p.kind is not p.VAR_KEYWORD and name not in left_out]

    assert inputs(ours_class(class_name)) == inputs(getattr(transformers, class_name))
    assert ours_class(class_name).main_input_name == "input_ids"


def test_refused_inputs_say_what_to_use_instead(checkpoint_dir):
    ours = minibert.BertModel.from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    with pytest.raises(ValueError, match="head_mask is not supported.*prune_heads"):
        ours(**make_inputs("bert-a"), head_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="mean_resizing=True is not supported"):
        ours.resize_token_embeddings(120, mean_resizing=True)


def test_span_loss_runs_padded_even_where_unpadding_is_forced(checkpoint_dir, reference):
    """transformers' span softmax reads padding positions, which the unpadded path leaves at zero."""
    model = minibert.BertForQuestionAnswering.from_pretrained(checkpoint_dir("BertForQuestionAnswering", "bert-a"))
    inputs = make_inputs("bert-a")
    positions = {"start_positions": torch.tensor([1, 2, 3]), "end_positions": torch.tensor([2, 3, 4])}
    model.set_unpadding(True)
    with torch.no_grad():
        assert model(**inputs).loss is None  # span scores alone are fine
        expected = reference("BertForQuestionAnswering", "bert-a")(**inputs, **positions).loss
        torch.testing.assert_close(model(**inputs, **positions).loss, expected, atol=1e-5, rtol=0)
    assert model.bert.unpad is True  # the setting is back after the padded call


# -- initialisation, pruning, training habits ----------------------------------------------------


def test_post_init_and_init_weights_keep_every_loaded_tensor(checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-a")
    ours = minibert.BertForSequenceClassification.from_pretrained(folder)
    saved = load_file(folder / "model.safetensors")
    classifier = ours.classifier.weight.clone()
    ours.post_init()
    ours.init_weights()
    state = ours.state_dict()
    assert all(torch.equal(state[f"bert.{key}"], value) for key, value in saved.items() if f"bert.{key}" in state)
    assert torch.equal(ours.classifier.weight, classifier)  # initialised once, at loading
    ours.classifier = torch.nn.Linear(32, 4)  # a new head: the next init initialises it alone
    with torch.no_grad():
        ours.classifier.weight.fill_(7.0)
    ours.init_weights()
    assert ours.classifier.weight.abs().max() < 1 and not ours.classifier.bias.any()
    assert all(torch.equal(state[f"bert.{key}"], value) for key, value in saved.items() if f"bert.{key}" in state)


def test_prune_heads_counts_negative_layers_from_the_end(checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-b")  # 3 layers of 3 heads
    negative, positive = (minibert.BertModel.from_pretrained(folder) for _ in range(2))
    negative.prune_heads({-1: [0, 2]})
    positive.prune_heads({2: [0, 2]})
    assert negative.config.pruned_heads == positive.config.pruned_heads == {2: [0, 2]}
    inputs = make_inputs("bert-b")
    with torch.no_grad():
        assert_outputs_close(negative(**inputs), positive(**inputs), atol=0)


def test_single_label_problem_needs_two_labels_as_in_transformers():
    bad = {"num_labels": 1, "problem_type": "single_label_classification"}
    with pytest.raises(ValueError, match="requires `num_labels > 1`"):
        transformers.BertConfig(**bad)
    with pytest.raises(minibert.ConfigError, match="needs num_labels > 1.*num_labels=2.*regression"):
        minibert.BertConfig(**bad)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_takes_transformers_kwargs(use_reentrant, checkpoint_dir):
    folder = checkpoint_dir("BertForSequenceClassification", "bert-a")
    inputs = {**make_inputs("bert-a"), "labels": torch.tensor([0, 1, 1])}
    grads = []
    for checkpointing in (False, True):
        ours = minibert.BertForSequenceClassification.from_pretrained(folder).train()
        if checkpointing:
            ours.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
        torch.manual_seed(0)
        ours(**inputs).loss.backward()
        grads.append({name: p.grad for name, p in ours.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=0, msg=name)


def test_enable_input_require_grads_lets_adapters_train_under_reentrant_checkpointing(checkpoint_dir):
    """PEFT's recipe: frozen model, one trainable weight inside a layer, reentrant checkpointing."""
    folder = checkpoint_dir("BertModel", "bert-a")
    inputs = make_inputs("bert-a")
    grads = []
    for enabled in (False, True):
        ours = minibert.BertModel.from_pretrained(folder).train()
        ours.requires_grad_(False)
        adapter = ours.encoder.layer[0].attention.self.query.weight
        adapter.requires_grad_(True)
        ours.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        if enabled:
            ours.enable_input_require_grads()
        output = ours(**inputs).last_hidden_state.sum()
        if enabled:
            output.backward()
        else:  # no layer input needs a gradient, so reentrant checkpointing cuts the graph
            assert not output.requires_grad
        grads.append(adapter.grad)
    assert grads[0] is None and grads[1] is not None and grads[1].abs().sum() > 0
    ours.disable_input_require_grads()
    assert ours.embeddings.word_embeddings._forward_hooks == {}
