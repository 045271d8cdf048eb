"""Image transforms shared by inference, the training recipes (Training/) and fine-tuning (uqseg.finetune).

    augment.py   random affine matrices (rotation / isotropic scale / shift) in affine_grid's normalised frame, the
                 warp of images and points with them, and intensity jitter (gamma, contrast / brightness, noise)
    intensity.py the robust intensity normalisation of every model: the image's own 0.5–99.5 percentile range → 0..1
"""
