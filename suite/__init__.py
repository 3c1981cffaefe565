"""Benchmark and hardware portability suite. Importing it imports no ML framework."""
__version__ = "0.1.0"
