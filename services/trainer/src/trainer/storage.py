"""Read and write files by URI: file:///abs/path, plain paths, s3://bucket/key or gs://bucket/key.

pyarrow.fs does the I/O, so neither s3fs nor gcsfs is needed, and no credential is ever read
here: each SDK's default chain finds the pod's own.
- s3:// goes to the S3-compatible endpoint in AWS_ENDPOINT_URL (else MLFLOW_S3_ENDPOINT_URL),
  or to AWS S3 by region. On AWS the pod's IAM role through IRSA (the web identity token EKS
  mounts, no key anywhere); on kind the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of the
  team's storage Secret.
- gs:// is GCS's own API with Google's default credentials: on GKE the GCP service account
  the pod's Kubernetes service account is bound to (Workload Identity, no key anywhere).
  STORAGE_EMULATOR_HOST (http://host:port), the variable Google's clients honour, points it
  at an emulator instead, anonymously.
Every function normalises its URI first, so errors always name the canonical URI.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ml_dependencies import GCS_EMULATOR_ENV, bound, s3_endpoint
from trainer.errors import StorageError

_DEFAULT_REGION = "us-east-1"
_BUCKET_SCHEMES = ("s3", "gs")


def normalize(uri: str) -> str:
    """The canonical form of `uri`: plain paths become absolute file:// URIs."""
    if not uri:
        raise StorageError("empty URI")
    parsed = urlparse(uri)
    if parsed.scheme in _BUCKET_SCHEMES:
        if not parsed.netloc:
            raise StorageError(f"{uri}: no bucket (expected {parsed.scheme}://<bucket>/<key>)")
        root = f"{parsed.scheme}://{parsed.netloc}"
        return uri.rstrip("/") if parsed.path not in ("", "/") else root
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{uri}: file:// URIs must be absolute (file:///path)")
        return "file://" + _clean_local(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter would be a Windows drive
        raise StorageError(
            f"{uri}: unsupported URI scheme {parsed.scheme!r} (use file://, s3:// or gs://)"
        )
    return "file://" + _clean_local(os.path.abspath(uri))


def _clean_local(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" if cleaned == "/" else cleaned.rstrip("/")


def join(uri: str, name: str) -> str:
    """`name` inside the folder `uri`."""
    return normalize(uri).rstrip("/") + "/" + name.lstrip("/")


def _s3_filesystem() -> pafs.S3FileSystem:
    """A filesystem for the configured endpoint; credentials from the SDK's default chain."""
    # The same variables ml_dependencies reads to name this endpoint when it is unreachable.
    endpoint = s3_endpoint()
    # An explicit region avoids a slow lookup that fails outside AWS.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    # Timeouts and retries within ML_PLATFORM_DEPENDENCY_TIMEOUT: a dead endpoint fails fast.
    options: dict[str, Any] = {"region": region or _DEFAULT_REGION, **bound().pyarrow_s3_options()}
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StorageError(f"AWS_ENDPOINT_URL {endpoint!r} must look like http://host:port")
        options["endpoint_override"] = parsed.netloc
        options["scheme"] = parsed.scheme
    return pafs.S3FileSystem(**options)


def _gcs_filesystem() -> pafs.GcsFileSystem:
    """GCS with Google's default credentials, or the emulator in STORAGE_EMULATOR_HOST."""
    options: dict[str, Any] = bound().pyarrow_gcs_options()
    emulator = os.environ.get(GCS_EMULATOR_ENV)
    if emulator:
        parsed = urlparse(emulator)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StorageError(f"{GCS_EMULATOR_ENV} {emulator!r} must look like http://host:port")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme, anonymous=True)
    return pafs.GcsFileSystem(**options)


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    uri = normalize(uri)
    parsed = urlparse(uri)
    if parsed.scheme in _BUCKET_SCHEMES:
        filesystem = _s3_filesystem() if parsed.scheme == "s3" else _gcs_filesystem()
        return filesystem, (parsed.netloc + parsed.path).rstrip("/")
    return pafs.LocalFileSystem(), parsed.path


def _info(uri: str) -> pafs.FileInfo:
    uri = normalize(uri)
    filesystem, path = _resolve(uri)
    try:
        return filesystem.get_file_info(path)
    except OSError as exc:
        raise StorageError(f"{uri}: cannot inspect: {_one_line(exc)}") from exc


def exists(uri: str) -> bool:
    return _info(uri).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    return _info(uri).type == pafs.FileType.Directory


def list_files(uri: str, suffix: str = "") -> list[str]:
    """URIs of the files directly inside the folder `uri` whose names end with `suffix`, sorted."""
    uri = normalize(uri)
    filesystem, path = _resolve(uri)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as exc:
        raise StorageError(f"{uri}: cannot list: {_one_line(exc)}") from exc
    # An object store lists a missing folder as empty (pyarrow's GCS, unlike its S3, says
    # nothing else): only then is it worth asking whether the folder is there.
    if not infos and _info(uri).type == pafs.FileType.NotFound:
        raise StorageError(f"{uri}: not found")
    names = sorted(
        info.base_name
        for info in infos
        if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
    )
    return [join(uri, name) for name in names]


def read_bytes(uri: str) -> bytes:
    uri = normalize(uri)
    filesystem, path = _resolve(uri)
    info = _info(uri)
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{uri}: not found")
    if info.type != pafs.FileType.File:
        raise StorageError(f"{uri}: is a folder, expected a file")
    try:
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    except OSError as exc:
        raise StorageError(f"{uri}: cannot read: {_one_line(exc)}") from exc


def write_bytes(data: bytes, uri: str) -> None:
    """Writes the whole file or nothing: local files go through a temporary name first."""
    uri = normalize(uri)
    filesystem, path = _resolve(uri)
    try:
        if isinstance(filesystem, pafs.LocalFileSystem):
            filesystem.create_dir(posixpath.dirname(path), recursive=True)
            temporary = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with filesystem.open_output_stream(temporary) as stream:
                    stream.write(data)
                filesystem.move(temporary, path)
            finally:
                if filesystem.get_file_info(temporary).type != pafs.FileType.NotFound:
                    filesystem.delete_file(temporary)
        else:
            # An S3 or GCS upload is atomic already; object stores have no folders to create.
            with filesystem.open_output_stream(path) as stream:
                stream.write(data)
    except OSError as exc:
        raise StorageError(f"{uri}: cannot write: {_one_line(exc)}") from exc


def parse_parquet(data: bytes, uri: str) -> pa.Table:
    """The table in `data`, read from `uri`; corrupt bytes raise StorageError naming it."""
    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise StorageError(f"{uri}: not a readable Parquet file ({_one_line(exc)})") from exc


def read_table(uri: str) -> pa.Table:
    uri = normalize(uri)
    return parse_parquet(read_bytes(uri), uri)


def read_parquet(uri: str) -> pd.DataFrame:
    return read_table(uri).to_pandas()


def write_parquet(frame: pd.DataFrame, uri: str) -> None:
    buffer = io.BytesIO()
    # No index and fixed writer settings, so equal frames give equal bytes.
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    write_bytes(buffer.getvalue(), uri)


def read_json(uri: str) -> Any:
    uri = normalize(uri)
    data = read_bytes(uri)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StorageError(f"{uri}: not valid JSON ({_one_line(exc)})") from exc


def write_json(value: Any, uri: str, sort_keys: bool = True) -> None:
    text = json.dumps(value, indent=2, sort_keys=sort_keys)
    write_bytes((text + "\n").encode(), uri)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
