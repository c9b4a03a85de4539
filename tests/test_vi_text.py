"""Vietnamese numbers, dates, times and units spelt out for the speech engine."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.vi_text import MAX_NUMBER, number_to_words, speakable, split_sentences


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "không"),
        (1, "một"),
        (5, "năm"),
        (10, "mười"),
        (11, "mười một"),
        (14, "mười bốn"),
        (15, "mười lăm"),
        (20, "hai mươi"),
        (21, "hai mươi mốt"),
        (24, "hai mươi tư"),
        (25, "hai mươi lăm"),
        (100, "một trăm"),
        (101, "một trăm linh một"),
        (105, "một trăm linh năm"),
        (110, "một trăm mười"),
        (115, "một trăm mười lăm"),
        (1000, "một nghìn"),
        (1005, "một nghìn không trăm linh năm"),
        (1050, "một nghìn không trăm năm mươi"),
        (2026, "hai nghìn không trăm hai mươi sáu"),
        (1_000_000, "một triệu"),
        (1_200_000, "một triệu hai trăm nghìn"),
        (1_000_005, "một triệu không trăm linh năm"),
        (10**9, "một tỷ"),
        (3_500_000_000, "ba tỷ năm trăm triệu"),
    ],
)
def test_numbers(n: int, words: str) -> None:
    assert number_to_words(n) == words


@pytest.mark.parametrize("n", [-1, MAX_NUMBER + 1])
def test_numbers_out_of_range_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="numbers from 0"):
        number_to_words(n)


@given(st.integers(0, MAX_NUMBER))
def test_number_words_have_no_digits(n: int) -> None:
    words = number_to_words(n)
    assert not re.search(r"\d", words) and words == number_to_words(n)


def test_number_words_are_distinct() -> None:
    seen = {number_to_words(n) for n in range(100_001)}
    assert len(seen) == 100_001


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("06:30", "sáu giờ ba mươi phút"),
        ("6:30", "sáu giờ ba mươi phút"),
        ("6h30", "sáu giờ ba mươi phút"),
        ("6g30", "sáu giờ ba mươi phút"),
        ("17h", "mười bảy giờ"),
        ("06:00", "sáu giờ"),
        ("17 giờ 30", "mười bảy giờ ba mươi phút"),
        ("24/11/2026", "ngày hai mươi tư tháng mười một năm hai nghìn không trăm hai mươi sáu"),
        ("24-11-2026", "ngày hai mươi tư tháng mười một năm hai nghìn không trăm hai mươi sáu"),
        ("30/4", "ngày ba mươi tháng tư"),
        ("ngày 2/9", "ngày hai tháng chín"),
        ("1.500.000", "một triệu năm trăm nghìn"),
        ("2,5", "hai phẩy năm"),
        ("0,75", "không phẩy bảy mươi lăm"),
        ("1,05", "một phẩy không năm"),
        ("45%", "bốn mươi lăm phần trăm"),
        ("120 mm", "một trăm hai mươi mi-li-mét"),
        ("1,85 m", "một phẩy tám mươi lăm mét"),
        ("60 km/h", "sáu mươi ki-lô-mét trên giờ"),
        ("1.200 m3/s", "một nghìn hai trăm mét khối trên giây"),
        ("39°C", "ba mươi chín độ C"),
        ("-5°C", "âm năm độ C"),
        ("10-12 mm", "mười đến mười hai mi-li-mét"),
        ("cấp 12", "cấp mười hai"),
        ("50.000 đ", "năm mươi nghìn đồng"),
    ],
)
def test_speakable_in_context(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize("text", ["25:10", "10:75", "32/13/2026", "0/5"])
def test_impossible_times_and_dates_are_read_as_numbers(text: str) -> None:
    out = speakable(text)
    assert "giờ" not in out and "tháng" not in out and not re.search(r"\d", out)


SENTENCE = "Lúc 06:30 ngày 24/11/2026, mực nước sông Vàm Cỏ Đông đạt 1,85 m."


def test_a_real_bulletin_sentence() -> None:
    out = speakable(SENTENCE)
    assert out == (
        "Lúc sáu giờ ba mươi phút ngày hai mươi tư tháng mười một năm hai nghìn không trăm"
        " hai mươi sáu, mực nước sông Vàm Cỏ Đông đạt một phẩy tám mươi lăm mét."
    )


def test_nfd_input_reads_like_nfc() -> None:
    nfd = unicodedata.normalize("NFD", SENTENCE)
    assert nfd != SENTENCE
    assert speakable(nfd) == speakable(SENTENCE)
    assert unicodedata.is_normalized("NFC", speakable(nfd))


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_speakable_leaves_no_digits(text: str) -> None:
    assert not re.search(r"[0-9]", speakable(text))


@given(st.text(alphabet=st.characters(exclude_categories=("Nd",)), max_size=200))
def test_text_without_numbers_is_unchanged(text: str) -> None:
    assert speakable(text) == unicodedata.normalize("NFC", text)


def test_sentences_split_at_ends_not_inside_numbers() -> None:
    text = "Có 1.500 hộ dân. Mưa 2,5 mm lúc 06:30! Đề nghị bà con chú ý?\nXin cảm ơn…"
    assert split_sentences(text) == [
        "Có 1.500 hộ dân.",
        "Mưa 2,5 mm lúc 06:30!",
        "Đề nghị bà con chú ý?",
        "Xin cảm ơn…",
    ]


def test_long_sentences_split_at_commas_then_spaces() -> None:
    text = "Ấp Một, Ấp Hai, Ấp Ba, Ấp Bốn, Ấp Năm, Ấp Sáu"
    pieces = split_sentences(text, max_chars=15)
    assert all(len(p) <= 15 for p in pieces)
    assert pieces[0] == "Ấp Một, Ấp Hai"


@given(st.text(max_size=500), st.integers(5, 200))
@settings(max_examples=200)
def test_split_keeps_every_word_in_order(text: str, max_chars: int) -> None:
    pieces = split_sentences(text, max_chars)
    assert all(p and len(p) <= max_chars for p in pieces)
    joined = "".join("".join(p.split()) for p in pieces)
    assert joined == "".join(unicodedata.normalize("NFC", text).split())


def test_split_refuses_a_zero_width() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_sentences("a", 0)


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("trong 24h qua", "trong hai mươi tư giờ qua"),
        ("48 giờ tới", "bốn mươi tám giờ tới"),
        ("tháng 4/2026", "tháng tư năm hai nghìn không trăm hai mươi sáu"),
        ("tháng 13/2026", "tháng mười ba/hai nghìn không trăm hai mươi sáu"),
    ],
)
def test_durations_in_hours_and_month_year(text: str, spoken: str) -> None:
    assert speakable(text) == spoken
