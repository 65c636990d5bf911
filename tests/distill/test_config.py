import argparse

import pytest

from compressor.config import RunConfig, from_mapping
from compressor.core.errors import CompressError
from compressor.distill import recipe
from compressor.distill.cli_args import add_arguments, from_args
from compressor.distill.config import DistillConfig, parse_methods


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    add_arguments(p)
    return p.parse_args(list(argv))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"methods": ("kd", "nope")}, "choose one of: labels, kd, dkd, hint, crd"),
    ({"methods": ()}, "at least one"),
    ({"methods": ("kd", "kd")}, "repeat"),
    ({"methods": ("kd",), "weights": (1.0, 2.0)}, "one weight per method"),
    ({"ensemble_mean": "harmonic"}, "arithmetic, geometric"),
    ({"ratio": 0.0}, "(0, 1]"),
    ({"temperature": 0}, "> 0"),
    ({"alpha": 1.5}, "[0, 1]"),
    ({"hints": ("conv1",), "methods": ("hint",)}, "teacher_layer:student_layer"),
    ({"methods": ("hint",)}, "needs --hint"),
    ({"hints": ("a:b",)}, "add it"),
    ({"augment": "mixup"}, "none, shift"),
    ({"epochs": 0}, "at least 1"),
])
def test_bad_options_name_the_fix(kwargs, fragment):
    with pytest.raises(CompressError, match=None) as e:
        DistillConfig(**kwargs)
    assert fragment in str(e.value)


def test_parse_methods():
    assert parse_methods("kd") == (("kd",), ())
    assert parse_methods("kd:1, dkd:0.5") == (("kd", "dkd"), (1.0, 0.5))
    assert parse_methods("kd,crd:2") == (("kd", "crd"), (1.0, 2.0))
    with pytest.raises(CompressError, match="not a number"):
        parse_methods("kd:x")
    assert DistillConfig(methods=("kd", "dkd"), weights=(1.0, 0.5)).method_weights() == {"kd": 1.0, "dkd": 0.5}


def test_recipe_maps_onto_the_dataclass(tmp_path):
    f = tmp_path / "distill.yaml"
    f.write_text("student: auto\nratio: 0.3\nmethods: [kd, dkd]\nweights: [1, 0.5]\ntemperature: 3\n"
                 "hints: []\nepochs: 7\n")
    cfg = recipe.load(f)
    assert cfg == DistillConfig(ratio=0.3, methods=("kd", "dkd"), weights=(1.0, 0.5), temperature=3.0, epochs=7)
    assert recipe.parse(recipe.dump(cfg)) == cfg
    assert recipe.parse("distill:\n  epochs: 3\n").epochs == 3
    run = from_mapping(RunConfig, {"model": "demo", "distill": {"methods": "kd,crd", "epochs": 2}})
    assert run.distill.methods == ("kd", "crd") and run.distill.epochs == 2


@pytest.mark.parametrize("text, fragment", [
    ("epochz: 3\n", "unknown option(s) epochz"),
    ("epochs: [1, 2]\n", "expected int"),
    ("methods: [kd, bogus]\n", "unknown distillation method 'bogus'"),
    ("student: !!python/object/apply:os.system ['echo pwned']\n", "would build a Python object"),
    ("epochs: 3\n  bad: indent\n", "not valid YAML"),
    ("- kd\n", "expected a mapping"),
])
def test_bad_recipes_never_run_code(tmp_path, text, fragment, capfd):
    f = tmp_path / "r.yaml"
    f.write_text(text)
    with pytest.raises(CompressError) as e:
        recipe.load(f)
    assert fragment in str(e.value)
    assert "pwned" not in capfd.readouterr().out
    with pytest.raises(CompressError, match="not found"):
        recipe.load(tmp_path / "missing.yaml")


def test_flags_make_the_config_and_override_a_recipe(tmp_path):
    assert from_args(parse()) is None
    cfg = from_args(parse("--student", "auto", "--ratio", "0.2", "--method", "kd:1,dkd:0.5", "--temperature", "2",
                          "--alpha", "0.3", "--epochs", "4", "--assistants", "1", "--ensemble-mean", "geometric",
                          "--resume", "--no-teacher-cache", "--seed", "3"), ["t2.pt"])
    assert (cfg.ratio, cfg.methods, cfg.weights, cfg.temperature, cfg.alpha, cfg.epochs, cfg.assistants,
            cfg.ensemble_mean, cfg.resume, cfg.cache, cfg.seed, cfg.teachers) == (
        0.2, ("kd", "dkd"), (1.0, 0.5), 2.0, 0.3, 4, 1, "geometric", True, False, 3, ("t2.pt",))
    f = tmp_path / "r.yaml"
    f.write_text("epochs: 9\ntemperature: 6\n")
    cfg = from_args(parse("--recipe", str(f), "--epochs", "2"))
    assert (cfg.epochs, cfg.temperature) == (2, 6.0)
    cfg = from_args(parse("--student", "auto", "--hint", "features.0:features.0"))
    assert cfg.methods == ("kd", "hint") and cfg.hints == ("features.0:features.0",)


def test_distillation_flags_without_a_student_are_an_error():
    with pytest.raises(CompressError, match="--epochs, --method only apply to distillation"):
        from_args(parse("--epochs", "3", "--method", "kd"))
    with pytest.raises(CompressError, match="several teachers"):
        from_args(parse(), ["t2.pt"])


def test_recipe_seed_holds_unless_seed_is_typed(tmp_path):
    """The real `compress` parser: --seed's default must not override a recipe's seed: key. A recipe's top-level
    seed: is what --seed is (the data split's and training's); distill: {seed: N} sets training's alone."""
    from compressor.cli import config_from_args, run_parser

    f = tmp_path / "r.yaml"
    f.write_text("seed: 7\nepochs: 3\n")
    run = config_from_args(run_parser().parse_args(["t.pt", "--recipe", str(f)]), "t.pt")
    assert run.distill.seed == 7 and run.distill.epochs == 3
    assert run.seed == 7  # as --seed 7
    run = config_from_args(run_parser().parse_args(["t.pt", "--recipe", str(f), "--seed", "3"]), "t.pt")
    assert run.distill.seed == 3 and run.seed == 3
    run = config_from_args(run_parser().parse_args(["t.pt", "--student", "auto"]), "t.pt")
    assert run.distill.seed == 0 and run.seed == 0
    f.write_text("distill:\n  seed: 7\n  epochs: 3\n")
    run = config_from_args(run_parser().parse_args(["t.pt", "--recipe", str(f)]), "t.pt")
    assert run.distill.seed == 7 and run.seed == 0  # the data split keeps its default seed
