"""Distillation options: one frozen dataclass shared by CLI flags, YAML recipes and the Python API.

Importing this module must stay cheap (no torch): method names live in a Registry whose
entries are "module:Class" paths, imported only when a run builds its losses.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.errors import CompressError
from ..core.registry import Registry, check_choice

METHODS: Registry[str] = Registry("distillation method")
METHODS.add("labels", "compressor.distill.methods:Labels")  # hard labels only: the supervised baseline
METHODS.add("kd", "compressor.distill.methods:KD")  # Hinton et al. 2015
METHODS.add("dkd", "compressor.distill.methods:DKD")  # Zhao et al. 2022
METHODS.add("hint", "compressor.distill.methods:Hint")  # FitNets, Romero et al. 2015
METHODS.add("crd", "compressor.distill.methods:CRD")  # Tian et al. 2019

# weights used when none are given: CRD's loss (InfoNCE both ways, ~2 log K at the start) would
# otherwise swamp the others; 0.2 keeps it the junior term, as its paper's beta = 0.8 does beside CE
DEFAULT_WEIGHTS = {"crd": 0.2}

ENSEMBLE_MEANS = ("arithmetic", "geometric")
RATIO_OF = ("params", "macs")
AUGMENTS = ("none", "shift")
STUDENT_INITS = ("teacher", "random")


@dataclass(frozen=True)
class DistillConfig:
    student: str = "auto"  # "auto" (pruned from the teacher) or a model file
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
        if any(w < 0 for w in self.weights):
            raise CompressError("method weights must be >= 0")
        check_choice("ensemble mean", self.ensemble_mean, ENSEMBLE_MEANS)
        check_choice("ratio basis", self.ratio_of, RATIO_OF)
        check_choice("augmentation", self.augment, AUGMENTS)
        check_choice("student initialisation", self.student_init, STUDENT_INITS)
        if not self.student:
            raise CompressError("--student must be 'auto' or a model file")
        if not 0.0 < self.ratio <= 1.0:
            raise CompressError(f"--ratio {self.ratio} must be in (0, 1]: the fraction of the teacher kept")
        if self.temperature <= 0:
            raise CompressError(f"--temperature {self.temperature} must be > 0 (typical: 2 to 8)")
        if not 0.0 <= self.alpha <= 1.0:
            raise CompressError(f"--alpha {self.alpha} must be in [0, 1] (the weight of the hard-label loss)")
        for h in self.hints:
            t, sep, s = h.partition(":")
            if not sep or not t or not s:
                raise CompressError(f"--hint {h!r} must look like teacher_layer:student_layer")
        if "hint" in self.methods and not self.hints:
            raise CompressError("method 'hint' needs --hint teacher_layer:student_layer (a wrong name lists them)")
        if self.hints and "hint" not in self.methods:
            raise CompressError("--hint given but method 'hint' is not selected; add it: --method kd,hint")
        for name in ("epochs", "batch_size", "crd_dim", "crd_negatives"):
            if getattr(self, name) < 1:
                raise CompressError(f"{name} must be at least 1")
        if self.assistants < 0 or self.patience < 0:
            raise CompressError("--assistants and --patience must be >= 0")
        if self.lr <= 0 or self.crd_temperature <= 0 or not 0 <= self.crd_momentum < 1:
            raise CompressError("lr and crd_temperature must be > 0, crd_momentum in [0, 1)")

    def method_weights(self) -> dict[str, float]:
        return dict(zip(self.methods, self.weights or tuple(DEFAULT_WEIGHTS.get(m, 1.0) for m in self.methods)))

    def replace(self, **changes) -> DistillConfig:
        return dataclasses.replace(self, **changes)


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
