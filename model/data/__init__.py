"""Data: datasets on disk and their splits (datasets.py), reading image and mask files (files.py), the data a
checkpoint was trained on (locate.py), training augmentation (augment.py; the robust recipe's photometric
part: photometric.py), data kept resident where the model trains (resident.py), seeded photo corruptions
(corruptions.py), synthetic test images (synthetic.py), the public datasets' download (download.py).
Importing the package imports no torch; augment.py, photometric.py and resident.py work on tensors."""
from model.data.datasets import (IMAGE_EXTS, MASK_SUFFIXES, SPLITS, Dataset, Sample, Skipped, detect_layout,  # noqa: F401
                                 deterministic_split, image_files, open_dataset, read_split_file)
from model.data.files import (EXIF_ORIENTATION, MAX_MEGAPIXELS, MAX_MEGAPIXELS_ENV, ORIENTATIONS, DataError,  # noqa: F401
                              load_arrays, load_mask, load_rgb, load_sample, max_megapixels)
