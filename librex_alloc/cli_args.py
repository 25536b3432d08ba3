"""Argument types and checks shared by every command line (``demo``, ``run``, ``bench …``).

One value is accepted or refused the same way by every command: each type parses the text,
then hands the number to the library's own validator (:class:`~librex_alloc.PolicyConfig`,
:class:`~librex_alloc.FairnessConfig`, the environments) and turns its
:class:`~librex_alloc.errors.LibrexError` into an argparse usage error. The bounds live in the
library; nothing here copies them.

Pure: no Ray, no import of a command module (the commands and the benchmarks import this
module, never each other). ``--policy-config FILE`` (JSON or TOML of
:meth:`PolicyConfig.to_dict`) is read by :func:`policy_config_file` and merged with explicit
flags by :func:`resolve_policy_config`: defaults < the file < flags given on the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from librex_alloc.errors import LibrexError

FAIRNESS_PRESETS = ("none", "proportional", "maxmin")


# --------------------------------------------------------------------------- text -> number
def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())  # int() accepts "10_000"
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _parse_float(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what} (finite), got {text!r}")
    return value


def checked(parse: Callable[[str], object], check: Callable[[object], object],
            name: str) -> Callable[[str], object]:
    """An argparse type: ``parse(text)`` then ``check(value)`` (a library validator that raises
    :class:`LibrexError`); its message becomes the usage error."""

    def type_(text: str):
        value = parse(text)
        try:
            check(value)
        except LibrexError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    type_.__name__ = name  # argparse names the type in some messages
    return type_


# --------------------------------------------------------------------------- generic types
def positive_int(text: str) -> int:
    """An integer ≥ 1 (argparse ``type=``)."""
    value = _parse_int(text, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def nonneg_int(text: str) -> int:
    """An integer ≥ 0 (argparse ``type=``)."""
    value = _parse_int(text, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer ≥ ``low`` (argparse ``type=``)."""

    def type_(text: str) -> int:
        value = _parse_int(text, f"an integer >= {low}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    type_.__name__ = f"int>={low}"
    return type_


def finite_nonneg_float(text: str) -> float:
    """A finite number ≥ 0 (argparse ``type=``)."""
    value = _parse_float(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def finite_positive_float(text: str) -> float:
    """A finite number > 0, e.g. a time limit in seconds (argparse ``type=``)."""
    value = _parse_float(text, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def positive_int_list(text: str) -> list[int]:
    """Comma-separated integers ≥ 1, e.g. ``10,100,1_000`` (argparse ``type=``)."""
    parts = [p.strip().replace("_", "") for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers >= 1 (e.g. 10,100), got {text!r}")
    return [positive_int(p) for p in parts]


def name_list(choices: Iterable[str]) -> Callable[[str], list[str]]:
    """Comma-separated names from ``choices``, at least one, no empty item (``type=``)."""
    allowed = tuple(choices)

    def type_(text: str) -> list[str]:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated names from {', '.join(allowed)}, got {text!r}")
        bad = [p for p in parts if p not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad)}; expected names from {', '.join(allowed)}")
        return parts

    type_.__name__ = "names"
    return type_


# --------------------------------------------------------------------------- library settings
def _policy(**kwargs):
    from librex_alloc.config import PolicyConfig

    return PolicyConfig(kwargs.pop("n_resources", 1), **kwargs)


def _fairness_config(**kwargs):
    from librex_alloc.fairness import FairnessConfig

    return FairnessConfig(**kwargs)


def _parse_fairness(text: str) -> str | float:
    name = text.strip().lower()
    if name in FAIRNESS_PRESETS:
        return name
    try:
        alpha = float(name)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {', '.join(FAIRNESS_PRESETS)} or a number alpha, got {text!r}") from None
    if not math.isfinite(alpha):
        raise argparse.ArgumentTypeError(f"alpha must be finite, got {text!r}")
    return alpha


#: ``--fairness``: a preset or a number α, checked by :class:`FairnessConfig` (0 ≤ α ≤ MAX_ALPHA).
fairness = checked(_parse_fairness, lambda v: _fairness_config(mode=v), "fairness")
#: ``--max-reward-loss``: ε in [0, 1] (:class:`FairnessConfig`'s ``max_reward_loss``).
max_reward_loss = checked(lambda t: _parse_float(t, "a number in [0, 1]"),
                          lambda v: _fairness_config(max_reward_loss=v), "max_reward_loss")
#: ``--seed``: a seed the policy accepts (0 ≤ seed < 2**63).
seed = checked(lambda t: _parse_int(t, "an integer >= 0"), lambda v: _policy(seed=v), "seed")
#: ``--resources``: K as :class:`PolicyConfig` accepts it.
resources = checked(lambda t: _parse_int(t, "an integer >= 1"),
                    lambda v: _policy(n_resources=v), "resources")
#: ``--pending-window``: rounds in which late outcomes are accepted (``max_pending_rounds``).
pending_window = checked(lambda t: _parse_int(t, "an integer >= 1"),
                         lambda v: _policy(max_pending_rounds=v), "pending_window")
#: ``--gap-tolerance``: the oracle's relative gap, as :class:`PolicyConfig` accepts it.
gap_tolerance = checked(lambda t: _parse_float(t, "a number in [0, 1]"),
                        lambda v: _policy(gap_tolerance=v), "gap_tolerance")


def _check_agents(value: int) -> None:
    from librex_alloc.api import MAX_INITIAL_AGENTS
    from librex_alloc.errors import InvalidConfigError

    if not 1 <= value <= MAX_INITIAL_AGENTS:
        raise InvalidConfigError(f"n_agents: expected 1 <= n_agents <= {MAX_INITIAL_AGENTS:,}, "
                                 f"got {value}")


#: ``--agents``: 1 … the library's largest number of agents registered up front.
agents = checked(lambda t: _parse_int(t, "an integer >= 1"), _check_agents, "agents")


def _check_tightness(value: float) -> None:
    from librex_alloc.environments import SyntheticEnvironment

    SyntheticEnvironment(n_agents=1, n_resources=1, tightness=value)


#: ``--tightness``: the synthetic environment's budget fraction, as it accepts it.
tightness = checked(lambda t: _parse_float(t, "a number >= 0"), _check_tightness, "tightness")


def describe_oracles() -> str:
    """The oracle methods in words, for help texts."""
    from librex_alloc.oracles.methods import describe

    return describe()


def oracle_choices() -> tuple[str, ...]:
    """The oracle methods a policy accepts (``--oracle`` choices)."""
    from librex_alloc.oracles.methods import METHODS

    return METHODS


def fairness_label(mode: str | float) -> str:
    """Table label of a fairness setting: the preset name or ``alpha=<α>``."""
    return mode if isinstance(mode, str) else f"alpha={mode:g}"


# --------------------------------------------------------------------------- --policy-config
def policy_config_file(text: str) -> dict:
    """``--policy-config FILE``: a JSON (``.json``) or TOML (``.toml``) file holding
    :meth:`PolicyConfig.to_dict` (all keys optional); returns the dict, keys not yet checked
    (:func:`resolve_policy_config` does that)."""
    path = Path(text)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: cannot read ({exc.strerror or exc})") \
            from None
    toml = path.suffix.lower() == ".toml"
    try:
        if toml:
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, TOMLDecodeError
        kind = "TOML" if toml else "JSON"
        raise argparse.ArgumentTypeError(f"{text!r}: not valid {kind} "
                                         f"({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a table/object of PolicyConfig "
                                         f"keys, got {type(data).__name__}")
    if "fairness" in data and not isinstance(data["fairness"], dict):
        raise argparse.ArgumentTypeError(f"{text!r}: 'fairness' must be a table/object of "
                                         f"FairnessConfig keys")
    return data


def resolve_policy_config(parser: argparse.ArgumentParser, args: argparse.Namespace,
                          defaults: dict):
    """The :class:`PolicyConfig` of a command: ``defaults`` (the command's flag defaults,
    PolicyConfig keys), then the ``--policy-config`` file, then the flags given on the command
    line (options whose value is not None: ``--resources``, ``--fairness``,
    ``--max-reward-loss``, ``--oracle``, ``--seed``, ``--pending-window``,
    ``--gap-tolerance``, ``--round-deadline``). A bad or unknown key is a usage error (exit 2)."""
    from librex_alloc.config import PolicyConfig
    from librex_alloc.fairness import FairnessConfig

    merged = {k: v for k, v in defaults.items() if k != "fairness"}
    fair = dict(defaults.get("fairness") or {})
    data = dict(getattr(args, "policy_config", None) or {})
    if "fairness" in data:
        fair = dict(data.pop("fairness"))
    merged.update(data)
    flags = {"resources": "n_resources", "oracle": "oracle", "seed": "seed",
             "pending_window": "max_pending_rounds", "gap_tolerance": "gap_tolerance",
             "round_deadline": "round_deadline"}
    for option, key in flags.items():
        value = getattr(args, option, None)
        if value is not None:
            merged[key] = value
    mode = getattr(args, "fairness", None)
    if mode is not None:
        fair["mode"], fair["alpha"] = ("alpha", float(mode)) if not isinstance(mode, str) \
            else (mode, None)
    loss = getattr(args, "max_reward_loss", None)
    if loss is not None:
        fair["max_reward_loss"] = loss
    try:
        merged["fairness"] = FairnessConfig.from_dict(fair)
        return PolicyConfig.from_dict(merged)
    except LibrexError as exc:
        where = " (--policy-config)" if getattr(args, "policy_config", None) else ""
        parser.error(f"policy configuration{where}: {exc}")
    except TypeError as exc:  # a key of the wrong kind of value for the dataclass
        parser.error(f"policy configuration: {exc}")


def add_policy_options(p: argparse.ArgumentParser, defaults: dict) -> None:
    """The options that set a :class:`PolicyConfig` (shared by ``demo`` and ``run``): their
    default is None so that :func:`resolve_policy_config` can tell a flag from a default."""
    fair = defaults["fairness"]["mode"]
    p.add_argument("--resources", type=resources, default=None,
                   help=f"number of resource types K (default: {defaults['n_resources']})")
    p.add_argument("--fairness", type=fairness, default=None,
                   help="none, proportional, maxmin, or a number 0 <= alpha <= 100 "
                   f"(default: {fair})")
    p.add_argument("--max-reward-loss", type=max_reward_loss, default=None, metavar="EPS",
                   help="bound on the price of fairness: keep >= (1 - EPS) of the utilitarian "
                   "reward, 0 <= EPS <= 1 (default: no bound)")
    p.add_argument("--oracle", default=None, choices=oracle_choices(),
                   help=f"the policy's allocation oracle, {describe_oracles()} "
                   f"(default: {defaults['oracle']})")
    p.add_argument("--seed", type=seed, default=None,
                   help=f"random seed, 0 <= seed < 2**63 (default: {defaults['seed']})")
    p.add_argument("--round-deadline", type=finite_positive_float, default=None,
                   metavar="SECONDS", help="wall-clock seconds the oracle may take per round "
                   "(PolicyConfig.round_deadline; default: none)")
    p.add_argument("--policy-config", type=policy_config_file, default=None, metavar="FILE",
                   help="JSON or TOML file of PolicyConfig.to_dict() keys; flags given on the "
                   "command line override it (default: none)")


# --------------------------------------------------------------------------- files, help
class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr and exit 2 (the usage
    block is what ``--help`` is for): ``prog: error: message (see 'prog --help')``. Its
    sub-parsers are of the same class."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: ...)`` to every option's help, except when the help text already
    states its default (options whose default is None)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def prepare_out_dir(parser: argparse.ArgumentParser, path: str | os.PathLike,
                    option: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents) and check that it is writable, before any
    work; a usage error (exit 2) if it cannot be created or written."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        parser.error(f"{option} {str(out)!r}: exists and is not a folder")
    except OSError as exc:
        parser.error(f"{option} {str(out)!r}: cannot create the folder ({exc.strerror or exc})")
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        parser.error(f"{option} {str(out)!r}: folder is not writable ({exc.strerror or exc})")
    return out


def check_dir_path(parser: argparse.ArgumentParser, path: str | os.PathLike,
                   option: str) -> Path:
    """Usage error unless ``path`` is a folder or can become one: it is not a file, and its
    nearest existing ancestor is a writable folder. Creates nothing."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        parser.error(f"{option} {str(p)!r}: exists and is not a folder")
    ancestor = p
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        parser.error(f"{option} {str(p)!r}: cannot create the folder ({str(ancestor)!r} is "
                     f"not a folder)")
    if ancestor.is_dir() and not os.access(ancestor, os.W_OK | os.X_OK):
        parser.error(f"{option} {str(p)!r}: folder {str(ancestor)!r} is not writable")
    return p


def check_out_file(parser: argparse.ArgumentParser, path: str, option: str = "--out") -> None:
    """Usage error (exit 2) unless ``path`` can be written: its folder is created if missing
    and must be writable; ``path`` must not be a folder."""
    if os.path.isdir(path):
        parser.error(f"{option} {path!r}: is a folder, expected a file path")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        parser.error(f"{option} {path!r}: cannot create folder {folder!r} "
                     f"({exc.strerror or exc})")
    if not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"{option} {path!r}: folder {folder!r} is not writable")


def check_checkout(parser: argparse.ArgumentParser, path: str, option: str = "--compare",
                   needs: Iterable[str] = ("librex_alloc/__init__.py",)) -> str:
    """A folder that holds another checkout (or ``git worktree``) with the files ``needs``
    (relative paths); a usage error otherwise, so that today's checkout is never measured in
    its place."""
    if not os.path.isdir(path):
        parser.error(f"{option} {path!r}: not a folder")
    for rel in needs:
        if not os.path.isfile(os.path.join(path, rel)):
            parser.error(f"{option} {path!r}: holds no {rel.split('/')[0]} package (expected "
                         f"{os.path.join(path, rel)}); give the root of another checkout")
    return path
