"""minibert.allocator: after a model's first call, forwards reuse the memory the one before freed (glibc),
and ``set_memory_reuse(False)`` leaves the C allocator as it was."""

import subprocess
import sys

import pytest
import torch

import minibert
from minibert import allocator

COUNT_FAULTS = """
import resource, sys, torch, minibert
minibert.set_memory_reuse(sys.argv[1] == "on")
torch.set_num_threads(1)
config = minibert.BertConfig(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, vocab_size=100
)
model = minibert.BertModel(config).eval()
ids = torch.randint(0, 100, (256, 128))
faults = []
with torch.inference_mode():
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(input_ids=ids)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[-3:]))
"""


def faults_in_late_forwards(setting: str) -> int:
    """Minor page faults (fresh pages from the kernel) in the last 3 of 8 forwards, in a new process."""
    done = subprocess.run([sys.executable, "-c", COUNT_FAULTS, setting], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(allocator.glibc() is None, reason="the thresholds are glibc's; other C libraries are left alone")
def test_forwards_reuse_the_memory_the_one_before_freed():
    kept, given_back = faults_in_late_forwards("on"), faults_in_late_forwards("off")
    assert given_back > 10_000  # 256 x 128 tokens: glibc alone asks the kernel for every activation again
    assert kept < given_back / 20


@pytest.fixture
def thresholds_set(monkeypatch):
    """The sizes minibert passes to glibc, recorded instead of set; a process whose first call is still to come."""
    sizes: list[int] = []
    monkeypatch.setattr(allocator, "set_thresholds", lambda size: sizes.append(size) or True)
    monkeypatch.setattr(allocator, "wanted", True)
    monkeypatch.setattr(allocator, "applied", False)
    return sizes


def tiny_model() -> minibert.PreTrainedModel:
    config = minibert.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    return minibert.BertModel(config).eval()


def test_the_first_call_of_any_model_sets_the_thresholds_once(thresholds_set):
    model = tiny_model()
    assert thresholds_set == []  # building a model changes nothing
    model(input_ids=torch.tensor([[1, 2]]))
    model(input_ids=torch.tensor([[1, 2]]))
    tiny_model()(input_ids=torch.tensor([[1, 2]]))
    assert thresholds_set == [allocator.KEPT_BYTES]


def test_turned_off_first_glibc_is_left_alone_and_off_later_sets_its_start_back(thresholds_set):
    minibert.set_memory_reuse(False)
    tiny_model()(input_ids=torch.tensor([[1, 2]]))
    assert thresholds_set == []
    minibert.set_memory_reuse(True)
    minibert.set_memory_reuse(False)
    assert thresholds_set == [allocator.KEPT_BYTES, allocator.GLIBC_START_BYTES]
    minibert.set_memory_reuse(False)
    assert thresholds_set == [allocator.KEPT_BYTES, allocator.GLIBC_START_BYTES]


def test_set_memory_reuse_takes_a_bool(thresholds_set):
    with pytest.raises(TypeError, match="set_memory_reuse takes True or False, got 'no'"):
        minibert.set_memory_reuse("no")
    assert thresholds_set == []


def test_a_compiled_first_call_traces_in_one_graph(thresholds_set):
    """``torch.compile(fullgraph=True)`` cannot trace the allocator call (ctypes, logging): a compiled call skips it."""
    model = tiny_model()
    ids = torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        compiled = torch.compile(model, fullgraph=True)(input_ids=ids).last_hidden_state
        assert thresholds_set == []
        torch.testing.assert_close(compiled, model(input_ids=ids).last_hidden_state)
    assert thresholds_set == [allocator.KEPT_BYTES]
