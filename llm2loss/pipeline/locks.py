"""One audit of a release at a time: the audit lock, its heartbeat, and waiting for a turn.

The lock is a store object (`store.acquire_lock`: O_EXCL locally, conditional puts on S3) with an
expiry, renewed every HEARTBEAT_S by the running audit: a run that died on another host frees the
release within LOCK_TTL_S; one that died on this host at once (its owner names host, pid and the
process's start time, so a reused pid is not mistaken for it). `audit_exclusively` wraps one
audit in that protocol; a second run waits for the first and returns its manifest.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil

from llm2loss import audits
from llm2loss.store import keys as layout
from llm2loss.config import ReleaseSpec
from llm2loss.errors import Llm2LossError, NotFoundError
from llm2loss.store import ArtifactStore
from llm2loss.store.checks import lock_body

LOCK_TTL_S = 15 * 60
HEARTBEAT_S = 60.0
WAIT_POLL_S = 2.0
WAIT_TIMEOUT_S = 12 * 3600

Logger = logging.Logger | logging.LoggerAdapter
_log = logging.getLogger(__name__)


def lock_owner() -> str:
    """This process as a lock owner: host, pid, process start time and a unique token."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}:{uuid.uuid4().hex}"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` (see lock_owner) is a process on this host that no longer runs."""
    try:
        host, pid, started, _token = owner.rsplit(":", 3)
        pid_n, started_s = int(pid), float(started)
    except ValueError:
        return False  # not ours to judge: wait for its expiry
    if host != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(pid_n).create_time() - started_s) > 0.01
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True


def take_lock(store: ArtifactStore, key: str, owner: str, *, logger: Logger | None = None) -> bool:
    """Take the audit lock, breaking it first when its holder died on this host."""
    if store.acquire_lock(key, owner, LOCK_TTL_S):
        return True
    try:
        body = lock_body(store.read_bytes(key))  # None for anything that is not a lock
    except NotFoundError:
        body = None
    except Llm2LossError:
        return False
    holder = body["owner"] if body else ""
    if holder and owner_is_dead(holder) and store.release_lock(key, holder):
        (logger or _log).warning("broke the lock %s left by a run that died (%s)", key, holder)
    return store.acquire_lock(key, owner, LOCK_TTL_S)


@contextlib.contextmanager
def heartbeat(store: ArtifactStore, key: str, owner: str, every_s: float = HEARTBEAT_S, *,
              logger: Logger | None = None) -> Iterator[None]:
    """Renew the lock every `every_s` seconds while the block runs (a daemon thread)."""
    stop = threading.Event()
    logger = logger or _log

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                if not store.acquire_lock(key, owner, LOCK_TTL_S):
                    logger.warning("lost the audit lock %s to another run", key)
            except Llm2LossError as exc:  # the store is down for a moment: try at the next beat
                logger.warning("could not renew the audit lock %s: %s", key, exc)

    thread = threading.Thread(target=beat, name="audit-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def wait_for_turn(store: ArtifactStore, release: ReleaseSpec, owner: str, *,
                  timeout_s: float = WAIT_TIMEOUT_S, logger: Logger | None = None) -> dict[str, Any] | None:
    """Wait for the concurrent audit: its manifest when it finishes, None when we took the lock."""
    deadline = time.monotonic() + timeout_s
    lock_key = layout.audit_lock_key(release.model, release.version)
    while time.monotonic() < deadline:
        manifest = audits.finished_manifest(store, release.model, release.version)
        if manifest is not None:
            return manifest
        if take_lock(store, lock_key, owner, logger=logger):
            return None
        time.sleep(WAIT_POLL_S)
    raise Llm2LossError(
        f"timed out after {timeout_s:.0f} s waiting for the concurrent audit of {release.ref}; "
        f"check that run, or delete the lock {lock_key} if it is gone, and run the audit again"
    )


def audit_exclusively(store: ArtifactStore, release: ReleaseSpec, audit: Callable[[], dict[str, Any]], *,
                      logger: Logger | None = None) -> dict[str, Any]:
    """Run `audit()` (which returns the manifest) holding the release's lock; the manifest.

    A finished audit is returned as it is. When another run holds the lock, wait for it and
    return its manifest, or take over when it died (its lock is stale).
    """
    logger = logger or _log
    done = audits.finished_manifest(store, release.model, release.version)
    if done is not None:
        logger.info("audit of %s already completed at %s; nothing to do", release.ref, done["completed_at"])
        return done
    lock_key = layout.audit_lock_key(release.model, release.version)
    owner = lock_owner()
    if not take_lock(store, lock_key, owner, logger=logger):
        logger.info("another run is auditing %s; waiting for it to finish", release.ref)
        finished = wait_for_turn(store, release, owner, logger=logger)
        if finished is not None:
            return finished
        logger.info("the run that held the lock of %s is gone; auditing it here", release.ref)
    try:
        with heartbeat(store, lock_key, owner, logger=logger):
            # The holder we waited for may have finished just before we took the lock.
            done = audits.finished_manifest(store, release.model, release.version)
            return done if done is not None else audit()
    finally:
        store.release_lock(lock_key, owner)
