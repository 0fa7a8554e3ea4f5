"""What the page and the API do without Gradio: models by name only, uploads read once by their owner and
deleted, the size limit named, a page's folder and reviews gone when it closes."""

from __future__ import annotations

import pytest
from app_files import SAMPLE, count_files

from contract_review.app.guard import FileOwners
from contract_review.app.jobs import Job
from contract_review.app.service import AppConfig, ReviewService, UserFacing
from contract_review.app.sessions import Sessions
from contract_review.paths import REPO_ROOT
from contract_review.predictor import parse_model


def service(tmp_path, **config) -> ReviewService:
    files = FileOwners(tmp_path)
    return ReviewService(AppConfig(default=parse_model("rules"), **config), files, Sessions(tmp_path / "sessions", files))


def uploaded(tmp_path, name: str, data: bytes, owner: str, files: FileOwners):
    """A file where Gradio puts an upload: its own folder under the server's temporary folder."""
    folder = tmp_path / "4f1c0e9a"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    files.register(folder / name, owner)
    return folder / name


def test_no_caller_can_name_a_server_path_as_the_model(tmp_path):
    svc = service(tmp_path)
    values = [v for _, v in svc.model_choices()]
    assert values == ["default", "reviewer", "rules"]
    for probe in ("/root", "local", "/", "../data/model/reviewer", str(REPO_ROOT / "data"), "folder:reviewer"):
        with pytest.raises(UserFacing, match=r"Unknown model .*: choose one of default, reviewer, rules$"):
            svc.choose(probe)
    assert svc.choose(None).model == "rules"  # the server's model when the page sends none


def test_an_operator_models_folder_is_offered_by_folder_name_only(tmp_path):
    models = tmp_path / "models"
    (models / "not-a-reviewer").mkdir(parents=True)
    svc = service(tmp_path, models_dir=models)
    assert [v for _, v in svc.model_choices()] == ["default", "reviewer", "rules"]  # no reviewer folder in it
    with pytest.raises(UserFacing, match="Unknown model"):
        svc.choose("folder:not-a-reviewer")
    with pytest.raises(ValueError, match="--models-dir .*: no such folder"):
        AppConfig(models_dir=tmp_path / "missing")


def test_an_upload_is_read_once_by_its_owner_then_deleted(tmp_path):
    svc = service(tmp_path)
    before = count_files(tmp_path)
    path = uploaded(tmp_path, "msa.txt", SAMPLE.encode(), "owner-a", svc.files)
    contract = svc.read_upload(str(path), "msa.txt", "owner-a")
    assert contract.text.startswith(SAMPLE[:40]) and not path.exists() and not path.parent.exists()
    assert count_files(tmp_path) == before and len(svc.files) == 0
    with pytest.raises(UserFacing, match="msa.txt: the file is gone"):
        svc.read_upload(str(path), "msa.txt", "owner-a")  # Review again reads the page's text, never the file

    other = uploaded(tmp_path, "nda.txt", SAMPLE.encode(), "owner-a", svc.files)
    with pytest.raises(UserFacing, match="nda.txt: the file is gone"):
        svc.read_upload(str(other), "nda.txt", "owner-b")  # another browser with its path reads nothing
    assert other.exists()  # nor deletes it: its owner still reads it
    assert svc.read_upload(str(other), "nda.txt", "owner-a").text and not other.exists()
    gradio_own = tmp_path / "cache-file.txt"
    gradio_own.write_text(SAMPLE)
    with pytest.raises(UserFacing, match="the file is gone"):
        svc.read_upload(str(gradio_own), "x.txt", "")  # a file nobody uploaded is nobody's to read
    assert gradio_own.exists()


def test_an_oversize_upload_is_refused_with_the_limit_named_and_deleted(tmp_path):
    svc = service(tmp_path, max_bytes=1024 * 1024)
    path = uploaded(tmp_path, "big.txt", b"The Supplier shall deliver. " * 45_000, "a", svc.files)
    with pytest.raises(UserFacing, match=r"big.txt is 1\.2 MB, over the 1\.0 MB limit for one contract"):
        svc.read_upload(str(path), "big.txt", "a")
    assert not path.exists() and count_files(tmp_path) == 0


def test_a_review_runs_on_the_named_model_and_a_cancelled_one_says_so(tmp_path):
    svc = service(tmp_path)
    contract = svc.read_pasted(SAMPLE)
    review = svc.review(contract, "rules", None, False, Job())
    assert review.summary["clauses"] == 6 and all(f.where for f in review.findings)
    job = Job()
    job.cancel()
    with pytest.raises(UserFacing, match="The review was cancelled"):
        svc.review(contract, "rules", None, False, job)


def test_closing_a_page_cancels_its_review_and_removes_its_folder(tmp_path):
    svc = service(tmp_path)
    folder = svc.sessions.folder("page-1", "owner-a")
    export = svc.sessions.keep("page-1", folder / "report.json", "owner-a")
    export.write_text("{}")
    assert svc.files.allowed(export, "owner-a") and not svc.files.allowed(export, "owner-b")
    job = Job()
    svc.sessions.start("page-1", job)
    svc.sessions.close("page-1")
    assert job.cancelled  # nobody is left to read it: it stops before its next batch
    assert not folder.exists() and len(svc.sessions) == 0 and not svc.files.allowed(export, "owner-a")
    assert list((tmp_path / "sessions").iterdir()) == []
