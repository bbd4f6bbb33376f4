"""Compressed-weight MIL ops (iOS16 and iOS18 ``constexpr_*``): dequantise, unpalettise, densify.

They run once per load in CoreML; here they run like any op, from the constants the package stores.
iOS16 packs LUT indices and sparsity masks into bytes, least significant bit first; iOS18 stores sub-byte
ints (uint1..uint6, int4) that the loader gives back unpacked.
"""

from __future__ import annotations

import numpy as np

from edgevit.mil.kernels import OpArgs, kernel


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """``count`` unsigned ``nbits``-bit fields packed LSB first, one byte after another."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8).reshape(-1), bitorder="little")
    bits = bits[: count * nbits].reshape(count, nbits).astype(np.int64)
    return (bits << np.arange(nbits, dtype=np.int64)).sum(axis=1)


def along_axis(param: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A scalar or [C] parameter broadcast along ``axis`` of a rank-``rank`` tensor."""
    param = np.asarray(param)
    if param.ndim == 0:
        return param
    shape = [1] * rank
    shape[axis] = -1
    return param.reshape(shape)


@kernel("constexpr_affine_dequantize")
def constexpr_affine_dequantize(args: OpArgs) -> np.ndarray:
    """(quantized_data - zero_point) · scale, the zero point and scale per tensor or along ``axis``."""
    data = args.array("quantized_data").astype(np.float32)
    axis = args.int("axis", 0) % max(data.ndim, 1)
    zero_point = along_axis(args.array("zero_point").astype(np.float32), data.ndim, axis)
    scale = along_axis(args.array("scale").astype(np.float32), data.ndim, axis)
    return (data - zero_point) * scale


@kernel("constexpr_cast")
def constexpr_cast(args: OpArgs) -> np.ndarray:
    return args.array("source_val").astype(np.float32)


def _lut_iOS16(args: OpArgs) -> np.ndarray:
    lut = args.array("lut").reshape(-1)
    shape = args.ints("shape")
    nbits = int(np.log2(lut.size))
    return lut[unpack_bits(args.array("indices"), nbits, int(np.prod(shape)))].reshape(shape)


def lut_to_dense(indices: np.ndarray, lut: np.ndarray, vector_axis: int | None) -> np.ndarray:
    """iOS18: lut is [*groups, palettes, vector]; each index picks from its group's palette."""
    indices = np.asarray(indices).astype(np.int64)
    groups = lut.shape[: indices.ndim]
    palettes, vector = lut.shape[-2], lut.shape[-1]
    group_index = np.zeros(indices.shape, dtype=np.int64)
    stride = 1
    for axis in reversed(range(indices.ndim)):
        block = indices.shape[axis] // groups[axis]
        position = np.arange(indices.shape[axis]) // block
        shape = [1] * indices.ndim
        shape[axis] = -1
        group_index = group_index + position.reshape(shape) * stride
        stride *= groups[axis]
    flat = lut.reshape(-1, palettes, vector)[group_index, indices]  # indices.shape + (vector,)
    if vector == 1:
        return flat[..., 0]
    axis = vector_axis % indices.ndim
    moved = np.moveaxis(flat, -1, axis + 1)
    shape = list(indices.shape)
    shape[axis] *= vector
    return moved.reshape(shape)


@kernel("constexpr_lut_to_dense")
def constexpr_lut_to_dense(args: OpArgs) -> np.ndarray:
    if args.has("shape"):
        return _lut_iOS16(args)
    return lut_to_dense(args.array("indices"), args.array("lut"), args.int("vector_axis"))


@kernel("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(args: OpArgs) -> np.ndarray:
    data = args.array("nonzero_data")
    if args.has("shape"):  # iOS16: a flat byte-packed mask and an explicit shape
        shape = args.ints("shape")
        mask = unpack_bits(args.array("mask"), 1, int(np.prod(shape))).astype(bool).reshape(shape)
    else:
        mask = args.array("mask").astype(bool)
    dense = np.zeros(mask.shape, dtype=data.dtype)
    dense[mask] = data
    return dense


def shift_scale(data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """scale · (data - offset), scale/offset blocks repeated to data's shape (block = data dim / scale dim)."""
    data = np.asarray(data).astype(np.float32)
    scale = np.asarray(scale).astype(np.float32)
    offset = None if offset is None else np.asarray(offset).astype(np.float32)
    for axis in range(data.ndim):
        block = data.shape[axis] // scale.shape[axis]
        if block > 1:
            scale = np.repeat(scale, block, axis)
            offset = None if offset is None else np.repeat(offset, block, axis)
    return scale * (data - offset if offset is not None else data)


@kernel("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(args: OpArgs) -> np.ndarray:
    return shift_scale(args.array("data"), args.array("scale"), args.opt("offset"))


@kernel("constexpr_lut_to_sparse")
def constexpr_lut_to_sparse(args: OpArgs) -> tuple[np.ndarray, np.ndarray]:
    """(mask, nonzero values): the sparse indices unpalettised, the mask widened along ``vector_axis``."""
    mask = args.array("indices_mask").astype(np.int64)
    nonzero = args.array("indices_nonzero_data").astype(np.int64)
    lut = args.array("lut")
    vector_axis = args.int("vector_axis")
    values = _sparse_lut(mask, nonzero, lut, vector_axis)
    if vector_axis is not None and lut.shape[-1] > 1:
        mask = np.repeat(mask, lut.shape[-1], axis=vector_axis)
    return mask.astype(np.uint8), values


def _sparse_lut(mask: np.ndarray, nonzero: np.ndarray, lut: np.ndarray, vector_axis: int | None) -> np.ndarray:
    """Palettise the nonzero entries in their dense positions (the LUT groups are over the dense layout)."""
    dense_indices = np.zeros(mask.shape, dtype=np.int64)
    dense_indices[mask != 0] = nonzero
    dense = lut_to_dense(dense_indices, lut, vector_axis)
    wide_mask = mask if vector_axis is None or lut.shape[-1] == 1 else np.repeat(mask, lut.shape[-1], vector_axis)
    return dense[wide_mask != 0]


@kernel("constexpr_sparse_blockwise_shift_scale")
def constexpr_sparse_blockwise_shift_scale(args: OpArgs) -> tuple[np.ndarray, np.ndarray]:
    mask = args.array("data_mask").astype(np.int64)
    dense = np.zeros(mask.shape, dtype=np.float32)
    dense[mask != 0] = args.array("nonzero_data").astype(np.float32)
    values = shift_scale(dense, args.array("scale"), args.opt("offset"))
    return mask.astype(np.uint8), values[mask != 0]
