"""Procedurally generated shape images with known attributes, their captions and their manifest.

Every image is a 32 x 32 RGB scene of one or two equal shapes with seven known attributes:

- `shape`    circle / square / triangle (the audited model's label)
- `red`      red or blue shape
- `small`    small (8 px) or large (14 px) shape
- `dark`     dark or light background
- `striped`  striped or plain fill
- `two`      two shapes (one in each half) or one, anywhere
- `outlined` a 2 px outline or a solid shape

(Position was tried first and dropped: the CLIP's conv tower pools a 32 px image to one cell, so
its zero-shot accuracy on left/right and top/bottom stayed at chance.)

`draw_scene` draws one from its attributes and a seed (deterministic); `sample_attributes` draws
attribute rows (uniform by default); `caption` writes one of many template captions that mention a
random subset of the attributes (so the text tower learns each concept on its own, and short
phrases such as "a small shape" are in distribution); `write_dataset` writes PNGs plus a
`manifest.csv` (id, path, label, attribute columns) that the `image_manifest` source reads.
`ATTRIBUTE_PHRASES` are the phrase pairs ("attr", "not attr") an audit asks about and
`ZERO_SHOT_PROMPTS` the prompts of the encoder's zero-shot attribute accuracy (each value said
of one shape and of two; `SINGULAR_PROMPTS` only of one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

SIZE = 32
SHAPES = ("circle", "square", "triangle")
BOOL_ATTRIBUTES = ("red", "small", "dark", "striped", "two", "outlined")
#: Words of each binary attribute: (word when True, word when False).
WORDS = {
    "red": ("red", "blue"),
    "small": ("small", "large"),
    "dark": ("dark", "light"),
    "striped": ("striped", "plain"),
    "outlined": ("outlined", "solid"),
}
ATTRIBUTE_PHRASES: dict[str, tuple[str, str]] = {
    "red": ("a red shape", "a blue shape"),
    "small": ("a small shape", "a large shape"),
    "dark": ("a shape on a dark background", "a shape on a light background"),
    "striped": ("a striped shape", "a plain shape"),
    "two": ("two shapes", "one shape"),
    "outlined": ("an outlined shape", "a solid shape"),
}


def two_of(phrase: str) -> str:
    """The phrase of one shape said of two: "a red shape" -> "two red shapes" (captions of
    two-shape scenes always say "two")."""
    head, *words = phrase.split(" ")
    if head not in ("a", "an"):
        raise ValueError(f"{phrase!r} does not start with 'a' or 'an'")
    nouns = [i for i, w in enumerate(words) if w in (*SHAPES, "shape")]
    if not nouns:
        raise ValueError(f"{phrase!r} names no shape: say 'shape' or one of {', '.join(SHAPES)}")
    words[nouns[0]] += "s"
    return " ".join(["two", *words])


#: Zero-shot prompts per attribute: per value (in the order of the value list), the prompts that
#: describe it, of a one-shape scene and of a two-shape scene; the nearest prompt's value wins.
#: CLIP's own zero-shot evaluation describes each class by several prompts in the same way.
ZERO_SHOT_PROMPTS: dict[str, list[tuple[str, ...]]] = {
    "shape": [(f"a photo of a {s}", f"a photo of {two_of('a ' + s)}") for s in SHAPES],
    **{name: [(f"a photo of {p}",) if name == "two" else (f"a photo of {p}", f"a photo of {two_of(p)}")
              for p in pair] for name, pair in ATTRIBUTE_PHRASES.items()},
}
#: The same with only the one-shape prompt of each value (reported beside, for comparison).
SINGULAR_PROMPTS: dict[str, list[tuple[str, ...]]] = {
    name: [values[:1] for values in prompts] for name, prompts in ZERO_SHOT_PROMPTS.items()}
#: In-domain phrases of the audit (familiarity positives), beside the attribute phrases.
IN_DOMAIN_PHRASES = [
    *(f"a {c} {s}" for c in ("red", "blue") for s in SHAPES),
    *(f"a {z} {s}" for z in ("small", "large") for s in SHAPES),
    *(f"a {t} {s}" for t in ("striped", "plain") for s in SHAPES),
    *(f"a {s} on a {b} background" for s in SHAPES for b in ("dark", "light")),
    *(f"two {s}s" for s in SHAPES), *(f"an outlined {s}" for s in SHAPES),
    "a small red circle on a dark background", "a large blue square on a light background",
    "two striped triangles", "an outlined plain circle",
]

_TEMPLATES = (
    "{np}{where}", "a photo of {np}{where}", "an image of {np}{where}", "a picture showing {np}{where}",
    "{np}{where}.", "there is {np}{where}", "a drawing of {np}{where}", "a render of {np}{where}",
)
_HALF = {True: 4, False: 7}  # half the side of a small / large shape, px


def sample_attributes(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` attribute rows drawn uniformly and independently (shape and six booleans)."""
    frame = pd.DataFrame({"shape": rng.choice(SHAPES, n)})
    for name in BOOL_ATTRIBUTES:
        frame[name] = rng.random(n) < 0.5
    return frame


def _colour(red: bool, rng: np.random.Generator) -> np.ndarray:
    base = np.array([205, 40, 40]) if red else np.array([40, 70, 215])
    return np.clip(base + rng.integers(-35, 36, 3), 0, 255)


def _centres(row: dict | pd.Series, rng: np.random.Generator) -> list[tuple[int, int]]:
    """One centre anywhere, or two: one in the left half and one in the right half."""
    half = _HALF[bool(row["small"])]
    cy = int(rng.integers(half + 1, SIZE - half - 1))
    if not row["two"]:
        return [(int(rng.integers(half + 1, SIZE - half - 1)), cy)]
    left = int(rng.integers(half, SIZE // 2 - half))  # centres >= 2 * half + 1 apart: no overlap
    right = int(rng.integers(SIZE // 2 + half, SIZE - half))
    return [(left, int(rng.integers(half + 1, SIZE - half - 1))), (right, cy)]


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: int, cy: int, half: int, outlined: bool) -> None:
    box = (cx - half, cy - half, cx + half, cy + half)
    style = {"fill": None, "outline": 255, "width": 2} if outlined else {"fill": 255}
    if shape == "circle":
        draw.ellipse(box, **style)
    elif shape == "square":
        draw.rectangle(box, **style)
    else:
        points = [(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)]
        if outlined:
            draw.line([*points, points[0]], fill=255, width=2, joint="curve")
        else:
            draw.polygon(points, fill=255)


def draw_scene(row: dict | pd.Series, seed: int) -> Image.Image:
    """One 32 x 32 image of the attributes in `row`; the same `seed` gives the same pixels."""
    rng = np.random.default_rng(seed)
    level = rng.integers(10, 70) if row["dark"] else rng.integers(180, 245)
    background = np.clip(level + rng.integers(-12, 13, 3), 0, 255)
    pixels = np.empty((SIZE, SIZE, 3), dtype=np.float64)
    pixels[:] = background
    pixels += rng.normal(0, 6, pixels.shape)  # sensor-like noise: no two backgrounds are equal
    mask_image = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask_image)
    for cx, cy in _centres(row, rng):
        _draw(draw, row["shape"], cx, cy, _HALF[bool(row["small"])], bool(row["outlined"]))
    mask = np.asarray(mask_image, dtype=np.float64)[..., None] / 255.0
    fill = np.broadcast_to(_colour(bool(row["red"]), rng), pixels.shape).astype(np.float64)
    if row["striped"]:
        stripes = (np.arange(SIZE) // 2) % 2 == 0
        fill = fill.copy()
        fill[stripes] = 255 - 0.3 * (255 - fill[stripes])  # pale bands across the shape
    pixels = pixels * (1 - mask) + fill * mask
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def draw_clutter(seed: int) -> Image.Image:
    """A 32 x 32 image that is no shape scene: smooth random colour blobs plus noise."""
    rng = np.random.default_rng(seed)
    cells = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB")
    pixels = np.asarray(cells.resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.float64)
    pixels = pixels + rng.normal(0, 20, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def caption(row: dict | pd.Series, rng: np.random.Generator) -> str:
    """A caption from a random template that names a random subset of the attributes.

    The count is always said for two shapes ("two ... circles") and sometimes for one ("one").
    """
    def said(p: float = 0.5) -> bool:
        return bool(rng.random() < p)

    # the shape is named in 90 % of captions and each other attribute in half of them: captions
    # that leave out the easy attributes make the shape the cue that tells batch items apart
    words = [WORDS[name][0 if row[name] else 1] for name in ("small", "outlined", "striped", "red")
             if said()]
    noun = row["shape"] if said(0.9) else "shape"
    if row["two"]:
        np_ = " ".join(["two", *words, noun + "s"])
    else:
        phrase = " ".join([*words, noun])
        np_ = ("one " if said(0.3) else "an " if phrase[0] in "aeiou" else "a ") + phrase
    where = f" on a {WORDS['dark'][0 if row['dark'] else 1]} background" if said() else ""
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(np=np_, where=where)


def scene_seed(seed: int, index: int) -> int:
    """The drawing seed of image `index` of a set drawn with `seed`."""
    return seed * 1_000_003 + index


def write_dataset(root: Path, attributes: pd.DataFrame, *, seed: int, prefix: str = "img") -> Path:
    """PNGs of every row under `root/images/` and `root/manifest.csv`; returns the manifest path.

    The manifest has id, path (relative to it), label (the shape) and the boolean attributes.
    Image i is drawn with seed `scene_seed(seed, i)`, so the set is reproducible.
    """
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, row in enumerate(attributes.to_dict("records")):
        path = Path("images") / f"{prefix}-{i:05d}.png"
        draw_scene(row, scene_seed(seed, i)).save(root / path)
        rows.append({"id": f"{prefix}-{i:05d}", "path": path.as_posix(), "label": row["shape"],
                     **{k: bool(row[k]) for k in BOOL_ATTRIBUTES}})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def render(attributes: pd.DataFrame, *, seed: int) -> list[Image.Image]:
    """The images of `attributes` in memory (same seeding as `write_dataset`)."""
    return [draw_scene(row, scene_seed(seed, i)) for i, row in enumerate(attributes.to_dict("records"))]
