"""A bounded load test on 127.0.0.1: 20 concurrent queries against one finished audit while two
other releases are audited at once, all on SeaweedFS.

First the audit of spam-filter v1 is finished and asked, quietly, for its estimates and one
comparison. Then two audits (v2 and a copy of v1 under another version) start in two threads and,
while they run, 20 threads each open the finished audit afresh (manifest, diagnosers from S3, the
encoder) and ask the same questions. Every answer must equal the quiet one, no query may fail,
both audits must complete, and every id must appear exactly once in their stages. The figures
(query latency quiet and under load, how many queries overlapped the audits) are printed for
README's reliability section.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from audit_harness import plan_of, run_flow, small_settings, stage_ids

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.config import DiagnoserSettings, StoreSettings
from llm2loss.query import AuditQuery

pytestmark = pytest.mark.integration

N_QUERIES = 20
PHRASES = ["an email written in HTML", "a message from a mailing list", "a plain-text email",
           "an advertisement for a mortgage"]


def _ask(store_settings: StoreSettings, model: str, version: str) -> tuple[pd.DataFrame, dict, float]:
    start = time.perf_counter()
    query = AuditQuery(store_settings, model, version)
    table = query.estimate(PHRASES)
    comparison = query.compare(PHRASES[0], PHRASES[2])
    return table, comparison, time.perf_counter() - start


def test_twenty_queries_during_two_audits_answer_as_in_a_quiet_run(services, s3_store, cache_dir, spam_releases):
    v1, w1 = spam_releases[0]
    v2, w2 = spam_releases[1]
    store_settings = StoreSettings(uri=s3_store.uri, endpoint_url=s3_store.endpoint_url)
    cfg = small_settings(store_settings, services.scheduler_address, cache_dir,
                         diagnosers=DiagnoserSettings(objectives=["rank", "familiarity"], archs=["mlp"],
                                                      n_members=2))
    store = stages.get_store(cfg.store)
    copy = v1.model_copy(update={"version": "v1-copy"})
    for release, weights in ((v1, w1), (v2, w2), (copy, w1)):
        registry.register(store, release, weights_file=weights)
    run_flow(cfg, v1.model, v1.version)
    quiet_table, quiet_comparison, _ = _ask(store_settings, v1.model, v1.version)  # warm-up
    quiet = [_ask(store_settings, v1.model, v1.version)[2] for _ in range(3)]

    audits_running = threading.Event()
    states: dict[str, object] = {}

    def audit(release) -> None:
        audits_running.set()
        states[release.version] = run_flow(cfg, release.model, release.version)[1]

    audit_threads = [threading.Thread(target=audit, args=(r,)) for r in (v2, copy)]
    for t in audit_threads:
        t.start()
    audits_running.wait()
    with ThreadPoolExecutor(max_workers=N_QUERIES) as pool:
        futures = [pool.submit(_ask, store_settings, v1.model, v1.version) for _ in range(N_QUERIES)]
        answers = [f.result() for f in futures]  # a failed query raises here
    during = sum(t.is_alive() for t in audit_threads)
    for t in audit_threads:
        t.join()

    for table, comparison, _ in answers:
        pd.testing.assert_frame_equal(table, quiet_table, check_exact=True)
        assert comparison == quiet_comparison
    for release in (v2, copy):
        assert states[release.version].is_completed()
        plan = plan_of(cfg, release)
        for prefix in (plan.embeddings_prefix, plan.losses_prefix):
            ids = stage_ids(store, prefix)
            assert len(ids) == len(set(ids)) and len(ids) > 100
    latencies = [seconds for _, _, seconds in answers]
    print(f"\nload: quiet query {statistics.median(quiet):.2f} s (median of 3); under load "
          f"{N_QUERIES} queries median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s; "
          f"audits still running when the last query finished: {during} of 2")
