"""--device: the choice, the process-group backend that matches it, and the CPU path (no GPU on the test machine:
the CUDA and MPS runs are skipped there)."""
import pytest
import torch

from compressor.core.errors import CompressError
from compressor.distill import distributed as dd
from compressor.distill.config import DistillConfig
from compressor.distill.engine import distill


def test_device_choice_and_backend():
    assert dd.choose_device("auto", cuda_available=True) == "cuda"
    assert dd.choose_device("auto", cuda_available=False) == "cpu"
    assert dd.choose_device("cpu", cuda_available=True) == "cpu"  # CUDA present, CPU asked: CPU
    with pytest.raises(CompressError, match="--device cuda: this machine has no CUDA device"):
        dd.choose_device("cuda", cuda_available=False)
    # NCCL only with CUDA tensors: a CUDA machine training on the CPU joins with gloo (issue 15)
    assert dd.backend("cpu") == "gloo" and dd.backend("cuda") == "nccl"
    with pytest.raises(CompressError, match="unknown device 'tpu'; choose one of: cpu, cuda, mps, auto"):
        DistillConfig(device="tpu")


def test_mps_choice(monkeypatch):
    assert dd.choose_device("auto", cuda_available=False, mps_available=True) == "mps"
    assert dd.choose_device("auto", cuda_available=True, mps_available=True) == "cuda"  # cuda first
    assert dd.choose_device("mps", cuda_available=False, mps_available=True) == "mps"
    with pytest.raises(CompressError, match=r"^--device mps: this machine has no MPS \(Apple GPU\) device"):
        dd.choose_device("mps", cuda_available=False, mps_available=False)
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun: no process-group backend moves MPS tensors
    assert dd.choose_device("auto", cuda_available=False, mps_available=True) == "cpu"
    with pytest.raises(CompressError, match="--device mps trains in one process"):
        dd.choose_device("mps", cuda_available=False, mps_available=True)
    assert DistillConfig(device="mps").device == "mps"  # a valid name: whether it exists is checked at the run


def test_cli_flag():
    import argparse

    from compressor.distill.cli_args import add_arguments, from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert from_args(p.parse_args(["--student", "auto", "--device", "auto"])).device == "auto"
    assert from_args(p.parse_args(["--student", "auto"])).device == "cpu"
    assert from_args(p.parse_args(["--student", "auto", "--device", "mps"])).device == "mps"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))])
def test_distils_on_the_device_and_hands_back_a_cpu_student(device, tiny_teacher, small_splits, cfg):
    out = distill(tiny_teacher, small_splits, cfg.replace(epochs=1, device=device, cache=False))
    assert out.device.startswith(device) and out.stages[0]["device"] == out.device
    assert all(p.device.type == "cpu" for p in out.student.parameters())
    assert all(p.device.type == "cpu" for p in tiny_teacher.module.parameters())
    assert dd.device().type == device


GPU = [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
       pytest.param("mps", marks=pytest.mark.skipif(not dd.has_mps(), reason="no MPS device"))]


@pytest.mark.parametrize("device", GPU)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_path_with_mixed_precision_and_accumulation(device, precision, tiny_teacher, small_splits, cfg):
    """Not run on the test machine (no GPU): autocast, GradScaler (fp16) and accumulation on the device, step
    checkpoints and a mid-epoch resume (the GPU's own random state restored) to the same figures."""
    from compressor.distill import runtime

    try:
        runtime.check_precision(precision, torch.device(device))
    except CompressError as e:
        pytest.skip(str(e))  # e.g. bf16 on a GPU without it: the one-line refusal is the behaviour
    c = cfg.replace(epochs=2, device=device, precision=precision, grad_accum=2, batch_size=32, checkpoint_every=2,
                    cache=False, augment="shift")
    out = distill(tiny_teacher, small_splits, c)
    assert out.device.startswith(device) and all(p.device.type == "cpu" for p in out.student.parameters())
    assert all(p.dtype == torch.float32 for p in out.student.parameters())
    assert out.check["kept"] > 0.5 and out.stages[0]["steps_per_epoch"] == 6
