"""Line endings: split, normalise and restore so untouched lines keep theirs."""

from __future__ import annotations

from hangdoctor.fix.endings import dominant_ending, normalize, restore, split_lines


def test_split_lines_knows_only_python_line_endings() -> None:
    """\\r\\n, \\r and \\n end lines; form feed and friends do not."""
    assert split_lines("a\r\nb\rc\nd\x0ce") == [
        ("a", "\r\n"),
        ("b", "\r"),
        ("c", "\n"),
        ("d\x0ce", ""),
    ]
    assert split_lines("") == []


def test_dominant_ending_counts_and_breaks_ties_by_first_seen() -> None:
    """The most common ending wins; a tie goes to the one the file starts with."""
    assert dominant_ending("a\r\nb\r\nc\n") == "\r\n"
    assert dominant_ending("a\nb\r\n") == "\n"
    assert dominant_ending("no newline") == "\n"


def test_restore_keeps_old_endings_and_gives_added_lines_the_dominant_one() -> None:
    """Equal lines keep theirs, a rewritten line keeps its own, an added line gets the dominant."""
    original = "a = 1\r\nb = 2\nsleep(1)\r\nc = 3\r\n"
    fixed = normalize(original).replace("sleep(1)", "import x\nawait sleep(1)")
    assert restore(original, fixed) == "a = 1\r\nb = 2\nimport x\r\nawait sleep(1)\r\nc = 3\r\n"


def test_restore_of_an_unchanged_text_is_the_original() -> None:
    """No change: exactly the original bytes, mixed endings and missing final newline included."""
    original = "x\r\ny\rz\nw"
    assert restore(original, normalize(original)) == original
