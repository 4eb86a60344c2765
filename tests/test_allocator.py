"""minibert.allocator: after a model's first call, forwards reuse the memory the one before freed (glibc),
and ``set_memory_reuse(False)`` leaves the C allocator as it was; importing minibert asks for huge pages."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import minibert
from minibert import allocator

COUNT_FAULTS = """
import resource, statistics, sys, torch, minibert
if sys.argv[1] == "off":
    minibert.set_memory_reuse(False)
torch.set_num_threads(1)
config = minibert.BertConfig(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, vocab_size=100
)
model = minibert.BertModel(config).eval()
ids = torch.randint(0, 100, (256, 128))
faults = []
with torch.inference_mode():
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(input_ids=ids)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(statistics.median(faults[-7:]))
"""


def faults_per_late_forward(setting: str) -> float:
    """Minor page faults (fresh pages from the kernel) of a forward once the heap has grown: the median of
    the last 7 of 12, in a new process with minibert's default ("on") or with reuse turned off first."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    environment.pop("GLIBC_TUNABLES", None)
    environment[allocator.HUGE_PAGES_SWITCH] = "0"  # a fault per 4 KiB page: huge pages would hide the count
    done = subprocess.run(
        [sys.executable, "-c", COUNT_FAULTS, setting], capture_output=True, text=True, check=True, env=environment
    )
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(allocator.glibc() is None, reason="the thresholds are glibc's; other C libraries are left alone")
def test_forwards_reuse_the_memory_the_one_before_freed():
    kept, given_back = faults_per_late_forward("on"), faults_per_late_forward("off")
    assert given_back > 10_000  # 256 x 128 tokens: glibc alone asks the kernel for every activation again
    assert kept < given_back / 20


@pytest.fixture
def thresholds_set(monkeypatch):
    """The sizes minibert passes to glibc, recorded instead of set; a process whose first call is still to come."""
    sizes: list[int] = []
    monkeypatch.setattr(allocator, "set_thresholds", lambda size: sizes.append(size) or True)
    libc = types.SimpleNamespace(malloc_trim=lambda pad: 1)  # a C library whose thresholds are set_thresholds'
    monkeypatch.setattr(allocator, "glibc", lambda: libc)
    monkeypatch.setattr(allocator, "wanted", True)
    monkeypatch.setattr(allocator, "applied", False)
    allocator.adjustable.cache_clear()  # asked again, under this test's environment
    yield sizes
    allocator.adjustable.cache_clear()


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
    with pytest.raises(ValueError, match="set_memory_reuse takes True or False, got 'no'"):
        minibert.set_memory_reuse("no")
    assert thresholds_set == []


def test_a_compiled_first_call_traces_in_one_graph(thresholds_set):
    """``torch.compile(fullgraph=True)`` cannot trace the allocator call (ctypes, logging): a compiled call skips it."""
    model = tiny_model()
    ids = torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        compiled = torch.compile(model, fullgraph=True, backend="eager")(input_ids=ids).last_hidden_state
        assert thresholds_set == []
        torch.testing.assert_close(compiled, model(input_ids=ids).last_hidden_state)
    assert thresholds_set == [allocator.KEPT_BYTES]


@pytest.mark.parametrize(
    "variable, value",
    [
        ("MALLOC_TRIM_THRESHOLD_", "1000000"),
        ("MALLOC_MMAP_THRESHOLD_", "65536"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1"),
    ],
)
def test_a_process_started_with_its_own_malloc_settings_keeps_them(thresholds_set, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    tiny_model()(input_ids=torch.tensor([[1, 2]]))
    assert thresholds_set == []


def test_a_model_off_the_cpu_leaves_glibc_alone(thresholds_set):
    allocator.reuse_freed_memory(tiny_model().to("meta"))
    assert thresholds_set == []
    allocator.reuse_freed_memory(tiny_model())
    assert thresholds_set == [allocator.KEPT_BYTES]


class RefusingGlibc:
    """A glibc that takes mmap thresholds up to 32 MiB only, as older releases do; records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.asked.append((parameter, value))
        return int(parameter != allocator.M_MMAP_THRESHOLD or value <= 32 << 20)


def test_an_older_glibc_gets_the_largest_mmap_threshold_it_takes(monkeypatch):
    libc = RefusingGlibc()
    monkeypatch.setattr(allocator, "glibc", lambda: libc)
    assert allocator.set_thresholds(allocator.KEPT_BYTES)
    assert libc.asked == [
        (allocator.M_TRIM_THRESHOLD, allocator.KEPT_BYTES),
        (allocator.M_MMAP_THRESHOLD, allocator.KEPT_BYTES),
        (allocator.M_MMAP_THRESHOLD, 32 << 20),
    ]


# -- huge pages ---------------------------------------------------------------------------

HUGE_PAGES_SYSFS = Path("/sys/kernel/mm/transparent_hugepage/enabled")
REPORT_PAGES = """
import json, os, sys, torch
if sys.argv[1] == "tensor first":
    torch.ones(3)
import minibert
from minibert.allocator import huge_pages, mapping_of
weight = torch.empty(4 << 20)  # 16 MiB, as large as a weight
print(json.dumps({
    "switch": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    "asked": "hg" in mapping_of(weight.data_ptr()).get("VmFlags", "").split(),
    "huge_pages": huge_pages(),
}))
"""


def pages_in_a_new_process(switch: str | None, order: str = "minibert first") -> dict:
    """How a fresh process's large tensors are paged, with THP_MEM_ALLOC_ENABLE set to ``switch`` (None: unset)."""
    environment = {name: value for name, value in os.environ.items() if name != allocator.HUGE_PAGES_SWITCH}
    if switch is not None:
        environment[allocator.HUGE_PAGES_SWITCH] = switch
    done = subprocess.run(
        [sys.executable, "-c", REPORT_PAGES, order], capture_output=True, text=True, check=True, env=environment
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(not HUGE_PAGES_SYSFS.is_file(), reason="a kernel without transparent huge pages")
def test_importing_minibert_asks_for_huge_pages_for_large_tensors():
    mode = HUGE_PAGES_SYSFS.read_text()
    kernel_gives, always = "[never]" not in mode, "[always]" in mode  # always: every large mapping, asked or not
    default = pages_in_a_new_process(None)
    assert default == {"switch": "1", "asked": True, "huge_pages": kernel_gives}
    assert pages_in_a_new_process("0") == {"switch": "0", "asked": False, "huge_pages": always}  # the user's own say
    # PyTorch reads its switch at the process's first CPU tensor: one made before minibert keeps 4 KiB pages.
    assert pages_in_a_new_process(None, "tensor first") == {"switch": "1", "asked": False, "huge_pages": always}
