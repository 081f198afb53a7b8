"""The pairs CSV reader: validation with line numbers, stop vs skip, content hash."""

import hashlib

import pytest

from emo_core.training.eit.data import DatasetError, parse_pairs, read_pairs

HEADER = "Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt,Emotional_Prompt\n"
GOOD = (
    '1,-1.653465,0.686275,Object,oasis,"A cup on a table.","A shattered cup, tea spilling everywhere."\n'
    '2,0.5,-2.25,Person,emotic,"A man walks.","A man storms off, furious."\n'
)
# line 2 and 3 are good; the rest are each broken in one way (line numbers in the comments)
BROKEN = HEADER + GOOD + (
    '3,1.0,0.0,Object,oasis,"only five fields"\n'  # line 4: missing columns
    '4,high,0.0,Object,oasis,"n","e"\n'  # line 5: not a number
    '5,0.1,3.5,Object,oasis,"n","e"\n'  # line 6: out of range
    '6,nan,0.0,Object,oasis,"n","e"\n'  # line 7: nan
    '7,0.1,0.2,Object,oasis,"   ","e"\n'  # line 8: empty neutral prompt
    '8,0.1,0.2,Object,oasis,"multi\nline neutral","fine"\n'  # lines 9-10: good, spans two lines
    '9,0.1,0.2,Object,oasis,n,e, with a comma\n'  # line 11: unquoted comma
    '\n'  # line 12: blank, ignored
    '10,-3,3,Object,oasis,"edge","edge values are allowed"\n'  # line 13: good
    '11,0.1,0.2,Object,oasis,"n",""\n'  # line 14: empty emotional prompt
)
EXPECTED_BAD = {4: "missing columns", 5: "not a number", 6: "outside", 7: "outside", 8: "Neutral_Prompt is empty",
                11: "unquoted comma", 14: "Emotional_Prompt is empty"}


def test_good_file(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes((HEADER + GOOD).encode())
    data = read_pairs(path)
    assert len(data) == 2 and data.n_skipped == 0
    first = data.rows[0]
    assert (first.line, first.id, first.arousal, first.valence) == (2, "1", -1.653465, 0.686275)
    assert first.tag == "Object" and first.dataset == "oasis" and first.emotional.startswith("A shattered cup")
    assert data.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_stop_lists_every_bad_line():
    with pytest.raises(DatasetError) as info:
        parse_pairs(BROKEN, on_error="stop", source="pairs.csv")
    problems = {p.line: p.reason for p in info.value.problems}
    assert set(problems) == set(EXPECTED_BAD)
    for line, words in EXPECTED_BAD.items():
        assert words in problems[line], (line, problems[line])
        assert f"line {line}:" in str(info.value)
    assert "7 malformed row(s)" in str(info.value) and "on_error='skip'" in str(info.value)


def test_skip_keeps_good_rows_and_counts_the_rest():
    data = parse_pairs(BROKEN, on_error="skip")
    assert [row.line for row in data.rows] == [2, 3, 9, 13]
    assert data.rows[2].neutral == "multi\nline neutral"
    assert data.rows[3].arousal == -3.0 and data.rows[3].valence == 3.0
    assert data.n_skipped == len(EXPECTED_BAD) == 7
    assert [p.line for p in data.skipped] == sorted(EXPECTED_BAD)


def test_hash_changes_with_content_and_bom_is_accepted():
    plain = parse_pairs(HEADER + GOOD)
    with_bom = parse_pairs(b"\xef\xbb\xbf" + (HEADER + GOOD).encode())
    assert len(with_bom) == 2 and with_bom.rows == plain.rows
    assert with_bom.content_hash != plain.content_hash


def test_columns_may_be_reordered_and_extended():
    text = "Valence,Extra,Arousal,Id,Tag,Dataset,Emotional_Prompt,Neutral_Prompt\n0.5,x,-1,7,T,D,emo,neu\n"
    row = parse_pairs(text).rows[0]
    assert (row.valence, row.arousal, row.id, row.neutral, row.emotional) == (0.5, -1.0, "7", "neu", "emo")


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_bad_header_is_fatal_under_any_policy(policy):
    with pytest.raises(DatasetError, match="line 1: header lacks column.*Emotional_Prompt"):
        parse_pairs("Id,Arousal,Valence,Tag,Dataset,Neutral_Prompt\n1,0,0,T,D,n\n", on_error=policy)


def test_nothing_usable_and_bad_arguments(tmp_path):
    with pytest.raises(DatasetError, match="no usable rows"):
        parse_pairs(HEADER + '1,9,9,T,D,"n","e"\n', on_error="skip")
    with pytest.raises(DatasetError, match="empty file"):
        parse_pairs(b"")
    with pytest.raises(DatasetError, match="cannot read"):
        read_pairs(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="on_error"):
        parse_pairs(HEADER + GOOD, on_error="ignore")
