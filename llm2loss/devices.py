"""Which torch device the library runs on: the one place that choice is made.

The diagnoser, the encoders and the audited models all take an optional `device`; None means
"the best one here", which is cuda when a GPU is visible and cpu otherwise. Torch is imported
only when the choice has to be made, so importing this module stays cheap.
"""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str | None) -> str:
    """`device` as given, else 'cuda' when a GPU is visible, else 'cpu'."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
