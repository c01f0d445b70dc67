"""README.md and docs/: the measured tables are what the committed JSON says (docs/generate.py)."""
import runpy
from tests.conftest import REPO

gen = runpy.run_path(str(REPO / "docs" / "generate.py"), run_name="docs_generate")


def test_committed_docs_equal_what_the_json_gives():
    stale = gen["stale"]()
    assert not stale, f"out of date: {[str(p.relative_to(REPO)) for p in stale]}; run python docs/generate.py"


def test_a_hand_edited_number_is_caught(tmp_path):
    text = (REPO / "docs" / "export.md").read_text()
    block = text[text.index("<!-- generated:exports -->"):text.index("<!-- /generated:exports -->")]
    row = next(line for line in block.splitlines() if "_int8.onnx |" in line)  # | name | KB | val DSC | ...
    cells = row.split(" | ")
    dsc = cells[2]
    assert float(dsc) > 0.5
    edited = tmp_path / "export.md"
    edited.write_text(text.replace(row, " | ".join([*cells[:2], "0.1234", *cells[3:]])))
    assert gen["stale"]([edited]) == [edited]
    assert row in gen["render"](edited.read_text())


def test_readme_keeps_its_places():
    readme = (REPO / "README.md").read_text()
    assert "<!-- results:start -->" in readme and "<!-- results:end -->" in readme
    head = readme[readme.index("<!-- generated:headline -->"):readme.index("<!-- /generated:headline -->")]
    assert "ISIC 2018 val DSC" in head and "PH2 model" in head and "| Chromium WASM on " in head
    assert "| AULUNet-v3 (paper) | 82.44 | 90.37 | 85.32 | 92.08 |" in readme  # the paper's Table 1 beside ours
    for doc in ("training.md", "model.md", "export.md", "benchmarks.md"):
        assert f"docs/{doc}" in readme and (REPO / "docs" / doc).is_file()
    training = (REPO / "docs" / "training.md").read_text()
    assert "### ISIC 2018 and ISIC 2017" in training and "| ISIC 2018 val (best epoch" in training


def test_every_block_is_known():
    import re

    names = set()
    for f in gen["FILES"]:
        names |= set(re.findall(r"<!-- generated:([\w-]+) -->", f.read_text()))
    assert names == set(gen["BLOCKS"]), names ^ set(gen["BLOCKS"])


def test_docs_do_not_quote_the_issue_tracker():
    """The docs describe the toolkit, not the tracker its work came from."""
    import re

    for f in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("*_demo/README.md"))]:
        hits = [ln for ln in f.read_text().splitlines() if re.search(r"\b(the issue|issue's|issue \d+)\b", ln, re.I)]
        assert not hits, f"{f.relative_to(REPO)}: {hits[0]}"


def test_the_web_row_is_the_page_default_files_own():
    """The README's Chromium row is the web demo's default file (the default model's), not another model's file the
    page also offers: its medians are that file's rows in web_demo/results/chromium_wasm.json."""
    import json

    from web_demo.models import default_file

    gen = runpy.run_path(str(REPO / "docs" / "generate.py"), run_name="docs_generate")
    data = json.loads((REPO / "web_demo" / "results" / "chromium_wasm.json").read_text())
    mine = {r["threads"]: r for r in data["rows"] if r["file"] == default_file().name}
    assert mine, "the committed web results have no row of the page's default file"
    row = gen["web_demo_row"]()
    cells = [c.strip() for c in row.split("|")]
    want = " / ".join(f"{mine[t]['model']['median_ms']:.1f}" if t in mine else "n/a" for t in (1, 2))
    assert want in cells, (want, row)
