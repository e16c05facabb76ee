"""One Protocol per external system, each with a `sandbox` implementation and room for real-protocol ones.

Implementations register under the `qihuang.adapters` entry-point group as `<protocol>.<name>`; settings pick one
per protocol (see `registry.load_adapter`).
"""
