"""Data-parallel fine-tuning: a DistributedDataParallel step over two processes is the step of one
process on the whole batch (here, transformers' step: the same checkpoint, batch and optimiser)."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import minibert

WORLD_SIZE = 2
LEARNING_RATE = 0.5  # large, so that the step moves every weight visibly
CONFIG = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
    "num_labels": 3,
    "hidden_dropout_prob": 0.0,  # dropout would draw different masks in each process
    "attention_probs_dropout_prob": 0.0,
}


def combined_batch() -> dict[str, torch.Tensor]:
    """Eight labelled, padded sequences; each process takes its own half."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, CONFIG["vocab_size"], (8, 12), generator=generator)
    lengths = torch.randint(3, 13, (8, 1), generator=generator)
    attention_mask = (torch.arange(12) < lengths).long()
    labels = torch.randint(0, CONFIG["num_labels"], (8,), generator=generator)
    return {"input_ids": input_ids * attention_mask, "attention_mask": attention_mask, "labels": labels}


def sgd_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """One plain SGD step on the batch's mean loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    model(**batch).loss.backward()
    optimizer.step()


def data_parallel_worker(rank: int, folder: str) -> None:
    """One process: its half of the batch; DDP averages the gradients of the halves before the step."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD_SIZE)
    try:
        model = minibert.BertForSequenceClassification.from_pretrained(folder).train()
        half = {name: tensor.chunk(WORLD_SIZE)[rank] for name, tensor in combined_batch().items()}
        sgd_step(DistributedDataParallel(model), half)
        torch.save(model.state_dict(), f"{folder}/rank{rank}.pt")
        dist.barrier()  # neither process tears the group down while the other still uses it
    finally:
        dist.destroy_process_group()
    # Now and then the interpreter's own teardown aborts in a spawned gloo process (std::terminate,
    # SIGABRT: ~1 run in 12, before minibert kept freed memory too) after the results are saved;
    # they are what this test checks, so a process that got this far leaves without that teardown.
    os._exit(0)


def test_ddp_step_on_two_processes_equals_one_step_on_the_combined_batch(tmp_path):
    import transformers  # here, not at the top: each spawned process imports this module

    torch.manual_seed(0)
    transformers.BertForSequenceClassification(transformers.BertConfig(**CONFIG)).save_pretrained(tmp_path)
    mp.spawn(data_parallel_worker, args=(str(tmp_path),), nprocs=WORLD_SIZE, join=True)

    theirs = transformers.BertForSequenceClassification.from_pretrained(tmp_path).train()
    before = {name: tensor.clone() for name, tensor in theirs.state_dict().items()}
    sgd_step(theirs, combined_batch())
    expected = theirs.state_dict()
    assert all(not torch.equal(before[name], expected[name]) for name, _ in theirs.named_parameters())
    for rank in range(WORLD_SIZE):
        updated = torch.load(tmp_path / f"rank{rank}.pt")
        assert updated.keys() == expected.keys()
        for name, tensor in expected.items():
            torch.testing.assert_close(updated[name], tensor, atol=2e-6, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
