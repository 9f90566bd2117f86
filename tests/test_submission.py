"""Loading submissions: zips, folders, bare files, and zips that try to escape."""
import io
import stat
import zipfile

import pytest

from grader.engine.submission import SubmissionError, load_submission

REQ = ("codebase/gan.py",)


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, name)
            else:
                zf.writestr(name, data)
    return path


@pytest.mark.parametrize("layout", ["codebase/gan.py", "hw3/codebase/gan.py", "gan.py", "a/b/gan.py"])
def test_finds_the_student_file_wherever_it_is(tmp_path, layout):
    z = make_zip(tmp_path / "s.zip", [(layout, "x = 1\n"), ("__MACOSX/._gan.py", "junk")])
    sub = load_submission(z, REQ)
    try:
        assert sub.problems == []
        assert (sub.files_dir / "codebase" / "gan.py").read_text() == "x = 1\n"
    finally:
        sub.cleanup()


def test_sample_grids_next_to_codebase_are_kept(tmp_path):
    z = make_zip(tmp_path / "s.zip", [("w/codebase/gan.py", "x = 1\n"), ("w/out_minimax/fake_0050.png", "p")])
    sub = load_submission(z, REQ, ("out*/fake_*.png",))
    try:
        assert (sub.files_dir / "out_minimax" / "fake_0050.png").is_file()
    finally:
        sub.cleanup()


def test_missing_file_is_a_problem_not_an_exception(tmp_path):
    z = make_zip(tmp_path / "s.zip", [("readme.txt", "hi")])
    sub = load_submission(z, REQ)
    assert sub.problems == ["codebase/gan.py is missing from the submission"]
    sub.cleanup()


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil.py", "a/../../evil.py", "C:/evil.py"])
def test_zip_slip_is_refused(tmp_path, name):
    z = make_zip(tmp_path / "s.zip", [(name, "x"), ("codebase/gan.py", "x = 1\n")])
    with pytest.raises(SubmissionError, match="unsafe path"):
        load_submission(z, REQ)
    assert not (tmp_path / "evil.py").exists()


def test_symlink_entries_are_refused(tmp_path):
    info = zipfile.ZipInfo("codebase/gan.py")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(SubmissionError, match="symbolic link"):
        load_submission(z, REQ)


def test_corrupt_zip_is_refused(tmp_path):
    z = tmp_path / "s.zip"
    z.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(SubmissionError, match="not a readable zip"):
        load_submission(z, REQ)


def test_zip_bomb_is_capped(tmp_path, monkeypatch):
    """(safe_extract is what the bounded helper runs; the cap is lowered here, in this process.)"""
    import grader.engine.submission as s

    monkeypatch.setattr(s, "MAX_TOTAL_BYTES", 1000)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("codebase/gan.py", "0" * 5000)
    z = tmp_path / "s.zip"
    z.write_bytes(buf.getvalue())
    (tmp_path / "dest").mkdir()
    with pytest.raises(SubmissionError, match="more than"):
        s.safe_extract(z, tmp_path / "dest")


def test_a_real_zip_bomb_is_refused_by_the_helper(tmp_path):
    """250 MB of zeros in a 250 KB zip: refused from its headers, before a byte is unpacked."""
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("codebase/gan.py", "w") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(250):
                f.write(chunk)
    assert z.stat().st_size < 1 << 20
    with pytest.raises(SubmissionError, match="unpacks to more than 200 MB"):
        load_submission(z, REQ)


def test_folder_and_bare_file(tmp_path):
    (tmp_path / "f" / "codebase").mkdir(parents=True)
    (tmp_path / "f" / "codebase" / "gan.py").write_text("y = 2\n")
    (tmp_path / "gan.py").write_text("z = 3\n")
    for path, text in ((tmp_path / "f", "y = 2\n"), (tmp_path / "gan.py", "z = 3\n")):
        sub = load_submission(path, REQ)
        assert (sub.files_dir / "codebase" / "gan.py").read_text() == text
        sub.cleanup()


def test_same_content_same_hash(tmp_path):
    a = make_zip(tmp_path / "a.zip", [("codebase/gan.py", "x = 1\n")])
    b = make_zip(tmp_path / "b.zip", [("sub/codebase/gan.py", "x = 1\n")])
    sa, sb = load_submission(a, REQ), load_submission(b, REQ)
    assert sa.sha256 == sb.sha256
    sa.cleanup(), sb.cleanup()
