"""The local-folder backend of the artifact store: objects are files under a root folder.

Every write goes through a temporary file in the same folder and `os.replace`, so a reader never
sees half a file; temporary files carry `TMP_MARK` in their name and are never listed. Locks and
create-if-absent records are hard-linked into place, so they are never visible empty. Every key
is checked (`keys.check_key`) and its path kept inside the root, even through symlinks
(`checks.contained_path`). Used only by `llm2loss.store.ArtifactStore`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from llm2loss.errors import NotFoundError
from llm2loss.store.checks import contained_path, lock_body
from llm2loss.store.keys import check_key

TMP_MARK = ".llm2loss-tmp-"


class LocalBackend:
    """Objects as files under a root folder; every write goes through a temp file + os.replace."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file of `key`; StoreError when a symlink inside the store leads outside it."""
        return contained_path(self.root, check_key(key))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root
        parts = prefix.split("/")
        if len(parts) > 1:
            base = self.root.joinpath(*[p for p in parts[:-1] if p])
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if TMP_MARK in name:
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no artifact {key!r} in the store {self.root}") from None

    def put_file(self, key: str, src: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}{TMP_MARK}{uuid.uuid4().hex}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, key: str, data: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}{TMP_MARK}{uuid.uuid4().hex}")
        # os.open with 0o666 (not mkstemp's 0o600): the file gets the umask's mode, like parts.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get_file(self, key: str, dest: Path) -> None:
        src = self.path(key)
        if not src.is_file():
            raise NotFoundError(f"no artifact {key!r} in the store {self.root}")
        shutil.copyfile(src, dest)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Create the file at `key` holding `data` unless it exists; True when created."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return self._create_exclusive(path, data)

    def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"owner": owner, "expires_at": time.time() + ttl_s}).encode()
        for _ in range(2):
            if self._create_exclusive(path, body):
                return True
            if not self._break_if_stale(path, owner):
                if self._owner_of(path) != owner:
                    return False
                self.write_bytes(key, body)  # our own lock: extend its expiry
                return True
        return False

    @staticmethod
    def _create_exclusive(path: Path, body: bytes) -> bool:
        """Create `path` holding `body` unless it exists; True when created.

        The body is written to a temporary file first and hard-linked into place (link fails
        when the name exists), so a lock is never visible empty: an O_EXCL create followed by a
        write let a concurrent caller read the empty file, take it for stale and win too.
        """
        tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")
        tmp.write_bytes(body)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _owner_of(path: Path) -> str | None:
        try:
            body = lock_body(path.read_bytes())
        except OSError:
            return None
        return None if body is None else body["owner"]

    @staticmethod
    def _break_if_stale(path: Path, owner: str) -> bool:
        """Remove an expired lock; True when one was removed. Atomic: only one rename wins."""
        try:
            held = lock_body(path.read_bytes()) or {"owner": None, "expires_at": 0.0}
        except FileNotFoundError:
            return True
        if held["owner"] == owner or held["expires_at"] > time.time():
            return False
        tomb = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            return True
        stolen = lock_body(tomb.read_bytes()) or {"expires_at": 0.0}
        if stolen["expires_at"] > time.time():
            # Between our read and our rename someone else took a fresh lock: give it back.
            with contextlib.suppress(FileExistsError):
                os.link(tomb, path)
            tomb.unlink(missing_ok=True)
            return False
        tomb.unlink(missing_ok=True)
        return True

    def release_lock(self, key: str, owner: str) -> bool:
        path = self.path(key)
        if self._owner_of(path) != owner:
            return False
        path.unlink(missing_ok=True)
        return True
