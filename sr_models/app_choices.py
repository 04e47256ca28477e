"""The app's vocabulary: what the input is (which weights) and what to do with it (mode).

Plain names, shared by the page, the handler and the examples; what each kind runs is
:mod:`sr_models.app_models`.
"""

#: What the input is: a clean (bicubic) downscale, as in the literature's benchmarks, or a
#: real photo (blur, sensor noise, JPEG).
CLEAN_DOWNSCALE, REAL_PHOTO = "Clean downscale", "Real photo"
#: Upscale super-resolves the upload; Benchmark treats it as the original (HR), degrades it
#: and scores every method against it.
UPSCALE_MODE, BENCHMARK_MODE = "Upscale", "Benchmark"
MODES = (UPSCALE_MODE, BENCHMARK_MODE)
