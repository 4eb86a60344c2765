"""Shared fixtures: tiny random checkpoints made by transformers itself, in every layout minibert reads.

Tests never touch the network: HF_HUB_OFFLINE is set before huggingface_hub is imported.
"""

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
import transformers

import minibert
from minibert.bert import AttentionMask
from minibert.linear import JoinedLinear, PackedLinear
from minibert.pretrained import PreTrainedModel

transformers.utils.logging.disable_progress_bar()

# Tiny configs that differ where the code could go wrong: widths, head counts, activations,
# token types, padding ids, LayerNorm eps, untied decoders.
BERT_CONFIGS = {
    "bert-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "bert-b": dict(
        vocab_size=120,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=64,
        hidden_act="gelu_new",
        max_position_embeddings=40,
        type_vocab_size=3,
        pad_token_id=5,
        layer_norm_eps=1e-5,
    ),
    "bert-c": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=3,
        tie_word_embeddings=False,
        num_labels=3,
    ),
}
ROBERTA_CONFIGS = {
    "roberta-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    "roberta-b": dict(
        vocab_size=80,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        hidden_act="silu",
        max_position_embeddings=30,
        type_vocab_size=2,
        pad_token_id=4,
        layer_norm_eps=1e-5,
        num_labels=4,
    ),
}
# ALBERT: narrower embeddings, and layers shared across depth in every arrangement:
# one group, several groups of several layers, and groups that do not divide the depth.
ALBERT_CONFIGS = {
    "albert-a": dict(
        vocab_size=99,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=3,
        num_hidden_groups=1,
        inner_group_num=1,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "albert-b": dict(
        vocab_size=80,
        embedding_size=8,
        hidden_size=24,
        num_hidden_layers=4,
        num_hidden_groups=2,
        inner_group_num=2,
        num_attention_heads=2,
        intermediate_size=30,
        hidden_act="gelu",
        max_position_embeddings=40,
        type_vocab_size=3,
        pad_token_id=2,
        layer_norm_eps=1e-5,
        num_labels=3,
    ),
    "albert-c": dict(
        vocab_size=64,
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=5,
        num_hidden_groups=3,
        inner_group_num=1,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=3,
        tie_word_embeddings=False,
    ),
}
# XLM-RoBERTa and CamemBERT are RoBERTa's model under their own model_type: one config each.
XLM_ROBERTA_CONFIGS = {
    "xlm-roberta-a": dict(
        vocab_size=70,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=30,
        max_position_embeddings=36,
        type_vocab_size=1,
        pad_token_id=1,
    ),
}
CAMEMBERT_CONFIGS = {
    "camembert-a": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        hidden_act="gelu_new",
        max_position_embeddings=30,
        type_vocab_size=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    ),
}
# DistilBERT, under its own field names: head sizes 9, 7 and 8 (odd widths too), learned positions
# (-a) and sinusoidal ones (-b, -c), an untied vocabulary projector (-b); no token types.
DISTILBERT_CONFIGS = {
    "distilbert-a": dict(
        vocab_size=99,
        dim=36,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=64,
        pad_token_id=0,
    ),
    "distilbert-b": dict(
        vocab_size=80,
        dim=21,
        n_layers=3,
        n_heads=3,
        hidden_dim=30,
        activation="relu",
        max_position_embeddings=40,
        pad_token_id=4,
        sinusoidal_pos_embds=True,
        tie_word_embeddings=False,
        num_labels=3,
    ),
    "distilbert-c": dict(
        vocab_size=61,
        dim=16,
        n_layers=1,
        n_heads=2,
        hidden_dim=22,
        activation="gelu_new",
        max_position_embeddings=32,
        pad_token_id=3,
        sinusoidal_pos_embds=True,
        num_labels=4,
    ),
}
# ELECTRA: embeddings projected up to the hidden size (-a, -c) or not (-b), every summary the
# multiple-choice head can take (first, last with tanh, mean without projection), an untied generator (-c).
ELECTRA_CONFIGS = {
    "electra-a": dict(
        vocab_size=99,
        embedding_size=16,
        hidden_size=36,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "electra-b": dict(
        vocab_size=83,
        embedding_size=24,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=30,
        hidden_act="gelu_new",
        max_position_embeddings=30,
        type_vocab_size=3,
        pad_token_id=5,
        layer_norm_eps=1e-5,
        num_labels=3,
        summary_type="last",
        summary_activation="tanh",
    ),
    "electra-c": dict(
        vocab_size=61,
        embedding_size=10,
        hidden_size=14,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=22,
        hidden_act="relu",
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=3,
        tie_word_embeddings=False,
        num_labels=4,
        summary_type="mean",
        summary_use_proj=False,
    ),
}
# MPNet: bucket tables larger than the 32 buckets looked up (-b, -c), pad ids other than 1 (the
# embeddings pad with 1 regardless), room for sequences past max_distance (-a); no token types.
MPNET_CONFIGS = {
    "mpnet-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=160,
        relative_attention_num_buckets=32,
        pad_token_id=1,
    ),
    "mpnet-b": dict(
        vocab_size=80,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=30,
        hidden_act="gelu_new",
        max_position_embeddings=40,
        relative_attention_num_buckets=40,
        pad_token_id=3,
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        num_labels=3,
    ),
    "mpnet-c": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
        max_position_embeddings=30,
        relative_attention_num_buckets=33,
        pad_token_id=0,
        num_labels=4,
    ),
}


def ntk_as_linear(theta: float, factor: float, head_size: int) -> dict:
    """transformers' rope_parameters for GTE's remote-code {"type": "ntk", "factor": factor} (see test_gte.py)."""
    return {"rope_type": "linear", "rope_theta": theta * factor, "factor": factor ** (2 / head_size)}


# GTE: no token-type table (-a: transformers ignores the ids) and the remote code's fixed NTK scaling
# (what gte-base-en-v1.5 ships), dynamic NTK active at the test lengths (-b: max_position_embeddings 8),
# the default rotation (-c); rotary positions, no position table.
GTE_CONFIGS = {
    "gte-a": dict(
        vocab_size=99,
        hidden_size=36,
        num_hidden_layers=2,
        num_attention_heads=3,  # head size 12
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=0,
        pad_token_id=0,
        rope_parameters=ntk_as_linear(1000.0, 2.0, 12),
    ),
    "gte-b": dict(
        vocab_size=80,
        hidden_size=30,
        num_hidden_layers=3,
        num_attention_heads=3,  # head size 10
        intermediate_size=22,
        hidden_act="silu",
        max_position_embeddings=8,  # shorter than the test inputs: dynamic NTK stretches theta
        type_vocab_size=3,
        pad_token_id=2,
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        num_labels=3,
        rope_parameters={"rope_type": "dynamic", "rope_theta": 500.0, "factor": 2.0},
    ),
    "gte-c": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,  # head size 8
        intermediate_size=24,
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=1,
        num_labels=4,
        rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
    ),
}
# NomicBERT: head_dim other than hidden / heads, with heads that do not divide hidden_size (-b), rotary
# bases, an untied decoder; -r is expressible in the remote code's config (intermediate a multiple of
# 256, no head_dim, no biases).
NOMIC_BERT_CONFIGS = {
    "nomic-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,  # head_dim 8, the default
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "nomic-b": dict(
        vocab_size=120,
        hidden_size=30,
        num_hidden_layers=3,
        num_attention_heads=4,  # does not divide 30: heads are head_dim wide, 4 * 6 = 24 features
        head_dim=6,
        intermediate_size=50,
        hidden_act="gelu",
        max_position_embeddings=40,
        type_vocab_size=3,
        pad_token_id=5,
        layer_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 50.0},
        tie_word_embeddings=False,
        num_labels=3,
    ),
    "nomic-r": dict(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=48,
        type_vocab_size=2,
        pad_token_id=0,
        rope_parameters={"rope_type": "default", "rope_theta": 250.0},
    ),
}
# DeBERTa (test_deberta_v2.py says why each field): v3 as microsoft/deberta-v3-* (log buckets, shared
# position projections, no token types, v3's masked-LM head); v2 with the convolution, narrower
# embeddings, no buckets, token types, the legacy masked-LM head.
DEBERTA_CONFIGS = {
    "deberta-v3": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=0,
        relative_attention=True,
        pos_att_type="p2c|c2p",
        share_att_key=True,
        position_buckets=8,
        max_relative_positions=24,  # distances past 23 reach buckets beyond the table: clamped
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        pad_token_id=0,
        legacy=False,
    ),
    "deberta-v2": dict(
        vocab_size=80,
        hidden_size=24,
        embedding_size=16,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=30,
        hidden_act="gelu_new",
        max_position_embeddings=40,
        type_vocab_size=2,
        relative_attention=True,
        pos_att_type=["c2p", "p2c"],
        max_relative_positions=-1,
        conv_kernel_size=3,
        conv_groups=3,
        conv_act="gelu",
        pad_token_id=3,
        layer_norm_eps=1e-5,
        pooler_hidden_act="tanh",
        num_labels=3,
    ),
}
CONFIGS = {
    **BERT_CONFIGS,
    **ROBERTA_CONFIGS,
    **ALBERT_CONFIGS,
    **XLM_ROBERTA_CONFIGS,
    **CAMEMBERT_CONFIGS,
    **DISTILBERT_CONFIGS,
    **ELECTRA_CONFIGS,
    **MPNET_CONFIGS,
    **GTE_CONFIGS,
    **NOMIC_BERT_CONFIGS,
    **DEBERTA_CONFIGS,
}

BERT_CLASSES = [
    "BertModel",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertForMultipleChoice",
]
ROBERTA_CLASSES = [
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
    "RobertaForMultipleChoice",
]
ALBERT_CLASSES = [
    "AlbertModel",
    "AlbertForMaskedLM",
    "AlbertForPreTraining",
    "AlbertForSequenceClassification",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
    "AlbertForMultipleChoice",
]
XLM_ROBERTA_CLASSES = [name.replace("Roberta", "XLMRoberta") for name in ROBERTA_CLASSES]
CAMEMBERT_CLASSES = [name.replace("Roberta", "Camembert") for name in ROBERTA_CLASSES]
DISTILBERT_CLASSES = [
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
    "DistilBertForMultipleChoice",
]
ELECTRA_CLASSES = [
    "ElectraModel",
    "ElectraForPreTraining",
    "ElectraForMaskedLM",
    "ElectraForSequenceClassification",
    "ElectraForTokenClassification",
    "ElectraForQuestionAnswering",
    "ElectraForMultipleChoice",
]
MPNET_CLASSES = [name.replace("DistilBert", "MPNet") for name in DISTILBERT_CLASSES]
GTE_CLASSES = ["GteModel", "GteForMaskedLM", "GteForSequenceClassification", "GteForTokenClassification"]
NOMIC_BERT_CLASSES = [name.replace("Gte", "NomicBert") for name in GTE_CLASSES]
DEBERTA_CLASSES = [name.replace("DistilBert", "DebertaV2") for name in DISTILBERT_CLASSES]
CLASSES = (
    BERT_CLASSES
    + ROBERTA_CLASSES
    + ALBERT_CLASSES
    + XLM_ROBERTA_CLASSES
    + CAMEMBERT_CLASSES
    + DISTILBERT_CLASSES
    + ELECTRA_CLASSES
    + MPNET_CLASSES
    + GTE_CLASSES
    + NOMIC_BERT_CLASSES
    + DEBERTA_CLASSES
)
# family -> (configs, class-name prefix, transformers config class)
FAMILIES = {
    "bert": (BERT_CONFIGS, "Bert", transformers.BertConfig),
    "roberta": (ROBERTA_CONFIGS, "Roberta", transformers.RobertaConfig),
    "albert": (ALBERT_CONFIGS, "Albert", transformers.AlbertConfig),
    "xlm-roberta": (XLM_ROBERTA_CONFIGS, "XLMRoberta", transformers.XLMRobertaConfig),
    "camembert": (CAMEMBERT_CONFIGS, "Camembert", transformers.CamembertConfig),
    "distilbert": (DISTILBERT_CONFIGS, "DistilBert", transformers.DistilBertConfig),
    "electra": (ELECTRA_CONFIGS, "Electra", transformers.ElectraConfig),
    "mpnet": (MPNET_CONFIGS, "MPNet", transformers.MPNetConfig),
    "gte": (GTE_CONFIGS, "Gte", transformers.GteConfig),
    "nomic": (NOMIC_BERT_CONFIGS, "NomicBert", transformers.NomicBertConfig),
    "deberta": (DEBERTA_CONFIGS, "DebertaV2", transformers.DebertaV2Config),
}


def family_of(name: str) -> str:
    """The family ('bert', 'xlm-roberta', ...) of a class name or a config name."""
    return next(f for f, (_, prefix, _) in FAMILIES.items() if name.startswith((f + "-", prefix)))


def base_class_of(class_name: str) -> str:
    """The base model class of a head class: 'BertModel' for 'BertForMaskedLM'."""
    return FAMILIES[family_of(class_name)][1] + "Model"


def task_of(class_name: str) -> str:
    """What a class does: 'ForMaskedLM' for 'BertForMaskedLM', 'Model' for a base model."""
    return class_name.removeprefix(FAMILIES[family_of(class_name)][1])


def config_names_for(class_name: str) -> list[str]:
    return list(FAMILIES[family_of(class_name)][0])


def hf_config(config_name: str, **changes) -> transformers.PretrainedConfig:
    return FAMILIES[family_of(config_name)][2](**{**CONFIGS[config_name], **changes})


def hf_model(class_name: str, config_name: str, seed: int = 0, attn: str = "sdpa", **changes) -> torch.nn.Module:
    """A transformers model with random weights, every tensor non-trivial (biases and LayerNorms too);
    ``changes`` override config fields."""
    torch.manual_seed(seed)
    config = hf_config(config_name, **changes)
    if class_name.endswith(("QuestionAnswering", "AlbertForPreTraining")):
        config.num_labels = 2  # a start and an end score per token; in order or swapped
    model_class = getattr(transformers, class_name)
    config._attn_implementation = attn if model_class._supports_sdpa else "eager"  # MPNet has no other
    model = model_class(config)
    with torch.no_grad():  # transformers inits biases to 0 and LayerNorms to 1/0: randomise so they count
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():  # LayerNorm, layer_norm, GTE's attn_layernorm
                param.add_(torch.randn_like(param) * 0.1)
            if "relative_attention_bias" in name or "rel_embeddings" in name:  # MPNet's, DeBERTa's: init std
                param.normal_(0.0, 1.0)  # 0.02 would hide a wrong bucket
            if name.endswith("conv.conv.weight"):  # DeBERTa's convolution
                param.normal_(0.0, 0.3)
    return model.eval()


def fresh(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its dynamic NTK frequencies as a new model has them.

    transformers' dynamic rotary (GTE's gte-b) keeps the frequencies of the longest batch it has seen
    until a batch shorter than max_position_embeddings comes; minibert computes each batch's own, which
    is what a new transformers model computes (test_gte.py::test_dynamic_ntk_follows_each_batch).
    """
    for module in model.modules():
        if hasattr(module, "original_inv_freq") and hasattr(module, "original_max_seq_len"):
            module.register_buffer("inv_freq", module.original_inv_freq.clone(), persistent=False)
            module.max_seq_len_cached = module.original_max_seq_len
    return model


def make_inputs(
    config_name: str, batch: int = 3, length: int = 11, seed: int = 1, choices: int | None = None
) -> dict[str, torch.Tensor]:
    """Ids with right padding of different lengths per row, and token types where the family has them.

    Where the config pads with an id other than 1, id 1 is a real token (at position 3): MPNet's
    positions skip id 1 whatever pad_token_id says, as transformers' do. DistilBERT and MPNet have
    no token types (their configs no type_vocab_size): their batches hold none. A type_vocab_size of 0
    (GTE's gte-a) means no table: the batch holds ids anyway, which transformers ignores.
    """
    values = CONFIGS[config_name]
    pad = values["pad_token_id"]
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, length) if choices is None else (batch, choices, length)
    input_ids = torch.randint(0, values["vocab_size"], shape, generator=generator)
    input_ids[input_ids == pad] = pad + 1
    if pad != 1:
        input_ids[..., 3] = 1
    lengths = torch.randint(2, length + 1, shape[:-1], generator=generator)
    lengths.view(-1)[0] = length  # one row without padding
    attention_mask = (torch.arange(length) < lengths.unsqueeze(-1)).long()
    input_ids[attention_mask == 0] = pad
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "type_vocab_size" not in values:
        return inputs
    token_type_ids = torch.zeros_like(input_ids)
    types = values["type_vocab_size"] or 2  # no table: any ids, ignored
    if types > 1:
        token_type_ids = torch.randint(0, types, shape, generator=generator)
        token_type_ids[attention_mask == 0] = 0
    return {**inputs, "token_type_ids": token_type_ids}


def inputs_for(class_name: str, config_name: str, **kwargs) -> dict[str, torch.Tensor]:
    choices = 2 if class_name.endswith("MultipleChoice") else None
    return make_inputs(config_name, choices=choices, **kwargs)


def labels_for(class_name: str, config_name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Labels for the head's loss, for any batch size, as real batches hold them: none on padding tokens.

    ELECTRA's discriminator labels every position, padding too: its loss must skip padding by the mask.
    Span positions include out-of-range ones, which transformers clamps and ignores.
    """
    generator = torch.Generator().manual_seed(3)
    config = hf_config(config_name)
    mask = inputs["attention_mask"]
    batch, length = mask.shape[0], mask.shape[-1]
    task, family = task_of(class_name), family_of(class_name)
    if task == "ForPreTraining" and family == "electra":
        return {"labels": torch.randint(0, 2, (batch, length), generator=generator)}  # 1 = replaced
    if task in ("ForMaskedLM", "ForPreTraining"):
        labels = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
        labels[(torch.rand(batch, length, generator=generator) < 0.6) | (mask == 0)] = -100  # not masked: ignored
        if task == "ForMaskedLM":
            return {"labels": labels}
        order = "sentence_order_label" if family == "albert" else "next_sentence_label"
        return {"labels": labels, order: torch.randint(0, 2, (batch,), generator=generator)}
    if task == "ForNextSentencePrediction":
        return {"labels": torch.randint(0, 2, (batch,), generator=generator)}
    if task == "ForSequenceClassification":
        return {"labels": torch.randint(0, config.num_labels, (batch,), generator=generator)}
    if task == "ForTokenClassification":
        labels = torch.randint(0, config.num_labels, (batch, length), generator=generator)
        return {"labels": labels.masked_fill(mask == 0, -100)}
    if task == "ForQuestionAnswering":
        start, end = torch.randint(0, length, (2, batch), generator=generator)
        start[-1], end[0] = length + 5, length + 3  # out of range: clamped and ignored
        return {"start_positions": start, "end_positions": end}
    if task == "ForMultipleChoice":
        return {"labels": torch.randint(0, mask.shape[1], (batch,), generator=generator)}
    raise AssertionError(class_name)


# The outputs of minibert calls that ran unpadded in the current test: id -> (outputs, (B, T) mask of real tokens).
UNPADDED_OUTPUTS: dict[int, tuple[object, torch.Tensor]] = {}


@pytest.fixture(autouse=True)
def record_unpadded_calls(monkeypatch):
    """Note which outputs come from a forward pass that ran unpadded (zeros at padding): see assert_outputs_close."""
    masks = []
    from_padding, call = AttentionMask.from_padding.__func__, PreTrainedModel.__call__

    def spy_from_padding(cls, attention_mask, *args, **kwargs):
        mask = from_padding(cls, attention_mask, *args, **kwargs)
        if mask.tokens is not None:
            masks.append(attention_mask.ne(0))
        return mask

    def spy_call(self, *args, **kwargs):
        seen = len(masks)
        outputs = call(self, *args, **kwargs)
        if len(masks) > seen:
            UNPADDED_OUTPUTS[id(outputs)] = (outputs, masks[-1])
        return outputs

    monkeypatch.setattr(AttentionMask, "from_padding", classmethod(spy_from_padding))
    monkeypatch.setattr(PreTrainedModel, "__call__", spy_call)
    yield
    UNPADDED_OUTPUTS.clear()


def unpadded_mask(outputs) -> torch.Tensor | None:
    """The (B, T) mask of real tokens if ``outputs`` come from a call that ran unpadded, else None."""
    outputs_and_mask = UNPADDED_OUTPUTS.get(id(outputs))
    return None if outputs_and_mask is None or outputs_and_mask[0] is not outputs else outputs_and_mask[1]


def assert_outputs_close(ours, theirs, atol: float = 1e-5) -> None:
    """Every tensor field transformers returns is matched by minibert's, within atol.

    Where a minibert call ran unpadded (the default for inference batches with padding), per-token
    outputs are compared at real tokens, and its hidden states must be exactly zero at padding.
    Either argument may be minibert's (or both).
    """
    unpadded = [x for x in (ours, theirs) if unpadded_mask(x) is not None]
    real = unpadded_mask(unpadded[0]) if unpadded else None

    def close(name: str, get) -> None:
        actual, expected = get(ours), get(theirs)
        if real is not None and actual.dim() >= 2 and actual.shape[:2] == real.shape:
            if name.startswith(("last_hidden_state", "hidden_states")):
                for outputs in unpadded:
                    assert torch.all(get(outputs)[~real] == 0), f"{name}: not zero at padding on the unpadded path"
            actual, expected = actual[real], expected[real]
        torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=lambda m: f"{name}: {m}")

    compared = 0
    for name in (
        "last_hidden_state",
        "pooler_output",
        "logits",
        "prediction_logits",
        "seq_relationship_logits",
        "start_logits",
        "end_logits",
        "loss",
    ):
        expected = getattr(theirs, name, None)
        if expected is None:
            continue
        actual = getattr(ours, name)
        assert actual is not None, f"minibert returned no {name}"
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} vs {expected.shape}"
        close(name, lambda outputs, n=name: getattr(outputs, n))
        compared += 1
    for name in ("hidden_states", "attentions"):
        expected = getattr(theirs, name, None)
        if expected:
            actual = getattr(ours, name)
            assert len(actual) == len(expected), f"{name}: {len(actual)} vs {len(expected)}"
            for i in range(len(actual)):
                close(f"{name}[{i}]", lambda outputs, n=name, i=i: getattr(outputs, n)[i])
            compared += 1
    assert compared, "nothing was compared"


def assert_real_tokens_close(actual, expected, attention_mask, atol: float = 1e-5, rtol: float = 0.0) -> None:
    """assert_close at real tokens for per-token tensors (B, T, ...): minibert's default inference path leaves
    padding at zero, where transformers computes values no real token reads. Other tensors are compared whole."""
    real = attention_mask.reshape(-1, attention_mask.shape[-1]).ne(0)  # (B, T); multiple choice: (B * C, T)
    if actual.dim() >= 2 and actual.shape[:2] == real.shape:
        actual, expected = actual[real], expected[real]
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


def save_bin(
    state: dict[str, torch.Tensor], folder: Path, config: transformers.PretrainedConfig, shards: int = 1
) -> Path:
    """A pytorch_model.bin checkpoint (or shards and an index), as transformers 4.x wrote them."""
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin")
        return folder
    keys = list(state)
    weight_map = {}
    for number in range(shards):
        name = f"pytorch_model-{number + 1:05d}-of-{shards:05d}.bin"
        part = keys[number::shards]
        torch.save({k: state[k] for k in part}, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return folder


def legacy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers model's state under TF-era names (LayerNorm.gamma/beta), with the position_ids
    buffer old versions saved, under the head model's prefix (``bert.``, ``distilbert.``, ...)."""
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[key] = value
    prefix = "" if model.base_model is model else f"{model.base_model_prefix}."
    renamed[f"{prefix}embeddings.position_ids"] = torch.arange(model.config.max_position_embeddings).unsqueeze(0)
    return renamed


LAYOUTS = ["safetensors", "sharded-safetensors", "bin", "sharded-bin", "legacy-bin"]


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """checkpoint_dir(class_name, config_name, layout) -> a folder holding that checkpoint, made once."""
    made: dict[tuple[str, str, str], Path] = {}

    def make(class_name: str, config_name: str, layout: str = "safetensors") -> Path:
        key = (class_name, config_name, layout)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{class_name}-{config_name}-{layout}")
            model = hf_model(class_name, config_name)
            state = model.state_dict()
            if layout == "safetensors":
                model.save_pretrained(folder)
            elif layout == "sharded-safetensors":
                model.save_pretrained(folder, max_shard_size="4KB")
                assert (folder / "model.safetensors.index.json").exists()
            elif layout == "bin":
                save_bin(state, folder, model.config)
            elif layout == "sharded-bin":
                save_bin(state, folder, model.config, shards=3)
            elif layout == "legacy-bin":
                save_bin(legacy_state(model), folder, model.config)
            else:
                raise ValueError(layout)
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(autouse=True)
def packed_from_the_first_call(monkeypatch):
    """Every test's inference runs the packed products a model uses from its second call on (minibert.linear)."""
    monkeypatch.setattr(PackedLinear, "warm", True)
    monkeypatch.setattr(JoinedLinear, "warm", True)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; on a busy machine, several threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair_of(folders):
    """pair_of(kind) -> (minibert's AutoTokenizer, transformers' AutoTokenizer) of ``folders[kind]``.

    ``folders`` is the requesting module's own fixture: the tokenizer folders it tests.
    """
    made = {}

    def get(kind: str):
        if kind not in made:
            made[kind] = (
                minibert.AutoTokenizer.from_pretrained(folders[kind]),
                transformers.AutoTokenizer.from_pretrained(folders[kind]),
            )
        return made[kind]

    return get


@pytest.fixture(scope="session")
def tokenizer_folders(tmp_path_factory) -> dict[str, Path]:
    """Tokenizer folders by name (minilm, wordpiece, bpe, unigram and variants): see tokenizer_data.py."""
    from tokenizer_data import make_tokenizer_folders

    return make_tokenizer_folders(tmp_path_factory.mktemp("tokenizers"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from minibert.cli import default_checkpoint

    return default_checkpoint()


def ours_class(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(minibert, class_name)


@pytest.fixture(scope="session")
def reference():
    """reference(class_name, config_name, attn="sdpa") -> the transformers model the checkpoints were saved from,
    its dynamic rotary state reset (``fresh``)."""
    made: dict[tuple[str, str, str], torch.nn.Module] = {}

    def get(class_name: str, config_name: str, attn: str = "sdpa") -> torch.nn.Module:
        key = (class_name, config_name, attn)
        if key not in made:
            made[key] = hf_model(class_name, config_name, attn=attn)
        return fresh(made[key])

    return get
