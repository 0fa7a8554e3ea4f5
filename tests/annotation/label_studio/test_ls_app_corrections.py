"""A lawyer's correction in the reviewer app reaches a real Label Studio as an annotation
over the model's pre-annotation (the app sends it with the `annotate push` code)."""

from contract_review.annotation.label_studio import ClientSettings, LabelStudioClient
from contract_review.annotation.labeling_config import labels_from_result
from contract_review.app.corrections import CorrectionStore, correction_from, send_to_label_studio
from contract_review.app.ingest import read_text
from contract_review.app.predictors import load_predictor
from contract_review.app.review import apply_correction, review_contract
from contract_review.predictor import parse_model

CONTRACT = (
    'This Distribution Agreement is made by and between Acme Corp., a Delaware corporation ("Acme"), and '
    'Beta Logistics LLC ("Distributor").\n\n'
    "1. Non-Competition. During the term and for two years after it, Distributor shall not sell, market or "
    "distribute any product that competes with the Products anywhere in the Territory.\n\n"
    "2. Governing Law. This Agreement shall be governed by the laws of the State of New York.\n"
)


def test_app_correction_arrives_in_a_real_label_studio(ls_server, tmp_path):
    review = review_contract(read_text(CONTRACT, "distribution.txt"), load_predictor(parse_model("rules")))
    finding = next(f for f in review.findings if "Non-Competition" in f.text)
    apply_correction(review, finding.index, ["non_compete"], "second_party", "high", "Bars Beta from rivals.")
    store = CorrectionStore(tmp_path / "corrections.jsonl")
    store.add(correction_from(review, finding, reviewer="lawyer1"))

    client = LabelStudioClient(ClientSettings.from_env(ls_server.env))
    report = send_to_label_studio(store, client, title="app corrections")
    assert report.sent == 1

    project = client.find_project("app corrections")
    [task] = [t for page in client.iter_task_pages(project["id"]) for t in page]
    assert task["data"]["text"] == finding.text
    assert task["predictions"][0]["model_version"]  # the model's labels are the pre-annotation
    [annotation] = task["annotations"]
    fixed = labels_from_result(annotation["result"])
    assert fixed.party == "second_party" and list(fixed.clause_types) == ["non_compete"] and fixed.risk == "high"
    assert fixed.reason == "Bars Beta from rivals."

    again = send_to_label_studio(store, client, title="app corrections")
    assert again.sent == 0 and again.already_sent == 1
