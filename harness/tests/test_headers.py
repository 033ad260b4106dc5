import pytest

from harness.headers import HeaderError, parse_header

GOOD = """/*
 * softmax forward, variant 2: one warp per row
 *
 * Changed: a warp per row instead of a thread,
 *   so loads coalesce.
 * Teaches: coalescing.
 * Run: python bench.py softmax --variant 2
 */
extern "C" __global__ void k() {}
"""


def test_parses_fields_and_continuation_lines():
    header = parse_header(GOOD, "x.cu")
    assert (header.layer, header.pass_name, header.number) == ("softmax", "forward", 2)
    assert header.title == "one warp per row"
    assert header.changed == "a warp per row instead of a thread, so loads coalesce."
    assert header.run == "python bench.py softmax --variant 2"


@pytest.mark.parametrize("text,message", [
    ("extern \"C\" __global__ void k() {}", "must start"),
    ("/* softmax variant 2 */", "first header line"),
    (GOOD.replace(" * Teaches: coalescing.\n", ""), "Teaches:"),
    (GOOD.replace("Run: python bench.py softmax --variant 2", "Run:"), "Run:"),
])
def test_malformed_headers_say_what_is_missing(text, message):
    with pytest.raises(HeaderError, match=message):
        parse_header(text, "x.cu")
