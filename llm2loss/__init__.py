"""llm2loss: explain, in words, where a trained model fails and whom it treats worse.

The public face is `LossDiagnoser` (ensembles mapping language-aligned embeddings to a model's
per-sample loss) plus the functions of `llm2loss.insights` and `llm2loss.evaluation`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["LossDiagnoser", "Comparison", "__version__"]


def __getattr__(name: str):  # lazy: `import llm2loss` stays cheap (no torch import)
    if name in ("LossDiagnoser", "Comparison"):
        from llm2loss import diagnoser

        return getattr(diagnoser, name)
    raise AttributeError(name)
