from harness.readme import README, render


def test_readme_variant_table_matches_the_headers():
    text = README.read_text()
    assert render(text) == text, "the README's variant table is stale: run `make docs`"
