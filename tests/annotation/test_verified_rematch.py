"""Verified party labels follow their clause when segmentation moves its boundaries, and only then."""

import hashlib

from contract_review.annotation.segment import segment
from contract_review.annotation.verified_rematch import carries_over, rematch

TEXT = (
    "ARTICLE 5 TERMINATION\n\n"
    "5.1 Term. This Agreement shall remain in force for three (3) years.\n\n"
    "5.2 Supply. The Supplier shall deliver the Products within thirty days of each order\n\n"
    "Initialed ______ Page 2 of 6 Source: ACME WIDGETS CORP, 8-K/A, 3/1/2021\n\n"
    "to the Buyer's warehouse.\n\n"
    "5.3 Payment. The Buyer shall pay each invoice within thirty days.\n"
)


def _sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


def _record(doc, start, end, text, source="cuad"):
    return {"id": f"{source}/{doc}/{start}-{end}", "source": source, "doc_id": doc, "start": start, "end": end,
            "text": text}


def _label(rec, party):
    return {"id": rec["id"], "party": party, "labeller": "ai-reviewer-1", "text_sha1": _sha1(rec["text"])}


def test_labels_follow_the_same_words_and_stay_where_duties_changed():
    segs = segment(TEXT)
    new = [_record("doc", s.start, s.end, s.clean) for s in segs if s.is_clause]
    term, supply, payment = new
    assert supply["text"].endswith("each order to the Buyer's warehouse.")  # joined across the page break
    # the old segmenter glued the heading to 5.1, cut 5.2 at the page break, ended 5.3 elsewhere,
    # and once glued 5.1 and 5.2, two duties, into one clause
    old_term = _record("doc", 0, term["end"], "ARTICLE 5 TERMINATION " + term["text"])
    old_supply = _record("doc", supply["start"], supply["start"] + 80,
                         "5.2 Supply. The Supplier shall deliver the Products within thirty days of each order")
    old_payment = _record("doc", payment["start"], payment["end"] - 1, payment["text"].rstrip("."))
    old_both = _record("doc", term["start"], supply["start"] + 80, term["text"] + " " + old_supply["text"])
    labels = [_label(old_term, "none"), _label(old_supply, "first_party"), _label(old_payment, "second_party"),
              _label(old_both, "both")]
    old = {r["id"]: r for r in (old_term, old_supply, old_payment, old_both)}
    out, counts, lost = rematch(labels, old, new, lambda doc: segs)
    assert counts == {"same words": 1, "no duty added or taken away": 2,
                      "lost: split into several clauses, duties in more than one": 1}
    by_party = {e["party"]: e for e in out}
    assert by_party["none"]["id"] == term["id"] and by_party["none"]["moved_from"] == old_term["id"]
    assert by_party["none"]["text_sha1"] == _sha1(term["text"])
    assert by_party["first_party"]["id"] == supply["id"]  # only a continuation without duties was added
    assert by_party["second_party"]["id"] == payment["id"]
    assert by_party["both"]["id"] == old_both["id"]  # kept, stale, for a reader to check again
    assert [x["id"] for x in lost] == [old_both["id"]] and lost[0]["text"] == old_both["text"]


def test_a_label_does_not_follow_into_a_clause_with_a_new_duty():
    old = "The Supplier shall deliver the Products."
    assert carries_over(old, "5.2 Delivery. The Supplier shall deliver the Products.") is not None
    assert carries_over(old, "The Supplier shall deliver the Products and the Buyer shall pay for them.") is None
    assert carries_over(old, "The Supplier may deliver the Products.") is None  # a duty became a right


def test_a_label_whose_clause_cannot_be_found_in_the_old_dataset_is_kept_and_reported():
    rec = _record("doc", 0, 10, "Some text.")
    label = {**_label(rec, "none"), "text_sha1": _sha1("other text")}
    out, counts, lost = rematch([label], {rec["id"]: rec}, [], lambda doc: [])
    assert out == [label] and counts == {"old clause not found": 1} and len(lost) == 1
