"""How the bundled weights (weights/) were made: preparing the faces, finalizing a run into
a bundled folder, regenerating the stored outputs the tests compare against. Run from the
project root as modules, e.g. ``python -m scripts.prepare_faces``. Not shipped in the wheel.
"""
