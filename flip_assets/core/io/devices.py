"""Where the PyTorch models (RetinaFace, the caption classifier) run: FLIP_DEVICE.

cpu (default) | cuda | cuda:N. The models, their inputs and their weights go to that device;
outputs come back to the CPU before NumPy reads them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a device is asked for: loading the definitions stays cheap
    import torch

SETTING = "FLIP_DEVICE"


def load_torch():
    """torch, its OpenMP threads told to sleep rather than spin when idle: on a machine whose
    cores other workers share, a spinning thread takes the core a descheduled sibling waits for
    (bench/README.md, "Face detection under load"). libgomp reads OMP_WAIT_POLICY once, when
    torch loads it, so every device check loads torch through here; a value the user set wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    return torch


@contextmanager
def torch_threads(threads: int):
    """torch's intra-op threads set to `threads` inside the block and restored after: torch has
    one pool per process, and a stage must not leave its choice to the stages run after it in the
    same process (make pipeline runs every stage in one)."""
    torch = load_torch()
    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if previous != threads:
            torch.set_num_threads(previous)


def torch_device(name: str | torch.device) -> torch.device:
    """The device `name` names, or ValueError naming the setting when this machine lacks it."""
    torch = load_torch()

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{SETTING}={name!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"{SETTING}={name!r}: only cpu, cuda or cuda:N are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"{SETTING}={name!r}, but torch {torch.__version__} finds no CUDA device on this machine")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{SETTING}={name!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
