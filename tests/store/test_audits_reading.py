"""The reading side of finished audits (llm2loss.audits) against folders others can write."""

from __future__ import annotations

import logging
from pathlib import Path

from llm2loss import audits
from llm2loss.store import ArtifactStore, keys


def test_only_diagnoser_folders_this_version_writes_are_downloaded(tmp_path: Path, caplog) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    root = keys.diagnosers_prefix("m", "v1")
    store.write_json(f"{keys.diagnoser_prefix('m', 'v1', 'rank', 'mlp')}/diagnoser.json", {"ok": 1})
    store.write_json(f"{root}/planted-folder/diagnoser.json", {"ok": 0})  # not objective-arch
    with caplog.at_level(logging.WARNING, logger="llm2loss.audits"):
        folders = audits.download_diagnosers(store, "m", "v1", tmp_path / "dest")
    assert folders == {"rank-mlp": tmp_path / "dest" / "rank-mlp"}
    assert (folders["rank-mlp"] / "diagnoser.json").is_file()
    assert not (tmp_path / "dest" / "planted-folder").exists()
    assert any("planted-folder" in r.getMessage() and "not a diagnoser" in r.getMessage()
               for r in caplog.records)
