"""Threads: the CPUs this process may use, less the ones other processes keep busy, applied
at every train and sample call (issue 17, item 1)."""

from __future__ import annotations

import pytest
import torch

import scdiff
from scdiff import _threads
from scdiff._errors import render
from scdiff._threads import Load, available_cpus, choose_threads
from tests.conftest import make_counts


class FakeMeter:
    def __init__(self, others: float, machine_cpus: int = 2) -> None:
        self.load = Load(others, machine_cpus)

    def look(self):
        return self.load


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.delenv("SCDIFF_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "available_cpus", lambda: 2)


def test_auto_leaves_the_cpus_other_jobs_keep_busy(two_cpus):
    assert choose_threads("auto", meter=FakeMeter(0.1)) == (2, None)
    n, note = choose_threads("auto", meter=FakeMeter(1.0))
    assert n == 1 and "keep 1.0 of the machine's 2 CPUs busy" in render(note)
    assert "set threads to choose" in render(note)
    assert choose_threads("auto", meter=FakeMeter(2.0))[0] == 1  # never fewer than one


def test_a_number_is_used_as_given_with_a_note_when_the_machine_is_busier(two_cpus):
    assert choose_threads(2, meter=FakeMeter(0.0)) == (2, None)
    n, note = choose_threads(2, meter=FakeMeter(1.0))
    assert n == 2 and "threads=1 would fit" in render(note)


def test_environment_fixes_or_caps_the_count(monkeypatch):
    monkeypatch.setenv("SCDIFF_THREADS", "3")
    assert choose_threads("auto", meter=FakeMeter(0.0))[0] == 3
    monkeypatch.delenv("SCDIFF_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cpus() == 1


def test_the_load_meter_reads_this_machine():
    meter = _threads.LoadMeter()
    load = meter.look()
    assert load is not None and load.machine_cpus >= 1 and load.others >= 0
    assert meter.look() is not None  # later looks use the time since the last one


@pytest.mark.parametrize("bad", [0, -2, 1.5, "many", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(scdiff.InputError, match="threads=.* needs to be a whole number >= 1 or 'auto'"):
        choose_threads(bad)


def test_every_call_sets_the_threads_again(monkeypatch):
    """A library in between (scanpy's neighbours) may change torch's thread count."""
    monkeypatch.setenv("SCDIFF_THREADS", "2")
    model = scdiff.ConditionalDiffusion(make_counts(seed=3), condition="cell_type", width=16, depth=1)
    torch.set_num_threads(1)
    model.train(steps=3, progress=False)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    fake = model.sample(5, steps=2, threads=2)
    assert torch.get_num_threads() == 2 and fake.uns["scdiff"]["threads"] == 2
    with pytest.raises(scdiff.InputError, match="threads=0"):
        model.sample(5, steps=2, threads=0)
    with pytest.raises(scdiff.InputError, match="threads=0"):
        model.train(steps=2, progress=False, threads=0)
