"""Each certificate type rendered through poppler: its fields are there, no individual number is,
the output is deterministic, small, A4 and paginates."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from cityhall.documents import (
    CertificateRequestInvalid,
    DocumentSigner,
    build_model,
    render_certificate,
    verify_document,
)
from cityhall.documents.samples import DEMO_RESIDENT, SAMPLE_REQUESTS
from tests.unit.cityhall_documents.conftest import page_count, pdf_png, pdf_text

INDIVIDUAL_NUMBER = "123456789018"
COMMON_FIELDS = ["和光市", "和光市長 見本 光子", "令和8年1月5日", "2026年1月5日", "発行場所 和光市役所", "以下余白"]
EXPECTED_FIELDS = {
    # the 3-person household of 和光 太郎, 世帯連記式 with every option
    "juminhyo": ["住民票の写し", "この写しは、住民票の原本と相違ないことを証明する。", "11229-2026-00000001",
                 "埼玉県和光市みどり台一丁目5番3号", "和光 太郎", "わこう たろう", "昭和55年4月1日",
                 "世帯主", "和光 花子", "昭和57年6月15日", "和光 一郎", "平成24年9月3日", "妻", "子",
                 "本籍・筆頭者", "埼玉県和光市みどり台一丁目5番地", "筆頭者 和光 太郎", "住民となった年月日",
                 "平成22年4月1日", "住所を定めた年月日", "届出日", "前住所", "記載事項: 世帯全員(3人)", "1枚中1枚目"],
    # 吹上 大地, 令和7年度: every figure from cityhall/taxcalc.py
    "kazei": ["住民税課税（所得）証明書", "上記のとおり相違ないことを証明する。", "11229-2026-00000002",
              "吹上 大地", "令和7年度", "令和6年分", "収入 7,400,000円", "所得 5,560,000円", "合計所得金額 5,560,000円",
              "社会保険料控除 1,080,000円", "配偶者控除 330,000円", "扶養控除 1,280,000円", "基礎控除 430,000円",
              "所得控除合計 3,120,000円", "扶養親族の数 3人", "課税標準額 2,440,000円", "市民税 142,800円",
              "県民税 95,200円", "市民税 3,000円", "県民税 1,000円", "森林環境税 1,000円", "年税額 243,000円"],
    "hikazei": ["住民税非課税証明書", "11229-2026-00000003", "広沢 恵子",
                "令和7年度の市民税・県民税が課されていないことを証明する。", "非課税", "合計所得金額 0円",
                "地方税法第24条の5及び第295条"],
}


def _normal(text: str) -> str:
    return re.sub(r"[ \t]+", " ", unicodedata.normalize("NFKC", text))


@pytest.mark.parametrize("cert_type", sorted(EXPECTED_FIELDS))
def test_each_type_renders_to_png_and_text_with_its_fields(cert_type, sample_dir, samples):
    pdf = sample_dir / f"{cert_type}.pdf"
    text = _normal(pdf_text(pdf))
    for field in COMMON_FIELDS + EXPECTED_FIELDS[cert_type]:
        assert _normal(field) in text, f"{field!r} missing from the {cert_type} text"
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text.replace(",", "")), "a 12-digit number was printed"

    png = pdf_png(pdf, sample_dir / cert_type, dpi=50)
    with Image.open(png) as image:
        width, height = image.size
        assert abs(width - 413) <= 1 and abs(height - 585) <= 1     # A4 at 50 dpi: 210 x 297 mm
        dark = sum(image.convert("L").histogram()[:100])
        assert dark > 2000, "the page rendered almost blank"
    assert page_count(pdf) == 1
    assert len(samples[cert_type].pdf) < 150 * 1024


def test_juminhyo_options_decide_what_is_printed(signer, tmp_path):
    request = replace(SAMPLE_REQUESTS["juminhyo"], options=())
    pdf = tmp_path / "self-only.pdf"
    pdf.write_bytes(render_certificate(request, signer).pdf)
    text = _normal(pdf_text(pdf))
    assert "和光 太郎" in text
    assert "和光 花子" not in text and "和光 一郎" not in text   # household not asked for
    body = text.split("記載事項")[0]                             # the note names what was omitted
    assert "埼玉県和光市みどり台一丁目5番地" not in text
    assert "本籍" not in body and "筆頭者" not in body and "続柄" not in body
    assert _normal("記載事項: 本人のみ（個人票）（1人） ／ 本籍・筆頭者: 省略 ／ 続柄: 省略") in text


def test_an_individual_number_in_the_record_never_reaches_the_document(signer, tmp_path):
    for cert_type, request in SAMPLE_REQUESTS.items():
        resident = copy.deepcopy(dict(request.resident))
        resident["individual_number"] = INDIVIDUAL_NUMBER        # a careless adapter
        resident["my_number"] = INDIVIDUAL_NUMBER
        resident["juminhyo_code"] = "12345678901"               # 住民票コード (11 digits) must not print either
        for member in resident.get("household") or []:
            member["individual_number"] = INDIVIDUAL_NUMBER
        document = render_certificate(replace(request, resident=resident), signer)
        pdf = tmp_path / f"{cert_type}.pdf"
        pdf.write_bytes(document.pdf)
        text = pdf_text(pdf)
        assert INDIVIDUAL_NUMBER not in text and "12345678901" not in text
        assert not re.search(r"(?<!\d)\d{11,12}(?!\d)", text.replace(",", "")), cert_type
        assert INDIVIDUAL_NUMBER.encode() not in build_model(replace(request, resident=resident)).canonical_bytes()
        assert INDIVIDUAL_NUMBER not in document.qr_payload


@pytest.mark.parametrize("where", ["name", "address", "household"])
def test_a_twelve_digit_number_in_a_printed_field_is_refused(signer, where):
    resident = copy.deepcopy(DEMO_RESIDENT)
    if where == "household":
        resident["household"][0]["name"] = "和光 " + "１２３４５６７８９０１８"   # full-width digits too
    else:
        resident[where] = f"和光 {INDIVIDUAL_NUMBER}"
    with pytest.raises(CertificateRequestInvalid, match="12-digit"):
        render_certificate(replace(SAMPLE_REQUESTS["juminhyo"], resident=resident), signer)


def test_rendering_is_deterministic_within_and_across_processes(signer, samples, tmp_path):
    for cert_type, request in SAMPLE_REQUESTS.items():
        assert render_certificate(request, signer).pdf == samples[cert_type].pdf

    key_path = tmp_path / "document-key.pem"
    key_path.write_bytes(_private_pem(signer))
    key_path.chmod(0o600)
    script = ("import sys, hashlib\n"
              "from pathlib import Path\n"
              "from cityhall.documents import DocumentSigner, render_certificate\n"
              "from cityhall.documents.samples import SAMPLE_REQUESTS\n"
              "signer = DocumentSigner.load_or_create(Path(sys.argv[1]))\n"
              "for t in ('juminhyo', 'kazei', 'hikazei'):\n"
              "    print(hashlib.sha256(render_certificate(SAMPLE_REQUESTS[t], signer).pdf).hexdigest())\n")
    result = subprocess.run([sys.executable, "-c", script, str(key_path)], capture_output=True, timeout=120,
                            check=True, cwd=Path(__file__).resolve().parents[3],
                            env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert result.stdout.decode().split() == [samples[t].sha256 for t in ("juminhyo", "kazei", "hikazei")]


def test_different_requests_give_different_documents(signer, samples):
    other = render_certificate(replace(SAMPLE_REQUESTS["kazei"], issuance_number="11229-2026-00000099"), signer)
    assert other.pdf != samples["kazei"].pdf
    assert other.content_sha256 != samples["kazei"].content_sha256


def test_a_six_person_household_continues_on_a_second_sheet_and_verifies(signer, public_keys, tmp_path):
    """世帯連記式: four persons a sheet, the 住所/世帯主 header on each, "n枚中m枚目", 以下余白 once at the end."""
    document = render_certificate(SAMPLE_REQUESTS["juminhyo-household-6"], signer)
    pdf = tmp_path / "large.pdf"
    pdf.write_bytes(document.pdf)
    assert page_count(pdf) == 2
    first, second = (_normal(pdf_text(pdf, page)) for page in (1, 2))
    entry = lambda name: f"{name}(ふきあげ"  # noqa: E731  (a person's own entry, not the 世帯主 line)
    for name in ("吹上 大地", "吹上 静香", "吹上 陸", "吹上 海"):
        assert entry(name) in first and entry(name) not in second
    for name in ("吹上 空", "吹上 キヨ"):
        assert entry(name) in second and entry(name) not in first
    for page in (first, second):
        assert "埼玉県和光市丸山台一丁目9番3号" in page and "世帯主 吹上 大地" in page
    assert "2枚中1枚目" in first and "2枚中2枚目" in second
    assert "以下余白" not in first and second.count("以下余白") == 1
    assert second.index("吹上 キヨ") < second.index("以下余白") < second.index("証明する")
    assert verify_document(document.pdf, public_keys).ok
    assert len(document.pdf) < 200 * 1024


def test_copies_are_numbered_on_the_document(signer, tmp_path):
    document = render_certificate(replace(SAMPLE_REQUESTS["kazei"], copy_number=2, copies=3), signer)
    pdf = tmp_path / "copy.pdf"
    pdf.write_bytes(document.pdf)
    assert "通数 2/3" in _normal(pdf_text(pdf))


@pytest.mark.parametrize("change, field", [
    ({"cert_type": "koseki"}, "cert_type"),
    ({"options": ("with_household",), "cert_type": "kazei", "tax_year": 2025}, "options"),
    ({"cert_type": "kazei", "tax_year": None, "options": ()}, "tax_year"),
    ({"cert_type": "kazei", "tax_year": 2019, "options": ()}, "tax_year"),
    ({"cert_type": "hikazei", "tax_year": 2025, "options": ()}, "tax_year"),       # taxed that year
    ({"issuance_number": "131 2026/1"}, "issuance_number"),
    ({"copy_number": 3, "copies": 2}, "copy_number"),
])
def test_invalid_requests_are_refused_naming_the_field(signer, change, field):
    with pytest.raises(CertificateRequestInvalid, match=field):
        render_certificate(replace(SAMPLE_REQUESTS["juminhyo"], **change), signer)


@pytest.mark.parametrize("status", ["moved_out", "deceased", "protected"])
def test_only_active_residents_get_certificates(signer, status):
    resident = {**DEMO_RESIDENT, "status": status}
    with pytest.raises(CertificateRequestInvalid, match="status"):
        render_certificate(replace(SAMPLE_REQUESTS["juminhyo"], resident=resident), signer)


def test_naive_issue_time_is_refused(signer):
    naive = SAMPLE_REQUESTS["kazei"].issued_at.replace(tzinfo=None)
    with pytest.raises(CertificateRequestInvalid, match="issued_at"):
        render_certificate(replace(SAMPLE_REQUESTS["kazei"], issued_at=naive), signer)


def _private_pem(signer: DocumentSigner) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return signer._private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())


def test_concurrent_renders_give_the_same_bytes_as_sequential_ones(signer, samples):
    """The service renders from a thread pool; reportlab's shared font state must not leak across."""
    from concurrent.futures import ThreadPoolExecutor
    order = ["juminhyo", "kazei", "hikazei"] * 4
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda t: render_certificate(SAMPLE_REQUESTS[t], signer), order))
    assert [r.pdf for r in results] == [samples[t].pdf for t in order]


@pytest.mark.parametrize("cert_type", sorted(EXPECTED_FIELDS))
def test_a_sample_png_per_type_is_in_the_docs(cert_type):
    """docs/certificates/<type>.png, regenerated with ``python -m cityhall.documents.samples``."""
    png = Path(__file__).resolve().parents[3] / "docs" / "certificates" / f"{cert_type}.png"
    with Image.open(png) as image:
        width, height = image.size
    assert image.format == "PNG" and abs(height / width - 297 / 210) < 0.01
