"""The security tests run the fault tests' audit harness (tests/faults/audit_harness.py): it is
put on sys.path here. Their fixtures (`services`, `spam_releases`) are in tests/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
