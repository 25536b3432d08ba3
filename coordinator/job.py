"""The main job: a coordinator and agent shards on Ray, N rounds / a duration / until stopped.

:func:`run_job` starts a local Ray when no ``address`` (or ``RAY_ADDRESS``) is given and joins
the cluster otherwise (token authentication stays as Ray configures it: on by default). It
shows a progress line, streams the per-round metrics into ``<out>/rounds.parquet``, then
prints a summary table and writes ``<out>/run.png``. The coordinator checkpoints into
``checkpoint_dir`` (default ``<out>/checkpoint``; on a cluster give a path every node can
reach) and can resume from it (``resume=True``).

A job owns its folders: the driver holds an exclusive ``flock`` on ``<folder>/.librex-job.lock``
in the output and the checkpoint folder for the job's life (the kernel drops it when the
process dies: the lock is the liveness) and names itself in ``<folder>/.librex-job.json``
(host, pid, job name, start time). A second job on a held folder, or on the coordinator name
of a live job, fails at once with :class:`~coordinator.errors.JobError` (one line naming the
running job) and touches nothing of the first; an owner file whose lock is free is stale and
ignored.

``rounds.parquet`` is a folder of parts, one per run of the job (``part-00001.parquet``, then
one more per resume; a part is written as a hidden ``.part-*.inprogress`` file and renamed when
complete), read whole by ``pq.read_table(path)`` or ``pd.read_parquet(path)``. A resume adds a
part and never rewrites an earlier one; its summary covers every part.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coordinator.config import CoordinatorConfig
from coordinator.errors import JobError
from coordinator.metrics_log import columns, phase_label
from librex_alloc import PolicyConfig, StateError, SyntheticEnvironment, round_step
from librex_alloc.errors import InvalidConfigError, LibrexError

ROW_GROUP = 1000
PHASES = ("submit_s", "decide_s", "commit_s", "push_s", "report_s", "metrics_s", "checkpoint_s")


@dataclass
class JobResult:
    """What :func:`run_job` produced: the summary numbers and the files."""

    summary: dict
    parquet: Path
    plot: Path | None
    checkpoint_dir: Path
    table: str = field(repr=False, default="")


#: Seconds :func:`run_job` waits for a Ray cluster given by address before giving up.
CONNECT_TIMEOUT_S = 30.0
#: Where Ray 2.60 reads the cluster token (``ray get-auth-token``), in its own order.
TOKEN_HELP = ("a token-authenticated cluster needs RAY_AUTH_MODE=token and the cluster's "
              "token in RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH or "
              "~/.ray/auth_token")


class RayConnectError(LibrexError):
    """No Ray cluster answered at the given address within the timeout (one-line message
    naming --address, RAY_ADDRESS and the token settings)."""


def _token_source() -> str | None:
    """Where a token for Ray's token authentication would come from, or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path and os.path.isfile(path):
        return f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def _use_token_if_available() -> str:
    """Ray 2.60 turns token authentication on by itself only for a local cluster it finds or
    starts; for an explicit address it needs ``RAY_AUTH_MODE=token``. When the variable is
    unset and a token is at hand, set it for this process (token auth stays on; a cluster
    without it ignores the token). Returns a description of the setting for messages."""
    mode = os.environ.get("RAY_AUTH_MODE")
    source = _token_source()
    if mode is None and source is not None:
        os.environ["RAY_AUTH_MODE"] = "token"
        mode = "token (set here: a token was found)"
        try:  # Ray caches its config at import: refresh it, as Ray's own token setup does
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):  # pragma: no cover - another Ray version
            pass
    return f"RAY_AUTH_MODE={mode or '(unset)'}, token: {source or 'none found'}"


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` or ``ray://host:port``; None for other forms."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _connect_error(address: str, reason: str, timeout_s: float, auth: str) -> RayConnectError:
    return RayConnectError(
        f"cannot connect to the Ray cluster at {address} ({reason}; gave up after "
        f"{timeout_s:g} s): check --address or RAY_ADDRESS (unset both to start a local Ray); "
        f"{TOKEN_HELP} (now {auth})")


def _join(address: str, namespace: str, timeout_s: float, interrupted=None) -> None:
    """``ray.init(address)`` bounded by ``timeout_s`` seconds: a TCP probe first (an address
    where nothing listens fails at the deadline, not after Ray's minutes of retries), then the
    connection in a helper thread; Ray's retry messages on stderr are captured meanwhile and
    only their gist is reported. When the thread is still trying at the deadline, file
    descriptor 2 stays captured (Ray's client would log every retry until the process exits)
    and ``sys.stderr`` is given the original stream."""
    import ray

    deadline = time.monotonic() + timeout_s
    auth = _use_token_if_available()
    target = _host_port(address)
    if target is not None:
        last = None
        while True:
            try:
                socket.create_connection(target, timeout=max(0.1, min(
                    2.0, deadline - time.monotonic()))).close()
                break
            except OSError as exc:
                last = exc
            if interrupted is not None and interrupted():
                raise KeyboardInterrupt
            if time.monotonic() >= deadline:
                raise _connect_error(address, f"nothing answers at {target[0]}:{target[1]}: "
                                     f"{last.strerror or last}", timeout_s, auth)
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    outcome: dict = {}

    def connect():
        try:
            ray.init(address=address, namespace=namespace, log_to_driver=False)
            outcome["ok"] = True
        except BaseException as exc:  # reported by the caller
            outcome["error"] = exc

    log = tempfile.TemporaryFile()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)  # Ray's C++ client logs each retry to fd 2
    worker = threading.Thread(target=connect, name="ray-connect", daemon=True)
    try:
        worker.start()
        end = max(deadline, time.monotonic() + 1.0)
        while worker.is_alive() and time.monotonic() < end:
            worker.join(0.2)
            if interrupted is not None and interrupted():
                break
    finally:
        sys.stderr.flush()
        if worker.is_alive():  # given up (or Ctrl-C): Ray's client retries on until exit
            # and would log each retry: fd 2 stays captured, Python's stderr gets the real one
            sys.stderr = os.fdopen(saved, "w", buffering=1)
        else:
            os.dup2(saved, 2)
            os.close(saved)
    if outcome.get("ok"):
        log.close()
        return
    if worker.is_alive() and interrupted is not None and interrupted():
        log.close()
        raise KeyboardInterrupt
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    log.close()
    if "InvalidAuthToken" in text or "Unauthenticated" in text or "uthentication" in str(
            outcome.get("error", "")):
        reason = "the cluster refused the authentication token"
    elif worker.is_alive():
        reason = "no answer"
    else:
        exc = outcome["error"]
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise _connect_error(address, reason, timeout_s, auth)


def _connect(address: str | None, namespace: str, timeout_s: float = CONNECT_TIMEOUT_S,
             interrupted=None) -> tuple[bool, str]:
    """Connect to Ray; returns (started here, description).

    No ``address`` and no ``RAY_ADDRESS``: a **new** local Ray (``address="local"``), even
    when a local cluster is already running (plain ``ray.init()`` would attach to it and then
    refuse ``num_cpus``). Otherwise join that cluster within ``timeout_s`` seconds or raise
    :class:`RayConnectError`; ``interrupted()`` (a held Ctrl-C) ends the wait early with
    :class:`KeyboardInterrupt`. Token authentication stays as Ray sets it: on for a local Ray.
    """
    import ray

    if ray.is_initialized():
        return False, "existing Ray session"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and address != "local":
        try:
            _join(address, namespace, timeout_s, interrupted)
        except BaseException:
            if ray.is_initialized():
                ray.shutdown()
            raise
        return True, f"Ray cluster at {address}"
    try:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 namespace=namespace, log_to_driver=False)
    except BaseException:  # Ctrl-C during start-up: leave no half-started Ray behind
        if ray.is_initialized():
            ray.shutdown()
        raise
    return True, f"local Ray ({os.cpu_count()} CPUs)"


class _DeferredInterrupt:
    """Holds Ctrl-C (SIGINT) during start-up and raises :class:`KeyboardInterrupt` at the next
    :meth:`check`: interrupting Ray's client in the middle of ``ray.init`` or an actor's
    creation can crash the interpreter at exit, between two steps it cannot. A no-op outside
    the main thread (signal handlers live there)."""

    def __init__(self):
        self.pending = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._hold)

    def _hold(self, signum, frame):
        self.pending = True

    def check(self) -> None:
        if self.pending:
            self.restore()

    def restore(self, raise_pending: bool = True) -> None:
        """Put the previous handler back; raise KeyboardInterrupt if Ctrl-C was held."""
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
        if self.pending and raise_pending:
            self.pending = False
            raise KeyboardInterrupt


def connect_ray(address: str | None = None, namespace: str = "librex-alloc",
                timeout_s: float = CONNECT_TIMEOUT_S) -> tuple[bool, str]:
    """Public face of :func:`_connect` for scripts (``examples/live_workers.py``): a new local
    Ray without an address, else the cluster at ``address`` / ``RAY_ADDRESS`` within
    ``timeout_s`` seconds (:class:`RayConnectError`). Returns (started here, description)."""
    return _connect(address, namespace, timeout_s)


LOCK_FILE = ".librex-job.lock"
OWNER_FILE = ".librex-job.json"
_OURS = (LOCK_FILE, OWNER_FILE)


def _describe_owner(owner: dict | None, where: Path) -> str:
    if not owner:
        return f"another running job (no owner file in {where})"
    return (f"running job {owner.get('job')!r} (pid {owner.get('pid')} on "
            f"{owner.get('host')}, started {owner.get('started')}, output "
            f"{owner.get('out')})")


def _read_owner(folder: Path) -> dict | None:
    try:
        with open(folder / OWNER_FILE) as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else None
    except (OSError, ValueError):
        return None


class FolderLock:
    """This job's hold on ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, owner: dict):
        self.folder = Path(folder)
        self.owner = owner
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write the owner file; :class:`JobError` naming the running job
        if another process holds it (nothing is changed then)."""
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobError(f"{self.folder} is in use by "
                           f"{_describe_owner(_read_owner(self.folder), self.folder)}; wait "
                           f"for it to end or choose another folder") from None
        theirs = _read_owner(self.folder)
        if theirs and theirs.get("detached"):  # its driver is gone; the job may run on
            os.close(fd)
            raise JobError(f"{self.folder} is in use by detached "
                           f"{_describe_owner(theirs, self.folder)}: stop it first "
                           f"(librex-alloc stop --name {theirs.get('job')} --namespace "
                           f"{theirs.get('namespace')}"
                           + (f" --address {theirs['address']}" if theirs.get("address")
                              else "") + f"); if it no longer runs, delete "
                           f"{self.folder / OWNER_FILE}")
        self._fd = fd
        tmp = self.folder / f"{OWNER_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.owner, indent=1) + "\n")
        os.replace(tmp, self.folder / OWNER_FILE)

    def release(self, keep_owner: bool = False) -> None:
        """Drop the lock; the owner file goes too unless ``keep_owner`` (a detached job: the
        file names the job, which lives on without this process)."""
        if self._fd is None:
            return
        if not keep_owner and _read_owner(self.folder) == self.owner:
            try:
                os.unlink(self.folder / OWNER_FILE)
            except OSError:
                pass
        os.close(self._fd)  # closing the descriptor drops the lock
        self._fd = None


def _has_run(ckpt: Path) -> bool:
    """Does ``ckpt`` hold a saved run (a snapshot or a journal)?"""
    return ckpt.is_dir() and any(p.name.startswith(("snapshot-", "journal-"))
                                 for p in ckpt.iterdir())


def _clear(folder: Path) -> None:
    """Delete a previous run's files in our own folder (the lock and owner files stay)."""
    for p in folder.iterdir():
        if p.name in _OURS:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _prepare_folders(out: Path, checkpoint_dir, resume: bool, owner: dict
                     ) -> tuple[Path, list[FolderLock], bool]:
    """Lock the output and checkpoint folders (creating them), then check them for a fresh
    run or a resume; returns (checkpoint folder, locks held, whether a previous run's files
    must be cleared before the coordinator starts: a fresh run in the default folder).
    Raises :class:`JobError` (locks released) when a folder is held or the request does not
    fit what is there."""
    default = checkpoint_dir is None
    ckpt = out / "checkpoint" if default else Path(checkpoint_dir)
    for what, folder in (("--out", out), ("--checkpoint-dir", ckpt)):
        if folder.exists() and not folder.is_dir():
            raise JobError(f"{what} {folder} is not a folder")
    if resume and not ckpt.is_dir():
        raise JobError(f"--resume: nothing to resume: {ckpt} does not exist")
    if resume and not _has_run(ckpt):  # checked again under the lock
        raise JobError(f"--resume: nothing to resume: {ckpt} holds no saved run")
    locks: list[FolderLock] = []
    stale = False
    try:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.mkdir(parents=True, exist_ok=True)
        for folder in dict.fromkeys([out.resolve(), ckpt.resolve()]):
            lock = FolderLock(folder, owner)
            lock.acquire()
            locks.append(lock)
        if resume and not _has_run(ckpt):
            raise JobError(f"--resume: nothing to resume: {ckpt} holds no saved run")
        if not resume and any(p.name not in _OURS for p in ckpt.iterdir()):
            if not default:
                raise JobError(f"checkpoint directory {str(ckpt)!r} holds a previous run: "
                               f"resume it (--resume) or choose another directory")
            stale = True  # our own default folder: a fresh run starts over
    except BaseException:
        for lock in reversed(locks):
            lock.release()
        raise
    return ckpt, locks, stale


def _check_resume(ckpt: Path, config: CoordinatorConfig, stream) -> None:
    """Refuse (:class:`JobError`, nothing changed) a resume the coordinator could not do:
    an unreadable checkpoint, another configuration, lost records without ``accept_loss``."""
    from coordinator.checkpoints import CheckpointStore

    try:
        plan = CheckpointStore(str(ckpt)).plan()
    except (StateError, OSError) as exc:
        msg = " ".join(str(exc).split())
        raise JobError(f"--resume: the checkpoint in {ckpt} cannot be read: {msg}") from None
    mine = config.to_dict()
    diff = plan.config_diff(mine)
    if diff:
        theirs = plan.config()
        detail = []
        for key in diff:
            if isinstance(mine[key], dict) and isinstance(theirs.get(key), dict):
                detail += [f"{key}.{k}" for k in sorted(set(mine[key]) | set(theirs[key]))
                           if mine[key].get(k) != theirs[key].get(k)]
            else:
                detail.append(key)
        raise JobError(f"--resume: the run saved in {ckpt} has another configuration "
                       f"(differs in {', '.join(detail)}); resume it with its own settings or "
                       f"start a new run in another folder")
    for err in plan.snapshot_errors:
        print(f"note: {' '.join(err.split())}; resuming from an older snapshot",
              file=sys.stderr)
    problems = plan.problems()
    if problems and not config.accept_loss:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise JobError(f"--resume: {plan.describe(problems[0])}{more}; nothing was changed: "
                       f"pass --accept-loss to replay what is intact and drop the rest")
    for p in problems:
        print(f"warning: accepting the loss: {plan.describe(p)}", file=sys.stderr)


def _check_name_free(coord_name: str, namespace: str) -> None:
    """:class:`JobError` if a live coordinator called ``coord_name`` exists (another job's)."""
    import ray

    try:
        handle = ray.get_actor(coord_name, namespace=namespace)
    except ValueError:
        return
    try:
        cfg = ray.get(handle.config.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        return  # a dead one (its job ended): the name is being freed
    except Exception:  # alive but not telling (busy, or its calls need a credential)
        cfg = None
    owner = None
    if isinstance(cfg, dict) and cfg.get("checkpoint_dir"):
        owner = _read_owner(Path(cfg["checkpoint_dir"]))
    who = _describe_owner(owner, Path(cfg["checkpoint_dir"])) if isinstance(cfg, dict) and \
        cfg.get("checkpoint_dir") else "another running job"
    raise JobError(f"coordinator name {coord_name!r} is held by {who}; choose another --name")


def _detached_result(name, namespace, address, out: Path, ckpt: Path, first: int,
                     target, parquet: Path, stream) -> JobResult:
    where = f"--name {name} --namespace {namespace} --address {address}"
    until = f"until round {target}" if target is not None else "until stopped"
    table = "\n".join([
        f"librex-alloc run: detached job {name!r} started on the Ray cluster at {address} "
        f"(namespace {namespace!r}): playing from round {first} {until}",
        f"{'follow':<13}librex-alloc status {where}",
        f"{'stop':<13}librex-alloc stop {where}   (final snapshot; the rounds go to "
        f"{parquet})",
        f"{'checkpoint':<13}{ckpt}"])
    print(table, file=stream, flush=True)
    summary = {"detached": True, "job": name, "namespace": namespace, "address": address,
               "first_round": first, "until_round": target, "interrupted": False}
    return JobResult(summary, parquet, None, ckpt, table)


def _start_coordinator(config, coord_name: str, namespace: str, detached: bool = False):
    """The job's coordinator actor; :class:`JobError` (one line) when it cannot start."""
    import ray

    from coordinator.actor import get_or_create_coordinator

    try:
        return get_or_create_coordinator(config, coord_name, namespace=namespace,
                                         detached=detached)
    except ValueError as exc:  # created meanwhile by another job, with its configuration
        raise JobError(f"coordinator name {coord_name!r} is held by another running job: "
                       f"{exc}") from None
    except ray.exceptions.RayActorError as exc:  # its constructor refused the checkpoint
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        cause = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines
                     else "unknown")
        raise JobError(f"the coordinator could not start: {cause}") from None


def _rounds_dataset(out: Path, resume: bool) -> tuple[Path, int, int]:
    """The rounds folder, the number of the part this run writes and the last round the
    folder already holds (0 for a fresh run, whose earlier parts are deleted)."""
    folder = out / "rounds.parquet"
    if not resume:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif folder.exists():
            folder.unlink()
        folder.mkdir()
        return folder, 1, 0
    if folder.is_file():  # a single file of an earlier version: its first part
        tmp = out / ".rounds.parquet.converting"
        tmp.mkdir(exist_ok=True)
        os.replace(folder, tmp / "part-00000.parquet")
        os.replace(tmp, folder)
    folder.mkdir(exist_ok=True)
    for stale in folder.glob(".part-*.inprogress"):  # a driver killed mid-part: the
        stale.unlink()  # coordinator still has those rows and sends them again
    parts = sorted(folder.glob("part-*.parquet"))
    last = 0
    for p in parts:
        rounds = pq.read_table(p, columns=["round"]).column("round")
        if len(rounds):
            last = max(last, int(pc.max(rounds).as_py()))
    number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 1
    return folder, number, last


def read_rounds(path) -> pd.DataFrame:
    """All rounds of a run's ``rounds.parquet`` (every part), one row per round: when a resume
    that accepted a loss played rounds again, the newer part's rows replace the older
    (:func:`librex_alloc.round_step.read_rounds`)."""
    return round_step.read_rounds(path)


def run_job(*, agents: int = 10_000, shards: int = 4, rounds: int | None = 1000,
            duration_s: float | None = None, fairness: str | float = "proportional",
            resources: int = 3, tightness: float = 0.3, oracle: str = "fast", seed: int = 0,
            address: str | None = None, out: str | os.PathLike = "out/run",
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            round_deadline_s: float = 5.0, checkpoint_every: int = 100,
            fairness_every: int = 10, pending_window: int = 50, name: str = "librex-alloc",
            namespace: str = "librex-alloc", progress: bool = True, plot: bool = True,
            stream=None, accept_loss: bool = False,
            policy_config: PolicyConfig | dict | None = None,
            connect_timeout_s: float = CONNECT_TIMEOUT_S,
            pending_window_s: float | None = None, detached: bool = False) -> JobResult:
    """Run the coordinator and ``shards`` agent shards hosting ``agents`` synthetic agents.

    rounds: rounds to play (None: until ``duration_s`` seconds pass, or until the
    coordinator is stopped — ``ray.get_actor(f"{name}-coordinator").stop.remote(admin=...)``
    with the admin credential (``coordinator.actor.admin_credential``) — or Ctrl-C).
    pending_window: rounds in which late outcomes are still accepted (and, whatever the
    rounds, for three round deadlines, or ``pending_window_s`` seconds when given). resume:
    continue the run saved in the checkpoint folder (:class:`JobError` when there is none, it
    has another configuration, cannot be read, or lost records and not ``accept_loss``).
    policy_config: a :class:`PolicyConfig` (or its dict) for the coordinator's policy; when
    given it replaces ``fairness``/``oracle``/``seed``/``pending_window`` for the policy
    (``seed`` still seeds the environment; ``fairness`` is then only the summary's label) and
    its ``n_resources`` must equal ``resources``. connect_timeout_s: how long to wait for the
    cluster at ``address`` (:class:`RayConnectError` after it). Returns a :class:`JobResult`;
    the summary table is printed to ``stream`` (default stdout); after Ctrl-C in the loop the
    final snapshot is written and ``summary["interrupted"]`` is True. Raises
    :class:`JobError` before changing anything when a folder or the coordinator name is held
    by a running job.

    detached: leave the coordinator and the shards running (``lifetime="detached"`` actors in
    ``namespace``) on the cluster at ``address`` / ``RAY_ADDRESS`` (required: a local Ray
    would end with this process) and return at once: the coordinator plays the rounds by
    itself, also after Ray restarts it; the owner files name the job until ``librex-alloc
    stop``, which writes the final snapshot and the rounds into ``<out>/rounds.parquet``
    (``summary["detached"]`` is True; no plot). Not with ``duration_s``.
    """
    import ray

    from agents.actors import start_shards
    from coordinator.actor import admin_credential
    from librex_alloc.progress import Progress

    stream = sys.stdout if stream is None else stream
    if accept_loss and not resume:
        raise JobError("--accept-loss applies to a resume only (with --resume)")
    if detached:
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is None or address == "local":
            raise JobError("--detached needs a Ray cluster that outlives this command: start "
                           "one with 'ray start --head' and pass its --address (or set "
                           "RAY_ADDRESS)")
        if duration_s is not None:
            raise JobError("--detached runs --rounds N or --until-stopped, not --duration")
    out = Path(out)
    ckpt_path = out / "checkpoint" if checkpoint_dir is None else Path(checkpoint_dir)
    env = SyntheticEnvironment(n_agents=agents, n_resources=resources, tightness=tightness,
                               seed=seed)
    if policy_config is None:
        policy_config = PolicyConfig(resources, fairness=fairness, oracle=oracle, seed=seed,
                                     max_pending_rounds=pending_window)
    elif isinstance(policy_config, dict):
        policy_config = PolicyConfig.from_dict(policy_config)
    if not isinstance(policy_config, PolicyConfig) or policy_config.n_resources != resources:
        raise InvalidConfigError(f"policy_config: expected a PolicyConfig with n_resources="
                                 f"{resources}, got {policy_config!r}")
    config = CoordinatorConfig(
        policy_config, env.budget, str(ckpt_path.resolve()),
        round_deadline_s=round_deadline_s, checkpoint_every=checkpoint_every,
        fairness_every=fairness_every, accept_loss=accept_loss,
        pending_window_s=pending_window_s)
    coord_name = f"{name}-coordinator"
    owner = {"job": name, "coordinator": coord_name, "namespace": namespace,
             "host": socket.gethostname(), "pid": os.getpid(),
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "out": str(out.resolve()), "checkpoint_dir": config.checkpoint_dir}
    if detached:
        owner.update(detached=True, address=address)
    ckpt, locks, stale = _prepare_folders(out, checkpoint_dir, resume, owner)
    keep = False  # a detached job's actors and owner files outlive this function
    try:
        if not detached:  # a detached job's loop, left by a crash: this driver plays now
            from coordinator.actor import DRIVE_FILE

            (ckpt / DRIVE_FILE).unlink(missing_ok=True)
        if resume:
            _check_resume(ckpt, config, stream)
        startup = _DeferredInterrupt()  # Ctrl-C during start-up acts between its steps
        try:
            started, where = _connect(address, namespace, connect_timeout_s,
                                      lambda: startup.pending)
            startup.check()
        except BaseException:
            startup.restore(raise_pending=False)
            raise
        coord = handles = None
        t_start = time.perf_counter()
        try:
            _check_name_free(coord_name, namespace)
            startup.check()
            if stale:
                _clear(ckpt)
            coord = _start_coordinator(config, coord_name, namespace, detached=detached)
            admin = admin_credential(ckpt)  # control calls need it (README, "Trust model")
            startup.check()
            spec = {"synthetic": {"n_agents": agents, "n_resources": resources,
                                  "tightness": tightness, "seed": seed}}
            handles = start_shards(env, shards, coord_name, prefix=f"{name}-shard",
                                   namespace=namespace, seed=seed, env_spec=spec,
                                   detached=detached, scheduling_strategy="SPREAD")
            startup.restore()
            t_ready = time.perf_counter()
            first = ray.get(coord.status.remote())["round"]
            target = None if rounds is None else first + int(rounds)
            if detached:
                parquet = _rounds_dataset(out, resume)[0]
                ray.get(coord.start_loop.remote(until_round=target, admin=admin))
                keep = True
                return _detached_result(name, namespace, address, out, ckpt, first, target,
                                        parquet, stream)
            parquet, part, saved = _rounds_dataset(out, resume)
            schema = pa.schema(columns(resources))
            in_progress = parquet / f".part-{part:05d}.parquet.inprogress"
            # row groups of ROW_GROUP_ROWS rows, whatever the polls return; the run's
            # configuration in the file's metadata
            writer = round_step.RoundsWriter(in_progress, schema, config={
                "command": "run", "coordinator": config.to_dict(), "environment": spec,
                "agents": agents, "shards": shards, "rounds": rounds,
                "duration_s": duration_s})
            written, pending = min(saved, first), None
            total = rounds if rounds is not None else (math.ceil(duration_s) if duration_s
                                                       else 0)
            bar = Progress(total, "run", unit="rounds" if rounds is not None else "s",
                           enabled=progress and total > 0, stream=sys.stderr)
            t_run = time.perf_counter()
            try:
                with bar:
                    while True:
                        info = ray.get(coord.run.remote(until_round=target, max_seconds=0.5,
                                                        admin=admin))
                        while True:  # stream the new rows, ROW_GROUP at a time
                            rows = ray.get(coord.metrics_since.remote(written, ROW_GROUP,
                                                                      admin=admin))
                            if not rows["round"]:
                                break
                            writer.append(rows)
                            written = rows["round"][-1]
                        elapsed = time.perf_counter() - t_run
                        bar.update(info["round"] - first if rounds is not None else elapsed)
                        if info["stopped"] or (target is not None and info["round"] >= target) \
                                or (duration_s is not None and elapsed >= duration_s):
                            break
            except KeyboardInterrupt:
                pending = "interrupted"
                ray.get(coord.stop.remote(admin=admin))
            finally:
                writer.close()
                os.replace(in_progress, parquet / f"part-{part:05d}.parquet")
            wall = time.perf_counter() - t_run
            ray.get(coord.close.remote(admin=admin))  # final snapshot; the directory is released
            status = ray.get(coord.status.remote())
        finally:
            startup.restore(raise_pending=False)
            if not keep:
                for h in ([coord] if coord is not None else []) + list(handles or []):
                    ray.kill(h, no_restart=True)
            if started:
                ray.shutdown()
    finally:
        for lock in reversed(locks):
            lock.release(keep_owner=keep)
    df = pq.read_table(parquet).to_pandas()
    summary = summarize(read_rounds(parquet), status, wall=wall, setup=t_ready - t_start,
                        first_round=first)
    summary.update(agents=agents, shards=shards, fairness=str(fairness), oracle=oracle,
                   where=where, interrupted=pending is not None,
                   parts=len(list(parquet.glob("part-*.parquet"))),
                   superseded=len(df) - summary["rounds"])
    table = format_summary(summary, parquet, ckpt)
    png = None
    if plot and summary["rounds"]:
        png = out / "run.png"
        plot_run(parquet, png, title=f"{agents:,} agents in {shards} shards, fairness "
                 f"{fairness}")
        table += f"\nplot: {png}"
    print(table, file=stream, flush=True)
    return JobResult(summary, parquet, png, ckpt, table)


# --------------------------------------------------------------------------- summary
def summarize(df, status: dict, *, wall: float, setup: float, first_round: int = 0) -> dict:
    """Whole-run numbers from the rounds table (pandas: every part of the run, see
    :func:`read_rounds`) and the coordinator's status; the speed is this part's (the rounds
    after ``first_round``, played in ``wall`` seconds)."""
    n = len(df)
    n_part = int((df["round"] > first_round).sum()) if n else 0
    last = df.ffill().iloc[-1] if n else None
    util = [c for c in df.columns if c.startswith("utilization_")]
    oracle_total = float(df["oracle_reward"].sum()) if n else float("nan")
    expected_total = float(df["expected_reward"].sum()) if n else float("nan")
    out = {
        "rounds": n, "wall_s": wall, "setup_s": setup, "first_round": first_round,
        "rounds_this_part": n_part,
        "rounds_per_s": n_part / wall if wall > 0 else float("nan"),
        "reward": float(df["reward"].sum()) if n else 0.0,
        "expected_reward": expected_total, "oracle_reward": oracle_total,
        "reward_vs_oracle": expected_total / oracle_total if oracle_total > 0 else float("nan"),
        "cum_regret": float(df["regret"].sum()) if n else float("nan"),
        "utilization": [float(df[c].mean()) for c in util],
        "phases_ms": {phase_label(p): float(df[p].median() * 1e3) if n else float("nan")
                      for p in PHASES},
        "round_ms": float(df["round_s"].median() * 1e3) if n else float("nan"),
        "checkpoint_ms": float(df.loc[df["checkpoint_s"] > 0, "checkpoint_s"].median() * 1e3)
        if n and (df["checkpoint_s"] > 0).any() else float("nan"),
        "missing_rounds": int((df["n_missing"] > 0).sum()) if n else 0,
        "counters": status["counters"],
    }
    for key in ("gini_reward", "jain_reward", "gini_service", "jain_service"):
        out[key] = float(last[key]) if last is not None else float("nan")
    return out


def format_summary(s: dict, parquet: Path, ckpt: Path) -> str:
    c = s["counters"]
    rejected = {k[9:]: v for k, v in c.items() if k.startswith("rejected_")}
    ph = s["phases_ms"]
    lines = [
        f"librex-alloc run: {s['agents']:,} agents in {s['shards']} shards, fairness "
        f"{s['fairness']}, oracle '{s['oracle']}' on {s['where']}"
        + (" (interrupted)" if s["interrupted"] else ""),
        "",
        _rounds_line(s),
        f"{'round (ms)':<13}median {s['round_ms']:.1f}: submit {ph['submit']:.1f} | solve "
        f"{ph['solve']:.1f} | commit {ph['commit']:.1f} | push {ph['push']:.1f} | report "
        f"{ph['report']:.1f} | metrics {ph['metrics']:.1f}; snapshot {s['checkpoint_ms']:.0f} "
        f"ms each",
        f"{'reward':<13}realized {s['reward']:,.0f}; expected {s['expected_reward']:,.0f} = "
        f"{s['reward_vs_oracle']:.1%} of the utilitarian oracle on true means "
        f"({s['oracle_reward']:,.0f}), regret {s['cum_regret']:,.0f}",
        f"{'fairness':<13}Gini {s['gini_reward']:.3f} / Jain {s['jain_reward']:.3f} on "
        f"cumulative reward; Jain {s['jain_service']:.3f} on rounds served",
        f"{'utilization':<13}" + " / ".join(f"{u:.3f}" for u in s["utilization"])
        + " of the per-round budget per resource",
        f"{'outcomes':<13}{c['outcomes_applied']:,} applied (each once); "
        f"{c['duplicate_reports']} retransmissions recognized; rejected "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rejected.items()),
        f"{'faults':<13}{c['restarts']} coordinator restarts; {s['missing_rounds']} rounds "
        f"closed without a submitter"
        + (f"; {c['lost_records']} journal records lost (accepted with --accept-loss)"
           if c.get("lost_records") else ""),
        f"{'files':<13}{parquet} ({s['rounds']:,} rows); checkpoint {ckpt}",
    ]
    return "\n".join(lines)


def _rounds_line(s: dict) -> str:
    speed = (f"{s['rounds_this_part']:,} in {s['wall_s']:.1f} s = {s['rounds_per_s']:.1f} "
             f"rounds/s end to end (start-up {s['setup_s']:.1f} s)")
    if s.get("parts", 1) <= 1 and not s.get("first_round"):
        return f"{'rounds':<13}{speed}"
    line = (f"{'rounds':<13}{s['rounds']:,} in {s.get('parts', 1)} parts (the whole run: every "
            f"number below); this part resumed after round {s['first_round']}: {speed}")
    if s.get("superseded"):
        line += (f"; {s['superseded']} rows of a history lost with --accept-loss are "
                 f"superseded by this part's")
    return line


def plot_run(parquet: Path, png: Path, title: str = "") -> None:
    """Four panels: reward per round, cumulative regret, fairness, phase times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = read_rounds(parquet)
    w = max(1, len(df) // 100)
    fig, ax = plt.subplots(2, 2, figsize=(13, 7.5))
    r = df["round"]
    ax[0, 0].plot(r, df["reward"].rolling(w, min_periods=1).mean(), label="realized")
    ax[0, 0].plot(r, df["expected_reward"].rolling(w, min_periods=1).mean(), label="expected")
    ax[0, 0].plot(r, df["oracle_reward"], "--", label="utilitarian oracle")
    ax[0, 0].set(title=f"reward per round (rolling mean of {w})", xlabel="round")
    ax[0, 1].plot(r, df["regret"].cumsum())
    ax[0, 1].set(title="cumulative regret vs the utilitarian oracle", xlabel="round")
    fair = df[["round", "jain_reward", "gini_reward", "jain_service"]].dropna()
    for col in ("jain_reward", "gini_reward", "jain_service"):
        ax[1, 0].plot(fair["round"], fair[col], label=col)
    ax[1, 0].set(title="fairness of cumulative utilities", xlabel="round", ylim=(0, 1.02))
    phases = [p for p in PHASES if p != "checkpoint_s"]
    smooth = [df[p].rolling(w, min_periods=1).median() * 1e3 for p in phases]
    ax[1, 1].stackplot(r, np.vstack(smooth), labels=[phase_label(p) for p in phases])
    top = float(np.nanpercentile(np.sum(smooth, axis=0), 95)) if len(df) else 1.0
    ax[1, 1].set(title=f"round phases, ms (rolling median of {w})", xlabel="round",
                 ylim=(0, 1.5 * top if top > 0 else 1.0))
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
