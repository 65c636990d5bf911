"""Distillation: teacher(s) -> student, by named, combinable loss methods; resumable and distributed.

Kept light on import (no torch here): `compressor.config` imports the options from
`compressor.distill.config`. The engine lives in `compressor.distill.engine` (`distill()`).
"""
