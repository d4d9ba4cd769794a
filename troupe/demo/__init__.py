"""Scaffolding for the demos and the tests, kept off the runtime path (no step imports it).

troupe.demo.run    `make demo` / `make demo-real`: the whole pipeline with a summary and its targets
troupe.demo.tiny   `troupe tiny-model`: small models built here, so everything runs offline on a CPU
"""
