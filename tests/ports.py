"""The port helper of the tests: see benchmarks/ports.py, shared so that the benchmarks stay
runnable without the tests package."""

from benchmarks.ports import low_port, low_port_range

__all__ = ["low_port", "low_port_range"]
