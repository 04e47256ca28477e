"""The Hugging Face Space entry point (``app_file: app.py`` in README.md's front matter).

The app itself is ``sr_models/app.py``, so that an installed wheel has it too
(``sr-models app`` or ``python -m sr_models.app``). Run ``python app.py`` here.
"""

from sr_models.app import demo, main

__all__ = ["demo"]  # Gradio's reload mode (``gradio app.py``) looks for it here

if __name__ == "__main__":
    main()
