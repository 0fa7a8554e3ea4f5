"""Sign-in back-off and file ownership, on their own (the real server runs them in tests/app/slow)."""

from __future__ import annotations

from contract_review.app.guard import FileOwners, LoginThrottle, remove_upload


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_failed_sign_ins_back_off_exponentially_and_a_success_clears_them():
    clock = Clock()
    t = LoginThrottle(free=5, max_wait=900, global_per_minute=1000, clock=clock)
    for _ in range(5):
        assert t.wait("10.0.0.1") == 0
        t.failed("10.0.0.1")
    waits = []
    for _ in range(6):
        w = t.wait("10.0.0.1")
        waits.append(w)
        clock.t += w
        assert t.wait("10.0.0.1") == 0
        t.failed("10.0.0.1")
    assert waits == [1, 2, 4, 8, 16, 32]
    assert t.wait("10.0.0.2") == 0  # another address is not held up
    t.succeeded("10.0.0.1")
    assert t.wait("10.0.0.1") == 0


def test_the_wait_is_capped_and_many_addresses_share_a_ceiling():
    clock = Clock()
    t = LoginThrottle(free=0, max_wait=900, global_per_minute=1000, clock=clock)
    for _ in range(20):
        t.failed("a")
    assert t.wait("a") == 900
    g = LoginThrottle(free=5, global_per_minute=30, clock=clock)
    for i in range(30):
        g.failed(f"10.0.{i}.1")  # one failure from each of 30 addresses
    assert 0 < g.wait("10.9.9.9") <= 60  # sign-in closed for everyone until the minute has passed
    clock.t += 61
    assert g.wait("10.9.9.9") == 0


def test_files_in_the_temporary_folder_are_served_to_their_owner_only(tmp_path):
    files = FileOwners(tmp_path)
    upload = tmp_path / "ab" / "nda.pdf"
    upload.parent.mkdir()
    upload.write_bytes(b"x")
    files.register(upload, "owner-a")
    assert files.allowed(upload, "owner-a")
    assert not files.allowed(upload, "owner-b") and not files.allowed(upload, "")
    assert not files.allowed(tmp_path / "ab" / "other.pdf", "owner-a")  # never recorded: nobody's
    assert files.allowed("/usr/share/doc", "")  # outside the folder: Gradio's own rules apply
    assert not files.allowed(tmp_path / "ab" / ".." / "ab" / "nda.pdf", "owner-b")
    remove_upload(upload, files)
    assert not upload.exists() and not upload.parent.exists() and len(files) == 0
