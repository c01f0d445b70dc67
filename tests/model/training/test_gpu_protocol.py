"""model/gpu_protocol.py's state between calls: a damaged progress.json is a one-line error, left as it is."""
import pytest

from model.gpu_protocol import main as protocol_main


@pytest.mark.parametrize("text,why", [("{\"runs\": {", r"JSONDecodeError: "), ("[]", r"expected \{\"runs\"")])
def test_damaged_progress_is_one_line_naming_the_file_and_the_fix(tmp_path, text, why):
    state = tmp_path / "state"
    state.mkdir()
    (state / "progress.json").write_text(text)
    with pytest.raises(SystemExit, match=rf"^error: .*state/progress\.json: cannot read the protocol's progress \({why}.*\); "
                                         r"restore it from the last state\.tar\.gz, or delete it: the runs resume from "
                                         r"their fleet_last\.pt") as e:
        protocol_main(["--state", str(state), "--data-root", str(tmp_path / "data"), "--plan", "v3:absent", "--no-speed",
                       "--device", "cpu", "--out", str(tmp_path / "out"), "--no-progress"])
    assert "\n" not in str(e.value)
    assert (state / "progress.json").read_text() == text and not (tmp_path / "out").exists()
