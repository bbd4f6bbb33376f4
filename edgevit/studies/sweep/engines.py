"""Where sweep tasks run: Ray (a local cluster by default, or an existing one) or this process, serially.

Both engines take a :class:`Job` (a task function named ``"module:function"``, its keyword arguments and the
resources it needs) and report an :class:`Outcome` per finished job; :func:`run_jobs` adds the failure policy
on top (a job that raises or whose worker dies is retried up to ``retries`` times, then recorded with every
attempt's reason; nothing stops the others).

Resources are Ray's: ``CPU`` and ``memory`` (bytes) for conversions, a custom resource for timings:
``{"bench_host": 1}`` (each node that may time declares one, so no two timings share a machine) or a device
harness's, ``{"iphone15": 1}``, declared by the node a phone is attached to. A job whose resources no node has
waits ``unschedulable_after`` seconds (a node may join) and is then reported unschedulable and cancelled.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from edgevit.base.errors import EdgevitError

LOCAL_BENCH_RESOURCES = {"bench_host": 1}


class EngineError(EdgevitError):
    """The engine cannot start: Ray missing where it was asked for, or a cluster address that does not answer."""


@dataclass
class Job:
    id: str
    function: str  # "module:function", imported where the job runs
    kwargs: dict
    resources: dict[str, float] = field(default_factory=dict)  # CPU, memory (bytes), custom resources
    fresh_process: bool = False  # Ray: a worker process of its own, ended after the job (memory never accumulates)
    attempts: list[str] = field(default_factory=list)  # why each earlier attempt failed
    submitted: float = 0.0


@dataclass
class Outcome:
    job: Job
    ok: bool
    value: Any = None
    reason: str = ""
    kind: str = "ok"  # ok | raised | killed | unschedulable


def call(function: str, kwargs: dict) -> Any:
    """Run ``module:function(**kwargs)``: what a worker executes."""
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def call_in_fresh_process(function: str, kwargs: dict) -> Any:
    """``call`` for jobs that get a worker of their own (Ray's max_calls=1 is set on this function)."""
    return call(function, kwargs)


def _reason(exc: BaseException) -> str:
    """One line: the exception's type and message (EdgevitError messages are already written for users)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 800 else text[:797] + "..."


def feasible(request: dict[str, float], nodes: Iterable[dict[str, float]]) -> bool:
    """Some node has every resource the request needs, in the amount needed."""
    return any(all(node.get(k, 0) >= v for k, v in request.items() if v) for node in nodes)


class SerialEngine:
    """This process, one job at a time: what ``edgevit sweep`` uses without Ray, and with ``--engine serial``."""

    name = "in-process"

    def __init__(self, resources: dict[str, float] | None = None):
        import psutil

        self.resources = {"CPU": float(os.cpu_count() or 1), "memory": float(psutil.virtual_memory().total),
                          **LOCAL_BENCH_RESOURCES, **(resources or {})}
        self._queue: list[Job] = []

    def describe(self) -> str:
        return "in-process (serial)"

    def largest(self, resource: str) -> float:
        return self.resources.get(resource, 0.0)

    def submit(self, job: Job) -> None:
        job.submitted = time.monotonic()
        self._queue.append(job)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def running(self) -> list[Job]:
        return self._queue[:1]

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        job = self._queue.pop(0)
        if not feasible(job.resources, [self.resources]):
            missing = {k: v for k, v in job.resources.items() if self.resources.get(k, 0) < v}
            return [Outcome(job, False, reason=f"unschedulable: this process has no {missing} (in-process engine; "
                            "run on a Ray cluster with a node that declares it)", kind="unschedulable")]
        try:
            return [Outcome(job, True, call(job.function, job.kwargs))]
        except Exception as exc:  # noqa: BLE001 - a failed task is recorded, never stops the sweep
            return [Outcome(job, False, reason=_reason(exc), kind="raised")]

    def shutdown(self) -> None:
        self._queue.clear()


class RayEngine:
    """Ray tasks: ``ray.init()`` starts a local cluster (this machine, a ``bench_host`` resource) unless
    ``address`` (or ``RAY_ADDRESS``) names an existing one. Ray's own retries are off: :func:`run_jobs` retries,
    so every attempt's reason is recorded."""

    name = "ray"

    def __init__(self, address: str | None = None, *, unschedulable_after: float = 120.0,
                 num_cpus: int | None = None, resources: dict[str, float] | None = None):
        try:
            import ray
        except ImportError:
            raise EngineError("Ray is not installed: `pip install 'edgevit[sweep]'` (or ray==2.60.0), or run the "
                              "sweep in this process with --engine serial") from None
        self.ray = ray
        self.unschedulable_after = unschedulable_after
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.address = address
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": True, "logging_level": "ERROR"}
            if address is None:
                kwargs.update(num_cpus=num_cpus, resources={**LOCAL_BENCH_RESOURCES, **(resources or {})})
                # the workers import the same edgevit as this process
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(_import_roots()),
                                                      "TQDM_DISABLE": "1"}}
            if address is not None:
                check_reachable(address)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise EngineError(f"cannot start or reach {where}: {exc}. Check --address / RAY_ADDRESS (e.g. "
                                  "ray://head:10001, or auto for a cluster started with `ray start` here), or "
                                  "leave both unset for a local cluster.") from None
            self._started = True
        self._remote = ray.remote(max_retries=0)(call)
        self._remote_fresh = ray.remote(max_retries=0, max_calls=1)(call_in_fresh_process)
        self._refs: dict[Any, Job] = {}

    def describe(self) -> str:
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
        where = self.address or "local"
        return f"ray ({where}: {len(nodes)} node(s), {cpus:g} CPUs)"

    def largest(self, resource: str) -> float:
        """The most of ``resource`` any alive node has (0 if none)."""
        return max((n.get(resource, 0.0) for n in self._node_resources()), default=0.0)

    def _node_resources(self) -> list[dict[str, float]]:
        return [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]

    def submit(self, job: Job) -> None:
        job.submitted = time.monotonic()
        res = dict(job.resources)
        options: dict[str, Any] = {"num_cpus": res.pop("CPU", 0)}
        if "memory" in res:
            options["memory"] = int(res.pop("memory"))
        if res:
            options["resources"] = res
        remote = self._remote_fresh if job.fresh_process else self._remote
        ref = remote.options(**options).remote(job.function, job.kwargs)
        self._refs[ref] = job

    @property
    def pending(self) -> int:
        return len(self._refs)

    def running(self) -> list[Job]:
        return list(self._refs.values())

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._refs:
            return []
        ray = self.ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        outcomes = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                outcomes.append(Outcome(job, True, ray.get(ref)))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                outcomes.append(Outcome(job, False, reason=_reason(cause), kind="raised"))
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.OutOfMemoryError, ray.exceptions.LocalRayletDiedError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcomes.append(Outcome(job, False, reason=f"worker died mid-task ({type(exc).__name__}"
                                        f"{': ' + first[:300] if first else ''})", kind="killed"))
            except ray.exceptions.TaskCancelledError:
                outcomes.append(Outcome(job, False, reason="cancelled", kind="killed"))
            except ray.exceptions.RayError as exc:
                outcomes.append(Outcome(job, False, reason=_reason(exc), kind="raised"))
        outcomes += self._unschedulable()
        return outcomes

    def _unschedulable(self) -> list[Outcome]:
        """Jobs no alive node can ever run, once they have waited ``unschedulable_after`` seconds."""
        now = time.monotonic()
        waiting = [(ref, job) for ref, job in self._refs.items() if now - job.submitted >= self.unschedulable_after]
        if not waiting:
            return []
        nodes = self._node_resources()
        outcomes = []
        for ref, job in waiting:
            if feasible(job.resources, nodes):
                continue
            self.ray.cancel(ref, force=False)
            del self._refs[ref]
            missing = {k: v for k, v in job.resources.items() if not any(n.get(k, 0) >= v for n in nodes)}
            outcomes.append(Outcome(job, False, kind="unschedulable", reason=(
                f"unschedulable: no node of the cluster has {missing} (waited {self.unschedulable_after:g} s); "
                "add a node that declares it (ray start --resources '{...}') or change the plan")))
        return outcomes

    def shutdown(self) -> None:
        for ref in list(self._refs):
            self.ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started:
            self.ray.shutdown()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A host:port (or ray://host:port) address must accept a TCP connection within ``timeout_s``: ray.init
    itself retries an unreachable address for minutes."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # "auto" (a cluster started here) and other forms: ray.init reports them itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise EngineError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (no answer within "
                          f"{timeout_s:g} s). Check --address / RAY_ADDRESS (the head's address, e.g. "
                          "ray://head:10001 or head:6379), or leave both unset for a local cluster.") from None


def _import_roots() -> list[str]:
    """The folders edgevit and converters are imported from, then this process's PYTHONPATH."""
    import converters
    import edgevit

    roots = [os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))) for m in (edgevit, converters)]
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(roots + extra))


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run_jobs(engine, jobs: Iterable[Job], *, retries: int, on_outcome: Callable[[Outcome, bool], None],
             poll_s: float = 0.5, more: Callable[[], list[Job]] | None = None) -> None:
    """Run every job to an end: done, or failed after ``retries`` retries, or unschedulable.

    ``on_outcome(outcome, final)`` sees every outcome; ``final`` is False for a failed attempt that is retried.
    ``more()`` is asked for new jobs whenever the engine is idle or an outcome arrived (the sweep's timing phase).
    Unschedulable jobs are not retried (nothing would change).
    """
    for job in jobs:
        engine.submit(job)
    while True:
        if engine.pending == 0:
            new = more() if more is not None else []
            if not new:
                return
            for job in new:
                engine.submit(job)
        for outcome in engine.wait(poll_s):
            job = outcome.job
            retry = not outcome.ok and outcome.kind != "unschedulable" and len(job.attempts) < retries
            if not outcome.ok:
                job.attempts.append(outcome.reason)
            on_outcome(outcome, not retry)
            if retry:
                engine.submit(job)
