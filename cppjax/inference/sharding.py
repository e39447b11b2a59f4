"""The observed cells of a fit laid out over devices with :mod:`jax.sharding`.

A fit with ``SVI(devices=k)`` (or ``MAP``) puts its cells (model and task indices, scores,
mask) on a one-axis mesh of the first ``k`` devices, each device holding a contiguous block,
and every other input (design matrices, bases) replicated. The compiled step is the same
program as on one device: XLA partitions it from the inputs' layout (each device computes the
log-likelihood of its cells, the gradients are summed across devices), so the code path is the
same for 1 or N devices, and for devices on several hosts once ``jax.distributed`` is
initialised. ``docs/decisions/0008-pmf-cost-grows-with-the-cells.md`` has the measurements.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def cell_mesh(devices: int) -> Mesh | None:
    """A one-axis mesh (``"cells"``) of the first ``devices`` devices; None for one device."""
    available = jax.devices()
    if devices > len(available):
        raise ValueError(f"devices={devices} but JAX sees {len(available)} device(s) "
                         f"({available[0].platform}); on CPU, set XLA_FLAGS="
                         f"--xla_force_host_platform_device_count={devices} before importing jax")
    if devices == 1:
        return None
    return Mesh(np.asarray(available[:devices]), ("cells",))


def pad_to_multiple(arrays, mask, k: int):
    """``arrays`` (one value per cell) and ``mask`` extended to a multiple of ``k`` cells by
    repeating the first cell, masked out."""
    n = mask.shape[0]
    pad = -n % k
    if not pad:
        return arrays, mask
    ext = [np.concatenate([a, np.repeat(a[:1], pad)]) for a in arrays]
    return ext, np.concatenate([mask, np.zeros(pad, bool)])


def shard_cells(mesh: Mesh | None, cells, rest):
    """``cells`` (arrays with one value per cell) split over ``mesh``'s devices, ``rest`` (any
    pytree of arrays) replicated on them; unchanged without a mesh."""
    if mesh is None:
        return cells, rest
    split = NamedSharding(mesh, PartitionSpec("cells"))
    same = NamedSharding(mesh, PartitionSpec())
    return ([jax.device_put(c, split) for c in cells],
            jax.tree.map(lambda a: jax.device_put(a, same), rest))
