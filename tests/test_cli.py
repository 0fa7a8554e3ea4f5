import subprocess
import sys

import pytest

from contract_review.cli import build_parser, main

COMMANDS = ["data", "annotate", "train", "eval", "serve", "doctor"]


def test_every_user_task_has_a_subcommand_with_help():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    assert set(COMMANDS) <= set(choices)
    for name in COMMANDS:
        assert choices[name].description


@pytest.mark.parametrize("command", COMMANDS)
def test_help_works_from_the_installed_entry_point(command):
    out = subprocess.run([sys.executable, "-m", "contract_review.cli", command, "--help"],
                         capture_output=True, text=True, check=True)
    assert "usage: contract-review" in out.stdout


def test_doctor_reports_the_environment(capsys):
    assert main(["doctor"]) in (0, 1)
    out = capsys.readouterr().out
    assert "torch" in out and "disk" in out
