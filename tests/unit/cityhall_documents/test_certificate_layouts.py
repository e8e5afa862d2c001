"""住民票の写し layouts (docs/certificates.md): 世帯連記式 sheets of four, 以下余白, 世帯の一部, 個人票."""
from __future__ import annotations

from dataclasses import replace

import pytest

from cityhall.documents import CertificateRequestInvalid, build_model
from cityhall.documents.samples import SAMPLE_REQUESTS

PERSON_LABELS = ("氏名（ふりがな）", "生年月日・性別・続柄", "住民となった年月日", "住所を定めた年月日", "前住所",
                 "本籍・筆頭者")


@pytest.mark.parametrize("name, persons", [("juminhyo-household-1", 1), ("juminhyo", 3),
                                           ("juminhyo-household-6", 6)])
def test_household_layout_has_every_field_for_every_person(name, persons):
    model = build_model(SAMPLE_REQUESTS[name])
    assert (model.layout, model.persons_per_sheet, model.closing) == ("household", 4, "以下余白")
    assert [r.label for r in model.header] == ["住所", "世帯主"]
    assert len(model.blocks) == persons
    for block in model.blocks:
        assert tuple(r.label for r in block.rows) == PERSON_LABELS
        assert all(r.value for r in block.rows if r.label != "前住所")
    assert "世帯全員" in model.notes[0] and len(model.notes) == 1


def test_part_of_a_household_says_so():
    model = build_model(SAMPLE_REQUESTS["juminhyo-household-part"])
    assert len(model.blocks) == 2 and "世帯の一部" in model.notes[0]
    assert "この写しは世帯の一部の者について記載したものです。" in model.notes


def test_kojinhyo_carries_address_and_head_inside_the_entry():
    model = build_model(SAMPLE_REQUESTS["juminhyo-kojinhyo"])
    assert model.layout == "individual" and model.header == () and len(model.blocks) == 1
    labels = [r.label for r in model.blocks[0].rows]
    assert "住所" in labels and "世帯主" in labels and "本籍・筆頭者" not in labels


def test_members_out_of_range_are_refused():
    with pytest.raises(CertificateRequestInvalid, match="members"):
        build_model(replace(SAMPLE_REQUESTS["juminhyo-household-part"], members=(0, 9)))
