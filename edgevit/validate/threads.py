"""One thread count for every runtime, so a benchmark compares kernels, not thread pools.

Each runtime picks its own default otherwise: torch uses every core, onnxruntime one thread per physical core,
ExecuTorch's pthreadpool the performance cores it detects. A result that records ``threads`` is only comparable
with another at the same count, so the host harness sets the same ``n`` on all of them.

It lives in ``validate`` (below ``bench``) because the runners in ``runtimes.py`` apply it when they load.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from edgevit.base.errors import UsageError

# Batch-1 ViT inference gains little beyond 8 threads and its run-to-run variance grows; phones have 4-8 cores.
MAX_DEFAULT_THREADS = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The default for every runtime: the CPUs this process may use, at most MAX_DEFAULT_THREADS."""
    return min(available_cpus(), MAX_DEFAULT_THREADS)


def check_threads(threads: object) -> int:
    """``threads`` as a positive int, or the default for None; UsageError otherwise."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"threads must be a positive integer (or None for the default, {default_threads()} here), "
                         f"got {threads!r}")
    return threads


def oversubscription(threads: int) -> str | None:
    """What to tell the user when ``threads`` exceeds the CPUs this process may use (the runtimes' threads then
    take turns on fewer cores: slower, noisier, and not what the count says), else None."""
    cpus = available_cpus()
    if threads <= cpus:
        return None
    return (f"--threads {threads} is above the {cpus} CPU(s) this process may use: the runtimes' {threads} threads "
            f"share {cpus} core(s), so these times are not {threads}-core times and vary more; the physical peak "
            f"counts {cpus} core(s)")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op pool at ``n`` threads for the block, restored after (eager forms and the GEMM peak)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_executorch_threads(n: int) -> None:
    """Resize ExecuTorch's process-wide pthreadpool; call before a method loads (XNNPACK takes the pool at init)."""
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, _unsafe_reset_threadpool

    from edgevit.base.native_output import native_stderr_to_log

    with native_stderr_to_log():  # cpuinfo's lines on the pool's creation and "Resetting threadpool" go to the log
        if _threadpool_get_thread_count() != n:
            _unsafe_reset_threadpool(n)


def reset_executorch_threads(n: int) -> None:
    """A fresh ExecuTorch pthreadpool of ``n`` threads, whatever its size was: the fair comparison starts each
    form's methods on a pool no other form's work has touched. Only while no loaded method holds the old pool
    (XNNPACK keeps the pointer it took at init): the caller loads its methods after this."""
    import gc

    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    from edgevit.base.native_output import native_stderr_to_log

    gc.collect()  # methods of earlier, dropped runners release the pool before it is replaced
    with native_stderr_to_log():
        _unsafe_reset_threadpool(n)


def executorch_threads() -> int:
    """The thread count of ExecuTorch's pool now (what a loaded method runs with)."""
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    from edgevit.base.native_output import native_stderr_to_log

    with native_stderr_to_log():
        return int(_threadpool_get_thread_count())


def onnxruntime_options(n: int, options=None, *, spinning: bool = True):
    """SessionOptions with ``n`` intra-op threads and one inter-op thread (ViT graphs are one chain of nodes).

    ``spinning=False`` sets ``session.intra_op.allow_spinning`` to "0": onnxruntime's workers then sleep instead of
    spin-waiting between parallel sections, which a session that stays open while another runtime in the same
    process is timed needs (its spinning workers otherwise take that runtime's cores)."""
    import onnxruntime as ort

    options = options or ort.SessionOptions()
    options.intra_op_num_threads = n
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
