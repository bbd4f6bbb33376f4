"""MIL op kernels, one module per op group; importing this package registers them all."""

from edgevit.mil.ops import (  # noqa: F401
    activation,
    constexpr,
    control,
    conv,
    elementwise,
    image,
    linear,
    normalization,
    pool,
    quantization,
    reduction,
    tensor,
)
