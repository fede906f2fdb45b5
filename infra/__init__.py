"""Start and stop the real services of a local llm2loss stack, on 127.0.0.1 only.

- `infra.seaweedfs`: an S3-compatible server (SeaweedFS `weed mini`) for the artifact store;
- `infra.prefect_server`: a Prefect server (SQLite by default, Postgres by URL), telemetry off;
- `infra.dask_cluster`: a Dask scheduler and worker processes;
- `infra.worker`: a Prefect process worker polling the `llm2loss` work pool;
- `infra.stack`: `python -m infra.stack up|down|status` brings them all up or down.

Every service is started as a child process whose PID is recorded; stopping ends only those
PIDs (after checking that the PID still runs the program we started).
"""
