"""S3 storage for backups against a real S3 endpoint (moto's server on 127.0.0.1): upload, verify
of every copy, prune, restore from S3 alone, and the faults — unreachable, cut half way (single put
and multipart), a changed S3 copy."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from opsconsole.engine import Engine
from opsconsole.engine.backups import s3 as s3mod

from .conftest import SECRET_KEY, CutProxy, client, free_port, keys


def _s3_location(run_locations: tuple[str, ...]) -> str:
    found = [loc for loc in run_locations if loc.startswith("s3://")]
    assert len(found) == 1, run_locations
    return found[0]


def _no_secret(engine: Engine, *texts: str) -> None:
    audit = json.dumps([e.data for e in engine.audit_events("backup:site")], default=str)
    for text in (*texts, audit):
        assert SECRET_KEY not in text


def test_run_uploads_the_whole_archive_and_records_its_location(
    engine: Engine, s3_server: str, bucket: str
) -> None:
    run = engine.run_backup("site")
    assert run.status == "ok", run.reason
    local = Path(run.locations[0])
    assert local.is_file() and local.stat().st_size == run.size  # locations[0] stays the local path
    location = _s3_location(run.locations)
    assert location == f"s3://{bucket}/nightly/site/{local.name}"
    obj = client(s3_server).get_object(Bucket=bucket, Key=f"nightly/site/{local.name}")
    body = obj["Body"].read()
    assert hashlib.sha256(body).hexdigest() == run.sha256 and len(body) == run.size
    assert obj["Metadata"]["sha256"] == run.sha256
    assert engine.backups("site")[0].locations == run.locations  # the record lists both


def test_verify_reads_back_every_copy(engine: Engine) -> None:
    run = engine.run_backup("site")
    checked = engine.verify_backup("site")
    assert checked.status == "verified", checked.verify_result
    assert "every checksum matches" in checked.verify_result
    assert f"{_s3_location(run.locations)}: sha256 matches" in checked.verify_result
    assert "S3" in checked.verified_how


def test_a_changed_s3_copy_fails_verification_naming_it(engine: Engine, s3_server: str) -> None:
    run = engine.run_backup("site")
    location = _s3_location(run.locations)
    bucket, key = s3mod.split(location)
    client(s3_server).put_object(Bucket=bucket, Key=key, Body=b"not the archive")
    checked = engine.verify_backup("site")
    assert checked.status == "verify_failed" and checked.error_kind == "checksum"
    assert location in checked.verify_result and run.locations[0] not in checked.verify_result
    assert engine.backup_status("site")["site"].state == "failing"


def test_restore_works_when_only_the_s3_copy_is_left(engine: Engine, site: Path, tmp_path: Path) -> None:
    run = engine.run_backup("site")
    local = Path(run.locations[0])
    local.unlink()
    into = tmp_path / "restored"
    result = engine.restore_backup("site", run.id, into=str(into))
    restored = {p.name: p.read_bytes() for p in into.rglob("*") if p.is_file()}
    assert restored["noise.bin"] == (site / "noise.bin").read_bytes()
    assert restored["a.txt"] == b"alpha\n" and result.into == str(into)
    assert not list(local.parent.iterdir())  # the download was a temporary, removed afterwards


def test_restore_refuses_when_no_copy_matches(engine: Engine, s3_server: str, tmp_path: Path) -> None:
    run = engine.run_backup("site")
    Path(run.locations[0]).unlink()
    bucket, key = s3mod.split(_s3_location(run.locations))
    client(s3_server).put_object(Bucket=bucket, Key=key, Body=b"tampered")
    with pytest.raises(Exception, match="does not match the record") as info:
        engine.restore_backup("site", run.id, into=str(tmp_path / "r"))
    assert run.locations[0] in str(info.value) and "not restored" in str(info.value)
    assert not (tmp_path / "r").exists()


def test_prune_removes_the_s3_copies(engine: Engine, s3_server: str, bucket: str) -> None:
    runs = [engine.run_backup("site") for _ in range(3)]
    assert all(r.status == "ok" for r in runs)
    assert len(keys(s3_server, bucket)) == 3
    decisions = engine.prune_backups("site")
    gone = [d.run for d in decisions if not d.keep]
    assert [r.id for r in gone] == [runs[0].id]
    left = keys(s3_server, bucket)
    assert left == sorted(s3mod.split(_s3_location(r.locations))[1] for r in runs[1:])
    assert not Path(runs[0].locations[0]).exists()


def test_unreachable_s3_fails_the_run_and_keeps_earlier_backups(
    make_engine: Callable[..., Engine], s3_server: str, bucket: str
) -> None:
    good = make_engine().run_backup("site")
    assert good.status == "ok", good.reason
    engine = make_engine(endpoint=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    failed = engine.run_backup("site")
    assert failed.status == "failed" and failed.error_kind == "unreachable", failed.reason
    assert "s3://" in failed.reason and "unreachable" in failed.reason
    assert failed.locations == ()
    directory = Path(good.locations[0]).parent
    assert [p.name for p in directory.iterdir()] == [Path(good.locations[0]).name]  # no local leftover
    assert keys(s3_server, bucket) == [s3mod.split(_s3_location(good.locations))[1]]
    stored = {r.id: r.status for r in engine.backups("site")}
    assert stored == {good.id: "ok", failed.id: "failed"}
    _no_secret(engine, failed.reason)


def test_upload_cut_half_way_leaves_no_object(
    make_engine: Callable[..., Engine], s3_server: str, bucket: str, cut_proxy: Callable[[int], CutProxy]
) -> None:
    good = make_engine().run_backup("site")
    proxy = cut_proxy(200_000)  # of a ~1 MiB archive
    engine = make_engine(endpoint=proxy.endpoint)
    failed = engine.run_backup("site")
    assert proxy.cut.is_set()
    assert failed.status == "failed" and failed.error_kind in ("unreachable", "timeout"), failed.reason
    assert "uploading s3://" in failed.reason
    assert keys(s3_server, bucket) == [s3mod.split(_s3_location(good.locations))[1]]
    assert engine.backups("site")[-1].status == "ok"  # the earlier good backup is kept
    assert len(list(Path(good.locations[0]).parent.iterdir())) == 1
    _no_secret(engine, failed.reason)


def test_multipart_upload_interrupted_leaves_no_object(
    make_engine: Callable[..., Engine],
    s3_server: str,
    bucket: str,
    site: Path,
    cut_proxy: Callable[[int], CutProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (site / "noise.bin").write_bytes(os.urandom(11 << 20))  # an archive of three 5 MiB parts
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(s3mod, "MULTIPART_PART", 5 << 20)  # S3's smallest part
    proxy = cut_proxy(8 << 20)  # the first part goes up, the second is cut
    engine = make_engine(endpoint=proxy.endpoint)
    failed = engine.run_backup("site")
    assert proxy.cut.is_set()
    assert failed.status == "failed", failed.reason
    assert "uploading s3://" in failed.reason
    assert keys(s3_server, bucket) == []
    # The parts already sent stay as an incomplete upload that was never completed (its abort could
    # not reach the endpoint either): no object, and nothing a listing or a restore would find.
    uploads = client(s3_server).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [f"nightly/site/{failed.id}.tar.gz"]  # it went up in parts
    assert not engine.backups("site")[0].locations


def test_s3_unreachable_during_verify_names_the_copy_and_a_later_verify_passes(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    run = engine.run_backup("site")
    location = _s3_location(run.locations)
    dead = make_engine(endpoint=f"http://127.0.0.1:{free_port()}")
    checked = dead.verify_backup("site", run.id)
    assert checked.status == "verify_failed" and checked.error_kind == "unreachable"
    assert location in checked.verify_result
    again = engine.verify_backup("site", run.id)
    assert again.status == "verified", again.verify_result


def test_prune_with_s3_unreachable_says_which_copies_stayed(
    make_engine: Callable[..., Engine], s3_server: str, bucket: str
) -> None:
    runs = [make_engine().run_backup("site") for _ in range(3)]
    dead = make_engine(endpoint=f"http://127.0.0.1:{free_port()}")
    decisions = dead.prune_backups("site")
    gone = [d for d in decisions if not d.keep]
    assert [d.run.id for d in gone] == [runs[0].id]
    location = _s3_location(runs[0].locations)
    assert location in gone[0].why and "stays" in gone[0].why
    audit = [e.data for e in dead.audit_events("backup:site") if e.action == "backup.prune"]
    assert location in audit[-1]["not_deleted"][0]
    assert len(keys(s3_server, bucket)) == 3  # nothing was deleted that could not be
    assert not Path(runs[0].locations[0]).exists()
