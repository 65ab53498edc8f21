"""S3 copies of backups: upload a whole local copy, hash a stored copy back, download one, delete one.

boto3 is imported here only, and only when a target has `storage.s3`. Every call runs in the caller's
thread (no transfer threads: the service's methods are already called from a worker thread), with
connect and read timeouts and a bounded number of attempts, so an unreachable endpoint fails a run in
seconds. Credentials come from boto3's usual chain and never appear in a message.

No object that looks complete: an upload is written straight to its final key because S3 makes an
object visible only once its PutObject (or CompleteMultipartUpload) has received the whole body — a
transfer cut half way leaves nothing under the key. A failed multipart upload is aborted when the
endpoint still answers; the parts of one that cannot be aborted are never an object (a bucket rule
"AbortIncompleteMultipartUpload" clears them). After the upload the object's size and the sha256 kept
in its metadata are read back and compared, and a copy that does not match is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from .errors import BackupError
from .model import S3Storage

CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 60.0
ATTEMPTS: Final = 3
"""Tries per request (the first one included), with boto3's standard backoff between them."""
MULTIPART_THRESHOLD = 256 << 20
"""Copies above this go up in parts of MULTIPART_PART bytes (one part at a time)."""
MULTIPART_PART = 64 << 20
CHUNK: Final = 1 << 20
SCHEME: Final = "s3://"


def is_s3(location: str) -> bool:
    return location.startswith(SCHEME)


def split(location: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    bucket, _, key = location.removeprefix(SCHEME).partition("/")
    if not is_s3(location) or not bucket or not key:
        raise BackupError("storage", f"{location!r} is not an s3://bucket/key location")
    return bucket, key


class S3:
    """One target's S3 storage; the boto3 client is made on first use."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise BackupError(
                    "config", f"S3 storage needs boto3 (pip install 'opsconsole[aws]'): {exc}"
                ) from exc
            config = Config(
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                retries={"max_attempts": ATTEMPTS, "mode": "standard"},
                s3={"addressing_style": "path"} if self.storage.endpoint else None,
            )
            try:
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.storage.endpoint,
                    region_name=self.storage.region,
                    config=config,
                )
            except Exception as exc:
                raise _error(exc, f"S3 client for {SCHEME}{self.storage.bucket}") from exc
        return self._client

    def upload(self, path: Path, sha256: str) -> str:
        """Upload the whole local copy `path` under the target's prefix; returns its s3:// location."""
        location = self.storage.url(path.name)
        bucket, key = split(location)
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_PART,
            use_threads=False,
        )
        size = path.stat().st_size
        try:
            self.client.upload_file(
                str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": sha256}}, Config=transfer
            )
            head = self.client.head_object(Bucket=bucket, Key=key)
        except BackupError:
            raise
        except Exception as exc:
            raise _error(exc, f"uploading {location}") from exc
        stored = int(head.get("ContentLength", -1))
        kept = str(head.get("Metadata", {}).get("sha256", ""))
        if stored != size or kept != sha256:
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=bucket, Key=key)
            raise BackupError(
                "checksum", f"{location}: {stored} bytes stored of {size}, or another sha256; deleted"
            )
        return location

    def sha256(self, location: str) -> tuple[str, int]:
        """Read the stored copy back in full: its sha256 and size."""
        h = hashlib.sha256()
        size = 0
        for chunk in self._chunks(location):
            h.update(chunk)
            size += len(chunk)
        return h.hexdigest(), size

    def download(self, location: str, directory: Path, sha256: str) -> Path:
        """Fetch the stored copy into a hidden temporary file in `directory` and check it against the
        record's sha256; the caller removes the file. Nothing is left behind on failure."""
        directory.mkdir(parents=True, exist_ok=True)
        name = split(location)[1].rsplit("/", 1)[-1]
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".download", dir=directory)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as f:
                for chunk in self._chunks(location):
                    h.update(chunk)
                    f.write(chunk)
            if h.hexdigest() != sha256:
                raise BackupError(
                    "checksum",
                    f"{location}: sha256 {h.hexdigest()[:12]}… does not match the record's {sha256[:12]}…",
                )
        except OSError as exc:  # writing the temporary (reading S3 raises BackupError)
            tmp.unlink(missing_ok=True)
            kind = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "storage"
            raise BackupError(kind, f"fetching {location} into {directory}: {exc.strerror or exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def delete(self, location: str) -> None:
        bucket, key = split(location)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise _error(exc, f"deleting {location}") from exc

    def _chunks(self, location: str) -> Iterator[bytes]:
        bucket, key = split(location)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()
        except BackupError:
            raise
        except Exception as exc:
            raise _error(exc, f"reading {location}") from exc


def _error(exc: BaseException, what: str) -> BackupError:
    """A boto3/botocore failure as a BackupError of the right kind, one line, no credentials."""
    from botocore import exceptions as bx

    seen: BaseException | None = exc
    while seen is not None:  # boto3's S3UploadFailedError wraps the ClientError it gives up on
        if isinstance(seen, bx.ClientError | bx.BotoCoreError):
            exc = seen
            break
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return BackupError(
            "auth",
            f"{what}: no S3 credentials (boto3 looks in the environment, ~/.aws and the instance role)",
        )
    if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return BackupError("timeout", f"{what}: S3 did not answer in time ({ATTEMPTS} attempts)")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.ConnectionError):
        return BackupError("unreachable", f"{what}: S3 unreachable after {ATTEMPTS} attempts ({exc})")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or code
        if code in ("NoSuchKey", "404", "NotFound"):
            return BackupError("storage", f"{what}: the object is missing")
        if code == "NoSuchBucket":
            return BackupError("storage", f"{what}: the bucket does not exist")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return BackupError("auth", f"{what}: S3 refused the credentials or the access ({code})")
        return BackupError("failed", f"{what}: S3 said {code}: {message}")
    if isinstance(exc, bx.BotoCoreError):
        return BackupError("failed", f"{what}: {exc}")
    return BackupError("failed", f"{what}: {type(exc).__name__}: {exc}")
