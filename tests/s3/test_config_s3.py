"""`storage: {s3: ...}` loads with and without a local directory, and every mistake is reported at
its line under its path; credentials are refused in the configuration and never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.engine.backups.model import S3Storage
from opsconsole.engine.config import ConfigError, load_config

TARGET = "  x:\n    kind: files\n    paths: [a]\n"


def load(tmp_path: Path, storage: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "opsconsole.yaml"
    path.write_text("backups:\n" + TARGET + "    storage:\n" + storage)
    return load_config(path, {"WORKSPACE": str(tmp_path / "ws")})


def messages(tmp_path: Path, storage: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, storage)
    return [str(i) for i in info.value.issues]


def test_s3_with_and_without_a_directory(tmp_path: Path) -> None:
    full = load(
        tmp_path,
        "      directory: /srv/b\n"
        "      s3: {bucket: acme-backups, prefix: /nightly/x/, endpoint: 'http://127.0.0.1:9000', region: eu-west-1}\n",
    ).backups["x"]
    assert full.directory == "/srv/b"
    assert full.s3 == S3Storage("acme-backups", "nightly/x", "http://127.0.0.1:9000", "eu-west-1")
    assert full.s3.url("r1.tar.gz") == "s3://acme-backups/nightly/x/r1.tar.gz"
    bare = load(tmp_path, "      s3: {bucket: acme-backups}\n").backups["x"]
    assert bare.directory is None  # the local copy goes to the workspace by default
    assert bare.s3 == S3Storage("acme-backups", "x")  # prefix: the target's name; AWS's endpoint
    top = load(tmp_path, "      s3: {bucket: acme-backups, prefix: /}\n").backups["x"]  # the top
    assert top.s3 is not None and top.s3.url("r1.dump") == "s3://acme-backups/r1.dump"


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("      s3: {prefix: p}\n", "backups.x.storage.s3.bucket: 'bucket' is required"),
        (
            "      s3: {bucket: Acme_Backups}\n",
            "backups.x.storage.s3.bucket: 'Acme_Backups' is not an S3 bucket",
        ),
        ("      s3: {bucket: ab}\n", "is not an S3 bucket name"),
        ("      s3: {bucket: b.., prefix: p}\n", "is not an S3 bucket name"),
        ("      s3: {bucket: bkt, prefix: 'a//b'}\n", "backups.x.storage.s3.prefix"),
        ("      s3: {bucket: bkt, prefix: 'a/../b'}\n", "'..' parts"),
        ("      s3: {bucket: bkt, endpoint: 'ftp://h'}\n", "expected http(s)://host[:port]"),
        ("      s3: {bucket: bkt, endpoint: 'http://h:9000/path'}\n", "expected http(s)://host[:port]"),
        ("      s3: {bucket: bkt, region: 'EU West'}\n", "backups.x.storage.s3.region"),
        ("      s3: {bucket: bkt, bukket: x}\n", "unknown key 'bukket'"),
        ("      s3: bkt\n", "backups.x.storage.s3: expected a mapping"),
        ("      bucket: bkt\n", "'bucket' belongs under storage.s3"),
        ("      endpoint: 'http://h'\n", "'endpoint' belongs under storage.s3"),
        ("      s3: {bucket: bkt, secret_access_key: x}\n", "S3 credentials never go in the configuration"),
    ],
)
def test_mistakes_are_reported_with_their_path(tmp_path: Path, storage: str, expected: str) -> None:
    found = messages(tmp_path, storage)
    assert any(expected in m for m in found), found
    assert all("opsconsole.yaml:" in m for m in found), found


def test_credentials_are_never_echoed(tmp_path: Path) -> None:
    found = messages(
        tmp_path,
        "      s3: {bucket: bkt, access_key: AKIAXX, secret_key: hunter2, endpoint: 'http://u:hunter3@h'}\n",
    )
    assert len(found) == 3, found
    assert not any(s in m for m in found for s in ("hunter2", "hunter3", "AKIAXX")), found
    assert any("credentials in the endpoint URL" in m for m in found), found
