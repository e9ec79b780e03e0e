"""The tinybn command: help, version, and what `tinybn demo` without a name says."""

from __future__ import annotations

import pytest


def test_demo_help_lists_the_demos_and_their_flags(capsys):
    from tinybn.cli import main

    assert main(["demo", "--help"]) == 0
    text = capsys.readouterr().out
    for word in ("bn_position", "gan", "placement", "--quick", "--full", "--out", "--seed"):
        assert word in text


def test_top_level_help_and_version(capsys):
    from tinybn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("demo NAME", "gan", "--quick", "--full", "--out", "--seed"):
        assert word in text
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == "tinybn 0.1.0"


def test_demo_without_a_name_still_errors_and_points_to_help(capsys):
    from tinybn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2
    assert "tinybn demo --help" in capsys.readouterr().err
