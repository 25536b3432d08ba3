"""Where data files are found (``librex_alloc.datasets.find_data``): ``LIBREX_DATA`` in the
full layout and in the committed excerpts' layout, ``shared/data`` only beside a checkout,
and one line naming the missing data and the setting that finds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from librex_alloc import datasets
from librex_alloc.datasets import DATA_ENV_VAR, DataNotFoundError, find_data

ROOT = Path(__file__).resolve().parents[2]
EXCERPTS = ROOT / "tests" / "data"
FILES = [("orlib_mknap", "mknap1.txt"), ("alibaba_gpu_v2023", "openb_pod_list_default.csv"),
         ("alibaba_gpu_v2023", "openb_node_list_all_node.csv"), ("bitbrains_rnd", "2013-7/1.csv")]


@pytest.fixture
def no_shared(monkeypatch):
    """As from an installed wheel: no checkout, so no shared/data beside it."""
    monkeypatch.setattr(datasets, "CHECKOUT", None)
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)


@pytest.mark.parametrize("dataset, filename", FILES)
def test_librex_data_accepts_the_committed_excerpts(dataset, filename, monkeypatch, no_shared):
    monkeypatch.setenv(DATA_ENV_VAR, str(EXCERPTS))
    found = find_data(None, dataset, filename)
    assert found.is_file() and EXCERPTS in found.parents


@pytest.mark.parametrize("dataset, filename", FILES)
def test_librex_data_accepts_the_full_layout(dataset, filename, tmp_path, monkeypatch,
                                             no_shared):
    target = tmp_path / dataset / filename
    target.parent.mkdir(parents=True)
    target.write_text("x")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert find_data(None, dataset, filename) == target


def test_full_layout_wins_over_the_excerpt_in_one_folder(tmp_path, monkeypatch, no_shared):
    for sub in ("orlib_mknap", "orlib_mknap_excerpt"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "mknap1.txt").write_text(sub)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert find_data(None, "orlib_mknap", "mknap1.txt").read_text() == "orlib_mknap"


def test_missing_data_is_one_line_naming_the_data_and_the_setting(tmp_path, monkeypatch,
                                                                  no_shared):
    with pytest.raises(DataNotFoundError) as info:
        find_data(None, "alibaba_gpu_v2023", "openb_pod_list_default.csv")
    msg = str(info.value)
    assert "\n" not in msg and "Alibaba GPU trace" in msg and "LIBREX_DATA is not set" in msg
    assert f"{DATA_ENV_VAR}=" in msg and isinstance(info.value, FileNotFoundError)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    msg = str(pytest.raises(DataNotFoundError, find_data, None, "orlib_mknap",
                            "mknap1.txt").value)
    assert f"{DATA_ENV_VAR}={tmp_path} holds neither orlib_mknap/mknap1.txt" in msg


def test_shared_data_beside_the_checkout_is_used_only_from_a_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    shared = tmp_path / "shared" / "data"
    (shared / "orlib_mknap").mkdir(parents=True)
    (shared / "orlib_mknap" / "mknap1.txt").write_text("x")
    monkeypatch.setattr(datasets, "SHARED_DATA", shared)
    monkeypatch.setattr(datasets, "CHECKOUT", tmp_path / "repo")
    assert find_data(None, "orlib_mknap", "mknap1.txt") == shared / "orlib_mknap" / "mknap1.txt"
    monkeypatch.setattr(datasets, "CHECKOUT", None)
    with pytest.raises(DataNotFoundError):
        find_data(None, "orlib_mknap", "mknap1.txt")


def test_an_installed_copy_reads_librex_data_and_names_what_is_missing(tmp_path):
    """The package copied into a site-packages-like folder (no pyproject.toml beside it),
    as a wheel installs it: no lookup under the venv's lib/, LIBREX_DATA in the excerpts'
    layout works, and without it the message says what to set."""
    site = tmp_path / "lib" / "python3" / "site-packages"
    shutil.copytree(ROOT / "librex_alloc", site / "librex_alloc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("from librex_alloc import OrlibEnvironment, AlibabaGpuEnvironment, "
            "BitbrainsEnvironment\n"
            "try:\n"
            "    print(OrlibEnvironment().n_agents, AlibabaGpuEnvironment(n_agents=5).n_agents,"
            " BitbrainsEnvironment(n_agents=3).n_agents)\n"
            "except FileNotFoundError as exc:\n"
            "    print('MISSING', exc)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", DATA_ENV_VAR)}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("MISSING OR-Library mknap1 data not found"), run.stdout
    assert "LIBREX_DATA" in run.stdout and str(tmp_path / "lib" / "shared") not in run.stdout
    env[DATA_ENV_VAR] = str(EXCERPTS)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert run.stdout.split() == ["6", "5", "3"], (run.stdout, run.stderr)


def test_bench_paper_without_data_is_one_line_before_any_cell(tmp_path, capsys, no_shared,
                                                              monkeypatch):
    from librex_alloc.cli import main
    from librex_alloc.evaluation import paper

    monkeypatch.setattr(paper, "run", lambda *a, **k: 1 / 0)
    with pytest.raises(SystemExit) as info:
        main(["bench", "paper", "--quick", "--out", str(tmp_path / "p"), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("librex-alloc bench paper: error: OR-Library mknap1 data not found")
    assert "LIBREX_DATA=" in err and not (tmp_path / "p").exists()
