"""Trace loaders refuse damaged files (``librex_alloc/environments/traces.py``): an Alibaba
pod list cut inside a row, a Bitbrains series whose timestamps repeat."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from librex_alloc.environments import AlibabaGpuEnvironment, BitbrainsEnvironment
from librex_alloc.environments.traces import NODE_FILE, POD_FILE, load_alibaba, load_bitbrains
from librex_alloc.errors import InvalidInputError

DATA = Path(__file__).parents[1] / "data"
ALIBABA = DATA / "alibaba_gpu_v2023_excerpt"
BITBRAINS = DATA / "bitbrains_rnd_excerpt" / "2013-7" / "1.csv"


def _alibaba_copy(tmp_path: Path, pods: str) -> Path:
    folder = tmp_path / "alibaba"
    folder.mkdir()
    shutil.copy(ALIBABA / NODE_FILE, folder / NODE_FILE)
    (folder / POD_FILE).write_text(pods)
    return folder


def _pods() -> str:
    return (ALIBABA / POD_FILE).read_text()


def test_the_intact_excerpt_loads(tmp_path):
    folder = _alibaba_copy(tmp_path, _pods())
    assert len(load_alibaba(folder).pods) == len(_pods().splitlines()) - 1


@pytest.mark.parametrize("cut", [
    lambda text: text.rstrip("\n")[:-len("12537496")],   # inside the last field, no line end
    lambda text: text[:text.rindex(",Running,") + len(",Runn")],  # a phase cut to "Runn"
])
def test_a_pod_list_cut_inside_its_last_row_is_refused(cut, tmp_path):
    text = _pods()
    assert text.rstrip("\n").endswith(("12537496", "0")) or ",Running," in text
    folder = _alibaba_copy(tmp_path, cut(text))
    with pytest.raises(InvalidInputError, match="cut"):
        load_alibaba(folder)
    with pytest.raises(InvalidInputError):
        AlibabaGpuEnvironment(n_agents=5, path=folder)


def test_a_short_row_in_the_middle_is_refused_with_its_line(tmp_path):
    lines = _pods().splitlines(keepends=True)
    lines[10] = ",".join(lines[10].split(",")[:7]) + "\n"  # fields after qos lost
    folder = _alibaba_copy(tmp_path, "".join(lines))
    with pytest.raises(InvalidInputError, match="line 11 has fewer fields"):
        load_alibaba(folder)


def test_an_unknown_phase_is_refused(tmp_path):
    folder = _alibaba_copy(tmp_path, _pods().replace(",Running,", ",Runn,", 1))
    with pytest.raises(InvalidInputError, match="unknown value 'Runn'"):
        load_alibaba(folder)


def test_a_row_with_extra_fields_is_refused(tmp_path):
    lines = _pods().splitlines(keepends=True)
    lines[5] = lines[5].rstrip("\n") + lines[6]  # two rows joined: a lost line break
    folder = _alibaba_copy(tmp_path, "".join(lines))
    with pytest.raises(InvalidInputError):
        load_alibaba(folder)


def _bitbrains_copy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "1.csv"
    path.write_text(text)
    return path


def test_bitbrains_with_equal_timestamps_is_refused(tmp_path):
    head, *rows = BITBRAINS.read_text().splitlines(keepends=True)
    stamp = rows[0].split(";")[0]
    same = [stamp + ";" + r.split(";", 1)[1] for r in rows]
    with pytest.raises(InvalidInputError, match="repeat an earlier timestamp"):
        load_bitbrains(_bitbrains_copy(tmp_path, head + "".join(same)))
    twice = rows[:3] + rows[2:]
    with pytest.raises(InvalidInputError, match="repeat"):
        BitbrainsEnvironment(n_agents=3, path=_bitbrains_copy(tmp_path, head + "".join(twice)))


def test_bitbrains_cut_in_its_last_row_is_refused(tmp_path):
    text = BITBRAINS.read_text().rstrip("\n")
    with pytest.raises(InvalidInputError, match="cut"):
        load_bitbrains(_bitbrains_copy(tmp_path, text[:-3]))


@pytest.mark.parametrize("vary", ["demand", "budget"])
def test_bitbrains_environment_restores_its_own_state(vary, tmp_path):
    a = BitbrainsEnvironment(n_agents=6, vary=vary, seed=3, path=BITBRAINS)
    b = BitbrainsEnvironment(n_agents=6, vary=vary, seed=3, path=BITBRAINS)
    b.offsets = b.offsets + 300  # a different state to overwrite
    a.requests(5)
    b.set_state(a.get_state())
    assert np.array_equal(a.offsets, b.offsets) and b.round == 5
    assert np.array_equal(a.requests(6).request.requests, b.requests(6).request.requests)
