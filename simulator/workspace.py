"""Reusable scratch buffers for the per-update kernels.

A pulsed update of a 512x512 tile makes a few dozen temporaries of a megabyte each; freshly
allocated, each costs page faults that take longer than the arithmetic. A tile keeps one
:class:`Workspace` and the kernels write their temporaries into it (``out=``) instead.
"""

from __future__ import annotations

import torch

__all__ = ["Workspace", "scratch"]


class Workspace:
    """Named buffers, reallocated only when the requested shape, dtype or device changes."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype or buf.device != device:
            buf = torch.empty(shape, dtype=dtype, device=device)
            self._buffers[name] = buf
        return buf

    def clear(self) -> None:
        self._buffers.clear()


def scratch(
    workspace: Workspace | None,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """A buffer from ``workspace``, or a fresh one when there is none."""
    if workspace is None:
        return torch.empty(shape, dtype=dtype, device=device)
    return workspace.get(name, tuple(shape), dtype, device)
