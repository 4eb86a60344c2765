"""SentenceEncoder and CrossEncoder against sentence-transformers itself, on folders its own API saves."""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file
from sentence_transformers import CrossEncoder as STCrossEncoder
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import modules as models

from minibert.encoders import CrossEncoder, Pooling, SentenceEncoder
from minibert.errors import CheckpointError, ConfigError

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "",
    "Un homme mange du pain à Zürich 🍞",
    "The girl is carrying a baby.",
    "A much longer sentence that keeps going well past the sixteen tokens the tiny folders keep, so that "
    "truncation decides what the model sees, and the batch needs padding for every other text in it.",
    "short",
]
PAIRS = [
    ("How many people live in Berlin?", "Berlin has about 3.7 million inhabitants."),
    ("How many people live in Berlin?", "The weather is nice today."),
    ("a", ""),
    ("A question that is long enough to be cut " * 3, "and an answer that is long enough to be cut too " * 3),
]
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TINY_BERT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=64
)


def assert_close(ours, theirs, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(ours), torch.as_tensor(theirs), atol=atol, rtol=0)


def copy_tokenizer(source, folder):
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, minilm_dir):
    """A tiny random BertModel saved by transformers, with all-MiniLM-L6-v2's tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(vocab_size=30522, **TINY_BERT)).save_pretrained(folder)
    copy_tokenizer(minilm_dir, folder)
    return folder


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, bert_dir):
    """st_folder(name, pooling_mode, ...) -> a folder SentenceTransformer.save wrote, made once per name."""
    made = {}

    def make(name, pooling_mode="mean", include_prompt=True, dense=None, normalize=False, **model_options):
        if name not in made:
            torch.manual_seed(1)
            word = models.Transformer(str(bert_dir), max_seq_length=16)
            modules = [word, models.Pooling(word.get_embedding_dimension(), pooling_mode, include_prompt)]
            if dense is not None:
                modules.append(dense())
            if normalize:
                modules.append(models.Normalize())
            folder = tmp_path_factory.mktemp(name)
            SentenceTransformer(modules=modules, device="cpu", **model_options).save(str(folder))
            made[name] = folder
        return made[name]

    return make


def both(folder):
    """(minibert's encoder, sentence-transformers' model) of one folder, each read from the files."""
    return SentenceEncoder(folder, device="cpu"), SentenceTransformer(str(folder), device="cpu")


def test_minilm_embeddings_equal_sentence_transformers(minilm_dir):
    ours, theirs = both(minilm_dir)
    texts = [*TEXTS, "many words " * 300]  # past the folder's max_seq_length of 256
    assert ours.max_seq_length == theirs.max_seq_length == 256
    expected = theirs.encode(texts)
    embeddings = ours.encode(texts, batch_size=3)
    assert isinstance(embeddings, np.ndarray) and embeddings.dtype == np.float32 and embeddings.shape == (8, 384)
    assert_close(embeddings, expected)
    assert_close(ours.similarity(embeddings, embeddings), theirs.similarity(expected, expected))
    assert ours.get_embedding_dimension() == theirs.get_embedding_dimension() == 384


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cls", dict(pooling_mode="cls")),
        ("max", dict(pooling_mode="max", normalize=True)),
        ("mean", dict(pooling_mode="mean")),
        ("sqrt", dict(pooling_mode="mean_sqrt_len_tokens", normalize=True)),
        ("weighted", dict(pooling_mode="weightedmean")),
        ("last", dict(pooling_mode="lasttoken")),
        ("concat", dict(pooling_mode=("cls", "max", "mean"), normalize=True)),
        ("dense-tanh", dict(pooling_mode="mean", dense=lambda: models.Dense(32, 8), normalize=True)),
        ("dense-identity", dict(pooling_mode="cls", dense=lambda: models.Dense(32, 12, activation_function=None))),
        ("dense-residual", dict(pooling_mode="max", dense=lambda: models.Dense(32, 8, use_residual=True))),
        (
            "dense-gelu",
            dict(pooling_mode="mean", dense=lambda: models.Dense(32, 32, False, torch.nn.GELU(), use_residual=True)),
        ),
    ],
)
def test_pipelines_equal_sentence_transformers(st_folder, name, options):
    ours, theirs = both(st_folder(name, **options))
    assert ours.max_seq_length == theirs.max_seq_length == 16  # longer texts are truncated
    for kwargs in ({}, {"normalize_embeddings": True}, {"batch_size": 2}):
        assert_close(ours.encode(TEXTS, **kwargs), theirs.encode(TEXTS, **kwargs))


@pytest.mark.parametrize("mode", [*Pooling.MODES, ("mean", "lasttoken")])
@pytest.mark.parametrize("include_prompt", [True, False])
def test_prompts_are_prepended_and_left_out_of_pooling_as_there(st_folder, mode, include_prompt):
    folder = st_folder(f"prompt-{mode}-{include_prompt}", mode, include_prompt, prompts={"query": "query: "})
    ours, theirs = both(folder)
    assert ours.prompts == theirs.prompts
    for kwargs in ({"prompt_name": "query"}, {"prompt": "a much longer prompt, of several words: "}, {}):
        assert_close(ours.encode(TEXTS, **kwargs), theirs.encode(TEXTS, **kwargs))
    with_prompt, without = ours.encode(TEXTS[:2], prompt_name="query"), ours.encode(TEXTS[:2])
    assert not np.allclose(with_prompt, without)  # the prompt changes the vectors: the test can fail


def test_default_prompt_name_applies_unless_another_prompt_is_given(st_folder):
    folder = st_folder("default-prompt", prompts={"query": "query: ", "doc": "passage: "}, default_prompt_name="doc")
    ours, theirs = both(folder)
    assert ours.default_prompt_name == "doc"
    assert_close(ours.encode(TEXTS), theirs.encode(TEXTS))
    assert_close(ours.encode(TEXTS, prompt_name="query"), theirs.encode(TEXTS, prompt_name="query"))
    with pytest.raises(ValueError, match="prompt_name 'nope' is not one of the prompts"):
        ours.encode(TEXTS, prompt_name="nope")


def test_the_older_layout_and_config_names_load_as_there(st_folder, tmp_path):
    """A Transformer in 0_Transformer/, sentence_bert_config.json's max_seq_length, legacy Pooling flags."""
    source = st_folder("legacy-source", pooling_mode="mean", normalize=True)
    folder = tmp_path / "legacy"
    shutil.copytree(source, folder)
    (folder / "0_Transformer").mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).rename(folder / "0_Transformer" / name)
    (folder / "0_Transformer" / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 12, "do_lower_case": False})
    )
    (folder / "sentence_bert_config.json").unlink()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": True,
                "pooling_mode_mean_tokens": False,
                "pooling_mode_max_tokens": True,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    kinds = ["Transformer", "Pooling", "Normalize"]
    paths = ["0_Transformer", "1_Pooling", "2_Normalize"]
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (kind, path) in enumerate(zip(kinds, paths, strict=True))
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    shutil.rmtree(folder / "2_Normalize")  # all-MiniLM-L6-v2 ships none: Normalize has no settings
    ours, theirs = both(folder)
    assert ours.max_seq_length == theirs.max_seq_length == 12
    assert ours.get_embedding_dimension() == theirs.get_embedding_dimension() == 64  # cls + max
    assert_close(ours.encode(TEXTS), theirs.encode(TEXTS))


def test_dense_weights_are_read_from_pytorch_model_bin_too(st_folder, tmp_path):
    folder = tmp_path / "bin"
    shutil.copytree(
        st_folder("dense-tanh", pooling_mode="mean", dense=lambda: models.Dense(32, 8), normalize=True), folder
    )
    state = load_file(folder / "2_Dense" / "model.safetensors")
    (folder / "2_Dense" / "model.safetensors").unlink()
    torch.save(state, folder / "2_Dense" / "pytorch_model.bin")
    ours, theirs = both(folder)
    assert_close(ours.encode(TEXTS), theirs.encode(TEXTS))


def test_do_lower_case_lowercases_before_a_cased_tokenizer(st_folder, tmp_path):
    source = st_folder("lowercase-source", pooling_mode="mean")
    cased = tmp_path / "cased"
    shutil.copytree(source, cased)
    spec = json.loads((cased / "tokenizer.json").read_text())
    spec["normalizer"]["lowercase"] = False
    (cased / "tokenizer.json").write_text(json.dumps(spec))
    settings = json.loads((cased / "tokenizer_config.json").read_text())
    (cased / "tokenizer_config.json").write_text(json.dumps({**settings, "do_lower_case": False}))
    lowered = tmp_path / "lowered"
    shutil.copytree(cased, lowered)
    settings = json.loads((lowered / "sentence_bert_config.json").read_text())
    (lowered / "sentence_bert_config.json").write_text(json.dumps({**settings, "do_lower_case": True}))
    texts = ["Paris Is The Capital Of FRANCE", "ÉCOLE and École"]
    for folder in (cased, lowered):
        ours, theirs = both(folder)
        assert_close(ours.encode(texts), theirs.encode(texts))
    assert not np.allclose(SentenceEncoder(cased).encode(texts), SentenceEncoder(lowered).encode(texts))


def test_a_plain_encoder_folder_gets_mean_pooling_and_says_so(bert_dir):
    with pytest.warns(UserWarning, match=r"no modules\.json.*mean of its token vectors"):
        ours = SentenceEncoder(bert_dir)
    theirs = SentenceTransformer(str(bert_dir), device="cpu")
    assert ours.max_seq_length == theirs.max_seq_length == 64
    assert_close(ours.encode(TEXTS), theirs.encode(TEXTS))


def test_any_architecture_minibert_runs(tmp_path, tokenizer_folders):
    """A RoBERTa encoder with a byte-level BPE tokenizer, as a sentence-transformers folder."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_folders["bpe"])
    config = transformers.RobertaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY_BERT)
    torch.manual_seed(0)
    transformers.RobertaModel(config).save_pretrained(tmp_path / "roberta")
    tokenizer.save_pretrained(tmp_path / "roberta")
    word = models.Transformer(str(tmp_path / "roberta"), max_seq_length=20)
    modules = [word, models.Pooling(32, "weightedmean"), models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(tmp_path / "st"))
    ours, theirs = both(tmp_path / "st")
    assert type(ours.model).__name__ == "RobertaModel"
    assert_close(ours.encode(TEXTS), theirs.encode(TEXTS))


def test_return_types_are_sentence_transformers(st_folder):
    ours, theirs = both(st_folder("types", pooling_mode="mean", normalize=True))
    one = ours.encode("A single text")
    assert isinstance(one, np.ndarray) and one.shape == (32,)
    assert_close(one, theirs.encode("A single text"))
    tensor = ours.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (len(TEXTS), 32)
    assert isinstance(ours.encode("one", convert_to_tensor=True), torch.Tensor)
    listed = ours.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(listed, list) and all(isinstance(v, torch.Tensor) and v.shape == (32,) for v in listed)
    tokens = ours.encode(TEXTS, output_value="token_embeddings")
    expected = theirs.encode(TEXTS, output_value="token_embeddings")
    assert [t.shape for t in tokens] == [t.shape for t in expected]
    for mine, reference in zip(tokens, expected, strict=True):
        assert_close(mine, reference)
    truncated = ours.encode(TEXTS, truncate_dim=8)
    assert_close(truncated, theirs.encode(TEXTS, truncate_dim=8))
    assert_close(ours.similarity(one, tensor), theirs.similarity(one, tensor))


def test_the_fast_path_equals_one_plain_padded_batch(st_folder):
    """Sorted batches on the unpadded path give what one padded batch on the padded path gives."""
    ours = SentenceEncoder(st_folder("fast", pooling_mode=("mean", "max", "lasttoken")))
    model = ours.model
    inputs = ours.tokenizer(TEXTS, padding=True, truncation=True, max_length=16, return_tensors="pt")
    assert model.base_model.unpad == "auto"
    with torch.no_grad():
        expected = ours.forward(dict(inputs))["sentence_embedding"]
    seen = []
    hook = model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(
            (torch.is_inference_mode_enabled(), kwargs["attention_mask"].sum(1).tolist())
        ),
        with_kwargs=True,
    )
    embeddings = ours.encode(TEXTS, batch_size=3, convert_to_tensor=True)
    hook.remove()
    assert_close(embeddings, expected)
    assert all(inference for inference, _ in seen) and model.base_model.unpad == "auto"  # the default unpads
    lengths = [length for _, batch in seen for length in batch]
    assert lengths == sorted(lengths, reverse=True) and len(seen) == 3  # longest first, in batches of 3


def test_bad_arguments_are_errors_that_name_them(st_folder):
    ours = SentenceEncoder(st_folder("types", pooling_mode="mean", normalize=True))
    with pytest.raises(ValueError, match="sentences is empty"):
        ours.encode([])
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        ours.encode(TEXTS, batch_size=0)
    with pytest.raises(TypeError, match=r"sentences\[1\] must be a string, got int"):
        ours.encode(["fine", 3])
    with pytest.raises(ValueError, match="precision 'int8' is not supported"):
        ours.encode(TEXTS, precision="int8")
    with pytest.raises(ValueError, match="output_value"):
        ours.encode(TEXTS, output_value=None)


def test_progress_bar_is_off_by_default_and_on_when_asked(st_folder, capsys):
    ours = SentenceEncoder(st_folder("types", pooling_mode="mean", normalize=True))
    ours.encode(TEXTS, batch_size=2)
    assert capsys.readouterr().err == ""
    ours.encode(TEXTS, batch_size=2, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Batches" in err and "4/4" in err


def test_folders_minibert_cannot_run_fully_are_refused_naming_what(st_folder, tmp_path):
    folder = tmp_path / "unknown"
    shutil.copytree(st_folder("mean", pooling_mode="mean"), folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"modules\.json: module '2' is a 'sentence_transformers.models.LayerNorm'"):
        SentenceEncoder(folder)
    modules.pop()
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": "median"}))
    with pytest.raises(ConfigError, match=r"1_Pooling/config\.json: pooling mode 'median'"):
        SentenceEncoder(folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 32, "new_setting": 1}))
    with pytest.raises(
        ConfigError, match=r"1_Pooling/config\.json: minibert does not support the setting\(s\) new_setting"
    ):
        SentenceEncoder(folder)


def test_similarity_uses_the_folders_function(st_folder):
    ours, theirs = both(st_folder("dot", pooling_mode="mean", similarity_fn_name="dot"))
    assert ours.similarity_fn_name == theirs.similarity_fn_name == "dot"
    a, b = ours.encode(TEXTS[:3]), ours.encode(TEXTS[3:])
    assert_close(ours.similarity(a, b), theirs.similarity(a, b))


# -- cross-encoders -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory, minilm_dir):
    """cross_dir(num_labels) -> a tiny BertForSequenceClassification saved by transformers."""
    made = {}

    def make(num_labels):
        if num_labels not in made:
            folder = tmp_path_factory.mktemp(f"cross-{num_labels}")
            config = transformers.BertConfig(vocab_size=30522, num_labels=num_labels, **TINY_BERT)
            torch.manual_seed(num_labels)
            transformers.BertForSequenceClassification(config).save_pretrained(folder)
            copy_tokenizer(minilm_dir, folder)
            made[num_labels] = folder
        return made[num_labels]

    return make


@pytest.mark.parametrize("num_labels", [1, 3])
def test_cross_encoder_scores_equal_sentence_transformers(cross_dir, num_labels):
    ours, theirs = CrossEncoder(cross_dir(num_labels)), STCrossEncoder(str(cross_dir(num_labels)), device="cpu")
    assert ours.max_seq_length == theirs.max_seq_length == 64
    expected = theirs.predict(PAIRS)
    scores = ours.predict(PAIRS, batch_size=2)
    assert isinstance(scores, np.ndarray) and scores.shape == ((4,) if num_labels == 1 else (4, 3))
    assert_close(scores, expected)
    for kwargs in ({"apply_softmax": True}, {"activation_fn": torch.nn.Tanh()}, {"convert_to_tensor": True}):
        assert_close(ours.predict(PAIRS, **kwargs), theirs.predict(PAIRS, **kwargs))
    assert_close(ours.predict(PAIRS[0]), theirs.predict(PAIRS[0]))  # one pair, one score
    short = CrossEncoder(cross_dir(num_labels), max_length=8)
    assert_close(short.predict(PAIRS), STCrossEncoder(str(cross_dir(num_labels)), max_length=8).predict(PAIRS))


def test_rank_orders_documents_as_there(cross_dir):
    ours, theirs = CrossEncoder(cross_dir(1)), STCrossEncoder(str(cross_dir(1)), device="cpu")
    query, documents = PAIRS[0][0], [second for _, second in PAIRS]
    expected = theirs.rank(query, documents, return_documents=True)
    ranked = ours.rank(query, documents, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == [r["corpus_id"] for r in expected]
    assert [r["text"] for r in ranked] == [r["text"] for r in expected]
    assert_close([r["score"] for r in ranked], [r["score"] for r in expected])
    assert [r["corpus_id"] for r in ours.rank(query, documents, top_k=2)] == [r["corpus_id"] for r in expected[:2]]
    with pytest.raises(ValueError, match=r"top_k must be an integer from 1 to 4 \(the number of documents\), got 5"):
        ours.rank(query, documents, top_k=5)
    with pytest.raises(ValueError, match="documents is empty"):
        ours.rank(query, [])
    with pytest.raises(ValueError, match="rank\\(\\) needs a one-label model"):
        CrossEncoder(cross_dir(3)).rank(query, documents)
    with pytest.raises(TypeError, match=r"sentences\[0\] must be a pair of two strings"):
        ours.predict([("only one",)])


def test_a_saved_cross_encoder_folder_keeps_its_activation(cross_dir, tmp_path):
    STCrossEncoder(str(cross_dir(3)), device="cpu", activation_fn=torch.nn.Sigmoid()).save(str(tmp_path / "ce"))
    ours, theirs = CrossEncoder(tmp_path / "ce"), STCrossEncoder(str(tmp_path / "ce"), device="cpu")
    assert isinstance(ours.activation_fn, torch.nn.Sigmoid)
    assert_close(ours.predict(PAIRS), theirs.predict(PAIRS))


def test_a_cross_encoder_on_a_base_checkpoint_warns_that_its_head_is_random(bert_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CrossEncoder(bert_dir)
    messages = [str(w.message) for w in caught]
    assert any("classifier.weight, classifier.bias: not in the checkpoint" in m for m in messages), messages


MODERN_EMBEDDERS = {  # modernbert-embed and nomic-embed style folders: a rotary encoder, prompts, mean pooling
    "modernbert": lambda: transformers.ModernBertModel(
        transformers.ModernBertConfig(
            vocab_size=30522,
            pad_token_id=0,
            bos_token_id=101,
            eos_token_id=102,
            cls_token_id=101,
            sep_token_id=102,
            local_attention=8,
            global_attn_every_n_layers=2,
            **{**TINY_BERT, "num_hidden_layers": 3},
        )
    ),
    "nomic_bert": lambda: transformers.NomicBertModel(transformers.NomicBertConfig(vocab_size=30522, **TINY_BERT)),
    "gte": lambda: transformers.GteModel(transformers.GteConfig(vocab_size=30522, type_vocab_size=0, **TINY_BERT)),
}


@pytest.mark.parametrize("architecture", MODERN_EMBEDDERS)
def test_modern_embedding_folders_equal_sentence_transformers(architecture, tmp_path, minilm_dir):
    torch.manual_seed(0)
    MODERN_EMBEDDERS[architecture]().save_pretrained(tmp_path / "encoder")
    copy_tokenizer(minilm_dir, tmp_path / "encoder")
    word = models.Transformer(str(tmp_path / "encoder"), max_seq_length=24)
    modules = [word, models.Pooling(32, "mean"), models.Normalize()]
    prompts = {"query": "search_query: ", "document": "search_document: "}
    SentenceTransformer(modules=modules, prompts=prompts, device="cpu").save(str(tmp_path / "st"))
    ours, theirs = both(tmp_path / "st")
    for prompt_name in ("query", "document"):
        assert_close(ours.encode(TEXTS, prompt_name=prompt_name), theirs.encode(TEXTS, prompt_name=prompt_name))


def test_a_module_path_outside_the_folder_is_refused(st_folder, tmp_path):
    """modules.json is data from the folder: a module path must not lead a load elsewhere."""
    folder = tmp_path / "st"
    shutil.copytree(st_folder("outside", pooling_mode="mean"), folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["path"] = "../elsewhere"
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(
        folder / modules[1]["path"].replace("../elsewhere", "1_Pooling") / "config.json", tmp_path / "elsewhere"
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(CheckpointError, match="outside"):
        SentenceEncoder(folder, device="cpu")
