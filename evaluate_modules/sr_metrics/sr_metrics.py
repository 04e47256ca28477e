"""🤗 evaluate module for super-resolution PSNR / SSIM, per the project's evaluation protocol.

Load it offline by path: ``evaluate.load("evaluate_modules/sr_metrics")`` in the project's
checkout, or the copy an installed wheel ships in ``sr_models/sr_metrics`` (README.md beside
this file shows how). It is a thin wrapper: every number comes from ``sr_models.metrics``
(Y channel of ITU-R BT.601 on uint8-rounded images, ``crop_border`` pixels cropped, PSNR
with data range 255, SSIM of Wang et al. with an 11x11 Gaussian window, sigma 1.5, "valid"
region), so results equal those of the rest of the toolkit.
"""

import datasets
import evaluate
import numpy as np

# evaluate checks that this import resolves before it loads the module, and names the
# missing package otherwise: install the project with its extra (`pip install ".[evaluate]"`).
from sr_models import metrics as srm


_DESCRIPTION = """\
PSNR and SSIM for single-image super-resolution, as used for published SR tables:
images rounded to uint8, Y channel of ITU-R BT.601 (Y = 16 + 65.481 R + 128.553 G +
24.966 B, RGB in [0, 1]), `crop_border` pixels (the scale) cropped on each side, PSNR
with data range 255, SSIM of Wang et al. (2004) with an 11x11 Gaussian window (sigma
1.5) over the "valid" region, C1 = (0.01*255)^2, C2 = (0.03*255)^2. Returns the mean
of the per-image values. Bicubic x4 on Set5 under this protocol: 28.42 dB / 0.8104.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: super-resolved images; a list of PIL images (mode RGB or L), uint8
        numpy arrays (H, W, 3) or (H, W), or float torch tensors (3, H, W) in [0, 1];
        or one uint8 array (N, H, W, 3) / float tensor (N, 3, H, W).
    references: the ground-truth HR images, same count and sizes as `predictions`
        (crop HR to a multiple of the scale first: `sr_models.metrics.crop_to_multiple`).
    crop_border (int, default 4): pixels removed on each side before measuring;
        use the scale factor.
    y_channel (bool, default True): measure on the Y channel; False measures RGB
        (PSNR over all channels, SSIM averaged over channels).
Returns:
    psnr (float): mean PSNR in dB over the images (inf if every pair is identical).
    ssim (float): mean SSIM over the images.
Examples:
    >>> import evaluate
    >>> sr_metrics = evaluate.load("evaluate_modules/sr_metrics")
    >>> results = sr_metrics.compute(predictions=[sr_img], references=[hr_img], crop_border=4)
    >>> sorted(results)
    ['psnr', 'ssim']
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
    """PSNR / SSIM of the SR evaluation protocol (wraps sr_models.metrics)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
            reference_urls=["https://ece.uwaterloo.ca/~z70wang/research/ssim/"],
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
        psnrs, ssims = [], []
        for i, (sr, hr) in enumerate(zip(predictions, references)):
            try:
                psnrs.append(srm.psnr(sr, hr, crop_border, y_channel=y_channel))
                ssims.append(srm.ssim(sr, hr, crop_border, y_channel=y_channel))
            except ValueError as err:
                raise ValueError(f"image pair {i}: {err}") from err
        return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}
