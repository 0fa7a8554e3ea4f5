"""The project installs one import name, `contract_review`, and shadows no other distribution.

Its packages live in the repository's top-level folders (`kernels/`, `app/`, ...) and install as
`contract_review.<folder>`; the folders hold no `__init__.py`, so a Python started in the repository
root (where `sys.path[0]` is the root) can at most see one as an empty namespace, which never wins
over an installed package of that name. Hugging Face's `kernels`, imported by transformers itself, is
the case that once broke every fresh install.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from contract_review.paths import REPO_ROOT

PACKAGE_FOLDERS = ("contract_review", "annotation", "app", "eval", "kernels", "training", "reviewer")


def _top_level_names(dist: importlib.metadata.Distribution) -> set[str]:
    names = set((dist.read_text("top_level.txt") or "").split())
    for path in dist.files or ():
        first = path.parts[0]
        if first.endswith((".dist-info", ".egg-info", ".data")) or first in ("..", "__pycache__"):
            continue
        if first.endswith(".py"):
            names.add(first[:-3])
        elif len(path.parts) > 1 and not first.endswith(".pth"):
            names.add(first)
    return names


def test_no_package_folder_is_a_regular_package():
    inits = [f"{name}/__init__.py" for name in PACKAGE_FOLDERS if (REPO_ROOT / name / "__init__.py").exists()]
    assert not inits, f"{inits}: a top-level __init__.py makes the folder importable under its bare name"


def test_only_contract_review_is_ours_and_no_other_distribution_owns_it():
    owners: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        if Path(str(getattr(dist, "_path", ""))).parent == REPO_ROOT:
            continue  # contract_review.egg-info: a build's notes in the source tree (its SOURCES.txt), not an install
        for name in _top_level_names(dist):
            owners.setdefault(name, set()).add(dist.metadata["Name"].lower())
    ours = {name for name, dists in owners.items() if "contract-review" in dists}
    # an editable install lists only its finder files; a wheel install lists contract_review/...
    assert ours <= {"contract_review", "__editable___contract_review_0_1_0_finder"}, ours
    assert owners.get("contract_review", {"contract-review"}) == {"contract-review"}
    taken = {name: sorted(owners[name]) for name in PACKAGE_FOLDERS[1:] if name in owners}
    print("folder names other distributions also install:", taken)


def test_from_the_repo_root_installed_packages_win_over_our_folders():
    """Run where a user would (the repository root on sys.path) and import transformers, which imports
    Hugging Face's `kernels`; then every folder name resolves to a distribution or to nothing of ours."""
    code = r"""
import importlib.util, json, sys
import transformers, kernels
import contract_review.kernels.patching.monkey_patch as ours
result = {"hf_kernels": kernels.__file__, "ours": ours.__file__, "specs": {}}
for name in NAMES:
    spec = importlib.util.find_spec(name)
    result["specs"][name] = None if spec is None else (spec.origin, list(spec.submodule_search_locations or []))
print(json.dumps(result))
""".replace("NAMES", repr(PACKAGE_FOLDERS[1:]))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not result["hf_kernels"].startswith(str(REPO_ROOT / "kernels")), result["hf_kernels"]
    assert result["ours"] == str(REPO_ROOT / "kernels" / "patching" / "monkey_patch.py")
    for name, spec in result["specs"].items():
        if spec is None:
            continue
        origin, locations = spec
        # an installed package elsewhere, or at most a namespace (origin None) that runs no code of ours
        assert origin is None or not origin.startswith(str(REPO_ROOT / name)), (name, origin)
