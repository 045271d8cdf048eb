"""Image transforms shared by the training recipes (Training/) and fine-tuning (uqseg.finetune).

    augment.py   random affine matrices (rotation / isotropic scale / shift) in affine_grid's normalised frame, the
                 warp of images and points with them, and intensity jitter (gamma, contrast / brightness, noise)
"""
