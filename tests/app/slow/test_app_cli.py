"""`contract-review review` as a lawyer runs it: files in another language asked about, the party
represented served first (a subprocess each: ~30 s of imports on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys

from app_files import SAMPLE

from contract_review.paths import REPO_ROOT

CHINESE = ("采购合同\n\n甲方（买方）：上海华信贸易有限公司\n乙方（卖方）：深圳明达电子科技有限公司\n\n"
           "第一条 乙方向甲方供应电子元器件，合同总金额为人民币伍拾万元整。\n\n"
           "第二条 乙方应于本合同签订之日起三十日内将全部货物交付至甲方指定地点。")


def test_the_command_asks_for_review_anyway_and_serves_the_represented_party(tmp_path):
    (tmp_path / "msa.txt").write_text(SAMPLE, encoding="utf-8")
    (tmp_path / "zh.txt").write_text(CHINESE, encoding="utf-16")  # with a byte-order mark, as Notepad saves it
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "contract_review.cli", "review", str(tmp_path / "msa.txt"), str(tmp_path / "zh.txt"),
           "--out", str(out), "--model", "rules", "--represent", "Beta", "--quiet"]
    run = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "skipped" in run.stderr and "This contract is in Chinese" in run.stderr
    assert "--review-anyway" in run.stderr and not (out / "zh.review.json").exists()
    assert "highest: 4 Non-Compete (Non-Compete, high); 2 borne by Beta Logistics LLC" in run.stdout
    data = json.loads((out / "msa.review.json").read_text(encoding="utf-8"))
    assert data["summary"]["represent"] == {"role": "second_party", "name": "Beta Logistics LLC"}
    run = subprocess.run([*cmd[:5], str(tmp_path / "zh.txt"), *cmd[6:-3], "--review-anyway", "--quiet"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "not assessed" in run.stdout and "warning: This contract is in Chinese" in run.stderr
    zh = json.loads((out / "zh.review.json").read_text(encoding="utf-8"))
    assert zh["summary"]["assessed"] is False and zh["contract"]["encoding"] == "utf-16-le"
