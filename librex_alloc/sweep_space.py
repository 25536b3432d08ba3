"""Sweep search spaces over :class:`~librex_alloc.PolicyConfig`, their Pareto front and summary.

Pure (no Ray): ``coordinator/sweep.py`` runs the trials on Ray Tune.

A space maps dotted keys to a value, a grid or a distribution. Keys are the keys of
``PolicyConfig.to_dict()`` (``fairness.alpha``, ``fairness.max_reward_loss``, ``prior.alpha_prior``,
``discount``, ``oracle``, ``gap_tolerance``, ``seed``, ...; see :data:`POLICY_KEYS`) plus the
environment's (:data:`ENV_KEYS`: ``env.family``, ``env.agents``, ``env.tightness``,
``env.instance``). Leaves:

- a value: fixed;
- a list: a grid (every value is tried; lists of several keys are crossed);
- ``{"uniform": [lo, hi]}``, ``{"loguniform": [lo, hi]}`` (0 < lo), ``{"randint": [lo, hi]}``
  (hi excluded) or ``{"choice": [...]}``: sampled (random search and Optuna; a grid run takes the
  choices as a grid and refuses continuous ranges).

On the command line (``--param KEY=SPEC``): ``0,0.25,0.5`` a grid, ``0:5`` the integers 0–4,
``uniform(0,1)``, ``loguniform(1e-3,1)``, ``randint(0,10)``, ``choice(a,b)``, else one value.
Values are JSON-like: numbers, ``true``/``false``, ``null`` (None), else a string (so
``fairness.mode=none`` is the preset "none", ``fairness.max_reward_loss=null`` no bound).
A file (JSON or TOML) has the nested shape of ``PolicyConfig.to_dict()`` with an ``env`` table.

Every cell is checked by building its :class:`PolicyConfig` and its environment before any trial
starts (:meth:`SweepSpace.cells` for grid and random search, :meth:`SweepSpace.validate` for
the bounds of a sampled space); any problem is one :class:`SweepSpaceError` line.
``fairness.alpha`` without ``fairness.mode`` sets the mode to ``"alpha"``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from librex_alloc.config import PolicyConfig
from librex_alloc.errors import InvalidConfigError, LibrexError
from librex_alloc.fairness import FairnessConfig

POLICY_KEYS = ("n_resources", "oracle", "time_limit", "gap_tolerance", "divisible",
               "reward_family", "discount", "max_pending_rounds", "seed", "round_deadline",
               *(f"fairness.{k}" for k in FairnessConfig.__dataclass_fields__))
#: prior keys are ``prior.<name>`` with the posterior's own parameter names (checked by it)
PRIOR_PREFIX = "prior."
ENV_FAMILIES = ("synthetic", "orlib", "alibaba", "bitbrains")
ENV_KEYS = ("env.family", "env.agents", "env.tightness", "env.instance")
ENV_DEFAULTS = {"env.family": "synthetic", "env.agents": 50, "env.tightness": 0.3,
                "env.instance": 0}
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
SEARCHES = ("grid", "random", "optuna")
#: most cells a grid or random sweep may expand to (a typo such as 0:100000 is caught early)
MAX_CELLS = 100_000


class SweepSpaceError(InvalidConfigError):
    """A search space that cannot be swept (unknown key, bad value, bad syntax)."""


@dataclass(frozen=True)
class Dist:
    """A sampled dimension: ``kind`` in :data:`DISTRIBUTIONS`, ``args`` its bounds or choices."""

    kind: str
    args: tuple

    def to_json(self):
        return {self.kind: list(self.args)}

    def sample(self, rng: np.random.Generator):
        if self.kind == "uniform":
            return float(rng.uniform(*self.args))
        if self.kind == "loguniform":
            lo, hi = self.args
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.kind == "randint":
            return int(rng.integers(*self.args))
        return self.args[int(rng.integers(len(self.args)))]

    def edges(self) -> list:
        """Values that bound the dimension (checked before any trial)."""
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return list(self.args)


# --------------------------------------------------------------------------- parsing
def parse_value(text: str):
    """One JSON-like value of the command line: number, true/false, null, else a string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return int(t.replace("_", "")) if t.lstrip("+-").replace("_", "").isdigit() else float(t)
    except ValueError:
        return t


def _split_args(body: str) -> list:
    return [parse_value(p) for p in body.split(",") if p.strip() != ""]


def parse_param(text: str) -> tuple[str, object]:
    """``KEY=SPEC`` of ``--param`` → (key, leaf); see the module docstring for SPEC."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not key or not spec:
        raise SweepSpaceError(f"--param {text!r}: expected KEY=VALUES (e.g. fairness.alpha=0,0.5)")
    for kind in DISTRIBUTIONS:
        if spec.lower().startswith(kind + "(") and spec.endswith(")"):
            return key, {kind: _split_args(spec[len(kind) + 1:-1])}
    if ":" in spec and "," not in spec:
        parts = spec.split(":")
        values = [parse_value(p) for p in parts]
        if len(parts) in (2, 3) and all(type(v) is int for v in values):
            rng = range(*values)
            if len(rng) == 0:
                raise SweepSpaceError(f"--param {text!r}: the range {spec} is empty")
            if len(rng) > MAX_CELLS:
                raise SweepSpaceError(f"--param {text!r}: the range has {len(rng)} values")
            return key, list(rng)
        raise SweepSpaceError(f"--param {text!r}: a range is LOW:HIGH[:STEP] in integers")
    if "," in spec:
        return key, _split_args(spec)
    return key, parse_value(spec)


def _leaf(key: str, value):
    """Normalize one leaf: a fixed value, a list (grid) or a :class:`Dist`."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            raise SweepSpaceError(f"{key}: a distribution is one of "
                                  f"{', '.join('{' + repr(d) + ': [...]}' for d in DISTRIBUTIONS)}"
                                  f", got {value!r}")
        kind, args = next(iter(value.items()))
        if not isinstance(args, (list, tuple)):
            raise SweepSpaceError(f"{key}: {kind} takes a list, got {args!r}")
        args = tuple(args)
        if kind == "choice":
            if not args:
                raise SweepSpaceError(f"{key}: choice needs at least one value")
        else:
            numbers = all(isinstance(a, (int, float)) and not isinstance(a, bool) and
                          math.isfinite(a) for a in args)
            if len(args) != 2 or not numbers or not args[0] < args[1]:
                raise SweepSpaceError(f"{key}: {kind} takes [low, high] with low < high, "
                                      f"got {list(args)!r}")
            if kind == "loguniform" and args[0] <= 0:
                raise SweepSpaceError(f"{key}: loguniform needs low > 0, got {args[0]!r}")
            if kind == "randint" and not all(type(a) is int for a in args):
                raise SweepSpaceError(f"{key}: randint takes integers, got {list(args)!r}")
        return Dist(kind, args)
    if isinstance(value, (list, tuple)):
        if not value:
            raise SweepSpaceError(f"{key}: an empty grid")
        if any(isinstance(v, (list, dict)) for v in value):
            raise SweepSpaceError(f"{key}: grid values must be plain values, got {value!r}")
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise SweepSpaceError(f"{key}: must be finite, got {value!r}")
    return value


def _check_key(key: str) -> None:
    if key in POLICY_KEYS or key in ENV_KEYS:
        return
    if key.startswith(PRIOR_PREFIX) and len(key) > len(PRIOR_PREFIX) and \
            "." not in key[len(PRIOR_PREFIX):]:
        return
    raise SweepSpaceError(f"unknown key {key!r} (keys: {', '.join(POLICY_KEYS)}, "
                          f"prior.<name>, {', '.join(ENV_KEYS)})")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise SweepSpaceError(f"{prefix}{k!r}: keys must be strings")
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not (len(v) == 1 and next(iter(v)) in DISTRIBUTIONS):
            if not v:
                raise SweepSpaceError(f"{key}: an empty table")
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass(frozen=True)
class SweepSpace:
    """A validated-syntax search space: dotted key → value, grid (list) or :class:`Dist`."""

    dims: dict = field(default_factory=dict)

    def __post_init__(self):
        dims = {}
        for key, value in dict(self.dims).items():
            _check_key(key)
            dims[key] = _leaf(key, value)
        object.__setattr__(self, "dims", dims)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> SweepSpace:
        """From the nested shape of ``PolicyConfig.to_dict()`` (with an ``env`` table) or from
        dotted keys."""
        if not isinstance(d, dict):
            raise SweepSpaceError(f"space: expected a table of keys, got {type(d).__name__}")
        return cls(_flatten(d))

    @classmethod
    def from_params(cls, params: list[str]) -> SweepSpace:
        """From ``--param KEY=SPEC`` strings (a key given twice is an error)."""
        dims = {}
        for text in params:
            key, leaf = parse_param(text)
            if key in dims:
                raise SweepSpaceError(f"--param {key}: given twice")
            dims[key] = leaf
        return cls(dims)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SweepSpace:
        """A JSON (``.json``) or TOML (``.toml``) file in the shape of ``from_dict``."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise SweepSpaceError(f"space file {str(p)!r}: {exc.strerror or exc}") from None
        try:
            if p.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(raw.decode())
            else:
                data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SweepSpaceError(f"space file {str(p)!r}: not valid "
                                  f"{'TOML' if p.suffix.lower() == '.toml' else 'JSON'} "
                                  f"({first})") from None
        return cls.from_dict(data)

    def merged(self, other: SweepSpace) -> SweepSpace:
        """This space with ``other``'s keys added or replacing (command line over file)."""
        return SweepSpace({**self.dims, **other.dims})

    # -- views -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """Dotted keys → JSON-able leaves (sorted): the space's identity for a resume."""
        return {k: (v.to_json() if isinstance(v, Dist) else v)
                for k, v in sorted(self.dims.items())}

    def fingerprint(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @property
    def varying(self) -> list[str]:
        """Keys with more than one value (the columns worth showing)."""
        return [k for k, v in self.dims.items()
                if isinstance(v, Dist) or (isinstance(v, list) and len(v) > 1)]

    def n_grid(self) -> int:
        return math.prod(len(v) for v in self.dims.values() if isinstance(v, list))

    # -- expansion -----------------------------------------------------------------------------
    def cells(self, search: str = "grid", samples: int = 1, seed: int = 0) -> list[dict]:
        """The concrete settings to run, each checked (:func:`check_cell`).

        grid: the cross product of the lists (choices count as lists; a continuous
        distribution is refused). random: that cross product, ``samples`` times, each time
        with the distributions drawn from a generator seeded by ``seed`` (Tune's
        ``num_samples`` with a grid does the same)."""
        if search not in ("grid", "random"):
            raise SweepSpaceError(f"search: expected grid or random here, got {search!r}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SweepSpaceError(f"samples: expected an int >= 1, got {samples!r}")
        dims = dict(self.dims)
        if search == "grid":
            for k, v in dims.items():
                if isinstance(v, Dist):
                    if v.kind != "choice":
                        raise SweepSpaceError(f"{k}: {v.kind} needs --search random or optuna "
                                              f"(a grid takes lists or choice)")
                    dims[k] = list(v.args)
            samples = 1
        grid_keys = [k for k, v in dims.items() if isinstance(v, list)]
        total = math.prod(len(dims[k]) for k in grid_keys) * samples
        if total > MAX_CELLS:
            raise SweepSpaceError(f"the space expands to {total:,} trials (at most "
                                  f"{MAX_CELLS:,})")
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(samples):
            for combo in itertools.product(*(dims[k] for k in grid_keys)):
                cell = {}
                for k, v in dims.items():
                    cell[k] = v.sample(rng) if isinstance(v, Dist) else v
                cell.update(zip(grid_keys, combo))
                out.append(cell)
        cache: dict = {}
        for cell in out:
            check_cell(cell, cache)
        return out

    def validate(self) -> None:
        """Check every value of every dimension (bounds of distributions, each grid value and
        choice) with the other dimensions at their first value; grids and random cells are
        checked in full by :meth:`cells`."""
        base = {k: (v.edges()[0] if isinstance(v, Dist) else v[0] if isinstance(v, list) else v)
                for k, v in self.dims.items()}
        cache: dict = {}
        check_cell(base, cache)
        for k, v in self.dims.items():
            values = v.edges() if isinstance(v, Dist) else v if isinstance(v, list) else []
            for value in values[1:] if not isinstance(v, Dist) else values:
                check_cell({**base, k: value}, cache)


# --------------------------------------------------------------------------- cells
def split_cell(cell: dict) -> tuple[dict, dict]:
    """(``PolicyConfig.from_dict`` dict, environment settings) of one concrete cell."""
    policy: dict = {}
    env = dict(ENV_DEFAULTS)
    for key, value in cell.items():
        if key.startswith("env."):
            env[key] = value
        elif key.startswith("fairness."):
            policy.setdefault("fairness", {})[key[9:]] = value
        elif key.startswith(PRIOR_PREFIX):
            policy.setdefault("prior", {})[key[len(PRIOR_PREFIX):]] = value
        else:
            policy[key] = value
    fair = policy.get("fairness")
    if fair is not None and "alpha" in fair and "mode" not in fair and fair["alpha"] is not None:
        fair["mode"] = "alpha"
    policy.setdefault("n_resources", 3)
    return policy, {k[4:]: v for k, v in env.items()}


def make_environment(env: dict, policy: dict):
    """The environment of a cell (``split_cell``'s second part); the policy's ``seed`` (0 when
    None) seeds it, its ``n_resources`` and ``reward_family`` shape a synthetic one."""
    from librex_alloc import environments as envs

    family = env["family"]
    seed = policy.get("seed") or 0
    if family not in ENV_FAMILIES:
        raise SweepSpaceError(f"env.family: expected one of {ENV_FAMILIES}, got {family!r}")
    for name in ("agents", "instance"):
        v = env[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "agents" else 0):
            raise SweepSpaceError(f"env.{name}: expected an int >= "
                                  f"{1 if name == 'agents' else 0}, got {v!r}")
    t = env["tightness"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise SweepSpaceError(f"env.tightness: expected a number > 0, got {t!r}")
    if family == "synthetic":
        return envs.SyntheticEnvironment(
            n_agents=env["agents"], n_resources=policy.get("n_resources", 3),
            tightness=float(t), seed=seed,
            reward_family=policy.get("reward_family", "bernoulli"))
    if family == "orlib":
        return envs.OrlibEnvironment(instance=env["instance"], seed=seed)
    if family == "alibaba":
        return envs.AlibabaGpuEnvironment(n_agents=env["agents"], tightness=float(t), seed=seed)
    return envs.BitbrainsEnvironment(n_agents=env["agents"], tightness=float(t), seed=seed)


def resolve_cell(cell: dict, cache: dict | None = None) -> tuple[PolicyConfig, dict, int]:
    """(PolicyConfig, environment settings, K) of a cell; trace and OR-Library environments set
    ``n_resources`` from their data (an explicit different value is an error)."""
    policy, env = split_cell(cell)
    key = (json.dumps(env, sort_keys=True), policy.get("n_resources"), policy.get("seed"),
           policy.get("reward_family"))
    if cache is not None and key in cache:
        k = cache[key]
    else:
        try:
            k = make_environment(env, policy).n_resources
        except SweepSpaceError:
            raise
        except (LibrexError, OSError) as exc:
            raise SweepSpaceError(f"env ({env['family']}): {exc}") from None
        if cache is not None:
            cache[key] = k
    if "n_resources" in cell and cell["n_resources"] != k:
        raise SweepSpaceError(f"n_resources: the {env['family']} environment has {k} "
                              f"resources, got {cell['n_resources']!r}")
    policy["n_resources"] = k
    try:
        config = PolicyConfig.from_dict(policy)
    except LibrexError as exc:
        raise SweepSpaceError(str(exc)) from None
    except TypeError as exc:  # e.g. an unknown prior name reaching the posterior
        raise SweepSpaceError(f"prior: {exc}") from None
    return config, env, k


def check_cell(cell: dict, cache: dict | None = None) -> None:
    """Raise :class:`SweepSpaceError` if the cell's configuration or environment is invalid."""
    try:
        resolve_cell(cell, cache)
    except SweepSpaceError as exc:
        raise SweepSpaceError(f"{exc} (in {_short(cell)})") from None


def _short(cell: dict) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in cell.items())
    return text if len(text) < 160 else text[:157] + "..."


def is_utilitarian(config: PolicyConfig) -> bool:
    """Does the configuration's fairness rule reduce to the utilitarian one (α = 0, no
    minimum shares, no reward-loss bound that could bind)?"""
    f = config.fairness
    return f.alpha_value == 0.0 and f.min_share == 0.0 and \
        (f.max_reward_loss is None or f.max_reward_loss == 0.0)


# --------------------------------------------------------------------------- front, summary
def pareto_front(reward, gini) -> np.ndarray:
    """Boolean mask of the points not dominated (more reward is better, lower Gini is better;
    a point is dominated when another is at least as good in both and better in one).
    NaN points are never on the front."""
    r = np.asarray(reward, dtype=np.float64)
    g = np.asarray(gini, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(g)
    front = np.zeros(len(r), dtype=bool)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return front
    order = idx[np.lexsort((g[idx], -r[idx]))]  # reward descending, then Gini ascending
    best_g = np.inf
    for i in order:
        if g[i] < best_g:
            front[i] = True
            best_g = g[i]
    # equal points: keep every copy of a front point
    for i in idx:
        if not front[i]:
            front[i] = bool(np.any(front & (r == r[i]) & (g == g[i])))
    return front


REWARD = "reward_vs_oracle"
FAIRNESS = "gini_reward"


def settings_table(df, params: list[str], reward: str = REWARD, fairness: str = FAIRNESS):
    """Mean over seeds of each setting (the parameters other than ``seed``): one row per
    setting with ``n`` (trials), the means of ``reward``, ``fairness`` and of ``reward_kept``,
    ``jain_reward``, ``gini_service`` when present, and ``front`` (on the Pareto front)."""
    import pandas as pd

    keys = [p for p in params if p != "seed" and p in df.columns]
    cols = [c for c in (reward, fairness, "reward_kept", "jain_reward", "gini_service",
                        "cum_regret") if c in df.columns]
    data = df[df["status"] == "done"] if "status" in df.columns else df
    if not len(data):
        return pd.DataFrame(columns=[*keys, "n", *cols, "front"])
    if keys:
        g = data.astype({k: str for k in keys if data[k].dtype == object}).groupby(
            keys, dropna=False, sort=True)
        table = g[cols].mean().reset_index()
        table.insert(len(keys), "n", g.size().to_numpy())
    else:
        table = data[cols].mean().to_frame().T
        table.insert(0, "n", len(data))
    table["front"] = pareto_front(table[reward], table[fairness])
    return table


def pick_settings(table, reward_floor: float | None = None, reward: str = REWARD,
                  fairness: str = FAIRNESS) -> dict:
    """The best row of :func:`settings_table` for each objective: ``most_reward``;
    ``fairest_at_90`` (lowest ``fairness`` among rows with ≥ 90 % of the best reward);
    ``fairest_above_floor`` (lowest ``fairness`` with ``reward`` ≥ ``reward_floor``, when one
    is given). Values are row indices (None: no row qualifies); ties go to more reward."""
    out: dict = {"most_reward": None, "fairest_at_90": None}
    ok = table[np.isfinite(table[reward].astype(float))]
    if not len(ok):
        if reward_floor is not None:
            out["fairest_above_floor"] = None
        return out
    best = ok[reward].max()
    out["most_reward"] = int(ok.sort_values([reward, fairness], ascending=[False, True]).index[0])

    def fairest(rows):
        rows = rows[np.isfinite(rows[fairness].astype(float))]
        if not len(rows):
            return None
        return int(rows.sort_values([fairness, reward], ascending=[True, False]).index[0])

    out["fairest_at_90"] = fairest(ok[ok[reward] >= 0.9 * best])
    if reward_floor is not None:
        out["fairest_above_floor"] = fairest(ok[ok[reward] >= reward_floor])
    return out


def summary_markdown(table, picks: dict, params: list[str], *, reward_floor=None,
                     reward: str = REWARD, fairness: str = FAIRNESS, title: str = "Sweep",
                     n_trials: int | None = None, n_failed: int = 0) -> str:
    """A markdown summary: the objectives' picks, then the settings table."""
    keys = [p for p in params if p != "seed" and p in table.columns]

    def describe(i):
        if i is None:
            return "no setting qualifies"
        row = table.loc[i]
        where = ", ".join(f"`{k}={_fmt(row[k])}`" for k in keys) or "the only setting"
        extra = f", reward kept {row['reward_kept']:.3f}" if "reward_kept" in row and \
            np.isfinite(float(row["reward_kept"])) else ""
        return f"{where}: {reward} {row[reward]:.3f}, {fairness} {row[fairness]:.3f}{extra}"

    lines = [f"# {title}", ""]
    if n_trials is not None:
        lines += [f"{n_trials} trials, {len(table)} settings (mean over seeds)"
                  + (f"; {n_failed} trials failed and are left out" if n_failed else "") + ".",
                  ""]
    lines += [f"- **most reward**: {describe(picks.get('most_reward'))}",
              f"- **lowest {fairness} at ≥ 90 % of the best {reward}**: "
              f"{describe(picks.get('fairest_at_90'))}"]
    if reward_floor is not None:
        lines.append(f"- **lowest {fairness} with {reward} ≥ {reward_floor:g}**: "
                     f"{describe(picks.get('fairest_above_floor'))}")
    lines += ["", f"{reward}: expected reward / the utilitarian oracle's on the true means; "
              f"{fairness}: Gini of the agents' cumulative reward; reward_kept: expected reward "
              f"/ the utilitarian constrained-TS run's on the same instance and seed; "
              f"front: on the reward–fairness Pareto front.", ""]
    cols = [c for c in table.columns]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else ""
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)
