"""README.md and docs/: the measured tables are what the committed JSON says (docs/generate.py)."""
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
    assert "ISIC 2018 val DSC" in head and "PH2 model" in head and "| Chromium WASM, this host" in head
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
