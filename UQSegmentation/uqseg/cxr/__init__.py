"""Chest X-ray lungs and heart as landmark rings with per-node uncertainty: the variational HybridGNet
(Gaggion et al., IEEE TMI 2023; Cosarinsky et al., "CheXmask-U", MIDL 2026).

graph.py (rings, Laplacians, pool/unpool) · chebconv.py · hybridgnet.py (encoder → μ, log σ² → graph decoder) ·
preprocess.py (square padding, resize, intensity, coordinate frames) · inference.py (encode once, N samples in one
batch) · rasterise.py (filled rings) · landmarks_io.py (shared JSON) · preview.py (nodes coloured by std).
"""
