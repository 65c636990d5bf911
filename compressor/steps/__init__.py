"""The pipeline's steps, one module each: load (and data), distill, export, quantize, bench, report.

Every step is a function `step(s: State) -> None` that reads and extends the run's `State`
(compressor/steps/state.py); compressor/pipeline.py lists them in order. A step calls down into
its library (compressor.distill, exporters, compressor.quantize, benchmarks), never into another step's
loop: what two steps share (checking and keeping an artifact) is a function in export.py.
"""
