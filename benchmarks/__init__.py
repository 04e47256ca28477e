"""The comparison study and the performance benchmarks.

A package so that its scripts share one child-process helper (``child.py``), one machine
description (``machine.py``) and one peak-RSS reader (``peak_rss.py``). Run each script
from the project root as a module, e.g. ``python -m benchmarks.compare --hr faces/``.
Not shipped in the wheel.
"""
