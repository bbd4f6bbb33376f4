"""edgevit's MIL reference interpreter: runs a saved CoreML ML program on any CPU, op by op.

``predict(model, inputs, *, precision="auto")`` mirrors ``MLModel.predict``. It is an independent executor of
the serialised program written for parity checks on Linux, reported as runtime ``mil-reference`` and never
as the CoreML runtime. See ``edgevit.mil.interpreter`` for what its fp16 rounding does and does not model.
"""

from edgevit.mil.kernels import KERNELS, MilInterpreterError, UnsupportedOpError
from edgevit.mil.load import LoadedProgram, load_program
from edgevit.mil.predict import RUNTIME, MilModel, predict

__all__ = ["KERNELS", "RUNTIME", "LoadedProgram", "MilInterpreterError", "MilModel", "UnsupportedOpError",
           "load_program", "predict"]
