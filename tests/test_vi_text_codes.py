"""Numbers that are not quantities: phone numbers, house numbers, plates and codes are
read the way a commune announcer reads them (digit by digit, "xuyệt" for the slash),
while dates such as 24/11 stay dates. Thirty cases from real bulletins."""

from __future__ import annotations

import re

import pytest

from audio.vi_text import speakable

PHONE = "không chín một hai, ba bốn năm, sáu bảy tám"

CASES = [
    # phone numbers, every way they are written
    ("0912 345 678", PHONE),
    ("0912345678", PHONE),
    ("0912.345.678", PHONE),
    ("0912-345-678", PHONE),
    ("SĐT: 0912345678", f"SĐT: {PHONE}"),
    ("Gọi 113", "Gọi một một ba"),
    ("gọi số 114 khi có cháy", "gọi số một một bốn khi có cháy"),
    ("đường dây nóng 1900 1234", "đường dây nóng một chín không không, một hai ba bốn"),
    ("+84 912 345 678", "cộng tám bốn, chín một hai, ba bốn năm, sáu bảy tám"),
    ("(0292) 3 123 456", "không hai chín hai, ba, một hai ba, bốn năm sáu"),
    ("0292 3123 456", "không hai chín hai, ba một hai ba, bốn năm sáu"),
    (
        "Liên hệ anh Tư, điện thoại 0939 555 111.",
        "Liên hệ anh Tư, điện thoại không chín ba chín, năm năm năm, một một một.",
    ),
    # house numbers with slashes
    ("số nhà 12/3", "số nhà mười hai xuyệt ba"),
    ("nhà 12/3", "nhà mười hai xuyệt ba"),
    ("hẻm 45/12", "hẻm bốn mươi lăm xuyệt mười hai"),
    (
        "168/25/7 đường Trần Hưng Đạo",
        "một trăm sáu mươi tám xuyệt hai mươi lăm xuyệt bảy đường Trần Hưng Đạo",
    ),
    ("ngõ 5/2", "ngõ năm xuyệt hai"),
    ("số 12A/3", "số mười hai a xuyệt ba"),
    ("45/12", "bốn mươi lăm xuyệt mười hai"),  # cannot be a date (no 45th)
    # dates stay dates
    ("24/11", "ngày hai mươi tư tháng mười một"),
    ("ngày 24/11", "ngày hai mươi tư tháng mười một"),
    ("12/3", "ngày mười hai tháng ba"),
    ("05/11/2026", "ngày năm tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    ("tháng 4/2026", "tháng tư năm hai nghìn không trăm hai mươi sáu"),
    # licence plates and codes
    ("xe 65A-123.45", "xe sáu mươi lăm a, một hai ba bốn năm"),
    ("biển số 51F-67890", "biển số năm mươi mốt ép, sáu bảy tám chín không"),
    ("xe máy 59-X1 234.56", "xe máy năm mươi chín ích một, hai ba bốn năm sáu"),
    ("CCCD 079123456789", "CCCD không bảy chín một hai ba bốn năm sáu bảy tám chín"),
    # and quantities are still quantities
    ("1.500.000 đ", "một triệu năm trăm nghìn đồng"),
    ("mưa 120 mm lúc 06:30", "mưa một trăm hai mươi mi-li-mét lúc sáu giờ ba mươi phút"),
]


def test_the_table_has_thirty_cases() -> None:
    assert len(CASES) == 30 and len({c[0] for c in CASES}) == 30


@pytest.mark.parametrize(("text", "spoken"), CASES, ids=[c[0] for c in CASES])
def test_read_as_an_announcer_reads_them(text: str, spoken: str) -> None:
    out = speakable(text)
    assert out == spoken
    assert not re.search(r"\d", out)


def test_a_bulletin_with_a_phone_an_address_and_a_date() -> None:
    text = (
        "Từ ngày 24/11, bà con ấp 3 liên hệ số nhà 12/3 hoặc gọi 0912 345 678 để nhận hàng cứu trợ."
    )
    assert speakable(text) == (
        "Từ ngày hai mươi tư tháng mười một, bà con ấp ba liên hệ số nhà mười hai xuyệt ba "
        f"hoặc gọi {PHONE} để nhận hàng cứu trợ."
    )
