"""A run folder stays one run (issue 18): no silent overwrite, a resume continues the same run or is refused,
a diverged run stops before it saves anything of the bad epoch. Tiny synthetic data: each run takes seconds."""
import json

import pytest
import torch

from model.train import main as train_main
from tests.conftest import make_generic

IDS = tuple(f"i{k}" for k in range(6))


def _dataset(root, train=IDS[:4], val=IDS[4:]):
    make_generic(root, ids=IDS)
    (root / "split.json").write_text(json.dumps({"train": list(train), "val": list(val)}))
    return root


def _args(data, out, *extra):
    return ["--data", str(data), "--out", str(out), "--size", "64", "--threads", "1", "--no-progress", "--no-compile",
            *extra]


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def run(tmp_path):
    """A stopped run (1 of 2 epochs) and its data."""
    data = _dataset(tmp_path / "d")
    out = tmp_path / "run"
    train_main(_args(data, out, "--epochs", "2", "--stop-after", "1"))
    return data, out


def test_second_run_into_the_same_folder_is_refused(run):
    data, out = run
    before = _snapshot(out)
    with pytest.raises(SystemExit, match=r"^error: .*run: already holds a run \(best\.pt, last\.pt, log\.json\); "
                                         r"pass --resume to continue it, or another --out"):
        train_main(_args(data, out, "--epochs", "2", "--seed", "1"))
    assert _snapshot(out) == before
    (out / "best.pt").unlink()
    (out / "last.pt").unlink()  # any one of the run's files is enough
    with pytest.raises(SystemExit, match=r"already holds a run \(log\.json\)"):
        train_main(_args(data, out, "--epochs", "2"))


def test_resume_with_other_flags_names_each_and_changes_nothing(run):
    data, out = run
    before = _snapshot(out)
    with pytest.raises(SystemExit) as e:
        train_main(_args(data, out, "--epochs", "2", "--resume", "--seed", "3", "--lr", "0.01", "--limit-val", "1"))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("error: ") and "last.pt: " in msg
    for said in ("--seed 3 but the run was started with --seed 0", "--lr 0.01 but the run was started with --lr 0.001",
                 "--limit-val 1 but the run was started with --limit-val 0"):
        assert said in msg, msg
    assert msg.endswith("resume with the same values (or start a new run with another --out)")
    # another variant: one line (its weights would not even fit), naming the variant and the size it implies
    with pytest.raises(SystemExit, match=r"--variant aulunet_v1 but the run was started with --variant aulunet_v3"):
        train_main(_args(data, out, "--epochs", "2", "--resume", "--variant", "v1"))
    with pytest.raises(SystemExit, match=r"--size 32 but the run was started with --size 64"):
        train_main(_args(data, out, "--epochs", "2", "--resume", "--size", "32"))
    assert _snapshot(out) == before


def test_resume_on_another_split_is_refused(run, tmp_path):
    data, out = run
    other = _dataset(tmp_path / "other", train=("i0", "i1", "i2", "i5"), val=("i3", "i4"))
    before = _snapshot(out)
    with pytest.raises(SystemExit, match=r"last\.pt: --data .*other has another split \(hash \w+\) than the run was "
                                         r"started on \(.*d, hash \w+\); resume with the same data"):
        train_main(_args(other, out, "--epochs", "2", "--resume"))
    assert _snapshot(out) == before


@pytest.mark.slow
@pytest.mark.training
def test_resume_with_the_same_flags_and_new_run_control_flags(run, tmp_path, monkeypatch):
    """The same command (data given relatively, from the same folder) plus --resume, other --threads: accepted."""
    data, out = run
    monkeypatch.chdir(tmp_path)
    res = train_main(["--data", "d", "--out", "run", "--size", "64", "--threads", "2", "--no-progress", "--no-compile",
                      "--epochs", "2", "--resume"])
    assert res["epochs_done"] == 2
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
@pytest.mark.training
def test_resume_of_the_k_seed_trainer_uses_the_same_check(tmp_path):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "fleet"
    common = ["--seeds", "0,1", "--engine", "eager", "--batch-size", "2", "--epochs", "2"]
    train_main(_args(data, out, *common, "--stop-after", "1"))
    before = _snapshot(out)
    with pytest.raises(SystemExit, match=r"fleet: already holds a run \(fleet_last\.pt, fleet\.json, seed0/best\.pt"):
        train_main(_args(data, out, *common))
    with pytest.raises(SystemExit, match=r"fleet_last\.pt: --seeds 0,1,2 but the run was started with --seeds 0,1; "
                                         r"--weight-decay 0\.1 but the run was started with --weight-decay 0\.01; resume"):
        train_main(_args(data, out, *common[:-4], "--seeds", "0,1,2", "--weight-decay", "0.1", "--resume", "--epochs", "2",
                         "--batch-size", "2"))
    other = _dataset(tmp_path / "other", train=("i0", "i1", "i2", "i5"), val=("i3", "i4"))
    with pytest.raises(SystemExit, match=r"fleet_last\.pt: --data .*other has another split"):
        train_main(_args(other, out, *common, "--resume"))
    assert _snapshot(out) == before
    # how the run is driven may change (compiling here would cost a minute: --save-every and --threads instead)
    args = _args(data, out, *common, "--resume", "--save-every", "3")
    args[args.index("--threads") + 1] = "2"
    res = train_main(args)
    assert res["finished"] and res["epochs_done"] == 2


@pytest.mark.parametrize("extra,message", [
    (("--lr", "inf"), r"--lr inf: give a finite number"),
    (("--lr", "nan"), r"--lr nan: give a finite number"),
    (("--min-lr", "nan"), r"--min-lr nan: give a finite number"),
    (("--weight-decay", "inf"), r"--weight-decay inf: give a finite number"),
    (("--lr", "1e-4", "--min-lr", "1e-3"), r"--min-lr 0\.001 is above --lr 0\.0001"),
])
def test_non_finite_or_inverted_learning_rates_are_refused(tmp_path, extra, message):
    data = _dataset(tmp_path / "d")
    with pytest.raises(SystemExit, match=rf"^error: {message}"):
        train_main(_args(data, tmp_path / "run", "--epochs", "1", *extra))
    assert not (tmp_path / "run").exists()


def test_divergence_stops_before_saving_and_leaves_no_empty_folder(tmp_path):
    """lr 1e30: the first step blows the weights up, the second batch's loss is not finite."""
    data = _dataset(tmp_path / "d")
    with pytest.raises(SystemExit, match=r"^error: .*run: epoch 1: the training loss is nan at image 2 of 4 \(training "
                                         r"diverged\); nothing of this epoch was saved and no checkpoint was written; "
                                         r"train again with a lower --lr"):
        train_main(_args(data, tmp_path / "run", "--epochs", "2", "--batch-size", "2", "--lr", "1e30"))
    assert not (tmp_path / "run").exists()


def test_divergence_keeps_the_last_good_epoch(run):
    """Weights that are no longer finite (here: made so in last.pt) stop the resumed run at its next epoch;
    best.pt, last.pt and log.json stay those of epoch 1."""
    data, out = run
    ck = torch.load(out / "last.pt", weights_only=True)
    key = next(k for k, v in ck["state_dict"].items() if v.is_floating_point())
    ck["state_dict"][key].fill_(float("nan"))
    torch.save(ck, out / "last.pt")
    before = _snapshot(out)
    with pytest.raises(SystemExit, match=r"run: epoch 2: the training loss is nan .*nothing of this epoch was saved and "
                                         r".*last\.pt keeps epoch 1"):
        train_main(_args(data, out, "--epochs", "2", "--resume"))
    assert _snapshot(out) == before
    best = torch.load(out / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in best.values() if v.is_floating_point())


@pytest.mark.slow
@pytest.mark.training
def test_fleet_resume_is_bit_identical(tmp_path):
    """A fleet killed after epoch 1 and resumed from fleet_last.pt equals the uninterrupted fleet, seed by seed
    (the same kernels on the same inputs: exactly)."""
    data = _dataset(tmp_path / "d")
    common = ["--seeds", "0,1", "--engine", "eager", "--batch-size", "2", "--epochs", "2"]
    train_main(_args(data, tmp_path / "straight", *common))
    train_main(_args(data, tmp_path / "killed", *common, "--stop-after", "1"))
    train_main(_args(data, tmp_path / "killed", *common, "--resume"))
    for s in (0, 1):
        a, b = (torch.load(tmp_path / f / f"seed{s}" / "last.pt", weights_only=True) for f in ("straight", "killed"))
        assert a["epoch"] == b["epoch"] == 2
        for k in a["state_dict"]:
            assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
        assert [e["loss"] for e in a["history"]] == [e["loss"] for e in b["history"]]
        assert torch.equal(a["rng"], b["rng"])


@pytest.mark.slow
@pytest.mark.training
def test_one_seed_is_driven_like_a_fleet_and_keeps_its_layout(tmp_path):
    """--engine and --save-every drive a single seed too (the same trainer); its folder holds only its run's files."""
    data = _dataset(tmp_path / "d")
    res = train_main(_args(data, tmp_path / "run", "--engine", "eager", "--save-every", "2", "--epochs", "3"))
    assert res["finished"] and res["engine"] == "eager" and res["best"]["epoch"] >= 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "curve.png", "last.pt", "log.json"]
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and len(last["history"]) == 3 and last["train_args"]["seeds"] is None


@pytest.mark.slow
@pytest.mark.training
def test_robust_recipe_with_ema_resumes_bit_identically(tmp_path):
    """--augment robust --ema: a run killed after epoch 1 and resumed equals the uninterrupted run (weights, EMA
    weights, losses); best.pt holds the EMA weights it was selected with."""
    data = _dataset(tmp_path / "d")
    common = ["--engine", "eager", "--batch-size", "2", "--epochs", "2", "--augment", "robust", "--ema", "0.9"]
    train_main(_args(data, tmp_path / "straight", *common))
    train_main(_args(data, tmp_path / "killed", *common, "--stop-after", "1"))
    train_main(_args(data, tmp_path / "killed", *common, "--resume"))
    a, b = (torch.load(tmp_path / f / "last.pt", weights_only=True) for f in ("straight", "killed"))
    for key in ("state_dict", "ema_state_dict"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    assert [e["loss"] for e in a["history"]] == [e["loss"] for e in b["history"]]
    assert a["train_args"]["augment"] == "robust" and a["train_args"]["ema"] == 0.9
    assert a["ema_updates"] == b["ema_updates"] == 4  # 4 training images, batches of 2, 2 epochs: one update a step
    best = torch.load(tmp_path / "straight" / "best.pt", weights_only=True)
    source = a["ema_state_dict"] if best["epoch"] == 2 else None
    if source is not None:
        assert all(torch.equal(best["state_dict"][k], source[k]) for k in source)
    assert any(not torch.equal(a["state_dict"][k], a["ema_state_dict"][k]) for k in a["state_dict"])


@pytest.mark.parametrize("extra,message", [
    (("--ema", "1.0"), r"--ema 1: give a decay in \[0, 1\)"),
    (("--ema", "nan"), r"--ema nan: give a decay in \[0, 1\)"),
])
def test_bad_ema_is_one_line(tmp_path, extra, message):
    data = _dataset(tmp_path / "d")
    with pytest.raises(SystemExit, match=message):
        train_main(_args(data, tmp_path / "run", "--epochs", "1", *extra))
    assert not (tmp_path / "run").exists()
