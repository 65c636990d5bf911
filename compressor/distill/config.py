"""Distillation options: one frozen dataclass shared by CLI flags, YAML recipes and the Python API.

Importing this module must stay cheap (no torch): method names live in a Registry whose
entries are "module:Class" paths, imported only when a run builds its losses.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.checks import check_number, check_seed
from ..core.errors import CompressError
from ..core.registry import Registry, check_choice

METHODS: Registry[str] = Registry("distillation method")
METHODS.add("labels", "compressor.distill.methods:Labels")  # hard labels only: the supervised baseline
METHODS.add("kd", "compressor.distill.methods:KD")  # Hinton et al. 2015
METHODS.add("dkd", "compressor.distill.methods:DKD")  # Zhao et al. 2022
METHODS.add("hint", "compressor.distill.methods:Hint")  # FitNets, Romero et al. 2015
METHODS.add("crd", "compressor.distill.methods:CRD")  # Tian et al. 2019
METHODS.add("cosine", "compressor.distill.methods:Cosine")  # embeddings: 1 - cos to the teacher's
METHODS.add("mse", "compressor.distill.methods:MSE")  # regressions (and an embedding's magnitude)
METHODS.add("smooth_l1", "compressor.distill.methods:SmoothL1")  # regressions, robust to outlying values
METHODS.add("hidden", "compressor.distill.hidden:Hidden")  # encoder blocks' hidden states, DistilBERT/TinyBERT

# weights used when none are given: CRD's loss (InfoNCE both ways, ~2 log K at the start) would
# otherwise swamp the others; 0.2 keeps it the junior term, as its paper's beta = 0.8 does beside CE
DEFAULT_WEIGHTS = {"crd": 0.2}

ENSEMBLE_MEANS = ("arithmetic", "geometric")
RATIO_OF = ("params", "macs")
AUGMENTS = ("none", "shift")
STUDENT_INITS = ("teacher", "random")
# auto: cuda when present, then mps, else cpu (compressor.distill.distributed.choose_device)
DEVICES = ("cpu", "cuda", "mps", "auto")
# the student's forward and loss under torch.autocast (compressor.distill.runtime); the teacher's targets and
# validation stay float32. Whether the device runs one is checked when training starts (runtime.check_precision)
PRECISIONS = ("fp32", "bf16", "fp16")
LAYERS_PREFIX = "layers:"  # --student layers:K
# an upper bound that catches typos (a missing "e-"): AdamW moves every weight by about lr per step,
# so lr > 1 diverges
MAX_LR = 1.0


@dataclass(frozen=True)
class DistillConfig:
    student: str = "auto"  # "auto" (pruned from the teacher), "layers:K" (K of its encoder layers) or a model file
    ratio: float = 0.25  # --student auto: fraction of the teacher's parameters (or MACs) kept
    ratio_of: str = "params"
    student_init: str = "teacher"  # --student auto: start from the teacher's surviving weights, or "random"
    student_arch: str | None = None  # package.module:Class when the student file is a state_dict
    teachers: tuple[str, ...] = ()  # extra teacher files: with the main model, an ensemble
    ensemble_mean: str = "arithmetic"
    methods: tuple[str, ...] = ("kd",)
    weights: tuple[float, ...] = ()  # one per method; empty: DEFAULT_WEIGHTS, else 1 each
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the hard-label loss; (1 - alpha) goes to the distillation terms
    hints: tuple[str, ...] = ()  # "teacher_layer:student_layer"
    dkd_alpha: float = 1.0  # DKD target-class (TCKD) weight
    dkd_beta: float = 8.0  # DKD non-target-class (NCKD) weight
    crd_dim: int = 64
    crd_negatives: int = 256
    crd_temperature: float = 0.1
    crd_momentum: float = 0.5
    assistants: int = 0  # TAKD: teacher -> assistant(s) -> student
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    patience: int = 0  # early stopping after this many epochs without a better validation score; 0: off
    augment: str = "none"  # with augmentation the teacher runs online (no cache)
    unlabeled: str | None = None  # extra unlabelled data (folder or .npz), targets from the teacher only
    cache: bool = True  # cache teacher outputs on disk (only used without augmentation)
    cache_dir: str | None = None  # default: <edge-compress cache>/teacher-outputs
    checkpoint_dir: str | None = None  # default: .compress-runs/<run hash>
    resume: bool = False
    seed: int = 0
    device: str = "cpu"  # where training runs: cpu, cuda, mps, or auto
    precision: str = "fp32"  # fp32, bf16 or fp16 (autocast; fp16 with a GradScaler)
    grad_accum: int = 1  # optimizer steps every grad_accum batches: an effective batch of batch_size * grad_accum
    checkpoint_every: int = 0  # also checkpoint every this many optimizer steps (0: at the end of each epoch only)
    distill_output: str | None = None  # the output distilled, of a model with several (default: the first)
    # the student must keep this share of the teacher's validation accuracy, or reach this agreement (cosine,
    # mean IoU, explained variance) with it; fallbacks are tried on a miss (compressor/distill/budget.py); 0: off
    min_kept: float = 0.97

    def __post_init__(self) -> None:
        if not self.methods:
            raise CompressError("give at least one distillation method; choose from: " + ", ".join(METHODS.names()))
        for m in self.methods:
            METHODS.get(m)
        if len(set(self.methods)) != len(self.methods):
            raise CompressError(f"distillation methods repeat: {', '.join(self.methods)}; name each once")
        if self.weights and len(self.weights) != len(self.methods):
            raise CompressError(f"{len(self.weights)} weight(s) for {len(self.methods)} method(s); write "
                                "--method kd:1,dkd:0.5 (one weight per method)")
        for m, w in zip(self.methods, self.weights):
            check_number(f"--method {m} weight", w, 0, hint="e.g. --method kd:1,dkd:0.5")
        check_choice("ensemble mean", self.ensemble_mean, ENSEMBLE_MEANS)
        check_choice("ratio basis", self.ratio_of, RATIO_OF)
        check_choice("augmentation", self.augment, AUGMENTS)
        check_choice("student initialisation", self.student_init, STUDENT_INITS)
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        if not self.student:
            raise CompressError("--student must be 'auto', 'layers:K' or a model file")
        if layer_count(self.student) is not None and self.assistants:
            raise CompressError("--assistants steps down by channel pruning; use it with --student auto, not "
                                f"--student {self.student}")
        self._check_floats()
        for h in self.hints:
            t, sep, s = h.partition(":")
            if not sep or not t or not s:
                raise CompressError(f"--hint {h!r} must look like teacher_layer:student_layer")
        if "hint" in self.methods and not self.hints:
            raise CompressError("method 'hint' needs --hint teacher_layer:student_layer (a wrong name lists them); "
                                "for encoder blocks mapped automatically use --method kd,hidden")
        if self.hints and "hint" not in self.methods:
            raise CompressError("--hint given but method 'hint' is not selected; add it: --method kd,hint")
        for name in ("epochs", "batch_size", "grad_accum", "crd_dim", "crd_negatives"):
            if getattr(self, name) < 1:
                raise CompressError(f"{name} must be at least 1")
        if self.assistants < 0 or self.patience < 0 or self.checkpoint_every < 0:
            raise CompressError("--assistants, --patience and --checkpoint-every must be >= 0")
        check_seed(self.seed, "seed")

    def _check_floats(self) -> None:
        # NaN and Inf pass plain comparisons and would train a whole epoch into NaN weights: refuse them here
        check_number("--ratio", self.ratio, 0, 1, low_open=True, hint="the fraction of the teacher kept")
        check_number("--temperature", self.temperature, 0, low_open=True, hint="typical: 2 to 8")
        check_number("--alpha", self.alpha, 0, 1, hint="the weight of the hard-label loss")
        check_number("--min-kept", self.min_kept, 0, 1, hint="the share of the teacher's score kept; 0 turns it off")
        check_number("--lr", self.lr, 0, MAX_LR, low_open=True, hint="AdamW; typical: 1e-4 to 1e-2")
        check_number("weight_decay", self.weight_decay, 0, hint="AdamW; typical: 1e-4")
        check_number("dkd_alpha", self.dkd_alpha, 0, hint="DKD target-class weight; typical: 1")
        check_number("dkd_beta", self.dkd_beta, 0, hint="DKD non-target-class weight; typical: 8")
        check_number("crd_temperature", self.crd_temperature, 0, low_open=True, hint="typical: 0.1")
        check_number("crd_momentum", self.crd_momentum, 0, 1, high_open=True, hint="typical: 0.5")

    def method_weights(self) -> dict[str, float]:
        return dict(zip(self.methods, self.weights or tuple(DEFAULT_WEIGHTS.get(m, 1.0) for m in self.methods)))

    def replace(self, **changes) -> DistillConfig:
        return dataclasses.replace(self, **changes)


def layer_count(student: str) -> int | None:
    """'layers:3' -> 3 (keep 3 of the teacher's encoder layers); 'auto' or a file -> None."""
    if not student.startswith(LAYERS_PREFIX):
        return None
    text = student[len(LAYERS_PREFIX):]
    if not text.isdigit() or int(text) < 1:
        raise CompressError(f"--student {student!r}: write layers:K with K a positive whole number of encoder "
                            "layers to keep, e.g. layers:3")
    return int(text)


def parse_methods(text: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """'kd,dkd:0.5' -> (('kd', 'dkd'), (1.0, 0.5)); weights default to 1."""
    names, weights, any_weight = [], [], False
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, w = part.partition(":")
        try:
            weights.append(float(w) if sep else 1.0)
        except ValueError:
            raise CompressError(f"--method {part!r}: weight {w!r} is not a number; write e.g. kd:1,dkd:0.5") from None
        any_weight |= bool(sep)
        names.append(name.strip())
    return tuple(names), tuple(weights) if any_weight else ()
