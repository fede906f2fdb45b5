"""LossDiagnoser: a small ensemble mapping language-aligned embeddings to a model's loss.

`fit(X, loss)` trains K members (one batched torch module, `heads.MemberHeads`) with one of three
objectives (`objectives`): "rank" (which samples lose more), "regress" (how much they lose) or
"familiarity" (data vs generated negatives; `loss` is ignored). `predict` gives the ensemble mean,
`predict_members` every member, and `compare(Xa, Xb)` the distribution over members of the score
difference between paired rows, which is how two phrases are compared with an uncertainty.
Numpy in, numpy out; torch only inside.

Outputs: "rank" scores are standardised per member over the training data (0 = an average
training sample, 1 = one standard deviation of that member's scores higher), so members are on one
scale and averaging them is meaningful; "regress" outputs are in loss units (the inverse of the
signed-log target transform); "familiarity" outputs are logits (higher = more like the data), never
probabilities, which saturate and tie on clearly separated inputs.

Spaces and the modality gap: a query row is from the "data" space (embeddings like the fitted
ones) or the "text" space (phrase embeddings; `space=` of predict/compare). Text embeddings of
CLIP-like encoders sit away from the image embeddings (the modality gap). With `gap="center"` the
data mean (stored at fit) is subtracted from data rows, and the text-reference mean (from
`fit(..., text_reference=...)`, or else the mean of the query batch) from text rows; both are
renormalised. The heads are trained on centred data, so both spaces meet in one frame.

Saved as a directory: `weights.safetensors` (tensors only) and `diagnoser.json` (parameters and
scalars). Loading reads those two files and never runs code (`persistence`).

Rooms: `estimator` (the class and its parameters), `training` (fit), `scoring` (predict and
compare, chunked), `persistence` (save/load), `checks` (input and file checks), `rows` (row
normalisation and centring), `heads`, `objectives`. Names are imported lazily, so the torch-free
rooms (`checks`, `rows`) can be used without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm2loss.diagnoser.checks import check_matrix, check_vector
    from llm2loss.diagnoser.estimator import GAPS, MIN_SAMPLES, LossDiagnoser
    from llm2loss.diagnoser.persistence import FORMAT
    from llm2loss.diagnoser.scoring import SPACES, Comparison, p_higher

__all__ = ["FORMAT", "GAPS", "MIN_SAMPLES", "SPACES", "Comparison", "LossDiagnoser",
           "check_matrix", "check_vector", "p_higher"]

_HOME = {"LossDiagnoser": "estimator", "GAPS": "estimator", "MIN_SAMPLES": "estimator",
         "Comparison": "scoring", "SPACES": "scoring", "p_higher": "scoring",
         "FORMAT": "persistence", "check_matrix": "checks", "check_vector": "checks"}


def __getattr__(name: str) -> Any:  # lazy: importing the torch-free rooms does not import torch
    if name in _HOME:
        return getattr(import_module(f"llm2loss.diagnoser.{_HOME[name]}"), name)
    raise AttributeError(f"module 'llm2loss.diagnoser' has no attribute {name!r}")
