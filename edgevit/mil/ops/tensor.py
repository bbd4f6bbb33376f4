"""Tensor transformation and indexing MIL ops: reshape, transpose, slicing, concat/split, gather, pad, ...

Shapes follow the op's own definition; where a result's shape is fully static the op's inferred output
shape (MIL's shape rule) is used, so ``reshape``'s 0 and -1 entries mean exactly what MIL says they mean.
"""

from __future__ import annotations

import numpy as np

from edgevit.mil.kernels import OpArgs, kernel


def _static(shape: tuple) -> bool:
    return all(isinstance(d, (int, np.integer)) for d in shape)


@kernel("reshape")
def reshape(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    target = args.out_shape()
    if not _static(target):
        shape = args.ints("shape")
        target = tuple(x.shape[i] if d == 0 and len(shape) == x.ndim else d for i, d in enumerate(shape))
    return x.reshape(target)


@kernel("reshape_like")
def reshape_like(args: OpArgs) -> np.ndarray:
    return args.array("x").reshape(args.out_shape())


@kernel("transpose")
def transpose(args: OpArgs) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(args.array("x"), args.ints("perm")))


@kernel("squeeze")
def squeeze(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axes = args.ints("axes")
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in axes)) if x.ndim else x


@kernel("expand_dims")
def expand_dims(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    rank = x.ndim + len(args.ints("axes"))
    axes = sorted(a % rank for a in args.ints("axes"))
    for axis in axes:
        x = np.expand_dims(x, axis)
    return x


@kernel("flatten2d")
def flatten2d(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axis = args.int("axis", 1) % max(x.ndim, 1) if args.int("axis", 1) < 0 else args.int("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@kernel("concat")
def concat(args: OpArgs) -> np.ndarray:
    values = [np.asarray(v) for v in args["values"]]
    axis = args.int("axis")
    if args.bool("interleave"):
        axis %= values[0].ndim
        stacked = np.stack(values, axis=axis + 1)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


@kernel("stack")
def stack(args: OpArgs) -> np.ndarray:
    return np.stack([np.asarray(v) for v in args["values"]], axis=args.int("axis"))


@kernel("split")
def split(args: OpArgs) -> tuple[np.ndarray, ...]:
    x = args.array("x")
    axis = args.int("axis") % x.ndim
    sizes = args.ints("split_sizes")
    if sizes is None:
        sizes = [int(out.shape[axis]) for out in args.op.outputs]
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, bounds, axis=axis))


@kernel("slice_by_index")
def slice_by_index(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    begin, end = args.ints("begin"), args.ints("end")
    stride = args.ints("stride", [1] * x.ndim)
    begin_mask = args.ints("begin_mask", [0] * x.ndim)
    end_mask = args.ints("end_mask", [0] * x.ndim)
    squeeze_mask = args.ints("squeeze_mask", [0] * x.ndim)
    index: list = []
    for i in range(x.ndim):
        if squeeze_mask[i]:
            index.append(begin[i])
            continue
        b = None if begin_mask[i] else begin[i]
        e = None if end_mask[i] else end[i]
        index.append(slice(b, e, stride[i]))
    return np.ascontiguousarray(x[tuple(index)])


@kernel("slice_by_size")
def slice_by_size(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    begin, size = args.ints("begin"), args.ints("size")
    index = tuple(slice(b % x.shape[i] if b < 0 else b, None if s == -1 else (b % x.shape[i] if b < 0 else b) + s)
                  for i, (b, s) in enumerate(zip(begin, size, strict=True)))
    return np.ascontiguousarray(x[index])


@kernel("slice_update")
def slice_update(args: OpArgs) -> np.ndarray:
    x = args.array("x").copy()
    begin, end = args.ints("begin"), args.ints("end")
    stride = args.ints("stride", [1] * x.ndim)
    begin_mask = args.ints("begin_mask", [0] * x.ndim)
    end_mask = args.ints("end_mask", [0] * x.ndim)
    squeeze_mask = args.ints("squeeze_mask", [0] * x.ndim)
    index = tuple(begin[i] if squeeze_mask[i] else
                  slice(None if begin_mask[i] else begin[i], None if end_mask[i] else end[i], stride[i])
                  for i in range(x.ndim))
    x[index] = args.array("update")
    return x


@kernel("gather")
def gather(args: OpArgs) -> np.ndarray:
    """x gathered along ``axis`` at ``indices`` (negative indices count from the end), ``batch_dims``."""
    x, indices = args.array("x"), args.array("indices").astype(np.int64)
    axis = args.int("axis", 0) % x.ndim
    batch_dims = args.int("batch_dims", 0)
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    batch = x.shape[:batch_dims]
    out = [np.take(x[idx], indices[idx], axis=axis - batch_dims) for idx in np.ndindex(*batch)]
    return np.stack(out).reshape(args.out_shape())


@kernel("gather_along_axis")
def gather_along_axis(args: OpArgs) -> np.ndarray:
    x, indices = args.array("x"), args.array("indices").astype(np.int64)
    axis = args.int("axis", 0) % x.ndim
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return np.take_along_axis(x, indices, axis=axis)


@kernel("gather_nd")
def gather_nd(args: OpArgs) -> np.ndarray:
    x, indices = args.array("x"), args.array("indices").astype(np.int64)
    batch_dims = args.int("batch_dims", 0)
    depth = indices.shape[-1]
    if batch_dims == 0:
        return x[tuple(np.moveaxis(indices, -1, 0))]
    batch = x.shape[:batch_dims]
    out = [x[idx][tuple(np.moveaxis(indices[idx], -1, 0))] for idx in np.ndindex(*batch)]
    del depth
    return np.stack(out).reshape(args.out_shape())


def _scatter_apply(target: np.ndarray, index: tuple, updates: np.ndarray, mode: str) -> None:
    ops = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum,
           "min": np.minimum}
    if mode == "update":
        target[index] = updates
    else:
        ops[mode].at(target, index, updates)


@kernel("scatter")
def scatter(args: OpArgs) -> np.ndarray:
    data = args.array("data").copy()
    indices, updates = args.array("indices").astype(np.int64), args.array("updates")
    axis = args.int("axis", 0) % data.ndim
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    moved = np.moveaxis(data, axis, 0)
    upd = np.moveaxis(updates, axis, 0) if updates.ndim == data.ndim else updates
    _scatter_apply(moved, (indices,), upd, args.str("mode", "add"))
    return data


@kernel("scatter_along_axis")
def scatter_along_axis(args: OpArgs) -> np.ndarray:
    data = args.array("data").copy()
    indices, updates = args.array("indices").astype(np.int64), args.array("updates")
    axis = args.int("axis", 0) % data.ndim
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    grid = list(np.indices(indices.shape, sparse=True))
    grid[axis] = indices
    _scatter_apply(data, tuple(grid), updates, args.str("mode", "add"))
    return data


@kernel("scatter_nd")
def scatter_nd(args: OpArgs) -> np.ndarray:
    data = args.array("data").copy()
    indices, updates = args.array("indices").astype(np.int64), args.array("updates")
    _scatter_apply(data, tuple(np.moveaxis(indices, -1, 0)), updates, args.str("mode", "add"))
    return data


@kernel("tile")
def tile(args: OpArgs) -> np.ndarray:
    return np.tile(args.array("x"), args.ints("reps"))


@kernel("pad")
def pad(args: OpArgs) -> np.ndarray:
    """``pad`` is [begin, end] pairs for the LAST len(pad)/2 dims; constant, reflect or replicate."""
    x = args.array("x")
    amounts = args.ints("pad")
    n = len(amounts) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(amounts[2 * i], amounts[2 * i + 1]) for i in range(n)]
    mode = args.str("mode", "constant")
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=args.float("constant_val", 0.0))
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise args.fail(f"unknown pad mode {mode!r}")


@kernel("shape")
def shape(args: OpArgs) -> np.ndarray:
    return np.array(args.array("x").shape, dtype=np.int32)


@kernel("fill")
def fill(args: OpArgs) -> np.ndarray:
    return np.full(args.ints("shape"), args.float("value", 0.0), dtype=args.out_dtype())


@kernel("fill_like")
def fill_like(args: OpArgs) -> np.ndarray:
    return np.full(args.ints("ref_tensor"), args["value"], dtype=args.out_dtype())


@kernel("range_1d")
def range_1d(args: OpArgs) -> np.ndarray:
    start, end, step = (np.asarray(args[n]).reshape(()) for n in ("start", "end", "step"))
    return np.arange(start, end, step).astype(args.out_dtype())


@kernel("reverse")
def reverse(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axes = args.ints("axes")
    return np.ascontiguousarray(np.flip(x, axis=None if axes is None else tuple(axes)))


@kernel("reverse_sequence")
def reverse_sequence(args: OpArgs) -> np.ndarray:
    x = args.array("x").copy()
    lengths = args.ints("lengths")
    seq_axis, batch_axis = args.int("seq_axis", 0) % x.ndim, args.int("batch_axis", 0) % x.ndim
    for b, length in enumerate(lengths):
        index: list = [slice(None)] * x.ndim
        index[batch_axis] = b
        index[seq_axis] = slice(0, length)
        part = x[tuple(index)]
        axis = seq_axis - (1 if batch_axis < seq_axis else 0)
        x[tuple(index)] = np.flip(part, axis=axis)
    return x


@kernel("select")
def select(args: OpArgs) -> np.ndarray:
    return np.where(args.array("cond").astype(bool), args.array("a"), args.array("b"))


@kernel("band_part")
def band_part(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    lower, upper = args.int("lower", -1), args.int("upper", -1)
    rows, cols = np.indices(x.shape[-2:])
    keep = np.ones(x.shape[-2:], dtype=bool)
    if lower >= 0:
        keep &= rows - cols <= lower
    if upper >= 0:
        keep &= cols - rows <= upper
    return np.where(keep, x, 0).astype(x.dtype)


@kernel("cumsum")
def cumsum(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axis = args.int("axis", 0) % x.ndim
    if args.bool("reverse"):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if args.bool("exclusive"):
        out = out - x
    return np.flip(out, axis) if args.bool("reverse") else out


@kernel("one_hot")
def one_hot(args: OpArgs) -> np.ndarray:
    indices = args.array("indices").astype(np.int64)
    depth = args.int("one_hot_vector_size")
    axis = args.int("axis", -1)
    on, off = args["on_value"], args["off_value"]
    hot = np.arange(depth) == indices[..., None]
    out = np.where(hot, on, off).astype(args.out_dtype())
    return np.moveaxis(out, -1, axis % out.ndim)


@kernel("non_zero")
def non_zero(args: OpArgs) -> np.ndarray:
    return np.argwhere(args.array("x")).astype(np.int32)


@kernel("topk")
def topk(args: OpArgs) -> tuple[np.ndarray, np.ndarray]:
    """Stable: equal values keep index order. ``ascending`` picks the smallest; ``sort=False`` keeps order."""
    x = args.array("x")
    k, axis = args.int("k", 1), args.int("axis", -1) % x.ndim
    ascending = args.bool("ascending")
    order = np.argsort(x if ascending else -x, axis=axis, kind="stable")
    if k < 0:
        k = x.shape[axis]
    index = np.take(order, np.arange(k), axis=axis)
    if not args.bool("sort", True):
        index = np.sort(index, axis=axis)
    return np.take_along_axis(x, index, axis=axis), index.astype(args.out_dtype(1))


@kernel("argsort")
def argsort(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axis = args.int("axis", -1)
    order = np.argsort(x if args.bool("ascending") else -x, axis=axis, kind="stable")
    return order.astype(args.out_dtype())


def _blocks_to_depth(x: np.ndarray, block: int) -> np.ndarray:
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // block, block, w // block, block)
    return x.transpose(0, 3, 5, 1, 2, 4).reshape(n, c * block * block, h // block, w // block)


@kernel("space_to_depth")
def space_to_depth(args: OpArgs) -> np.ndarray:
    return np.ascontiguousarray(_blocks_to_depth(args.array("x"), args.int("block_size")))


@kernel("depth_to_space")
def depth_to_space(args: OpArgs) -> np.ndarray:
    x, block = args.array("x"), args.int("block_size")
    n, c, h, w = x.shape
    x = x.reshape(n, block, block, c // (block * block), h, w).transpose(0, 3, 4, 1, 5, 2)
    return np.ascontiguousarray(x.reshape(n, c // (block * block), h * block, w * block))


@kernel("pixel_shuffle")
def pixel_shuffle(args: OpArgs) -> np.ndarray:
    x, r = args.array("x"), args.int("upscale_factor")
    n, c, h, w = x.shape
    x = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(x.reshape(n, c // (r * r), h * r, w * r))


@kernel("pixel_unshuffle")
def pixel_unshuffle(args: OpArgs) -> np.ndarray:
    x, r = args.array("x"), args.int("downscale_factor")
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(x.reshape(n, c * r * r, h // r, w // r))


@kernel("space_to_batch")
def space_to_batch(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    bh, bw = args.ints("block_shape")
    (pt, pb), (pl, pr) = np.asarray(args.ints("paddings")).reshape(2, 2)
    x = np.pad(x, [(0, 0), (0, 0), (pt, pb), (pl, pr)])
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // bh, bh, w // bw, bw).transpose(3, 5, 0, 1, 2, 4)
    return np.ascontiguousarray(x.reshape(n * bh * bw, c, h // bh, w // bw))


@kernel("batch_to_space")
def batch_to_space(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    bh, bw = args.ints("block_shape")
    (ct, cb), (cl, cr) = np.asarray(args.ints("crops")).reshape(2, 2)
    nb, c, h, w = x.shape
    n = nb // (bh * bw)
    x = x.reshape(bh, bw, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
    return np.ascontiguousarray(x[:, :, ct:h * bh - cb, cl:w * bw - cr])


@kernel("sliding_windows")
def sliding_windows(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axis, size, stride = args.int("axis") % x.ndim, args.int("size"), args.int("stride", 1)
    count = (x.shape[axis] - size) // stride + 1
    windows = [np.take(x, np.arange(i * stride, i * stride + size), axis=axis) for i in range(count)]
    return np.stack(windows, axis=axis)
