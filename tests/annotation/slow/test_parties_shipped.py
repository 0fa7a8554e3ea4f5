"""The canonical party lists of every shipped CUAD contract (about 10 s on 2 cores)."""

from contract_review.annotation.parties import contract_parties


def test_every_shipped_contract_gets_two_roles_and_most_get_two_names(cuad_dir):
    from contract_review.annotation import cuad

    lists = [contract_parties(c.text, hints=c.parties) for c in cuad.iter_contracts(cuad_dir, warn=lambda m: None)]
    assert all(len(p.parties) >= 2 for p in lists)
    named = sum(p.parties[0].named and p.parties[1].named for p in lists)
    assert named / len(lists) > 0.85, named
