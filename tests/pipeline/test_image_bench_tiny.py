"""The image benchmark's tiny version through the audit flow, end to end (Prefect, Dask, SeaweedFS).

Everything is built here in seconds (`benchmarks/image_bench_data.py`, scale `tiny`): 240
generated shape scenes, a small open_clip CLIP trained for one epoch with open_clip's ClipLoss and
saved as config JSON + safetensors, and a ResNet-18 with planted failure slices trained for one
epoch. The release loads that CLIP by path (`open_clip:shapes-clip//<dir>/...safetensors?config=`)
in the Dask worker processes, as a user's checkpoint. The figures of this tiny world mean nothing;
the test checks that every part the benchmark reads is there and well-formed, and that the HTML
report shows the example samples behind its findings as thumbnails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_image  # noqa: E402
import image_bench_data  # noqa: E402
import image_clip  # noqa: E402
import image_data  # noqa: E402
import image_heads  # noqa: E402

from llm2loss.config import StoreSettings  # noqa: E402
from llm2loss.encoders import build_encoder  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> image_bench_data.BenchData:
    return image_bench_data.build(tmp_path_factory.mktemp("image-bench"), "tiny", log=lambda _: None)


def test_generated_scenes_are_deterministic_and_captions_name_their_attributes() -> None:
    rng = np.random.default_rng(0)
    rows = image_data.sample_attributes(50, rng)
    a = np.asarray(image_data.render(rows, seed=1)[7])
    assert np.array_equal(a, np.asarray(image_data.render(rows, seed=1)[7]))
    assert a.shape == (image_data.SIZE, image_data.SIZE, 3)
    for row in rows.to_dict("records"):
        words = {w.rstrip(".").removesuffix("s") for w in image_data.caption(row, rng).split()}
        assert row["shape"] in words or "shape" in words
        assert ("two" in words) == bool(row["two"])
        wrong = [image_data.WORDS[k][1 if row[k] else 0] for k in ("red", "small", "striped", "dark")]
        assert not set(wrong) & words  # a caption never names the other value


def test_tiny_image_benchmark_audits_through_the_flow(prefect_server, s3_store, dask_cluster, tiny) -> None:
    assert tiny.clip.exists() and tiny.cnn_weights.is_file()
    release = image_bench_data.image_release(tiny, model="shapes-cnn-tiny")
    assert release.encoder.startswith(f"open_clip:{image_clip.NAME}//") and "?config=" in release.encoder
    encoder = build_encoder(release.encoder, device="cpu")
    assert encoder.dim == image_clip.CONFIG["embed_dim"]

    store = StoreSettings(uri=s3_store.uri, endpoint_url=s3_store.endpoint_url)
    manifest, cfg, _ = bench_image.run_flow(
        release, tiny.cnn_weights, store, members=2, shard_size=100, archs=("mlp",),
        cluster_address=dask_cluster.scheduler_address, cache_dir=str(tiny.folder / "cache"))
    assert manifest["status"] == "completed"
    assert manifest["summary"]["samples_used"] == image_bench_data.SCALES["tiny"].audit_images

    from llm2loss import pipeline as stages

    metrics = stages.get_store(cfg.store).read_json(manifest["metrics"])
    assert metrics["data"]["gap"] == "center" and metrics["data"]["dim"] == encoder.dim
    assert {r["attribute"] for r in metrics["attributes"]["rows"]} == set(image_data.BOOL_ATTRIBUTES)
    html = stages.get_store(cfg.store).read_bytes(manifest["report"]).decode("utf-8")
    assert '<img class="thumb" src="data:image/png;base64,' in html  # example samples are shown
    figures = bench_image.headline(metrics)
    verdicts = figures["verdicts"]
    assert verdicts["n"] == len(image_data.BOOL_ATTRIBUTES) and 0 <= verdicts["coverage"] <= 1
    assert set(verdicts["verdicts"].values()) <= {"a worse", "b worse", "uncertain"}
    assert set(figures["spearman"]) >= {"rank-mlp", "regress-mlp"}
    assert 1 <= figures["epochs"]["rank-mlp"] <= cfg.audit.diagnosers.max_epochs
    assert figures["auroc"] and all(0.0 <= v <= 1.0 for v in figures["auroc"].values())

    data = bench_image.audit_tables(cfg, manifest)
    assert len(data["X"]) == len(data["loss"]) == manifest["summary"]["samples_used"]
    assert data["loss"].std() > 0 and 0 < data["test"].mean() < 1
    gap = bench_image.modality_gap(data, encoder)
    assert -1 <= gap["own_centred"] <= 1 and gap["centroid_distance"] > 0
    base, base_pred = bench_image.fit_baselines(data, encoder)
    assert set(base) == set(base_pred) == {"ridge", "knn", "error-direction"}
    assert all(len(p) == data["test"].sum() for p in base_pred.values())
    assert all(-1 <= v["spearman"] <= 1 and 0 <= v["sign_accuracy"] <= 1 for v in base.values())
    zero_shot = image_clip.zero_shot_accuracy(
        encoder, image_data.render(data["attributes"].head(60), seed=5), data["attributes"].head(60))
    assert set(zero_shot) == {*image_data.ZERO_SHOT_PROMPTS, "mean"}
    assert all(0.0 <= v <= 1.0 for v in zero_shot.values())

    variants = image_heads.head_variants(data, bench_image.audit_phrases(cfg, encoder), (0,), members=2,
                                         baseline_pred=base_pred["knn"], log=lambda _: None)
    assert set(variants) == set(image_heads.VARIANTS)
    for rows in variants.values():
        assert len(rows) == 1 and -1 <= rows[0]["spearman"] <= 1 and 0 <= rows[0]["sign_accuracy"] <= 1
    name = next(iter(image_heads.VARIANTS))  # the default
    assert 1 <= variants[name][0]["epochs"] <= 300 and variants["linear readout, 60 epochs"][0]["epochs"] <= 60
    reference = image_heads.training_kendall(data)
    assert -1 <= reference <= 1
    table = image_heads.variant_lines(variants, ("knn", base["knn"]["spearman"]), members=2, reference=reference)
    assert len(table) == 6 + len(image_heads.VARIANTS) and all(f"| {v} |" in "\n".join(table) for v in variants)
    assert "1 seed each, 2 members" in table[0] and f"held-out Kendall of {reference:.2f}" in table[0]
    default = next(line for line in table if line.startswith(f"| {name} |")).split(" | ")
    row = variants[name][0]
    meets = row["spearman"] > base["knn"]["spearman"] and row["kendall"] >= 0.6 and row["sign_accuracy"] >= 0.85
    assert default[5] == f"{int(meets)} of 1"  # the "all three targets" column counts this seed or not
    assert set(row["wrong_signs"]) <= set(image_data.BOOL_ATTRIBUTES)
    assert len(row["wrong_signs"]) == round((1 - row["sign_accuracy"]) * len(image_data.BOOL_ATTRIBUTES))
    assert default[6] == (", ".join(f"{a} 1" for a in row["wrong_signs"]) or "none")
    gain, low, high = row["gain"]  # Spearman gain over kNN's own held-out predictions
    assert gain == pytest.approx(row["spearman"] - base["knn"]["spearman"], abs=1e-9) and low <= gain <= high
    assert default[8] == f"{gain:+.3f} ({low:+.3f} to {high:+.3f}) |"
    subspace = [v for v, (_, t) in image_heads.VARIANTS.items() if t == "subspace"]
    kept = variants[subspace[0]][0]
    assert kept["dim"] == encoder.dim
    unit = data["X"] / np.linalg.norm(data["X"], axis=1, keepdims=True)
    centred = unit - unit[~data["test"]].mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    share = np.cumsum(np.sort(np.linalg.eigvalsh(np.cov(centred[~data["test"]].T)))[::-1])
    assert kept["directions"] == int(np.argmax(share / share[-1] >= image_heads.SUBSPACE_SHARE - 1e-12)) + 1
    assert table[-1].startswith("Principal directions the top-directions variant kept") and f"{kept['directions']} of {kept['dim']}" in table[-1]


def test_a_second_audit_set_is_other_scenes_of_the_same_world(prefect_server, dask_cluster, tiny,
                                                              tmp_path: Path) -> None:
    """`build(..., audit_seed=s)` draws another audit set beside the first (same CLIP, same CNN,
    the first set untouched), and `audit_second` audits it through the same flow."""
    import argparse

    first = tiny.manifest.read_bytes()
    second = image_bench_data.build(tiny.folder.parent, "tiny", audit_seed=7, log=lambda _: None)
    assert second.audit_seed == 7 and second.manifest.parent.name == "audit-seed7"
    assert second.clip == tiny.clip and second.cnn_weights == tiny.cnn_weights
    assert tiny.manifest.read_bytes() == first
    rows_first = pd.read_csv(tiny.manifest)[list(image_data.BOOL_ATTRIBUTES)]
    rows_second = pd.read_csv(second.manifest)[list(image_data.BOOL_ATTRIBUTES)]
    assert len(rows_first) == len(rows_second) and not rows_first.equals(rows_second)
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match="audit_seed must be a non-negative integer"):
            image_bench_data.build(tiny.folder.parent, "tiny", audit_seed=bad)

    args = argparse.Namespace(members=2, shard_size=100)
    out = bench_image.audit_second(second, tmp_path, args, dask_cluster.scheduler_address)
    assert out["seed"] == 7 and out["n"] == len(rows_second) and 0 < out["n_test"] < out["n"]
    assert out["center"]["gap"] == "center" and "rank-mlp" in out["center"]["spearman"]
    data = out.pop("data")
    assert len(data["X"]) == len(data["attributes"]) == out["n"]
    # judged against its own best baseline: below every baseline, then above every one
    for best, verdict in ((1.0, "Spearman above the best baseline **not met**"),
                          (-1.0, "Spearman above the best baseline met")):
        out["baselines"] = {"knn": {"spearman": best}, "ridge": {"spearman": best - 0.5}}
        lines = bench_image.second_audit_lines(out, members=2)
        assert lines[0].startswith("Second audit set (seed 7)") and f"knn {best:.3f}" in lines[0]
        assert verdict in lines[0] and len(lines) == 1  # no variants measured
        assert "drawn only after the linear readout" not in lines[0]
    # a set drawn after the method was chosen says so; later sets are named in order
    third = bench_image.second_audit_lines({**out, "seed": 23}, members=2, ordinal="third")
    assert third[0].startswith("Third audit set (seed 23)") and "drawn only after the linear readout" in third[0]
