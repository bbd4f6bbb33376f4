"""Apple's MIL op tests, from the installed coremltools wheel, with their predictions made by edgevit's MIL
reference interpreter (``edgevit.mil``) instead of the CoreML runtime.

Each of Apple's tests builds a MIL program, converts it with ``ct.convert(convert_to="mlprogram")`` and
compares ``MLModel.predict`` against outputs Apple computed independently (numpy, torch, scipy), with Apple's
tolerances. The CoreML runtime exists only on macOS, so on Linux those tests convert and then skip the
prediction (``_IS_MACOS`` is False in ``coremltools.converters.mil.testing_utils``). This harness makes ONE
substitution, and only while one of Apple's tests runs:

* ``_IS_MACOS`` is True in Apple's test helper modules that check it, and their macOS-version gates
  (``compare_backend``'s "macOS 12+", import-time ``skipif(_macos_version() < ...)``) see macOS
  ``PRETEND_MACOS``, so every expected-output comparison Apple wrote is executed;
* ``MLModel.predict`` runs the converted ML program through ``edgevit.mil.predict``: edgevit's interpreter,
  NOT the CoreML runtime. The interpreter is not mocked; Apple's programs, conversion, expected values,
  assertions and tolerances are Apple's code, unchanged.

(Two speed-only tweaks: ``ct.convert``'s trailing ``gc.collect()`` is skipped — with torch loaded it costs
~0.6 s per conversion — and torch runs these tiny ops on one thread.)

Outcomes:

* an op the interpreter has no kernel for: SKIPPED, "MIL reference interpreter has no <op>";
* a neural-network model (not an ML program), a stateful model (MLState), a compiled model or a
  multifunction model: SKIPPED, saying which (they need the CoreML runtime or are not ML programs);
* a test module that cannot be imported here (e.g. it needs TensorFlow): SKIPPED with the import error;
* Apple's own skips and xfails stay as Apple wrote them;
* a known, explained interpreter gap: xfail(strict) from ``apple_suite.KNOWN_XFAIL``;
* a case that checks no prediction and fails here for an unrelated reason (a wall-clock budget): skipped,
  from ``apple_suite.SKIP``.

Selection (see ``apple_suite.py``): ``make test`` runs the default files' fast cases; ``pytest -m ""
tests/mil_optests`` every file; ``EDGEVIT_MIL_OPTESTS=full`` adds every later opset and the fp32 variants.
The terminal summary says how many passes went through the interpreter and how many never reached a
prediction (Apple's type-inference / value-inference checks, which run the same on every platform).
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import importlib
import os
import sys
import time
import types
import zlib
from pathlib import Path

import pytest

FULL = os.environ.get("EDGEVIT_MIL_OPTESTS", "").lower() == "full"
# Apple's testing_reqs reads these when first imported (it builds the backend lists at import time).
os.environ.setdefault("PYMIL_TEST_TARGETS", "mlprogram")  # neuralnetwork models are not ML programs
if FULL:
    os.environ.setdefault("RUN_BACKWARD_COMPATIBILITY", "1")
    os.environ.setdefault("INCLUDE_MIL_FP32_UNIT_TESTS", "1")

sys.path.insert(0, str(Path(__file__).parent))
import apple_suite  # noqa: E402

sys.path.pop(0)

ANCHOR = Path(apple_suite.__file__).resolve()
PACKAGE = "coremltools.converters.mil.mil.ops.tests"
# The macOS Apple's gates see: new enough for every opset up to iOS18 and the runtime fixes their skipifs wait
# for ("Bug fixed in macOS 15.2"); they gate Apple's runtime, which the interpreter stands in for.
PRETEND_MACOS = (15, 5)

STATEFUL = "stateful model (MLState): needs the CoreML runtime, which the MIL reference interpreter does not model"
COMPILED = "compiled model (.mlmodelc): needs the CoreML runtime"
MULTIFUNCTION = "multifunction model: the MIL reference interpreter runs a program's main function only"


def apple_tests_dir() -> Path:
    import coremltools

    return Path(coremltools.__file__).parent / "converters" / "mil" / "mil" / "ops" / "tests"


def apple_files() -> list[str]:
    root = apple_tests_dir()
    found = [p.relative_to(root).as_posix() for p in root.glob("*/test_*.py")]
    return sorted(f for f in found if f.split("/")[0].startswith(("iOS", "coreml_dialect")))


def _wants_slow(config) -> bool:
    """Whether the -m expression can select a test marked slow (then the slow files are worth importing)."""
    expr = config.getoption("markexpr", "") or ""
    if not expr:
        return True
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(expr).evaluate(lambda name, **_: name == "slow"))
    except Exception:  # noqa: BLE001 - an expression we cannot evaluate: collect everything, let -m decide
        return True


def pytest_collect_file(file_path, parent):
    if Path(file_path).resolve() == ANCHOR:
        return AppleSuite.from_parent(parent, path=Path(file_path))
    return None


class AppleSuite(pytest.File):
    """The anchor file: one child per Apple test module."""

    def collect(self):
        root = apple_tests_dir()
        if not root.is_dir():
            pytest.skip(f"coremltools ships no MIL op tests at {root}", allow_module_level=True)
        slow = _wants_slow(self.config)
        for rel in apple_files():
            if rel in apple_suite.DEFAULT_FILES or slow:
                yield AppleModule.from_parent(self, path=root / rel, name=rel, nodeid=self.id.child(rel))


class AppleModule(pytest.Module):
    """One of Apple's test modules, imported by its package name (it imports its siblings that way)."""

    def _getobj(self):
        import coremltools.models.utils as ct_utils

        name = f"{PACKAGE}.{self.name[:-3].replace('/', '.')}"
        try:
            with pytest.MonkeyPatch.context() as mp:  # their import-time skipif(_macos_version() < ...) gates
                mp.setattr(ct_utils, "_macos_version", lambda: PRETEND_MACOS)
                return importlib.import_module(name)
        except ImportError as exc:  # e.g. TensorFlow-only helpers
            pytest.skip(f"Apple's {self.name} cannot be imported here: {type(exc).__name__}: {exc}",
                        allow_module_level=True)


def _apple_key(item) -> tuple[str, str, str] | None:
    """(file, test function name, "<file>::<Class>::<test>[params]") of one of Apple's tests, else None."""
    module = item.getparent(AppleModule)
    if module is None:
        return None
    rest = item.nodeid.split(f"{module.name}::", 1)[1]
    return module.name, item.originalname or item.name, f"{module.name}::{rest}"


def _in_default(rel: str, func: str, full: str) -> bool:
    if rel not in apple_suite.DEFAULT_FILES:
        return False
    tests = apple_suite.DEFAULT_TESTS.get(rel)
    if tests is not None:
        return func in tests
    return "stress" not in func or zlib.crc32(full.encode()) % apple_suite.STRESS_SAMPLE == 0


# ----------------------------------------------------------------------------------------------------------
# The substitution: Apple's predictions go to edgevit's MIL reference interpreter.


class _Counter:
    predictions = 0


def _interpreter_predict(self, data, state=None):
    """``MLModel.predict`` for Apple's tests: runs the ML program in edgevit's MIL reference interpreter."""
    import edgevit.mil as mil

    if state is not None:
        pytest.skip(STATEFUL)
    spec = self.get_spec()
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        pytest.skip(f"{kind} model: not an ML program (the MIL reference interpreter runs ML programs)")
    if len(spec.description.functions) > 0:
        pytest.skip(MULTIFUNCTION)
    try:
        result = mil.predict(self, data)
    except mil.UnsupportedOpError as exc:
        pytest.skip(f"MIL reference interpreter has no {exc.op_type}")
    _Counter.predictions += 1
    return result


def _needs_runtime(reason: str):
    def refuse(*_args, **_kwargs):
        pytest.skip(reason)

    return refuse


class _UtilsWithMacOS(types.ModuleType):
    """``coremltools.models.utils`` as Apple's test helpers see it: every name real, but a macOS version new
    enough that compare_backend predicts. Only testing_utils' reference is replaced, nothing global."""

    def __init__(self, real):
        super().__init__(real.__name__)
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def _macos_version():
        return PRETEND_MACOS


@contextlib.contextmanager
def interpreter_backend():
    import coremltools as ct
    import coremltools.converters._converters_entry as entry
    import coremltools.converters.mil.testing_utils as testing_utils
    import torch

    mp = pytest.MonkeyPatch()
    threads = torch.get_num_threads()
    try:
        for name, module in list(sys.modules.items()):
            if module is not None and (name == testing_utils.__name__ or name.startswith(PACKAGE)) \
                    and hasattr(module, "_IS_MACOS"):
                mp.setattr(module, "_IS_MACOS", True)
        mp.setattr(testing_utils, "coremltoolsutils", _UtilsWithMacOS(testing_utils.coremltoolsutils))
        mp.setattr(ct.models.MLModel, "predict", _interpreter_predict)
        mp.setattr(ct.models.MLModel, "make_state", _needs_runtime(STATEFUL))
        mp.setattr(ct.models.CompiledMLModel, "__init__", _needs_runtime(COMPILED))
        mp.setattr(entry, "gc", types.SimpleNamespace(collect=lambda *_a, **_k: 0))  # speed only
        torch.set_num_threads(1)
        yield
    finally:
        torch.set_num_threads(threads)
        mp.undo()


# ----------------------------------------------------------------------------------------------------------
# Marking, running and reporting (a plugin registered globally: Apple's items live outside tests/, so the
# path-scoped hooks of this conftest would not see them).


class ApplePlugin:
    def __init__(self):
        self.started = None
        self.outcomes: collections.Counter = collections.Counter()
        self.skips: collections.Counter = collections.Counter()
        self.missing_ops: collections.Counter = collections.Counter()
        self.unpredicted: set[str] = set()
        self.failed: list[str] = []

    @pytest.hookimpl(tryfirst=True)  # before -m deselects by the slow marker
    def pytest_collection_modifyitems(self, items):
        for item in items:
            key = _apple_key(item)
            if key is None:
                continue
            rel, func, full = key
            if not _in_default(rel, func, full):
                item.add_marker(pytest.mark.slow)
            for pattern, reason in apple_suite.SKIP.items():
                if fnmatch.fnmatchcase(full, pattern):
                    item.add_marker(pytest.mark.skip(reason=reason))
            for pattern, reason in apple_suite.KNOWN_XFAIL.items():
                if fnmatch.fnmatchcase(full, pattern):
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
                    break

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        if _apple_key(item) is None:
            return (yield)
        if self.started is None:
            self.started = time.monotonic()
        with interpreter_backend():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if _apple_key(item) is None:
            return (yield)
        _Counter.predictions = 0
        with interpreter_backend():
            try:
                return (yield)
            finally:
                if _Counter.predictions == 0:
                    self.unpredicted.add(item.nodeid)

    def pytest_runtest_logreport(self, report):
        if f"{ANCHOR.name}::" not in report.nodeid:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if hasattr(report, "wasxfail"):
                outcome = "xfailed" if report.skipped else "xpassed"
            else:
                outcome = report.outcome
            self.outcomes[outcome] += 1
            if outcome == "skipped":
                reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
                reason = reason.removeprefix("Skipped: ")
                if reason.startswith("MIL reference interpreter has no "):
                    self.missing_ops[reason.rsplit(" ", 1)[-1]] += 1
                    reason = "MIL reference interpreter has no <op>"
                self.skips[reason[:110]] += 1
            elif outcome == "passed" and report.nodeid in self.unpredicted:
                self.outcomes["passed without a prediction"] += 1
            elif outcome == "failed":
                self.failed.append(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.outcomes:
            return
        write = terminalreporter.write_line
        elapsed = time.monotonic() - self.started if self.started else 0.0
        terminalreporter.section("Apple's MIL op tests on edgevit's MIL reference interpreter")
        no_pred = self.outcomes.pop("passed without a prediction", 0)
        write(", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) + f" in {elapsed:.0f}s"
              f"{' (EDGEVIT_MIL_OPTESTS=full)' if FULL else ''}")
        write(f"  of the passes, {self.outcomes['passed'] - no_pred} ran predictions through the interpreter, "
              f"{no_pred} never reached a prediction (Apple's frontend checks)")
        for reason, n in self.skips.most_common():
            write(f"  skipped {n:5d}: {reason}")
        if self.missing_ops:
            write("  ops without a kernel: " + ", ".join(f"{op} ({n})" for op, n in self.missing_ops.most_common()))


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("edgevit-mil-optests"):
        config.pluginmanager.register(ApplePlugin(), "edgevit-mil-optests")
