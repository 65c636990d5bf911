"""Research studies (distillation and quantization quality), run by hand: `python -m studies.NAME`.

They use the product's public functions and are tested (tests/studies/), but they are not part of the
installed package: `compress bench` does not need them.
"""
