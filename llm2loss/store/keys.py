"""Where every artifact lives in the store: the one place object keys are built.

Each function validates every name it joins (`validate_name`, here too) before the name becomes
part of a key, so a model called `../../x` or `a/b` can never reach outside the store prefix.
Keys use "/" and are relative to the store root. The layout (see DESIGN.md):

    datasets/<dataset>/<fingerprint>/embeddings/<encoder_fp>/part-00000.parquet
    releases/<model>/<version>/release.json  (+ weights.<ext>, weights.json, registration.json)
    audits/<model>/<version>/losses/part-00000.parquet
    audits/<model>/<version>/diagnosers/<objective>-<arch>/...
    audits/<model>/<version>/reference/held-out.parquet
    audits/<model>/<version>/report/...      (index.html, metrics.json, regression.json, ...)
    audits/<model>/<version>/manifest.json   (written last)

A sharded stage's prefix holds `part-00000.parquet`, its sidecar `part-00000.json`, the shard's
skipped samples `failures-00000.json`, `sharding.json` and, last, `manifest.json`.
"""

from __future__ import annotations

import re

from llm2loss.errors import ConfigError

RELEASES_ROOT = "releases"
AUDITS_ROOT = "audits"
DATASETS_ROOT = "datasets"
RELEASE_FILE = "release.json"
MANIFEST_FILE = "manifest.json"
SHARDING_FILE = "sharding.json"
REPORT_INDEX_FILE = "index.html"
METRICS_FILE = "metrics.json"
REGRESSION_FILE = "regression.json"
OBJECTIVES = ("rank", "regress", "familiarity")
ARCHS = ("linear", "mlp")
WEIGHTS_EXTENSIONS = (".safetensors", ".pt", ".pth")

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


def validate_name(value: object, what: str) -> str:
    """Return `value` if it is a safe name, else raise ConfigError naming `what`.

    Safe: 1-128 characters from [A-Za-z0-9._-], not starting with '.', so never '.' or '..'.
    Checked before a name (model, version, dataset, fingerprint) is joined into any key or path.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-128 characters from A-Z a-z 0-9 . _ - "
            f"(no slashes, no leading dot), e.g. 'v2' or 'spam-filter'"
        )
    return value


def check_key(key: str) -> str:
    """Return `key` if it is a clean store-relative key, else raise ConfigError.

    Clean: non-empty, no leading "/", no empty, "." or ".." segments, no backslashes. The store
    calls this on every key it is given, as a second line of defence behind the builders here.
    """
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key:
        raise ConfigError(
            f"invalid store key {key!r}: keys are relative, '/'-separated paths; "
            "build them with llm2loss.store.keys"
        )
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ConfigError(
            f"invalid store key {key!r}: empty, '.' or '..' segments are not allowed; "
            "build keys with llm2loss.store.keys"
        )
    return key


def embeddings_prefix(dataset: str, dataset_fp: str, encoder_fp: str) -> str:
    """Prefix of the embedding parts of one dataset (by content fingerprint) and one encoder."""
    return "/".join(
        (
            DATASETS_ROOT,
            validate_name(dataset, "dataset name"),
            validate_name(dataset_fp, "dataset fingerprint"),
            "embeddings",
            validate_name(encoder_fp, "encoder fingerprint"),
        )
    )


def release_prefix(model: str, version: str) -> str:
    """Folder of one release: release.json and its weights."""
    return "/".join(
        (RELEASES_ROOT, validate_name(model, "model name"), validate_name(version, "version"))
    )


def release_key(model: str, version: str) -> str:
    """Key of a release's release.json."""
    return f"{release_prefix(model, version)}/{RELEASE_FILE}"


def all_releases_prefix() -> str:
    """The listing prefix under which every release's files lie: `releases/`."""
    return f"{RELEASES_ROOT}/"


def release_names_of(key: str) -> tuple[str, str] | None:
    """(model, version) when `key` has the shape `releases/<model>/<version>/release.json`, else
    None. The names are as listed, not validated: check them (`release_key`) before use."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == RELEASES_ROOT and parts[3] == RELEASE_FILE:
        return parts[1], parts[2]
    return None


def weights_key(model: str, version: str, suffix: str) -> str:
    """Key of a release's weights file, `weights<suffix>` beside release.json.

    `suffix` is the file extension with its dot (".safetensors", ".pt" or ".pth").
    """
    if suffix not in WEIGHTS_EXTENSIONS:
        raise ConfigError(
            f"unsupported weights file extension {suffix!r}: use one of "
            f"{', '.join(WEIGHTS_EXTENSIONS)} (safetensors preferred)"
        )
    return f"{release_prefix(model, version)}/weights{suffix}"


def registration_key(model: str, version: str) -> str:
    """Key of a release's registration record (its content and weights' sha256), created only if
    absent, so one of two concurrent registrations of a version wins."""
    return f"{release_prefix(model, version)}/registration.json"


def weights_info_key(model: str, version: str) -> str:
    """Key of the JSON sidecar (PartInfo: size and sha256) of a release's weights."""
    return f"{release_prefix(model, version)}/weights.json"


def audit_prefix(model: str, version: str) -> str:
    """Folder of everything one audit of a release writes."""
    return "/".join(
        (AUDITS_ROOT, validate_name(model, "model name"), validate_name(version, "version"))
    )


def losses_prefix(model: str, version: str) -> str:
    """Prefix of the per-sample loss parts of a release's audit."""
    return f"{audit_prefix(model, version)}/losses"


def diagnosers_prefix(model: str, version: str) -> str:
    """Folder holding every diagnoser ensemble of an audit, one `<objective>-<arch>` folder each."""
    return f"{audit_prefix(model, version)}/diagnosers"


def diagnoser_prefix(model: str, version: str, objective: str, arch: str) -> str:
    """Folder of one trained diagnoser ensemble (safetensors + json) of an audit."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    return f"{diagnosers_prefix(model, version)}/{objective}-{arch}"


def held_out_key(model: str, version: str) -> str:
    """Key of an audit's held-out samples (id, loss, error, preview, embedding): the truth that
    phrase findings are grounded in, read back by queries on the finished audit."""
    return f"{audit_prefix(model, version)}/reference/held-out.parquet"


def report_prefix(model: str, version: str) -> str:
    """Folder of an audit's report (index.html, report.md, metrics.json, figures)."""
    return f"{audit_prefix(model, version)}/report"


def report_file_key(model: str, version: str, name: str) -> str:
    """Key of the file `name` (a safe name, e.g. "report.md" or a figure) in an audit's report."""
    return f"{report_prefix(model, version)}/{validate_name(name, 'report file name')}"


def report_index_key(model: str, version: str) -> str:
    """Key of an audit report's first page, index.html: what the audit manifest's `report` names."""
    return report_file_key(model, version, REPORT_INDEX_FILE)


def metrics_key(model: str, version: str) -> str:
    """Key of an audit's metrics.json (every table of the report, as numbers)."""
    return report_file_key(model, version, METRICS_FILE)


def regression_key(model: str, version: str) -> str:
    """Key of an audit's regression report against the previous version (absent when none)."""
    return report_file_key(model, version, REGRESSION_FILE)


def audit_manifest_key(model: str, version: str) -> str:
    """Key of an audit's manifest, written last; its `status` says whether the audit completed."""
    return f"{audit_prefix(model, version)}/{MANIFEST_FILE}"


def audit_lock_key(model: str, version: str) -> str:
    """Key of the lock that lets only one audit of a release run at a time."""
    return f"{audit_prefix(model, version)}/audit.lock"


def manifest_key(prefix: str) -> str:
    """Key of the stage manifest under a sharded stage's prefix."""
    return f"{check_key(prefix)}/{MANIFEST_FILE}"


def _check_index(index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 99_999:
        raise ConfigError(
            f"invalid part index {index!r}: use an int in 0..99999 (raise shard_size for "
            "more data)"
        )
    return index


def sharding_key(prefix: str) -> str:
    """Key of a sharded stage's sharding record (shard size and count), written before any part."""
    return f"{check_key(prefix)}/{SHARDING_FILE}"


def part_key(prefix: str, index: int) -> str:
    """Key of part `index` of a sharded stage: `<prefix>/part-00003.parquet`."""
    return f"{check_key(prefix)}/part-{_check_index(index):05d}.parquet"


def sidecar_key(prefix: str, index: int) -> str:
    """Key of the JSON sidecar (PartInfo) of part `index`, written after the part."""
    return f"{check_key(prefix)}/part-{_check_index(index):05d}.json"


def unreadable_key(prefix: str, index: int) -> str:
    """Key of the JSON list of the samples shard `index` of a stage could not read, beside its
    part: `<prefix>/failures-00003.json` (the stored name older stores hold)."""
    return f"{check_key(prefix)}/failures-{_check_index(index):05d}.json"


def part_index(key: str) -> int | None:
    """The index of a part or sidecar key (`.../part-00003.json` -> 3), or None for other keys."""
    name = key.rsplit("/", 1)[-1]
    stem, _, ext = name.partition(".")
    if ext not in ("parquet", "json") or not stem.startswith("part-"):
        return None
    digits = stem[len("part-") :]
    return int(digits) if len(digits) == 5 and digits.isdigit() else None
