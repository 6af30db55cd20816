"""Atomic file output."""

import pytest

from deepsphere_pyg.io import write_text_atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    write_text_atomic(target, "new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_text_atomic(target, 123)  # not text: fails while writing
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_publish_report_prints_and_writes(tmp_path, capsys):
    from deepsphere_pyg.io import publish_report

    publish_report("| a |", tmp_path / "r.md")
    assert capsys.readouterr().out == "| a |\n"
    assert (tmp_path / "r.md").read_text() == "| a |"
    publish_report("x\n")
    assert capsys.readouterr().out == "x\n"


def test_missing_folders_are_created_and_permissions_are_usual(tmp_path):
    import os
    import stat

    from deepsphere_pyg.io import write_text_atomic

    target = tmp_path / "a" / "b" / "report.md"
    write_text_atomic(target, "x")
    assert target.read_text() == "x"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 & ~umask  # not mkstemp's 0600
