"""🤗 evaluate module for super-resolution metrics, per the project's evaluation protocol.

Load it offline by path: ``evaluate.load("evaluate_modules/sr_metrics")`` in the project's
checkout, or the copy an installed wheel ships in ``sr_models/sr_metrics`` (README.md beside
this file shows how). It is a thin wrapper: it reports every metric of
``sr_models.metric_registry`` (PSNR, SSIM and MS-SSIM on the BT.601 luma of uint8-rounded
images, ``crop_border`` pixels cut; docs/protocol.md), computed by ``sr_models.metrics``, so
results equal those of the rest of the toolkit.
"""

import datasets
import evaluate

# evaluate checks that these imports resolve before it loads the module, and names the
# missing package otherwise: install the project with its extra (`pip install ".[evaluate]"`).
from sr_models import metric_registry
from sr_models import metrics as srm


_DESCRIPTION = """\
The metrics of single-image super-resolution as published SR tables measure them (this
project's evaluation protocol, docs/protocol.md): images rounded to uint8, the Y channel of
ITU-R BT.601, `crop_border` pixels (the scale) cut on each side, a data range of 255; SSIM
and MS-SSIM with the 11x11 Gaussian window (sigma 1.5) on the "valid" region. Returns the
mean over the images of each metric of sr_models.metric_registry.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: super-resolved images; a list of PIL images (mode RGB or L), uint8
        numpy arrays (H, W, 3) or (H, W), or float torch tensors (3, H, W) in [0, 1];
        or one uint8 array (N, H, W, 3) / float tensor (N, 3, H, W).
    references: the ground-truth HR images, same count and sizes as `predictions`
        (crop HR to a multiple of the scale first: `sr_models.protocol.crop_to_multiple`).
    crop_border (int, default 4): pixels removed on each side before measuring;
        use the scale factor.
    y_channel (bool, default True): measure on the Y channel; False measures every
        channel (PSNR over all of them, SSIM and MS-SSIM averaged over them).
Returns:
    One float per metric key of sr_models.metric_registry (psnr in dB, ssim, ms_ssim): the
    mean over the images that have a value. An identical pair (PSNR inf) is left out of
    the PSNR mean; an image too small for a metric (MS-SSIM: 161 pixels a side after the
    crop) has no value of it. None when no image has one.
Examples:
    >>> import evaluate
    >>> sr_metrics = evaluate.load("evaluate_modules/sr_metrics")
    >>> results = sr_metrics.compute(predictions=[sr_img], references=[hr_img], crop_border=4)
    >>> sorted(results)
    ['ms_ssim', 'psnr', 'ssim']
"""

_CITATION = """\
@article{wang2004ssim,
  title={Image quality assessment: from error visibility to structural similarity},
  author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal={IEEE Transactions on Image Processing},
  volume={13},
  number={4},
  pages={600--612},
  year={2004}
}
@inproceedings{wang2003msssim,
  title={Multiscale structural similarity for image quality assessment},
  author={Wang, Zhou and Simoncelli, Eero P. and Bovik, Alan C.},
  booktitle={The Thirty-Seventh Asilomar Conference on Signals, Systems \\& Computers, 2003},
  volume={2},
  pages={1398--1402},
  year={2003}
}
"""


def _as_uint8_list(images):
    """Normalise inputs to uint8 arrays before evaluate stores them.

    evaluate encodes `datasets.Image()` features before `_compute` sees them. Given a PIL
    image it may store only the file path (re-read, EXIF-rotated, on decode) or re-encode
    it in its original format (lossy for JPEG). A uint8 array is always stored as
    lossless PNG, so converting first keeps the pixels exactly as given.
    """
    if images is None:
        return None
    return [srm.to_uint8_array(img) for img in images]


class SrMetrics(evaluate.Metric):
    """The metrics of the SR evaluation protocol (wraps sr_models.metric_registry)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://ece.uwaterloo.ca/~z70wang/research/ssim/",
                            "https://github.com/VainF/pytorch-msssim"],
        )

    # The docstrings are required: evaluate appends the inputs description to them.
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of SR images and their HR references (converted to uint8 first)."""
        super().add_batch(
            predictions=_as_uint8_list(predictions), references=_as_uint8_list(references), **kwargs
        )

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one SR image and its HR reference (converted to uint8 first)."""
        super().add(
            prediction=None if prediction is None else srm.to_uint8_array(prediction),
            reference=None if reference is None else srm.to_uint8_array(reference),
            **kwargs,
        )

    def _compute(self, predictions, references, crop_border=4, y_channel=True):
        if len(predictions) == 0:
            raise ValueError("sr_metrics needs at least one prediction/reference pair")
        values = {key: [] for key in metric_registry.KEYS}
        for i, (sr, hr) in enumerate(zip(predictions, references)):
            try:
                scores = metric_registry.score_pair(sr, hr, crop_border, y_channel=y_channel)
            except ValueError as err:
                raise ValueError(f"image pair {i}: {err}") from err
            for key, value in scores.items():
                values[key].append(value)
        return {key: metric_registry.mean(per_image) for key, per_image in values.items()}
