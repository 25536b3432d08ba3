"""One module of argument types (``librex_alloc/cli_args.py``): the same value is accepted or
refused the same way by ``demo``, ``run`` and the library; ``--policy-config``; the ``run``
checks that come before Ray; the benchmarks' argument fixes; Ctrl-C and broken pipes in
``main()``. No Ray: ``run``'s job is replaced by a stub that fails the test if reached."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from librex_alloc import cli, cli_args
from librex_alloc.config import PolicyConfig
from librex_alloc.errors import InvalidConfigError, LibrexError
from librex_alloc.fairness import FairnessConfig

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(argv, capsys, *fragments: str) -> str:
    code, out, err = run(argv, capsys)
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line: the usage block is what --help is for
    message = lines[0]
    assert re.match(r"librex-alloc( \w+)*: error: ", message), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.fixture
def no_job(monkeypatch):
    """``run``'s job and Ray connection fail the test: errors must come before them."""
    import coordinator.job

    def boom(*args, **kwargs):
        raise AssertionError("the job started")

    monkeypatch.setattr(coordinator.job, "run_job", boom)
    monkeypatch.setattr(coordinator.job, "_connect", boom)


@pytest.fixture
def no_simulation(monkeypatch):
    import librex_alloc.simulation

    def boom(*args, **kwargs):
        raise AssertionError("the simulation started")

    monkeypatch.setattr(librex_alloc.simulation, "simulate", boom)


def _parsers():
    """The demo parser and the run parser, built by the real command line."""
    parser = argparse.ArgumentParser(prog="librex-alloc")
    sub = parser.add_subparsers(dest="command")
    demo = cli._demo_parser(sub)
    from coordinator.cli import add_run_parser

    return demo, add_run_parser(sub)


def _accepts(parser, option: str, text: str) -> bool:
    try:
        parser.parse_args([option, text])
    except SystemExit:
        return False
    return True


def _library_accepts(make) -> bool:
    try:
        make()
    except LibrexError:
        return False
    return True


# ------------------------------------------------------------------ one verdict everywhere
DEMO, RUN = None, None


def setup_module(module):
    module.DEMO, module.RUN = _parsers()


def _quiet_accepts(parser, option, text) -> bool:
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return _accepts(parser, option, text)


@settings(max_examples=60)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-10, 10**4).map(float)))
def test_fairness_verdict_is_the_library_s(alpha):
    text = repr(alpha)
    library = _library_accepts(lambda: FairnessConfig(mode=alpha))
    assert _quiet_accepts(DEMO, "--fairness", text) == library
    assert _quiet_accepts(RUN, "--fairness", text) == library


@settings(max_examples=60)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_max_reward_loss_verdict_is_the_library_s(eps):
    library = _library_accepts(lambda: FairnessConfig(max_reward_loss=eps))
    assert _quiet_accepts(DEMO, "--max-reward-loss", repr(eps)) == library
    assert _quiet_accepts(RUN, "--max-reward-loss", repr(eps)) == library


@settings(max_examples=60)
@given(st.integers(-5, 2**64))
def test_seed_and_resources_verdicts_are_the_library_s(value):
    text = str(value)
    seed_ok = _library_accepts(lambda: PolicyConfig(1, seed=value))
    k_ok = _library_accepts(lambda: PolicyConfig(value))
    for parser in (DEMO, RUN):
        assert _quiet_accepts(parser, "--seed", text) == seed_ok
        assert _quiet_accepts(parser, "--resources", text) == k_ok


@pytest.mark.parametrize("text", ["500", "101", "100.0001", "-1", "nan", "inf", "fair", ""])
def test_demo_and_run_refuse_the_same_fairness(text, capsys, no_job, no_simulation):
    a = assert_error(["demo", "--fairness", text], capsys, "--fairness")
    b = assert_error(["run", "--fairness", text], capsys, "--fairness")
    same = [m.split("--fairness", 1)[1].split(" (see ")[0] for m in (a, b)]
    assert same[0] == same[1]  # the same message


@pytest.mark.parametrize("text", ["none", "proportional", "maxmin", "0", "2.5", "100"])
def test_demo_and_run_accept_the_same_fairness(text):
    assert DEMO.parse_args(["--fairness", text]).fairness == \
        RUN.parse_args(["--fairness", text]).fairness


# ------------------------------------------------------------------ run: before Ray
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--fairness", "101"], "--fairness"),
        (["--seed", str(2**63)], "--seed"),
        (["--pending-window", "2000000"], "--pending-window"),
        (["--agents", str(10**12)], "--agents"),
        (["--shards", "5", "--agents", "3"], "--shards 5"),
        (["--max-reward-loss", "1.5"], "--max-reward-loss"),
        (["--max-reward-loss", "nan"], "--max-reward-loss"),
        (["--connect-timeout", "0"], "--connect-timeout"),
        (["--oracle", "slow"], "--oracle"),
        (["--until-stopped", "--duration", "5"], "exclude"),
    ],
)
def test_run_bad_values_are_one_line_before_ray(args, fragment, capsys, no_job, tmp_path):
    assert_error(["run", *args, "--out", str(tmp_path / "o")], capsys,
                 "librex-alloc run: error:", fragment)


def test_run_out_and_checkpoint_dir_naming_a_file(capsys, no_job, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_error(["run", "--out", str(blocker)], capsys, "--out", "not a folder")
    assert_error(["run", "--out", str(tmp_path / "o"), "--checkpoint-dir", str(blocker)],
                 capsys, "--checkpoint-dir", "not a folder")
    assert_error(["run", "--out", str(tmp_path / "o"), "--checkpoint-dir",
                  str(blocker / "sub")], capsys, "--checkpoint-dir", "not a folder")
    assert blocker.read_text() == "x"


def test_run_maps_library_errors_of_the_job_to_one_line(capsys, monkeypatch, tmp_path):
    import coordinator.job

    seen = {}

    def job(**kwargs):
        seen.update(kwargs)
        raise InvalidConfigError("the output folder is held by job 42 on host h")

    monkeypatch.setattr(coordinator.job, "run_job", job)
    code, out, err = run(["run", "--out", str(tmp_path / "o"), "--agents", "10",
                          "--shards", "2"], capsys)
    assert code == 2 and err == ("librex-alloc run: error: the output folder is held by job "
                                 "42 on host h\n")
    assert seen["shards"] == 2 and seen["agents"] == 10


def test_run_passes_the_resolved_policy_config(capsys, monkeypatch, tmp_path):
    import coordinator.job

    seen = {}

    def job(**kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stands for Ctrl-C during start-up

    monkeypatch.setattr(coordinator.job, "run_job", job)
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"n_resources": 2, "oracle": "auto", "gap_tolerance": 0.02,
                               "fairness": {"mode": "alpha", "alpha": 2.0}}))
    code, _, err = run(["run", "--out", str(tmp_path / "o"), "--policy-config", str(cfg),
                        "--max-reward-loss", "0.1", "--pending-window", "7"], capsys)
    assert code == 130 and err.strip() == "librex-alloc run: interrupted"
    pc = seen["policy_config"]
    assert isinstance(pc, PolicyConfig)
    assert (pc.n_resources, pc.oracle, pc.gap_tolerance, pc.max_pending_rounds) == \
        (2, "auto", 0.02, 7)
    assert (pc.fairness.mode, pc.fairness.alpha, pc.fairness.max_reward_loss) == \
        ("alpha", 2.0, 0.1)
    assert seen["resources"] == 2 and seen["pending_window"] == 7


# ------------------------------------------------------------------ --policy-config
def _resolve(argv, parser=None):
    parser = parser or DEMO
    return cli_args.resolve_policy_config(parser, parser.parse_args(argv), cli.DEMO_DEFAULTS)


def test_policy_config_json_and_toml_give_the_same_config(tmp_path):
    want = PolicyConfig(4, fairness=FairnessConfig(mode="maxmin", max_reward_loss=0.2),
                        oracle="exact", discount=0.9, seed=3)
    d = want.to_dict()
    (tmp_path / "p.json").write_text(json.dumps(d))
    toml = ["n_resources = 4", 'oracle = "exact"', "discount = 0.9", "seed = 3",
            "[fairness]", 'mode = "maxmin"', "max_reward_loss = 0.2"]
    (tmp_path / "p.toml").write_text("\n".join(toml) + "\n")
    assert _resolve(["--policy-config", str(tmp_path / "p.json")]) == want
    assert _resolve(["--policy-config", str(tmp_path / "p.toml")]) == want


def test_flags_override_the_file_and_the_file_overrides_defaults(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"n_resources": 5, "oracle": "exact", "seed": 9,
                                "fairness": {"mode": "maxmin", "utility": "service"}}))
    from_file = _resolve(["--policy-config", str(path)])
    assert (from_file.n_resources, from_file.oracle, from_file.seed) == (5, "exact", 9)
    assert from_file.fairness.mode == "maxmin" and from_file.fairness.utility == "service"
    flags = _resolve(["--policy-config", str(path), "--resources", "2", "--oracle", "fast",
                      "--fairness", "0.5", "--seed", "1", "--max-reward-loss", "0"])
    assert (flags.n_resources, flags.oracle, flags.seed) == (2, "fast", 1)
    assert (flags.fairness.mode, flags.fairness.alpha, flags.fairness.utility,
            flags.fairness.max_reward_loss) == ("alpha", 0.5, "service", 0.0)
    default = _resolve([])
    assert (default.n_resources, default.oracle, default.seed, default.fairness.mode) == \
        (3, "fast", 0, "proportional")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"n_resources": 2, "colour": 1}', "unknown keys ['colour']"),
        ('{"fairness": {"mode": "none", "speed": 2}}', "unknown keys ['speed']"),
        ('{"fairness": {"max_reward_loss": 2}}', "max_reward_loss"),
        ('{"discount": 0}', "discount"),
        ('{"oracle": "quantum"}', "oracle"),
        ('{"fairness": "proportional"}', "fairness"),
        ('[1, 2]', "expected a table"),
        ('{"n_resources": ', "not valid JSON"),
    ],
)
def test_bad_policy_config_files_are_one_line(content, fragment, tmp_path, capsys, no_job,
                                               no_simulation):
    path = tmp_path / "p.json"
    path.write_text(content)
    for command in ("demo", "run"):
        assert_error([command, "--policy-config", str(path), "--out", str(tmp_path / "o")],
                     capsys, f"librex-alloc {command}: error:", fragment)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_bad_toml_and_missing_file(tmp_path, capsys, no_simulation):
    path = tmp_path / "p.toml"
    path.write_text("n_resources = = 3\n")
    assert_error(["demo", "--policy-config", str(path)], capsys, "not valid TOML")
    assert_error(["demo", "--policy-config", str(tmp_path / "none.json")], capsys,
                 "cannot read")


def test_policy_params_are_checked_by_the_policy_before_any_work(tmp_path, capsys, no_job,
                                                                  no_simulation):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"params": {"no_such_parameter": 1}}))
    for command in ("demo", "run"):
        assert_error([command, "--policy-config", str(path), "--out", str(tmp_path / "o")],
                     capsys, "no_such_parameter")


def test_demo_uses_the_policy_config(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"n_resources": 2, "fairness": {"mode": "proportional",
                                                               "max_reward_loss": 0.1}}))
    out = tmp_path / "d"
    code, stdout, err = run(["demo", "--agents", "6", "--rounds", "10", "--no-progress",
                             "--policy-config", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    assert "2 resources" in stdout and "proportional,loss=0.1" in stdout
    assert sorted(p.name for p in out.glob("*.parquet")) == [
        "rounds_none.parquet", "rounds_proportional_loss0.1.parquet"]
    from librex_alloc.round_step import read_config, read_rounds
    cfg = read_config(out / "rounds_proportional_loss0.1.parquet")
    assert cfg["policy"]["fairness"]["max_reward_loss"] == 0.1 and cfg["rounds"] == 10
    assert read_rounds(out / "rounds_none.parquet")["round"].tolist() == list(range(1, 11))


# ------------------------------------------------------------------ benchmarks
def test_benchmarks_do_not_import_the_command_line():
    """The cycle cli.py -> evaluation -> cli.py is gone: the benchmarks import only the
    argument types."""
    code = ("import sys; import librex_alloc.evaluation.oracle_bench, "
            "librex_alloc.evaluation.round_bench, librex_alloc.evaluation.paper, "
            "librex_alloc.evaluation.learning_bench; "
            "print('librex_alloc.cli' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    assert out == "False"
    for path in (ROOT / "librex_alloc" / "evaluation").glob("*.py"):
        assert "librex_alloc.cli import" not in path.read_text(), path
    assert "import librex_alloc.cli\n" not in (ROOT / "librex_alloc" / "cli_args.py").read_text()


def test_learning_compare_needs_a_checkout(tmp_path, capsys, monkeypatch):
    from librex_alloc.evaluation import learning_bench

    monkeypatch.setattr(learning_bench, "measure", lambda *a: 1 / 0)
    assert_error(["bench", "learning", "--compare", str(tmp_path)], capsys,
                 "--compare", "no librex_alloc package")
    assert_error(["bench", "learning", "--compare", str(tmp_path / "missing")], capsys,
                 "--compare", "not a folder")
    assert_error(["bench", "learning", "--seeds", "1"], capsys, "--seeds")


def test_round_bench_checks_out_and_instances_before_the_run(tmp_path, capsys, monkeypatch):
    from librex_alloc.evaluation import round_bench

    monkeypatch.setattr(round_bench, "round_benchmark", lambda *a, **k: 1 / 0)
    assert_error(["bench", "round", "--out", str(tmp_path)], capsys, "--out", "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_error(["bench", "round", "--out", str(blocker / "t.csv")], capsys, "--out")
    for bad in (",", "", "synthetic,", "synthetic,,alibaba", "mars"):
        assert_error(["bench", "round", "--instances", bad], capsys, "--instances")


# ------------------------------------------------------------------ pipes
def test_a_closed_stdout_ends_quietly():
    """``bench learning --json | head`` when head has gone: no BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from librex_alloc.cli import main; "
         "sys.exit(main())", "bench", "learning", "--json", "--seeds", "2", "--demo-rounds",
         "2", "--bandit-rounds", "2"], stdout=write, stderr=subprocess.PIPE, env=env,
        text=True, timeout=300)
    os.close(write)
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == cli.EXIT_BROKEN_PIPE


def test_round_deadline_reaches_the_policy_config_and_bad_values_are_one_line(capsys):
    parser = cli_args.ArgumentParser(prog="t")
    cli_args.add_policy_options(parser, {"n_resources": 3, "fairness": {"mode": "none"},
                                         "oracle": "auto", "seed": 0})
    args = parser.parse_args(["--round-deadline", "0.005"])
    config = cli_args.resolve_policy_config(parser, args, {"n_resources": 3, "oracle": "auto"})
    assert config.round_deadline == 0.005
    for bad in ("0", "-1", "nan", "inf", "soon"):
        assert_error(["demo", "--round-deadline", bad], capsys, "--round-deadline")
