"""The command line: usage errors instead of tracebacks, defaults in help, --out, --version,
progress on stderr; plus the progress helper itself."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import librex_alloc
from librex_alloc import cli
from librex_alloc.errors import InvalidConfigError
from librex_alloc.progress import Progress, format_duration

TINY = ["--agents", "5", "--rounds", "20"]


def run(argv, capsys) -> tuple[int, str, str]:
    """``cli.main(argv)`` in-process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(argv, capsys, *fragments: str) -> str:
    code, out, err = run(argv, capsys)
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]  # argparse: usage lines, then one error line
    assert re.match(r"librex-alloc( \w+)*: error: ", message), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _no_simulation(monkeypatch):
    """Make any simulation fail the test: a usage error must come before any work."""
    import librex_alloc.simulation

    def boom(*args, **kwargs):
        raise AssertionError("the simulation started")

    monkeypatch.setattr(librex_alloc.simulation, "simulate", boom)


# ----------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    "args, option",
    [
        (["--rounds", "0"], "--rounds"),
        (["--rounds", "-3"], "--rounds"),
        (["--rounds", "2.5"], "--rounds"),
        (["--agents", "0"], "--agents"),
        (["--resources", "0"], "--resources"),
        (["--tightness", "nan"], "--tightness"),
        (["--tightness", "inf"], "--tightness"),
        (["--tightness", "-inf"], "--tightness"),
        (["--tightness", "-0.1"], "--tightness"),
        (["--tightness", "x"], "--tightness"),
        (["--fairness", "bogus"], "--fairness"),
        (["--fairness", "-1"], "--fairness"),
        (["--fairness", "nan"], "--fairness"),
        (["--fairness", "inf"], "--fairness"),
        (["--fairness", "100.5"], "--fairness"),
        (["--oracle", "bogus"], "--oracle"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_demo_invalid_values_are_usage_errors(args, option, capsys, monkeypatch):
    _no_simulation(monkeypatch)
    assert_usage_error(["demo", *args], capsys, "librex-alloc demo: error:", option)


@pytest.mark.parametrize(
    "args, option",
    [
        (["--repeats", "0"], "--repeats"),
        (["--repeats", "-2"], "--repeats"),
        (["--ns", "0,10"], "--ns"),
        (["--ns", "10,,100"], "--ns"),
        (["--ns", "ten"], "--ns"),
        (["--ns", ""], "--ns"),
        (["--ks", "3,-1"], "--ks"),
        (["--ks", "3.5"], "--ks"),
        (["--exact-time-limit", "0"], "--exact-time-limit"),
        (["--exact-large-time-limit", "-1"], "--exact-large-time-limit"),
        (["--scip-time-limit", "nan"], "--scip-time-limit"),
        (["--scip-time-limit", "inf"], "--scip-time-limit"),
        (["--tau", "0"], "--tau"),
        (["--exact-large-repeats", "0"], "--exact-large-repeats"),
    ],
)
def test_bench_invalid_values_are_usage_errors(args, option, capsys, monkeypatch):
    from librex_alloc.evaluation import oracle_bench

    def boom(*a, **k):
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(oracle_bench, "oracle_benchmark", boom)
    assert_usage_error(["bench", "oracle", *args], capsys, "librex-alloc bench oracle: error:",
                       option)


def test_bench_out_must_be_a_writable_file_path(tmp_path, capsys, monkeypatch):
    from librex_alloc.evaluation import oracle_bench

    monkeypatch.setattr(oracle_bench, "oracle_benchmark", lambda **k: 1 / 0)
    assert_usage_error(["bench", "oracle", "--out", str(tmp_path)], capsys, "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(["bench", "oracle", "--out", str(blocker / "t.csv")], capsys,
                       "cannot create folder")


@pytest.mark.parametrize(
    "text, expected",
    [("none", "none"), ("Proportional", "proportional"), (" maxmin ", "maxmin"), ("0", 0.0),
     ("2.5", 2.5), ("100", 100.0), ("1e2", 100.0)],
)
def test_fairness_accepts_presets_and_alpha(text, expected):
    value = cli.fairness(text)
    assert value == expected and type(value) is type(expected)


def test_unknown_command_and_missing_command_are_usage_errors(capsys):
    assert_usage_error(["frobnicate"], capsys)
    assert_usage_error([], capsys)
    assert_usage_error(["bench", "nothing"], capsys)


def test_library_errors_during_the_run_are_usage_errors(tmp_path, capsys, monkeypatch):
    import librex_alloc.simulation

    def bad(*args, **kwargs):
        raise InvalidConfigError("rounds: something the type checks missed")

    monkeypatch.setattr(librex_alloc.simulation, "simulate", bad)
    assert_usage_error(["demo", *TINY, "--out", str(tmp_path / "o"), "--no-progress"], capsys,
                       "something the type checks missed")


# ----------------------------------------------------------------------------- help, version
def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out == f"librex-alloc {librex_alloc.__version__}\n"


def _option_helps(text: str) -> dict[str, str]:
    """Option name -> its help text, from an argparse help page."""
    body = text.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", "\n" + body)
    out = {}
    for entry in entries:
        entry = entry.strip()
        if entry.startswith("-"):
            names = re.findall(r"--[\w-]+", entry.split("  ")[0])
            out[names[-1] if names else entry.split()[0]] = " ".join(entry.split())
    return out


@pytest.mark.parametrize("command", [["demo"], ["bench", "oracle"]])
def test_every_option_help_states_its_default(command, capsys):
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    helps = _option_helps(out)
    helps.pop("--help")
    assert len(helps) >= 9, helps
    for option, text in helps.items():
        assert "default" in text, (option, text)
    assert "(default: 2000)" in run(["demo", "--help"], capsys)[1]


# ----------------------------------------------------------------------------- --out
def test_out_folder_is_created_before_the_run(tmp_path, capsys, monkeypatch):
    import librex_alloc.simulation

    out = tmp_path / "a" / "b"
    seen = []

    def stop(*args, **kwargs):
        seen.append(out.is_dir())
        raise KeyboardInterrupt  # abandon the run once we know

    monkeypatch.setattr(librex_alloc.simulation, "simulate", stop)
    assert cli.main(["demo", *TINY, "--out", str(out), "--no-progress"]) == 130  # Ctrl-C
    assert seen == [True]
    assert capsys.readouterr().err.strip() == "librex-alloc: interrupted"


def test_out_that_cannot_be_a_folder_is_a_usage_error(tmp_path, capsys, monkeypatch):
    _no_simulation(monkeypatch)
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert_usage_error(["demo", "--out", str(blocker)], capsys, "not a folder")
    assert_usage_error(["demo", "--out", str(blocker / "sub")], capsys, "cannot create")
    assert blocker.read_text() == "not a folder"


def test_unwritable_out_is_a_usage_error(tmp_path, capsys, monkeypatch):
    _no_simulation(monkeypatch)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    from librex_alloc import cli_args

    monkeypatch.setattr(cli_args.tempfile, "TemporaryFile", denied)  # root ignores chmod
    assert_usage_error(["demo", "--out", str(tmp_path)], capsys, "not writable")


def test_demo_writes_outputs_and_reports_progress(tmp_path, capsys):
    out = tmp_path / "new" / "demo"
    code, stdout, err = run(["demo", *TINY, "--fairness", "2", "--out", str(out)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "demo.png", "rounds_alpha2.parquet", "rounds_none.parquet"]
    assert "alpha=2" in stdout and "Traceback" not in err
    lines = err.strip().splitlines()  # capsys is not a TTY: one line per 10 %
    assert lines[-1].startswith("demo 100% [") and "40/40 rounds" in lines[-1]
    assert 1 <= len(lines) <= 11 and "\r" not in err

    code, _, err = run(["demo", *TINY, "--fairness", "none", "--out", str(out),
                        "--no-progress"], capsys)
    assert code == 0 and err == ""


def test_installed_script_runs_the_demo(tmp_path):
    script = Path(sys.executable).with_name("librex-alloc")
    out = tmp_path / "demo"
    proc = subprocess.run([str(script), "demo", *TINY, "--out", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (out / "demo.png").stat().st_size > 0
    assert "plot:" in proc.stdout


# ----------------------------------------------------------------------------- progress helper
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_terminal_style_is_rate_limited_and_ends_the_line():
    stream, clock = io.StringIO(), FakeClock()
    bar = Progress(1000, "run", unit="rounds", stream=stream, tty=True, clock=clock)
    for done in range(1, 1001):
        clock.now = done * 0.001  # 1 s in all, 1000 updates
        bar(done)
    bar.close()
    bar.close()  # idempotent
    text = stream.getvalue()
    assert 10 <= text.count("\r") <= 13  # ≤ 10 redraws per second, plus the last and close
    assert text.endswith("\n") and text.count("\n") == 1
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("run 100% [####################] 1000/1000 rounds")
    assert "ETA" not in last and "0:01 elapsed" in last


def test_progress_log_style_prints_one_line_per_ten_percent():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(37, "bench", stream=stream, tty=False, clock=clock) as bar:
        for done in range(1, 38):
            clock.now = float(done)
            bar.update(done)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 10
    assert [int(re.search(r"(\d+)%", x).group(1)) // 10 for x in lines] == list(range(1, 11))
    assert "ETA 0:33" in lines[0]  # 4 of 37 done after 4 s: 33 s to go
    assert lines[-1].startswith("bench 100%")


def test_progress_disabled_and_broken_streams_are_silent():
    stream = io.StringIO()
    with Progress(5, stream=stream, enabled=False) as bar:
        bar(3)
    assert stream.getvalue() == ""
    closed = io.StringIO()
    closed.close()
    bar = Progress(5, stream=closed, tty=True)
    bar(5)  # a closed stream disables reporting instead of failing the run
    bar.close()
    assert not bar.enabled


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(61.4) == "1:01"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(float("inf")) == "--:--"
