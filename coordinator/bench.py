"""Throughput benchmark of the Ray runtime: ``python -m coordinator.bench``.

In one Ray session: rounds per second end to end and the median time of each phase (submit,
solve, commit, push, report, metrics, checkpoint) for 1,000 / 10,000 / 100,000 synthetic
agents in 1, 2 and 4 shards, beside the literal one-actor-per-agent design (one live-agent
actor per agent) at 100 and 200 agents; then the coordinator's memory over a long run. Prints
markdown tables. Every case uses the "fast" oracle, proportional fairness, K = 3, budget
tightness 0.3, a pending window of 50 rounds and Gini/Jain every 10 rounds.

Checkpoint cost per round = journal commit (every round, fsynced) + snapshot time /
``checkpoint_every``; its share is that over the mean round time.

``--compare PATH --repeat N`` measures this checkout and another one (a checkout or ``git
worktree`` of an earlier commit) side by side in one session: each runs its *own* ``python -m
coordinator.bench`` (the shard cases only) in a fresh subprocess, the two alternating N times
(this, other, other, this, ...) so that a drift of the machine's load falls on both; the table
gives each case's median rounds/s and phase times over the N runs with their range, and the
ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from coordinator.config import CoordinatorConfig
from coordinator.metrics_log import phase_label
from librex_alloc import PolicyConfig, SyntheticEnvironment, cli_args

PHASES = ("submit_s", "decide_s", "commit_s", "push_s", "report_s", "metrics_s")


def _config(env, directory, checkpoint_every: int, deadline: float = 30.0, budget=None):
    return CoordinatorConfig(
        PolicyConfig(env.n_resources, fairness="proportional", oracle="fast", seed=0,
                     max_pending_rounds=50),
        env.budget if budget is None else budget, directory, round_deadline_s=deadline,
        checkpoint_every=checkpoint_every, fairness_every=10)


def _measure(coord, warmup: int, rounds: int, admin: str) -> dict:
    import ray

    ray.get(coord.run.remote(until_round=warmup, admin=admin))
    head = int(rounds * 0.8)
    t0 = time.perf_counter()
    ray.get(coord.run.remote(until_round=warmup + head, admin=admin))
    t1 = time.perf_counter()
    ray.get(coord.run.remote(until_round=warmup + rounds, admin=admin))
    t2 = time.perf_counter()
    rows = ray.get(coord.metrics_since.remote(warmup, 1_000_000, admin=admin))
    out = {"rounds": rounds, "rounds_per_s": rounds / (t2 - t0),
           "tail_rounds_per_s": (rounds - head) / (t2 - t1),
           "round_ms": float(np.mean(rows["round_s"]) * 1e3),
           "missing": int(np.sum(np.asarray(rows["n_missing"]) > 0))}
    for p in PHASES:
        out[phase_label(p)] = float(np.median(rows[p]) * 1e3)
    snaps = [t for t in rows["checkpoint_s"] if t > 0]
    out["snapshot_ms"] = float(np.median(snaps) * 1e3) if snaps else float("nan")
    return out


def bench_shards(n_agents: int, n_shards: int, rounds: int, checkpoint_every: int,
                 workdir: str) -> dict:
    import ray

    from agents.actors import start_shards
    from coordinator.actor import admin_credential, get_or_create_coordinator

    env = SyntheticEnvironment(n_agents=n_agents, n_resources=3, tightness=0.3, seed=0)
    name = f"bench-{n_agents}-{n_shards}"
    ckpt = os.path.join(workdir, name)
    t0 = time.perf_counter()
    coord = get_or_create_coordinator(_config(env, ckpt, checkpoint_every), name)
    shards = start_shards(env, n_shards, name, prefix=f"{name}-shard", seed=0)
    setup = time.perf_counter() - t0
    try:
        res = _measure(coord, 5, rounds, admin_credential(ckpt))
    finally:
        for h in [coord, *shards]:
            ray.kill(h, no_restart=True)
        shutil.rmtree(ckpt, ignore_errors=True)
    res.update(design=f"{n_shards} shard{'s' * (n_shards > 1)}", agents=n_agents,
               setup_s=setup, checkpoint_every=checkpoint_every)
    return res


def bench_per_agent(sizes: list[int], rounds: int, workdir: str) -> list[dict]:
    """One live-agent actor per agent; the actors of the smaller case are reused."""
    import ray

    from agents.actors import LiveAgentActor
    from agents.examples import BernoulliAgent
    from coordinator.actor import admin_credential, get_or_create_coordinator

    n_max = max(sizes)
    env = SyntheticEnvironment(n_agents=n_max, n_resources=3, tightness=0.3, seed=0)
    actors, results, started = [], [], 0.0
    for n in sorted(sizes):
        budget = 0.3 * env.request_table[:n, 0, :].sum(axis=0)  # tightness 0.3 of these n
        name = f"bench-per-agent-{n}"
        ckpt = os.path.join(workdir, name)
        coord = get_or_create_coordinator(_config(env, ckpt, 100, budget=budget), name)
        t0 = time.perf_counter()
        for i in range(len(actors), n):
            agent = BernoulliAgent(env.request_table[i, 0], env.means[i, 0], seed=i)
            actors.append(LiveAgentActor.options(name=f"agent-{i}").remote(
                f"agent-{i}", agent, 3, agent_id=i))
        ray.get([a.pid.remote() for a in actors])
        started += time.perf_counter() - t0
        ray.get([a.attach.remote(name) for a in actors[:n]])
        try:
            res = _measure(coord, 3, rounds, admin_credential(ckpt))
        finally:
            ray.kill(coord, no_restart=True)
            shutil.rmtree(ckpt, ignore_errors=True)
        res.update(design=f"{n} actors (one per agent)", agents=n, setup_s=started,
                   checkpoint_every=100)
        results.append(res)
    for a in actors:
        ray.kill(a, no_restart=True)
    return results


def bench_memory(n_agents: int, rounds: int, every: int, workdir: str) -> list[tuple]:
    """(round, coordinator RSS MiB) every ``every`` rounds over ``rounds`` rounds."""
    import ray

    from agents.actors import start_shards
    from coordinator.actor import admin_credential, get_or_create_coordinator

    env = SyntheticEnvironment(n_agents=n_agents, n_resources=3, tightness=0.3, seed=0)
    name = "bench-memory"
    ckpt = os.path.join(workdir, name)
    coord = get_or_create_coordinator(_config(env, ckpt, 100), name)
    shards = start_shards(env, 2, name, prefix=f"{name}-shard", seed=0)
    points = []
    try:
        t0 = time.perf_counter()
        for r in range(every, rounds + 1, every):
            ray.get(coord.run.remote(until_round=r, admin=admin_credential(ckpt)))
            points.append((r, ray.get(coord.memory_mib.remote()), time.perf_counter() - t0))
    finally:
        for h in [coord, *shards]:
            ray.kill(h, no_restart=True)
        shutil.rmtree(ckpt, ignore_errors=True)
    return points


def table(results: list[dict]) -> str:
    head = ("| agents | design | rounds | rounds/s | last 20 % | round ms | submit | solve | "
            "commit | push | report | metrics | snapshot ms (every k) | checkpoint share | "
            "start-up s |")
    lines = [head, "|" + "---|" * 15]
    for r in results:
        ckpt = r["commit"] + (0 if np.isnan(r["snapshot_ms"]) else
                              r["snapshot_ms"] / r["checkpoint_every"])
        lines.append(
            f"| {r['agents']:,} | {r['design']} | {r['rounds']:,} | {r['rounds_per_s']:.1f} | "
            f"{r['tail_rounds_per_s']:.1f} | {r['round_ms']:.1f} | {r['submit']:.2f} | "
            f"{r['solve']:.1f} | {r['commit']:.2f} | "
            f"{r['push']:.1f} | {r['report']:.1f} | {r['metrics']:.2f} | "
            f"{r['snapshot_ms']:.0f} ({r['checkpoint_every']}) | "
            f"{ckpt / r['round_ms']:.0%} | {r['setup_s']:.1f} |")
    return "\n".join(lines)


def machine() -> str:
    import ray

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python "
            f"{platform.python_version()}, Ray {ray.__version__}, numpy {np.__version__}")


#: columns of :func:`table` read back from a child run of ``--compare``
_COMPARED = ("rounds/s", "round ms", "solve", "push")
#: how a child run checks where it imports from, then runs that checkout's own benchmark
_CHILD = ("import os, runpy, sys; import coordinator, librex_alloc; "
          "root = os.path.realpath(sys.argv[1]); "
          "bad = [m.__name__ for m in (coordinator, librex_alloc) "
          "if not os.path.realpath(m.__file__ or '').startswith(root + os.sep)]; "
          "bad and sys.exit(f'{bad} not imported from {root}'); "
          "sys.argv = ['coordinator.bench'] + sys.argv[2:]; "
          "runpy.run_module('coordinator.bench', run_name='__main__')")


def parse_table(text: str) -> dict:
    """{(agents, design): {column: value}} from the markdown table a run prints."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    if not lines:
        return {}
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if len(cells) != len(head) or not cells[0].replace(",", "").isdigit():
            continue
        row = dict(zip(head, cells))
        out[(int(cells[0].replace(",", "")), cells[1])] = {
            c: float(row[c]) for c in _COMPARED if c in row}
    return out


def _run_checkout(path: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
    res = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(path), *args],
                         cwd=path, env=env, capture_output=True, text=True, check=False)
    rows = parse_table(res.stdout) if res.returncode == 0 else {}
    if not rows:
        tail = (res.stderr.strip().splitlines() or ["no table printed"])[-1]
        raise RuntimeError(f"the benchmark of {path} failed: {tail}")
    return rows


def compare(other: str, repeat: int, child_args: list[str], log=sys.stderr) -> str:
    """Alternate ``repeat`` runs of this checkout and ``other``; a markdown table of medians."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"this checkout": here, "other": other}
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    t0 = time.perf_counter()
    for i in range(repeat):
        for k in (("this checkout", "other") if i % 2 == 0 else ("other", "this checkout")):
            runs[k].append(_run_checkout(trees[k], child_args))
            print(f"run {i + 1}/{repeat} of {k} done ({time.perf_counter() - t0:.0f} s)",
                  file=log, flush=True)
    cases = [c for c in runs["this checkout"][0] if all(c in r for r in runs["other"])]
    lines = ["| agents | design | column | this checkout: median [min, max] | "
             f"{other}: median [min, max] | this / other |", "|---|---|---|---|---|---|"]
    for case in cases:
        for col in _COMPARED:
            vals = {k: np.array([r[case][col] for r in runs[k]]) for k in runs}
            med = {k: float(np.median(v)) for k, v in vals.items()}
            cell = {k: f"{med[k]:.2f} [{vals[k].min():.2f}, {vals[k].max():.2f}]"
                    for k in vals}
            ratio = med["this checkout"] / med["other"] if med["other"] else float("nan")
            lines.append(f"| {case[0]:,} | {case[1]} | {col} | {cell['this checkout']} | "
                         f"{cell['other']} | {ratio:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = cli_args.ArgumentParser(prog="python -m coordinator.bench",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000", help="agents per case")
    p.add_argument("--shards", default="1,2,4", help="shard counts")
    p.add_argument("--per-agent", default="100,200", help="one-actor-per-agent sizes ('' none)")
    p.add_argument("--rounds", type=int, default=1000, help="measured rounds (≤ 10k agents)")
    p.add_argument("--rounds-large", type=int, default=100, help="measured rounds (> 10k)")
    p.add_argument("--rounds-per-agent", type=int, default=20,
                   help="measured rounds, one actor per agent")
    p.add_argument("--memory-rounds", type=int, default=10_000,
                   help="rounds of the memory run (0: skip)")
    p.add_argument("--memory-agents", type=int, default=10_000)
    p.add_argument("--quick", action="store_true",
                   help="a reduced run: 1k and 10k agents, 1 and 4 shards, 100 rounds, no "
                   "one-actor-per-agent case, 1,000 memory rounds of 1,000 agents")
    p.add_argument("--compare", metavar="PATH",
                   help="another checkout: measure both side by side (shard cases only)")
    p.add_argument("--repeat", type=cli_args.positive_int, default=3,
                   help="with --compare: runs of each checkout, alternating")
    args = p.parse_args(argv)
    if args.compare is not None:
        cli_args.check_checkout(p, args.compare, needs=("librex_alloc/__init__.py",
                                                        "coordinator/bench.py"))
        child = ["--sizes", args.sizes, "--shards", args.shards, "--per-agent", "",
                 "--rounds", str(args.rounds), "--rounds-large", str(args.rounds_large),
                 "--memory-rounds", "0"]
        t_all = time.perf_counter()
        try:
            result = compare(args.compare, args.repeat, child)
        except RuntimeError as exc:
            print(f"python -m coordinator.bench: {exc}", file=sys.stderr)
            return 1
        print(f"Machine: {machine()}. Command: `python -m coordinator.bench "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}` "
              f"({time.perf_counter() - t_all:.0f} s in all).\n")
        print(f"Each checkout ran its own benchmark {args.repeat} times, alternating; medians "
              "over those runs, [min, max] their range; rounds/s end to end, the rest median "
              "milliseconds per round.\n")
        print(result)
        return 0
    if args.quick:
        args.sizes, args.shards, args.per_agent = "1000,10000", "1,4", ""
        args.rounds, args.memory_rounds, args.memory_agents = 100, 1000, 1000
    import ray

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
             namespace="librex-bench",
             log_to_driver=False)
    workdir = tempfile.mkdtemp(prefix="librex-bench-")
    t_all = time.perf_counter()
    results = []
    try:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            for s in [int(x) for x in args.shards.split(",") if x]:
                large = n > 10_000
                rounds = args.rounds_large if large else args.rounds
                k = 50 if large else 100
                res = bench_shards(n, s, rounds, k, workdir)
                results.append(res)
                print(f"{n:>7} agents {s} shards: {res['rounds_per_s']:.1f} rounds/s",
                      file=sys.stderr, flush=True)
        sizes = [int(x) for x in args.per_agent.split(",") if x]
        if sizes:
            for res in bench_per_agent(sizes, args.rounds_per_agent, workdir):
                results.append(res)
                print(f"{res['agents']:>7} agents one actor each: {res['rounds_per_s']:.1f} "
                      f"rounds/s", file=sys.stderr, flush=True)
        points = bench_memory(args.memory_agents, args.memory_rounds,
                              max(args.memory_rounds // 10, 1), workdir) \
            if args.memory_rounds else []
        info = machine()
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Machine: {info}. Command: `python -m coordinator.bench "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}` "
          f"({time.perf_counter() - t_all:.0f} s in all).\n")
    print("Median milliseconds per phase; rounds/s is end to end (the driver's wall time over "
          "the measured rounds, after 5 warm-up rounds); 'last 20 %' is the rate over the last "
          "fifth of them (the fast oracle slows down as the posteriors concentrate).\n")
    print(table(results))
    if points:
        print(f"\nCoordinator memory over {args.memory_rounds:,} rounds "
              f"({args.memory_agents:,} agents, 2 shards):\n")
        print("| round | RSS MiB | elapsed s |\n|---|---|---|")
        for r, mib, el in points:
            print(f"| {r:,} | {mib:.1f} | {el:.0f} |")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
