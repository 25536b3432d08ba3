"""The coordinator as a named Ray actor (a thin wrapper around :class:`Coordinator`).

Options: ``max_restarts=-1`` (Ray restarts it by running its constructor again, which restores
the state from the checkpoint directory), ``max_task_retries=-1`` (a call that was running when
it died is retried on the restarted actor; every state-changing call is idempotent), and two
concurrency groups: the round loop runs in its own one-thread group ``loop`` while
registrations and reports are served by the default group (``max_concurrency`` threads).
Submitters are reached by the handle they register with, else by their actor names
(:class:`RayTransport`), so a restarted coordinator finds them again.

Roles: anyone who can reach the actor may call the protocol methods (``register``,
``unregister``, ``leave``, ``report``; each proves a submitter's own credential) and the
open queries ``status``, ``config``, ``pid``, ``node_id`` and ``memory_mib`` (counters and
identities, nothing secret). Every other call needs the job's admin credential as keyword
``admin`` (:func:`admin_credential` reads it from the checkpoint folder); a call without it
raises ``CredentialError`` and is counted in ``rejected_control``.
"""

from __future__ import annotations

import json
import os
import threading
import traceback

import ray
from ray.exceptions import ActorDiedError

# Light imports only: a process that looks this actor up (ray.get_actor) imports this module.
from coordinator.credentials import load_admin_credential

COORDINATOR_OPTIONS = {"max_restarts": -1, "max_task_retries": -1, "max_concurrency": 8,
                       "concurrency_groups": {"loop": 1}, "num_cpus": 0}
DEFAULT_NAME = "librex-alloc-coordinator"
#: In the checkpoint folder while a detached job's loop should run (its target round): a
#: restarted coordinator reads it and plays on by itself, no driver needed.
DRIVE_FILE = "detached-run.json"


class _Failed:
    """A call that could not be sent (e.g. no actor of that name)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class RayTransport:
    """Exchanges with submitter actors by name (``ray.get_actor``), one call each."""

    def __init__(self, namespace: str | None = None):
        self.namespace = namespace
        self._handles: dict[str, object] = {}
        self._names: dict = {}  # in-flight ref -> submitter name

    def _handle(self, name: str):
        h = self._handles.get(name)
        if h is None:
            h = self._handles[name] = ray.get_actor(name, namespace=self.namespace)
        return h

    def bind(self, name: str, handle) -> None:
        """Use ``handle`` for ``name`` (given at registration; names are the fallback)."""
        self._handles[name] = handle

    def same(self, name: str, handle) -> bool:
        """Is ``handle`` the actor registered (or named) ``name``? (Same actor id: a
        restarted actor keeps its handle.)"""
        try:
            return handle == self._handle(name)
        except ValueError:
            return False

    def send(self, name: str, msg) -> object:
        try:
            ref = self._handle(name).exchange.remote(msg)
        except ValueError as exc:  # no such actor (yet, or any more)
            return _Failed(exc)
        self._names[ref] = name
        return ref

    def wait(self, tickets: list, timeout: float) -> list[tuple[object, object]]:
        out = [(t, t.error) for t in tickets if isinstance(t, _Failed)]
        refs = [t for t in tickets if not isinstance(t, _Failed)]
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout,
                                   fetch_local=True)
            for ref in ready:
                name = self._names.pop(ref, None)
                try:
                    out.append((ref, ray.get(ref)))
                except Exception as exc:  # the submitter died or raised
                    if isinstance(exc, ActorDiedError):
                        # dead for good: an actor created again under this name is another
                        # actor. (A restarting one keeps its handle: a fresh handle taken
                        # during the restart may never deliver its calls.)
                        self._handles.pop(name, None)
                    out.append((ref, exc))
        return out


    def forget(self, ticket) -> None:
        """Stop tracking a call the coordinator gave up on."""
        self._names.pop(ticket, None)


def admin_credential(checkpoint_dir) -> str:
    """The admin credential of the job whose coordinator checkpoints into
    ``checkpoint_dir`` (the folder must be readable here: the driver's machine, or a path
    every node reaches)."""
    return load_admin_credential(os.fspath(checkpoint_dir))


class CoordinatorServer:
    """The actor body: every method delegates to :class:`Coordinator`; control calls and
    state reads check the admin credential first (keyword ``admin``)."""

    def __init__(self, config, namespace: str | None = None):
        from coordinator.core import Coordinator

        ns = namespace or ray.get_runtime_context().namespace
        self.core = Coordinator(config, RayTransport(ns))
        self._loop_thread: threading.Thread | None = None
        self._telemetry = None
        try:  # metrics for the dashboard / Prometheus (coordinator.telemetry)
            from coordinator.telemetry import Telemetry, enabled

            if not enabled():
                raise LookupError

            name = ray.get_runtime_context().get_actor_name() or DEFAULT_NAME
            self._telemetry = Telemetry(self.core, name.removesuffix("-coordinator"))
            self._telemetry.start()
        except LookupError:  # switched off (LIBREX_ALLOC_METRICS=0)
            self._telemetry = None
        except Exception:  # pragma: no cover - metrics must never keep the job from running
            self._telemetry = None
            traceback.print_exc()
        self._drive_path = os.path.join(self.core.store.directory, DRIVE_FILE)
        try:
            with open(self._drive_path) as f:
                drive = json.load(f)
        except (OSError, ValueError):
            drive = None
        if isinstance(drive, dict):  # a detached job's coordinator restarted: play on
            self._start_thread(drive.get("until_round"))

    # detached jobs: the loop runs in the actor, driven by nobody
    def _start_thread(self, until_round) -> None:
        def loop():
            try:
                self.core.run(until_round)
            except Exception:  # pragma: no cover - logged in the actor's log
                traceback.print_exc()

        self._loop_thread = threading.Thread(target=loop, name="librex-loop", daemon=True)
        self._loop_thread.start()

    def start_loop(self, until_round=None, *, admin=None) -> int:
        """Play rounds in the actor itself until ``until_round`` (None: until stopped), also
        after a restart (the target is kept in the checkpoint folder until :meth:`close`):
        a detached job's loop. Returns the current round. Admin only; idempotent."""
        self.core.check_admin(admin)
        if until_round is not None and (isinstance(until_round, bool) or
                                        not isinstance(until_round, int)):
            raise TypeError("until_round: expected an int or None")
        tmp = f"{self._drive_path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"until_round": until_round}, f)
        os.replace(tmp, self._drive_path)
        if self._loop_thread is None or not self._loop_thread.is_alive():
            self._start_thread(until_round)
        return self.core.round

    # protocol (each call proves a submitter's own credential)
    def register(self, name, agent_ids, handle=None, token=None):
        return self.core.register(name, agent_ids, handle, token)

    def unregister(self, token):
        return self.core.unregister(token)

    def leave(self, token, agent_ids):
        return self.core.leave(token, agent_ids)

    def report(self, token, report):
        return self.core.report(token, report)

    # control (admin)
    @ray.method(concurrency_group="loop")  # one thread: memory stays flat (a pool grows)
    def run(self, until_round=None, max_seconds=None, max_rounds=None, *, admin=None):
        self.core.check_admin(admin)
        return self.core.run(until_round, max_seconds, max_rounds)

    def stop(self, *, admin=None):
        self.core.check_admin(admin)
        self.core.stop()

    def resume(self, *, admin=None):
        self.core.check_admin(admin)
        self.core.resume()

    def set_budget(self, budget, *, admin=None):
        self.core.check_admin(admin)
        self.core.set_budget(budget)

    def snapshot(self, *, admin=None):
        self.core.check_admin(admin)
        return self.core.snapshot()

    def close(self, *, admin=None):
        self.core.check_admin(admin)
        try:
            os.unlink(self._drive_path)  # a detached loop ends for good
        except FileNotFoundError:
            pass
        self.core.close()

    def check_admin(self, *, admin=None) -> None:
        """Raise ``CredentialError`` (counted) unless ``admin`` is the job's admin credential
        (submitter actors guard their own push-report method with it)."""
        self.core.check_admin(admin)

    # open queries: counters, configuration, identities
    def status(self):
        st = self.core.status()
        if self._telemetry is not None:
            try:
                self._telemetry.update(st)
            except Exception:  # pragma: no cover
                traceback.print_exc()
        return st

    def config(self):
        return self.core.config.to_dict()

    # state reads (admin)
    def metrics_since(self, after_round, limit=10_000, *, admin=None):
        self.core.check_admin(admin)
        return self.core.metrics_since(after_round, limit)

    def policy_state(self, *, admin=None):
        self.core.check_admin(admin)
        return self.core.policy_state()

    def allocated_rounds(self, agent_id, *, admin=None):
        self.core.check_admin(admin)
        return self.core.allocated_rounds(agent_id)

    def agent_stats(self, agent_ids, option=0, *, admin=None):
        self.core.check_admin(admin)
        return self.core.agent_stats(agent_ids, option)

    def pid(self):
        return os.getpid()

    def memory_mib(self) -> float:
        """Resident memory of the coordinator's process (VmRSS), MiB."""
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")  # pragma: no cover - not Linux

    def node_id(self):
        return ray.get_runtime_context().get_node_id()

    # fault injection (tests; admin)
    def inject_crash(self, point: str, *, admin=None) -> None:
        """Exit the process (as a crash would) the next time the round loop or a report
        reaches ``point``: decided, decision_committed, pushed, snapshot_written,
        report_committed. The restarted actor has no hook. Admin only."""
        self.core.check_admin(admin)

        def hook(p: str) -> None:
            if p == point:
                os._exit(1)

        self.core.crash_hook = hook


CoordinatorActor = ray.remote(**COORDINATOR_OPTIONS)(CoordinatorServer)


def get_or_create_coordinator(config, name: str = DEFAULT_NAME, *,
                              namespace: str | None = None, resources: dict | None = None,
                              detached: bool = False):
    """The coordinator actor called ``name``: found again if it exists (``get_if_exists``),
    else created with ``config`` (a :class:`~coordinator.config.CoordinatorConfig`). An
    existing one must have the same configuration."""
    opts = {"name": name, "get_if_exists": True}
    if namespace is not None:
        opts["namespace"] = namespace
    if resources:
        opts["resources"] = resources
    if detached:
        opts["lifetime"] = "detached"
    handle = CoordinatorActor.options(**opts).remote(config, namespace)
    found = ray.get(handle.config.remote())
    if found != config.to_dict():
        raise ValueError(f"a coordinator named {name!r} already runs with another "
                         f"configuration; choose another name")
    return handle
