"""--device: the choice, the process-group backend that matches it, and the CPU path (no GPU on the test machine:
the CUDA run is skipped there)."""
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
    with pytest.raises(CompressError, match="unknown device 'mps'; choose one of: cpu, cuda, auto"):
        DistillConfig(device="mps")


def test_cli_flag():
    import argparse

    from compressor.distill.cli_args import add_arguments, from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert from_args(p.parse_args(["--student", "auto", "--device", "auto"])).device == "auto"
    assert from_args(p.parse_args(["--student", "auto"])).device == "cpu"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))])
def test_distils_on_the_device_and_hands_back_a_cpu_student(device, tiny_teacher, small_splits, cfg):
    out = distill(tiny_teacher, small_splits, cfg.replace(epochs=1, device=device, cache=False))
    assert out.device.startswith(device) and out.stages[0]["device"] == out.device
    assert all(p.device.type == "cpu" for p in out.student.parameters())
    assert all(p.device.type == "cpu" for p in tiny_teacher.module.parameters())
    assert dd.device().type == device
