"""Token-level tasks end to end: the entities and answers of transformers' pipelines, on tiny random models.

A random classifier gives near-uniform scores, where every aggregation strategy agrees and any
span would do; the heads here are scaled so that the scores are peaked and differ token by token:
entities of several tokens, B- and I- tags, words split into pieces that disagree.
"""

import io
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
import transformers
from conftest import hf_config
from transformers.pipelines.document_question_answering import select_starts_ends

import minibert
from minibert.cli import main
from minibert.tasks import AGGREGATION_STRATEGIES, context_windows, question_answering, token_classification

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TEXTS = [
    "Angela Merkel visited the Zürich offices of Siemens on Tuesday.",
    "unseen characters ☃ and q̃ȥ, then hyphenated-words and numbers like 3.14159",
    "Short.",
    "A much longer text " + "that keeps going and going " * 12 + "past the sixty-four tokens the model reads.",
]
CONTEXT = (
    "The tokenizer splits unusual words into pieces, and the model scores every piece of the context as the "
    "first or the last token of an answer. Zürich, Geneva and Basel are cities of Switzerland; Marie Curie "
    "was born in Warsaw in 1867 and worked in Paris."
)
QUESTIONS = ["Where was Marie Curie born?", "Which cities are in Switzerland?", "What does the model score?"]
FAMILIES = {"wordpiece": ("bert-a", "Bert"), "bpe": ("roberta-a", "Roberta")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer_folders):
    """folders(kind, task) -> a folder with a tiny random head (peaked scores) and the ``kind`` tokenizer."""
    made = {}

    def make(kind, task):
        if (kind, task) not in made:
            config_name, family = FAMILIES[kind]
            tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_folders[kind])
            # 64 tokens and RoBERTa's positions after the padding id, as the tokenizer's limit asks.
            config = hf_config(config_name, vocab_size=len(tokenizer), max_position_embeddings=66)
            config.pad_token_id = tokenizer.pad_token_id
            if task == "TokenClassification":
                config.id2label = dict(enumerate(LABELS))
                config.label2id = {label: i for i, label in enumerate(LABELS)}
            torch.manual_seed(0)
            model = getattr(transformers, f"{family}For{task}")(config).eval()
            with torch.no_grad():
                head = model.classifier if task == "TokenClassification" else model.qa_outputs
                head.weight.normal_(0.0, 1.0)  # hidden states are about N(0, 1): logits of spread ~5
            folder = tmp_path_factory.mktemp(f"{kind}-{task}")
            model.save_pretrained(folder)
            for file in tokenizer_folders[kind].iterdir():
                shutil.copy(file, folder / file.name)
            made[kind, task] = folder
        return made[kind, task]

    return make


def tokenizers_of(folder):
    """The tokenizers the tasks must serve: transformers' fast one and minibert's own."""
    return {
        "transformers": transformers.AutoTokenizer.from_pretrained(folder),
        "minibert": minibert.AutoTokenizer.from_pretrained(folder),
    }


def assert_same_entities(ours, expected):
    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected, strict=True):
        assert mine.keys() == theirs.keys()
        assert {k: v for k, v in mine.items() if k != "score"} == {k: v for k, v in theirs.items() if k != "score"}
        assert abs(mine["score"] - float(theirs["score"])) < 1e-5


# -- token classification --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize("strategy", AGGREGATION_STRATEGIES)
def test_entities_equal_the_token_classification_pipeline(folders, kind, strategy):
    folder = folders(kind, "TokenClassification")
    reference = transformers.pipeline("token-classification", model=str(folder), aggregation_strategy=strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BPE: "words guessed from spaces", from both
        expected = [reference(text) for text in TEXTS]
    model = minibert.AutoModelForTokenClassification.from_pretrained(folder)
    for tokenizer in tokenizers_of(folder).values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = token_classification(model, tokenizer, TEXTS, aggregation_strategy=strategy, batch_size=3)
        for mine, theirs in zip(ours, expected, strict=True):
            assert_same_entities(mine, theirs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one = token_classification(model, tokenizer, TEXTS[0], aggregation_strategy=strategy)
        assert_same_entities(one, expected[0])  # one string: that text's entities
    assert sum(map(len, expected)) > 10  # entities were found: the test can tell strategies apart


def test_words_are_guessed_from_spaces_with_a_warning_where_tokens_do_not_mark_them(folders):
    folder = folders("bpe", "TokenClassification")
    model = minibert.AutoModelForTokenClassification.from_pretrained(folder)
    with pytest.warns(UserWarning, match="the tokenizer does not mark where words continue"):
        token_classification(model, minibert.AutoTokenizer.from_pretrained(folder), TEXTS, aggregation_strategy="max")


def test_the_strategies_disagree_on_these_texts(folders):
    """Groups of several tokens, words whose pieces disagree: otherwise the strategy tests would prove little."""
    folder = folders("wordpiece", "TokenClassification")
    found = {
        strategy: transformers.pipeline("token-classification", model=str(folder), aggregation_strategy=strategy)(
            TEXTS[0]
        )
        for strategy in AGGREGATION_STRATEGIES
    }
    assert len({json.dumps(entities, default=str) for entities in found.values()}) == len(AGGREGATION_STRATEGIES)
    assert any(entity["word"].count(" ") for entity in found["simple"])  # a group of several words
    assert any("##" in entity["word"] for entity in found["none"])  # a word split in pieces


def test_a_text_without_entities_gives_an_empty_list(folders):
    folder = folders("wordpiece", "TokenClassification")
    model = minibert.AutoModelForTokenClassification.from_pretrained(folder)
    reference = transformers.AutoModelForTokenClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        for head in (model.classifier, reference.classifier):
            head.bias[0] += 100.0  # "O" everywhere
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    expected = transformers.pipeline("token-classification", model=reference, tokenizer=tokenizer)(TEXTS[0])
    for tokenizer in tokenizers_of(folder).values():
        assert expected == [] == token_classification(model, tokenizer, TEXTS[0])
        assert token_classification(model, tokenizer, [TEXTS[0], ""]) == [[], []]
        kept = token_classification(model, tokenizer, TEXTS[0], ignore_labels=())
        assert [entity["entity_group"] for entity in kept] == ["O"]  # one group of "O" over the whole text


# -- question answering --------------------------------------------------------------------------


def reference_answers(folder, question, context, top_k=1, max_answer_len=15, doc_stride=None, max_seq_len=None,
                      handle_impossible_answer=False):  # fmt: skip
    """transformers 4's question-answering pipeline, which transformers 5 removed, from transformers' own pieces.

    Its steps: the fast tokenizer cuts the windows (``return_overflowing_tokens``, ``stride``), the model
    scores each, ``select_starts_ends`` (kept in transformers 5 for document QA) picks the spans, the
    tokenizer's ``Encoding`` widens them to words, and equal answers add up their scores.
    """
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    max_seq_len = min(tokenizer.model_max_length, 384) if max_seq_len is None else max_seq_len
    doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
    encoded = tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)  # fmt: skip
    answers, min_null_score = [], 1000000
    for i, ids in enumerate(encoded["input_ids"]):
        p_mask = np.array([s != 1 for s in encoded.sequence_ids(i)])
        p_mask[np.array(ids) == tokenizer.cls_token_id] = 0
        inputs = {name: torch.tensor([encoded[name][i]]) for name in tokenizer.model_input_names}
        with torch.no_grad():
            output = model(**inputs)
        starts, ends, scores, min_null_score = select_starts_ends(
            output.start_logits.numpy(), output.end_logits.numpy(), p_mask, np.array(encoded["attention_mask"][i]),
            min_null_score, top_k * 2 + 10, handle_impossible_answer, max_answer_len,
        )  # fmt: skip
        encoding = encoded.encodings[i]
        for s, e, score in zip(starts, ends, scores, strict=True):
            try:
                start = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
                end = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
            except Exception:  # a token of no word: its own offsets, as the pipeline falls back
                start, end = encoding.offsets[s][0], encoding.offsets[e][1]
            same = [a for a in answers if a["answer"].lower() == context[start:end].lower()]
            if same:
                same[0]["score"] += score.item()
            else:
                answers.append({"score": score.item(), "start": start, "end": end, "answer": context[start:end]})
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


def assert_same_answers(ours, expected):
    if isinstance(expected, dict):
        ours, expected = [ours], [expected]
    assert_same_entities(ours, expected)


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"top_k": 5},
        {"top_k": 4, "handle_impossible_answer": True},
        {"top_k": 3, "max_answer_len": 3},
        {"top_k": 3, "max_seq_len": 40, "doc_stride": 8},  # the context in several windows
        {"max_seq_len": 48, "doc_stride": 12},
    ],
)
def test_answers_equal_the_question_answering_pipeline(folders, kind, options):
    folder = folders(kind, "QuestionAnswering")
    model = minibert.AutoModelForQuestionAnswering.from_pretrained(folder)
    for tokenizer in tokenizers_of(folder).values():
        ours = question_answering(model, tokenizer, QUESTIONS, CONTEXT, batch_size=2, **options)
        for question, mine in zip(QUESTIONS, ours, strict=True):
            assert_same_answers(mine, reference_answers(folder, question, CONTEXT, **options))
        one = question_answering(model, tokenizer, QUESTIONS[0], CONTEXT, **options)
        assert_same_answers(one, reference_answers(folder, QUESTIONS[0], CONTEXT, **options))


@pytest.mark.parametrize("kind", FAMILIES)
def test_the_context_is_read_in_the_windows_of_the_fast_tokenizer(folders, kind):
    folder = folders(kind, "QuestionAnswering")
    encoded = transformers.AutoTokenizer.from_pretrained(folder)(
        QUESTIONS[0], CONTEXT, truncation="only_second", max_length=40, stride=6, return_overflowing_tokens=True
    )
    for tokenizer in tokenizers_of(folder).values():
        whole = tokenizer(QUESTIONS[0], CONTEXT)
        windows = context_windows(whole.sequence_ids(0), 40, 6, 64)
        assert len(windows) == len(encoded["input_ids"]) > 1
        assert [[whole["input_ids"][p] for p in window] for window in windows] == encoded["input_ids"]


def test_a_long_question_is_cut_to_max_question_len(folders):
    tokenizer = minibert.AutoTokenizer.from_pretrained(folders("wordpiece", "QuestionAnswering"))
    whole = tokenizer(QUESTIONS[0], CONTEXT)
    question = [i for i, s in zip(whole["input_ids"], whole.sequence_ids(0), strict=True) if s == 0]
    for window in context_windows(whole.sequence_ids(0), 40, 6, max_question_len=3):
        ids = [whole["input_ids"][p] for p in window]
        assert ids[:5] == [tokenizer.cls_token_id, *question[:3], tokenizer.sep_token_id] and len(ids) <= 40


def test_no_answer_wins_where_the_first_token_scores_highest(folders, tmp_path):
    folder = folders("wordpiece", "QuestionAnswering")
    reference = transformers.AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():  # point both scores at the [CLS] token's hidden state
        inputs = tokenizer(QUESTIONS[1], CONTEXT, truncation=True, return_tensors="pt")
        first = reference.bert(**inputs).last_hidden_state[0, 0]
        reference.qa_outputs.weight.copy_(torch.stack([first, first]) / first.norm() * 3)
    reference.save_pretrained(tmp_path)
    for file in folder.iterdir():
        if "token" in file.name or file.name.startswith(("vocab", "merges", "special")):
            shutil.copy(file, tmp_path / file.name)
    model = minibert.AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    options = {"top_k": 3, "handle_impossible_answer": True, "max_seq_len": 40, "doc_stride": 8}
    for tokenizer in tokenizers_of(tmp_path).values():
        answers = question_answering(model, tokenizer, QUESTIONS[1], CONTEXT, **options)
        assert_same_answers(answers, reference_answers(tmp_path, QUESTIONS[1], CONTEXT, **options))
        assert answers[0]["answer"] == "" and answers[1]["answer"]


def test_bad_arguments_are_errors_that_name_them(folders):
    folder = folders("wordpiece", "QuestionAnswering")
    model = minibert.AutoModelForQuestionAnswering.from_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        question_answering(model, tokenizer, "q?", CONTEXT, top_k=0)
    with pytest.raises(ValueError, match="context 1: empty"):
        question_answering(model, tokenizer, ["q?", "r?"], [CONTEXT, ""])
    with pytest.raises(ValueError, match="2 questions and 3 contexts"):
        question_answering(model, tokenizer, ["q?", "r?"], [CONTEXT] * 3)
    with pytest.raises(ValueError, match="must be more than doc_stride=26"):  # tokenizers panics there
        question_answering(model, tokenizer, QUESTIONS[0], CONTEXT, max_seq_len=30, doc_stride=26)
    tagger = minibert.AutoModelForTokenClassification.from_pretrained(folders("wordpiece", "TokenClassification"))
    with pytest.raises(ValueError, match="aggregation_strategy must be one of 'none', 'simple'"):
        token_classification(tagger, tokenizer, TEXTS, aggregation_strategy="longest")
    with pytest.raises(ValueError, match="texts is empty"):
        token_classification(tagger, tokenizer, [])
    with pytest.raises(minibert.MinibertError, match="model: question answering reads the scores of a Quest"):
        question_answering(tagger, tokenizer, "q?", CONTEXT)
    with pytest.raises(minibert.MinibertError, match="BertModel has none; load the checkpoint with minibert.AutoMo"):
        token_classification(tagger.base_model, tokenizer, TEXTS)


# -- the command line ------------------------------------------------------------------------------


def test_ner_command_prints_the_pipeline_entities_as_json_lines(folders, tmp_path, capsys):
    folder = folders("wordpiece", "TokenClassification")
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(TEXTS[1:3]), encoding="utf-8")
    assert main(["ner", str(folder), TEXTS[0], "--file", str(lines), "--aggregation-strategy", "first"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    reference = transformers.pipeline("token-classification", model=str(folder), aggregation_strategy="first")
    assert [row["text"] for row in printed] == TEXTS[:3]
    for row in printed:
        assert_same_entities(row["entities"], reference(row["text"]))


def test_qa_command_prints_the_answers_as_json_lines(folders, capsys, monkeypatch):
    folder = folders("bpe", "QuestionAnswering")
    monkeypatch.setattr("sys.stdin", io.StringIO(CONTEXT))
    arguments = ["qa", str(folder), "--question", QUESTIONS[0], "--question", QUESTIONS[2], "--context-file", "-"]
    assert main([*arguments, "--top-k", "2", "--max-seq-len", "48", "--doc-stride", "10"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["question"] for row in printed] == [QUESTIONS[0], QUESTIONS[2]]
    for row in printed:
        expected = reference_answers(folder, row["question"], CONTEXT, top_k=2, max_seq_len=48, doc_stride=10)
        assert_same_answers(row["answers"], expected)
    assert main(["qa", str(folder), "--question", QUESTIONS[0]]) == 2
    assert "give the context as --context TEXT or --context-file PATH" in capsys.readouterr().err


def test_the_commands_say_on_stderr_that_the_head_is_untrained(folders, tmp_path, capsys):
    for task, arguments in (("TokenClassification", ["ner"]), ("QuestionAnswering", ["qa"])):
        source, base = folders("wordpiece", task), tmp_path / task  # the encoder alone: no head weights
        transformers.BertModel.from_pretrained(source).save_pretrained(base)
        for file in source.iterdir():
            if not (base / file.name).exists():
                shutil.copy(file, base / file.name)
        inputs = ["some text"] if task == "TokenClassification" else ["--question", "what?", "--context", "a text"]
        assert main([*arguments, str(base), *inputs]) == 0
        head = "classifier" if task == "TokenClassification" else "qa_outputs"
        assert f"{head}.weight, {head}.bias: not in the checkpoint" in capsys.readouterr().err


def test_byte_level_decoding_keeps_a_token_of_text_whole_as_tokenizers_does():
    """The words of BPE entities are decoded twice (tokens, then words): the second pass must leave text as it is."""
    from tokenizers import decoders

    from minibert.tokenization.decoders import byte_level_decode

    for tokens in (["Hello", "Ġw", "Ã©"], [" Zürich"], ["ĠZ", "Ã", "¼"], ["Ã"], ["a b", "Ġc", "Ã©"]):
        assert byte_level_decode(tokens) == decoders.ByteLevel().decode(tokens)
