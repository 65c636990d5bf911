import copy

import pytest
import torch

from compressor.distill.config import DistillConfig
from compressor.distill.methods import DistillModule, Setup, build
from compressor.distill.targets import online
from compressor.distill.trainer import Checkpoints, TrainData, shift, train
from compressor.models import DigitsMLP


class Stop(Exception):
    pass


def make(cfg, small_splits, teacher):
    torch.manual_seed(0)
    student = DigitsMLP(hidden=16)
    tr = small_splits.train
    dm = DistillModule(student, build(Setup(cfg, teacher, student, torch.zeros(1, 1, 8, 8), len(tr))), cfg, True)
    data = TrainData(tr.x, tr.y, small_splits.val.x, small_splits.val.y)
    return dm, data, online([teacher], dm.teacher_features, cfg.temperature, cfg.ensemble_mean)


@pytest.mark.parametrize("methods", [("kd",), ("kd", "crd")])
def test_resume_after_interruption_equals_uninterrupted(tiny_teacher, small_splits, tmp_path, methods):
    cfg = DistillConfig(methods=methods, epochs=4, crd_negatives=16, augment="shift")
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    full = train(dm, data, cfg, tfn)

    def stop_after_second(epoch, _score):
        if epoch == 1:
            raise Stop

    ck = Checkpoints(tmp_path, "fp")
    dm2, _, _ = make(cfg, small_splits, tiny_teacher.module)
    torch.manual_seed(123)  # a resumed process starts from other random states: the checkpoint must restore them
    with pytest.raises(Stop):
        train(dm2, data, cfg, tfn, checkpoints=ck, on_epoch=stop_after_second)
    dm3, _, _ = make(cfg, small_splits, tiny_teacher.module)
    torch.manual_seed(456)
    resumed = train(dm3, data, cfg, tfn, checkpoints=ck, resume=True)
    assert resumed.resumed_from == 0  # epoch 1 raised before its checkpoint: epoch 0 was the last saved
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for k, v in dm.state_dict().items():
        assert torch.equal(v, dm3.state_dict()[k]), k
    assert (tmp_path / "best.pt").exists()


def test_checkpoint_of_other_options_is_refused(tiny_teacher, small_splits, tmp_path):
    from compressor.core.errors import CompressError

    cfg = DistillConfig(epochs=1)
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    train(dm, data, cfg, tfn, checkpoints=Checkpoints(tmp_path, "a"))
    with pytest.raises(CompressError, match="other options or inputs"):
        train(copy.deepcopy(dm), data, cfg, tfn, checkpoints=Checkpoints(tmp_path, "b"), resume=True)


def test_early_stopping_and_best_weights(tiny_teacher, small_splits):
    cfg = DistillConfig(epochs=6, patience=2, lr=1e-9)  # nothing improves after the first epoch
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    res = train(dm, data, cfg, tfn)
    assert len(res.history) == 3 and res.best_epoch == 0


def test_shift_moves_pixels_within_bounds():
    x = torch.zeros(16, 1, 8, 8)
    x[:, :, 4, 4] = 1
    y = shift(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.all(y.sum((1, 2, 3)) == 1)
    pos = y[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 8, pos % 8
    assert rows.min() >= 3 and rows.max() <= 5 and cols.min() >= 3 and cols.max() <= 5
    assert len(set(pos.tolist())) > 1


def test_equal_validation_accuracy_keeps_the_lower_loss(tiny_teacher, small_splits, monkeypatch):
    from compressor.distill import trainer

    scores = iter([(0.9, 1.0), (0.9, 0.5), (0.9, 0.7), (0.8, 0.1)])
    monkeypatch.setattr(trainer, "_score", lambda *a: next(scores))
    cfg = DistillConfig(epochs=4)
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)
    res = train(dm, data, cfg, tfn)
    assert (res.best_epoch, res.best_score, res.best_loss) == (1, 0.9, 0.5)
    assert [h["val_loss"] for h in res.history] == [1.0, 0.5, 0.7, 0.1]


def test_checkpoint_from_before_the_loss_tie_break_still_resumes(tiny_teacher, small_splits, tmp_path):
    cfg = DistillConfig(epochs=2)
    dm, data, tfn = make(cfg, small_splits, tiny_teacher.module)

    def stop_after_first(epoch, _score):
        if epoch == 1:
            raise Stop

    ck = Checkpoints(tmp_path, "fp")
    with pytest.raises(Stop):
        train(dm, data, cfg, tfn, checkpoints=ck, on_epoch=stop_after_first)
    st = torch.load(tmp_path / "last.pt", weights_only=False)
    del st["best_loss"]  # what an older version wrote
    torch.save(st, tmp_path / "last.pt")
    dm2, _, _ = make(cfg, small_splits, tiny_teacher.module)
    res = train(dm2, data, cfg, tfn, checkpoints=ck, resume=True)
    assert res.resumed_from == 0 and len(res.history) == 2
