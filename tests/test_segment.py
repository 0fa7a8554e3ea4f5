from contract_review.annotation.segment import normalize, segment


def _texts(text):
    return [normalize(s.text) for s in segment(text)]


def test_offsets_point_at_the_clause_text_on_every_shipped_contract(cuad_dir):
    files = sorted((cuad_dir / "full_contract_txt").glob("*.txt"))
    assert len(files) == 450
    for path in files[::15]:
        text = path.read_text(encoding="utf-8")
        segs = segment(text)
        assert segs, path.name
        for s in segs:
            assert text[s.start : s.end] == s.text
        assert all(a.end <= b.start for a, b in zip(segs, segs[1:])), "segments overlap"


def test_numbered_sections_on_separate_lines_become_clauses_with_their_headings():
    text = (
        "ARTICLE 5\nTERMINATION\n\n"
        "5.1 Term. This Agreement shall remain in force for three (3) years.\n"
        "5.2 Termination for Convenience. Either party may terminate this Agreement on ninety days' notice.\n"
    )
    got = _texts(text)
    assert got[0].startswith("ARTICLE 5 TERMINATION 5.1 Term.")
    assert got[1].startswith("5.2 Termination for Convenience.")
    assert len(got) == 2


def test_inline_numbering_of_a_one_line_contract_is_split():
    text = (
        "NOW, THEREFORE, the Parties agree as follows: 1. All capitalized terms shall have the meaning set out "
        "in the Agreement. 2. The supply terms set forth in Section 1 of Amendment #2 are hereby deleted. "
        "3. Sanofi shall be entitled to terminate this Agreement upon written notice."
    )
    got = _texts(text)
    assert [g[:2] for g in got[1:]] == ["1.", "2.", "3."]
    assert "Section 1 of Amendment" in got[2]  # "Section 1" mid-sentence is not a break


def test_long_run_on_sub_clauses_are_split_but_short_lists_stay_whole():
    short = "The business shall include: (a) the purchase of Products; (b) the sale of Products."
    assert len(_texts(short)) == 1
    long = "The Distributor shall: " + " ".join(
        f"({c}) perform duty number {i} with all due care and diligence as reasonably required by the Company "
        f"under the terms of this Agreement and applicable law;"
        for i, c in enumerate("abcdefg")
    )
    got = _texts(long)
    assert len(got) >= 4
    assert all(g.startswith("(") for g in got[1:])


def test_edgar_artefacts_are_dropped():
    text = (
        "Source: ACME CORP, 10-K, 3/1/2001\n\n"
        "1. Payment. Buyer shall pay the Price within thirty days of invoice.\n\n"
        "-2-\n\nPage 3 of 9\n\n______________\n\n[***]\n\n"
        "2. Delivery. Seller shall deliver the Goods to the Buyer's warehouse.\n"
    )
    assert _texts(text) == [
        "1. Payment. Buyer shall pay the Price within thirty days of invoice.",
        "2. Delivery. Seller shall deliver the Goods to the Buyer's warehouse.",
    ]


def test_overlong_passages_are_split_at_sentence_ends():
    sentence = "The Licensee shall keep complete and accurate records of all sales of Licensed Products. "
    text = sentence * 40
    segs = segment(text, max_chars=600)
    assert len(segs) > 3
    assert all(len(s.text) <= 600 for s in segs)
    assert all(s.text.endswith(".") for s in segs)
