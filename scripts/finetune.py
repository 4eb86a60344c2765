"""Fine-tune all-MiniLM-L6-v2 into a sentiment classifier, save it, and check transformers agrees.

    .venv/bin/python scripts/finetune.py [--epochs 3] [--output DIR]

The data is generated here: templated reviews whose sentiment rests on an adjective, a negation,
or the second half of a "but" sentence. The held-out split uses adjectives and subjects that
training never shows, so its accuracy measures what the pretrained encoder brings, not memorised
words. Runs in a minute or two on a laptop CPU.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import minibert
from minibert.cli import default_checkpoint
from minibert.tokenization import AutoTokenizer, PreTrainedTokenizer

LABELS = {0: "negative", 1: "positive"}
# Per label: adjectives for training, then adjectives only the held-out split uses.
ADJECTIVES = {
    1: (
        ["great", "wonderful", "excellent", "fantastic", "lovely", "delightful", "brilliant", "enjoyable", "amazing"],
        ["superb", "marvelous", "terrific"],
    ),
    0: (
        ["terrible", "awful", "horrible", "dreadful", "boring", "disappointing", "poor", "unpleasant", "bad"],
        ["atrocious", "dismal", "lousy"],
    ),
}
SUBJECTS = (
    ["the movie", "this film", "the restaurant", "the book", "the service", "my new phone", "the hotel", "the show"],
    ["the concert", "this album", "the museum", "the game"],
)
# (template, negated): a negated template says the opposite of its adjective.
TEMPLATES = [
    ("{subject} was {adjective}.", False),
    ("honestly, {subject} is {adjective}.", False),
    ("i thought {subject} was really {adjective}.", False),
    ("my friends said {subject} was {adjective}, and they were right.", False),
    ("{subject} was not {adjective} at all.", True),
    ("i would never call {subject} {adjective}.", True),
    ("my friends said {subject} was {adjective}, but they were wrong.", True),
    ("at first it seemed {other}, but in the end {subject} was {adjective}.", False),
]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]


def make_dataset(held_out: bool, size: int, seed: int) -> list[tuple[str, int]]:
    """``size`` (text, label) pairs, half of each label, from the training or the held-out words."""
    rng = random.Random(seed)
    split = 1 if held_out else 0
    examples = []
    for number in range(size):
        label = number % 2
        template, negated = rng.choice(TEMPLATES)
        sentiment = 1 - label if negated else label  # the adjective's own sentiment
        text = template.format(
            subject=rng.choice(SUBJECTS[split]),
            adjective=rng.choice(ADJECTIVES[sentiment][split]),
            other=rng.choice(ADJECTIVES[1 - sentiment][split]),
        )
        examples.append((text, label))
    rng.shuffle(examples)
    return examples


def batches(examples: list[tuple[str, int]], size: int, shuffle: random.Random | None = None):
    """Lists of ``size`` examples, in a new random order each call if ``shuffle`` is given."""
    order = list(range(len(examples)))
    if shuffle is not None:
        shuffle.shuffle(order)
    for start in range(0, len(order), size):
        yield [examples[i] for i in order[start : start + size]]


def encode(tokenizer: PreTrainedTokenizer, batch: list[tuple[str, int]], max_length: int) -> dict[str, torch.Tensor]:
    texts = [text for text, _ in batch]
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {**inputs, "labels": torch.tensor([label for _, label in batch])}  # ids (B, T), labels (B,)


def progress(epoch: int, step: int, steps: int, loss: float, started: float) -> None:
    """One line, rewritten in place: a text progress bar with the running loss."""
    done = int(30 * step / steps)
    bar = "#" * done + "." * (30 - done)
    print(f"\repoch {epoch} [{bar}] {step}/{steps}  loss {loss:.4f}  {time.perf_counter() - started:.0f}s", end="")
    sys.stdout.flush()


@torch.no_grad()
def predict(model: minibert.PreTrainedModel, tokenizer: PreTrainedTokenizer, examples, max_length: int):
    """Logits (N, 2) for every example, in order."""
    model.eval()
    logits = [model(**encode(tokenizer, batch, max_length)).logits for batch in batches(examples, 64)]
    return torch.cat(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=24)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--test-size", type=int, default=120)
    parser.add_argument("--output", type=Path, default=Path(tempfile.gettempdir()) / "minibert-finetuned-minilm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    checkpoint = default_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = minibert.AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=2, id2label=LABELS, label2id={name: i for i, name in LABELS.items()}
    )
    report = model.load_report
    print(f"loaded {checkpoint.name}: {len(report.missing)} new tensors ({', '.join(report.missing)})")
    train = make_dataset(held_out=False, size=args.train_size, seed=args.seed)
    test = make_dataset(held_out=True, size=args.test_size, seed=args.seed + 1)
    print(f"{len(train)} training examples, {len(test)} held-out (unseen adjectives and subjects)")
    print(f"e.g. {train[0][0]!r} -> {LABELS[train[0][1]]}")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    shuffle = random.Random(args.seed)
    steps = -(-len(train) // args.batch_size)
    # The usual fine-tuning schedule: the learning rate falls linearly to 0 over the run.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: 1 - done / (steps * args.epochs))
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_started, total = time.perf_counter(), 0.0
        for step, batch in enumerate(batches(train, args.batch_size, shuffle), start=1):
            loss = model(**encode(tokenizer, batch, args.max_length)).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item()
            progress(epoch, step, steps, total / step, epoch_started)
        predicted = predict(model, tokenizer, test, args.max_length).argmax(-1)
        accuracy = (predicted == torch.tensor([label for _, label in test])).float().mean().item()
        print(f"\nepoch {epoch}: held-out accuracy {accuracy:.1%}")

    model.save_pretrained(args.output)
    for name in TOKENIZER_FILES:
        if (checkpoint / name).exists():
            shutil.copy(checkpoint / name, args.output / name)
    print(f"saved to {args.output}")

    ours = predict(model, tokenizer, test, args.max_length)
    try:
        import transformers
    except ImportError:
        print("transformers is not installed: skipped the check that it predicts the same labels")
    else:
        transformers.utils.logging.disable_progress_bar()
        theirs_model = transformers.AutoModelForSequenceClassification.from_pretrained(args.output).eval()
        theirs_tokenizer = transformers.AutoTokenizer.from_pretrained(args.output)
        with torch.no_grad():
            theirs = torch.cat(
                [
                    theirs_model(
                        **theirs_tokenizer(
                            [text for text, _ in batch],
                            padding=True,
                            truncation=True,
                            max_length=args.max_length,
                            return_tensors="pt",
                        )
                    ).logits
                    for batch in batches(test, 64)
                ]
            )
        same = (ours.argmax(-1) == theirs.argmax(-1)).sum().item()
        gap = (ours - theirs).abs().max().item()
        print(f"transformers loads it and predicts the same label for {same}/{len(test)} held-out examples")
        print(f"(largest logit difference {gap:.2e})")
        if same != len(test):
            sys.exit("transformers disagrees with minibert")
    print(f"done in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
