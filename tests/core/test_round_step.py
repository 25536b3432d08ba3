"""The rounds file: RoundsWriter's row groups, the configuration in the metadata, read_rounds
over a resumed run's parts; round_row's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from librex_alloc.errors import InvalidConfigError
from librex_alloc.round_step import (
    RoundsWriter,
    read_config,
    read_rounds,
    resource_names,
    round_row,
    write_rounds,
)


def test_rounds_writer_sizes_row_groups_whatever_the_appends(tmp_path):
    path = tmp_path / "r.parquet"
    with RoundsWriter(path, config={"seed": 3, "policy": {"fairness": "none"}},
                      row_group_rows=10) as w:
        for start in range(0, 25, 3):  # appends of 3 rows (a poll's worth)
            n = min(3, 25 - start)
            w.append({"round": list(range(start + 1, start + n + 1)), "x": [0.5] * n})
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 5]
    assert read_config(path) == {"seed": 3, "policy": {"fairness": "none"}}
    assert read_rounds(path)["round"].tolist() == list(range(1, 26))
    with pytest.raises(InvalidConfigError):
        RoundsWriter(tmp_path / "x.parquet", row_group_rows=0)


def test_a_resumed_run_is_a_folder_of_parts_newer_rows_win(tmp_path):
    folder = tmp_path / "rounds.parquet"
    folder.mkdir()
    write_rounds(pd.DataFrame({"round": [1, 2, 3], "reward": [1.0, 2.0, 3.0]}),
                 folder / "part-00001.parquet", config={"part": 1})
    write_rounds(pd.DataFrame({"round": [3, 4], "reward": [30.0, 4.0]}),
                 folder / "part-00002.parquet", config={"part": 2})
    df = read_rounds(folder)
    assert df["round"].tolist() == [1, 2, 3, 4] and df["reward"].tolist() == [1, 2, 30, 4]
    assert read_config(folder) == {"part": 2}
    assert sorted(p.name for p in folder.iterdir()) == ["part-00001.parquet",
                                                       "part-00002.parquet"]  # no temp left
    write_rounds(pd.DataFrame({"round": [9]}), tmp_path / "plain.parquet")
    assert read_config(tmp_path / "plain.parquet") is None


def test_round_row_names_resources_and_counts_the_decision():
    class Named:
        resources = ("cpu", "gpu")

    assert resource_names(Named(), 2) == ["cpu", "gpu"]
    assert resource_names(Named(), 3) == ["0", "1", "2"]
    assert resource_names(object(), 2) == ["0", "1"]
    frac = np.array([1.0, 0.0, 0.5])
    req = np.array([[2.0, 0.0], [1.0, 1.0], [2.0, 4.0]])
    row = round_row(4, frac, req, np.array([6.0, 0.0]), expected=np.array([0.4, 0.9, 0.2]),
                    oracle_reward=1.0, resources=["cpu", "gpu"])
    assert row["n_allocated"] == 2 and row["n_rows"] == 3 and row["round"] == 4
    assert row["expected_reward"] == pytest.approx(0.5) and row["regret"] == pytest.approx(0.5)
    assert row["utilization_cpu"] == pytest.approx(0.5) and row["utilization_gpu"] == 0.0
    assert row["_used"].tolist() == [3.0, 2.0]
    assert "oracle_reward" not in round_row(1, frac, req, np.ones(2))
