"""benchmarks/train_speed.py on bad arguments: one line, nothing written."""
import pytest


@pytest.mark.parametrize("argv,message", [
    (["--size", "100"], r"--size 100: give a multiple of 32"),
    (["--size", "0"], r"--size must be at least 32 \(got 0\)"),
    (["--steps", "0"], r"--steps must be at least 1 \(got 0\)"),
    (["--device", "gpu"], r"--device gpu: give auto, cpu or cuda\[:N\]"),
    (["--paths", " , "], r"--paths: name at least one path"),
])
def test_train_speed_bad_arguments(argv, message, tmp_path):
    from benchmarks import train_speed

    with pytest.raises(SystemExit, match=rf"^error: {message}"):
        train_speed.main(argv + ["--json", str(tmp_path / "speed.json"), "--no-progress"])
    assert not (tmp_path / "speed.json").exists()
