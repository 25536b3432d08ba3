"""Operating a running job: ``librex-alloc status`` and ``librex-alloc stop``.

Both join the Ray cluster the job runs on (``--address``, else ``RAY_ADDRESS``, else the
local cluster started by ``ray start``: they never start a Ray of their own), find the job's
coordinator by name (``<name>-coordinator`` in ``--namespace``) and read the job's admin
credential from its checkpoint folder (named by the coordinator's ``config()``, or
``--checkpoint-dir`` when that path differs on this machine).

``status`` prints the round, rounds/s (over ``--interval`` seconds), the submitters (alive or
dead), the counters, fairness and utilization of the last rounds, as a table or ``--json``.
``stop`` stops the round loop after the current round, writes the final snapshot (``close``),
streams the rounds not yet in ``<out>/rounds.parquet`` into a new part of it (a detached job
has no driver that does it), kills the job's actors and frees its folders; the checkpoint is
resumed with ``librex-alloc run --resume``. A job whose driver still runs (not detached) is
only stopped: its driver writes the snapshot and ends as after Ctrl-C.

Exit codes: 0; 2 with one line on stderr when no cluster is reachable, no such job is running
(``status``), or the admin credential cannot be read; ``stop`` with nothing to stop prints one
line and exits 0. Standalone: ``python -m coordinator.ops status|stop ...``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from librex_alloc import cli_args
from librex_alloc.cli_args import HelpFormatter, finite_positive_float

EXIT_USAGE = 2


class OpsError(Exception):
    """A one-line error of ``status`` / ``stop`` (exit 2)."""


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--name", default="librex-alloc", help="the job's name (run --name)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, else the local cluster "
                   "of 'ray start')")
    p.add_argument("--namespace", default="librex-alloc", help="the job's Ray namespace")
    p.add_argument("--checkpoint-dir", default=None,
                   help="the job's checkpoint folder, where its admin credential is (default: "
                   "the path the coordinator reports)")
    p.add_argument("--connect-timeout", type=finite_positive_float, default=30.0,
                   help="seconds to wait for the Ray cluster before giving up")
    return p


def configure_status_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--interval", type=finite_positive_float, default=1.0,
                   help="seconds over which rounds/s is measured")
    return p


def configure_stop_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return _common(p)


def register_status(subparsers):
    """Plug-in hook (entry point ``librex_alloc.commands: status``)."""
    p = subparsers.add_parser(
        "status", help="show a running job's round, speed, submitters, counters, fairness",
        description="Show a running job (coordinator on a Ray cluster): round, rounds/s, "
        "submitters alive/dead, counters, fairness and utilization.",
        formatter_class=HelpFormatter)
    return configure_status_parser(p), status_command


def register_stop(subparsers):
    """Plug-in hook (entry point ``librex_alloc.commands: stop``)."""
    p = subparsers.add_parser(
        "stop", help="stop a running job with a final snapshot (resume with run --resume)",
        description="Stop a running job cleanly: the current round ends, a final snapshot is "
        "written, the rounds go to OUT/rounds.parquet and the job's actors end.",
        formatter_class=HelpFormatter)
    return configure_stop_parser(p), stop_command


# --------------------------------------------------------------------------- helpers
def _connect(args) -> None:
    import ray

    from coordinator.job import RayConnectError, _join

    if ray.is_initialized():
        return
    address = args.address or os.environ.get("RAY_ADDRESS") or "auto"
    if address == "local":
        raise OpsError("--address local would start a new Ray, where no job runs: give the "
                       "job's cluster address")
    try:
        _join(address, args.namespace, args.connect_timeout)
    except RayConnectError as exc:
        if ray.is_initialized():
            ray.shutdown()
        msg = str(exc)
        if address == "auto" and "find any running Ray" in msg:
            msg = ("no Ray cluster is reachable (none found on this machine and no --address "
                   "or RAY_ADDRESS given)")
        elif address == "auto":  # e.g. several clusters run here
            msg = (f"no Ray cluster found on this machine could be joined: "
                   f"{msg.split('(', 1)[-1].split(';')[0]}; pass the job's --address")
        raise OpsError(msg) from None


def _coordinator(args):
    import ray

    name = f"{args.name}-coordinator"
    try:
        handle = ray.get_actor(name, namespace=args.namespace)
    except ValueError:
        return None
    try:
        cfg = ray.get(handle.config.remote(), timeout=30)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return None
    return handle, cfg


def _admin(args, cfg: dict) -> tuple[str | None, str]:
    """(admin credential or None, the checkpoint folder it was looked for in)."""
    from coordinator.actor import admin_credential

    ckpt = args.checkpoint_dir or cfg.get("checkpoint_dir")
    try:
        return admin_credential(ckpt), ckpt
    except (OSError, ValueError, TypeError):
        return None, ckpt


def _alive(names: list[str], namespace: str) -> dict[str, bool]:
    import ray

    refs = {}
    out = {}
    for n in names:
        try:
            refs[n] = ray.get_actor(n, namespace=namespace).pid.remote()
        except ValueError:
            out[n] = False
    if refs:
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=3.0)
        for n, ref in refs.items():
            ok = False
            if ref in ready:
                try:
                    ray.get(ref)
                    ok = True
                except Exception:
                    ok = False
            out[n] = ok
    return out


def _last(values) -> float:
    for v in reversed(values):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return float("nan")


def collect_status(handle, cfg: dict, admin: str | None, namespace: str,
                   interval: float = 1.0) -> dict:
    """Everything ``status`` shows, as a JSON-able dict."""
    import ray

    s1 = ray.get(handle.status.remote())
    t1 = time.monotonic()
    time.sleep(interval)
    s2 = ray.get(handle.status.remote())
    dt = time.monotonic() - t1
    alive = _alive(list(s2["submitters"]), namespace)
    out = {"round": s2["round"], "rounds_per_s": (s2["round"] - s1["round"]) / dt,
           "stopped": s2["stopped"], "agents": s2["agents"],
           "submitters": {n: {"alive": alive.get(n, False),
                              "in_flight": n in s2["in_flight"],
                              "failures": s2["failing"].get(n, (0, None))[0]}
                          for n in s2["submitters"]},
           "submitters_alive": sum(alive.values()),
           "submitters_dead": len(alive) - sum(alive.values()),
           "counters": s2["counters"], "checkpoint_dir": cfg.get("checkpoint_dir"),
           "fairness": None, "utilization": None, "phases_ms": None}
    if admin is not None and s2["round"] > 0:
        every = int(cfg.get("fairness_every", 1))
        rows = ray.get(handle.metrics_since.remote(max(0, s2["round"] - max(2 * every, 20)),
                                                   10_000, admin=admin))
        if rows["round"]:
            from coordinator.metrics_log import phase_label
            out["fairness"] = {k: _last(rows[k]) for k in
                               ("gini_reward", "jain_reward", "gini_service", "jain_service")}
            out["utilization"] = [rows[k][-1] for k in rows if k.startswith("utilization_")]
            out["phases_ms"] = {phase_label(k): 1e3 * sorted(rows[k])[len(rows[k]) // 2]
                                for k in ("submit_s", "decide_s", "commit_s", "push_s",
                                          "report_s", "metrics_s", "round_s")}
            out["reward_last_round"] = rows["reward"][-1]
    return out


def format_status(name: str, st: dict) -> str:
    c = st["counters"]
    rejected = {k[9:]: v for k, v in c.items() if k.startswith("rejected_") and v}
    state = "stopped" if st["stopped"] else (
        "running" if st["rounds_per_s"] > 0 else "idle (no round played while measured: "
        "target round reached, or waiting for submitters)")
    lines = [f"job {name!r}: {state}, round {st['round']:,}, {st['rounds_per_s']:.1f} rounds/s, "
             f"{st['agents']:,} agents",
             f"{'submitters':<13}{st['submitters_alive']} alive, {st['submitters_dead']} dead: "
             + ", ".join(f"{n} ({'alive' if s['alive'] else 'DEAD'}"
                         + (f", {s['failures']} failed calls" if s["failures"] else "") + ")"
                         for n, s in st["submitters"].items())]
    if st["fairness"] is not None:
        f = st["fairness"]
        ph = st["phases_ms"]
        lines += [
            f"{'fairness':<13}Gini {f['gini_reward']:.3f} / Jain {f['jain_reward']:.3f} on "
            f"cumulative reward; Jain {f['jain_service']:.3f} on rounds served",
            f"{'utilization':<13}" + " / ".join(f"{u:.3f}" for u in st["utilization"])
            + " of the per-round budget (last round)",
            f"{'round (ms)':<13}median {ph['round']:.1f}: submit {ph['submit']:.1f} | solve "
            f"{ph['solve']:.1f} | commit {ph['commit']:.1f} | push {ph['push']:.1f} | "
            f"report {ph['report']:.1f} | metrics {ph['metrics']:.1f}"]
    else:
        lines.append(f"{'fairness':<13}n/a (no round yet, or the admin credential is not "
                     f"readable here: pass --checkpoint-dir)")
    lines += [
        f"{'outcomes':<13}{c['outcomes_applied']:,} applied; {c['duplicate_reports']} "
        f"retransmissions recognized; rejected "
        + (", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rejected.items()) or "none"),
        f"{'faults':<13}{c['restarts']} coordinator restarts",
        f"{'checkpoint':<13}{st['checkpoint_dir']}"]
    return "\n".join(lines)


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


# --------------------------------------------------------------------------- commands
def status_command(args, parser=None) -> int:
    import ray

    prog = parser.prog if parser is not None else "librex-alloc status"
    started = not ray.is_initialized()
    try:
        _connect(args)
        found = _coordinator(args)
        if found is None:
            return _fail(prog, f"no job named {args.name!r} is running in namespace "
                         f"{args.namespace!r}")
        handle, cfg = found
        admin, _ = _admin(args, cfg)
        st = collect_status(handle, cfg, admin, args.namespace, args.interval)
    except OpsError as exc:
        return _fail(prog, str(exc))
    finally:
        if started and ray.is_initialized():
            ray.shutdown()
    if args.json:
        print(json.dumps({"job": args.name, **st}, default=float))
    else:
        print(format_status(args.name, st))
    return 0


def _write_rounds(handle, admin: str, out: Path, n_resources: int) -> int:
    """Stream the coordinator's rounds not yet in ``out/rounds.parquet`` into a new part;
    returns the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from coordinator.job import ROW_GROUP, _rounds_dataset
    from coordinator.metrics_log import columns

    out.mkdir(parents=True, exist_ok=True)
    folder, part, written = _rounds_dataset(out, resume=True)
    schema = pa.schema(columns(n_resources))
    tmp = folder / f".part-{part:05d}.parquet.inprogress"
    n = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        while True:
            rows = ray.get(handle.metrics_since.remote(written, ROW_GROUP, admin=admin))
            if not rows["round"]:
                break
            writer.write_table(pa.table(rows, schema=schema))
            written = rows["round"][-1]
            n += len(rows["round"])
    if n:
        os.replace(tmp, folder / f"part-{part:05d}.parquet")
    else:
        tmp.unlink()
    return n


def stop_job(args) -> str:
    """Stop the job named ``args.name``; returns the line to print. Ray must be connected."""
    import ray

    from coordinator.job import OWNER_FILE, _read_owner

    found = _coordinator(args)
    if found is None:
        return f"nothing to stop: no job named {args.name!r} is running in namespace " \
               f"{args.namespace!r}"
    handle, cfg = found
    admin, ckpt = _admin(args, cfg)
    if admin is None:
        raise OpsError(f"cannot read the job's admin credential in {ckpt}: run stop where "
                       f"that folder is readable, or pass --checkpoint-dir")
    owner = _read_owner(Path(ckpt)) or {}
    if not owner.get("detached") and owner.get("job") == args.name:
        ray.get(handle.stop.remote(admin=admin))
        return (f"stopped job {args.name!r} (its driver, pid {owner.get('pid')} on "
                f"{owner.get('host')}, writes the final snapshot and ends)")
    ray.get(handle.stop.remote(admin=admin))
    ray.get(handle.close.remote(admin=admin))  # waits for the round; the final snapshot
    status = ray.get(handle.status.remote())
    rows = 0
    out = owner.get("out")
    if out:
        rows = _write_rounds(handle, admin, Path(out), len(cfg["budget"]))
    for n in status["submitters"]:
        try:
            ray.kill(ray.get_actor(n, namespace=args.namespace), no_restart=True)
        except ValueError:
            pass
    ray.kill(handle, no_restart=True)
    for folder in {Path(ckpt), *([Path(out)] if out else [])}:
        if _read_owner(folder) == owner and owner:
            (folder / OWNER_FILE).unlink(missing_ok=True)
    where = f"; {rows} rounds added to {Path(out) / 'rounds.parquet'}" if out else ""
    return (f"stopped job {args.name!r} at round {status['round']}: final snapshot in {ckpt}"
            f"{where}; continue it with: librex-alloc run --resume --name {args.name} "
            f"--checkpoint-dir {ckpt}" + (f" --out {out}" if out else "")
            + " (and its other run options)")


def stop_command(args, parser=None) -> int:
    import ray

    prog = parser.prog if parser is not None else "librex-alloc stop"
    started = not ray.is_initialized()
    try:
        _connect(args)
        line = stop_job(args)
    except OpsError as exc:
        return _fail(prog, str(exc))
    finally:
        if started and ray.is_initialized():
            ray.shutdown()
    print(line, flush=True)
    return 0


def main(argv=None) -> int:
    parser = cli_args.ArgumentParser(prog="python -m coordinator.ops",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = {"status": register_status(sub), "stop": register_stop(sub)}
    args = parser.parse_args(argv)
    p, handler = handlers[args.command]
    try:
        return handler(args, p)
    except KeyboardInterrupt:
        print(f"\n{p.prog}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
