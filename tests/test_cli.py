import subprocess
import sys

import pytest

from contract_review.cli import build_parser, main

COMMANDS = ["data", "annotate", "train", "eval", "serve", "review", "doctor"]
# every user task is a subcommand: these were once side entry points of their own
SUBCOMMANDS = [["eval", "tune-ensemble"], ["eval", "ensemble-report"], ["eval", "compare"], ["annotate", "push"]]


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


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_each_task_of_a_command_has_help_naming_the_command(words, capsys):
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and f"usage: contract-review {' '.join(words)}" in out


def test_every_command_offers_the_same_models(capsys):
    """One registry: serve, review, eval and annotate push list the same model names."""
    for words in (["serve"], ["review"], ["eval"], ["annotate", "push"]):
        with pytest.raises(SystemExit):
            main([*words, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for name in ("default", "reviewer", "rules", "tfidf", "zero-shot"):
            assert name in out, (words, name)


def test_doctor_reports_the_environment(capsys):
    assert main(["doctor"]) in (0, 1)
    out = capsys.readouterr().out
    assert "torch" in out and "disk" in out
