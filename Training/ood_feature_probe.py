"""Probe: do the ct-organs network's own features separate unknown anatomy from the training patient? (issue 18;
the experiment behind the README's "Tried first and measured" for the OOD map, not used by the product)

    python Training/ood_feature_probe.py RUN CACHE OUT.json
    (RUN e.g. runs/i18/AtoB_mixture_of_bases, trained on patient A only; CACHE from cache_ct_cases.py)

Six taps of the DynUNet (bottleneck output, bottleneck / two encoder levels / input block before their last
instance norm, one decoder level), average-pooled onto the bottleneck cell grid of every sliding window of the
deterministic pass. Fitted on A's body cells (HU > -500); scored on B (all body cells, the cells of B's pelvic bone
masks, the rest), the two thorax crops of ../shared/data/ct_totalseg and the MR-like remaps of A and B
(Testing/ct_ood_checks.py). Per tap and input, the share of cells above the 99th percentile of A's own scores, for:
(1) Mahalanobis distance to one Gaussian with an in-sample threshold, (2) the same with a threshold cross-fitted
over A's two z-halves, (3) 10-NN cosine distance with the cross-fitted threshold (Sun et al. 2022).
"""
import sys, json, time
from pathlib import Path
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'Training')); sys.path.insert(0, str(REPO / 'Testing'))
import numpy as np, torch, torch.nn.functional as F
from ct_runs import load_run
from evaluate_ct_lopo import cached_image
torch.set_num_threads(2)
RUN, CACHE, OUT = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
model, cfg = load_run(RUN, 'cpu')
prep = cfg['preprocessing']; organs = cfg['organs']
cell = tuple(int(np.prod([s[a] for s in model.strides])) for a in range(3))  # voxels per bottleneck cell
TAPS = {'bottleneck': model.backbone.bottleneck, 'bott_prenorm': model.backbone.bottleneck.conv2,
        'down1_prenorm': model.backbone.downsamples[1].conv2, 'down0_prenorm': model.backbone.downsamples[0].conv2,
        'in_prenorm': model.backbone.input_block.conv2, 'up1': model.backbone.upsamples[1]}

def features(image):
    """The taps of every sliding window of the task's deterministic pass (predict_ct's grid, padding and windows):
    (work_hu, [(window offset (z, y, x), bottleneck cell grid size, [(tap, (D, cz, cy, cx) pooled features)])])."""
    import math

    from monai.inferers import sliding_window_inference
    from uqseg.ct.inference import DEFAULT_ROI, NOISE_TILE, _window
    from uqseg.ct.preprocess import normalise_hu, pad_to_multiple, to_working_grid, working_grid

    grid = working_grid(image, prep['spacing_mm'])
    work_hu = to_working_grid(image, grid)
    x = normalise_hu(work_hu, prep['hu_window'])
    multiple = tuple(math.lcm(m, t) for m, t in zip(model.size_multiple, NOISE_TILE))
    padded, _ = pad_to_multiple(x, multiple)
    roi, overlap = _window(padded.shape, DEFAULT_ROI, multiple)
    cur, rows = {}, []
    hs = [mod.register_forward_hook(lambda m, i, o, k=k: cur.__setitem__(k, o)) for k, mod in TAPS.items()]

    def predictor(window, coords):
        offset = tuple(int(s.start) for s in coords[0][2:])
        model(window)
        size = tuple(s // c for s, c in zip(window.shape[2:], cell))
        rows.append((offset, size, [(k, F.adaptive_avg_pool3d(cur[k].float(), size)[0].numpy()) for k in TAPS]))
        return torch.zeros((1, 1) + tuple(window.shape[2:]))

    try:
        with torch.inference_mode():
            sliding_window_inference(torch.from_numpy(padded)[None, None].float(), roi, 1, predictor,
                                     overlap=overlap, mode="gaussian", with_coord=True)
    finally:
        for h in hs:
            h.remove()
    return work_hu, rows

def cellmask(vol, offset, size, fill=0.0):
    """mean of vol over each cell of the window at offset (working grid)"""
    win = np.full(tuple(n * c for n, c in zip(size, cell)), fill, np.float32)
    src = tuple(slice(o, min(o + s, n)) for o, s, n in zip(offset, win.shape, vol.shape))
    part = vol[src]
    win[tuple(slice(0, p) for p in part.shape)] = part
    return F.avg_pool3d(torch.from_numpy(win)[None, None], cell, cell)[0, 0].numpy()

def gather(image, extra=None):
    work_hu, rows = features(image)
    body = (work_hu > -500).astype(np.float32)
    out = {k: [] for k in TAPS}; bodyc = []; extc = []; zc = []
    for offset, size, feats in rows:
        b = cellmask(body, offset, size).ravel() > 0.5
        bodyc.append(b)
        if extra is not None:
            extc.append(cellmask(extra.astype(np.float32), offset, size).ravel() > 0.5)
        z = (offset[0] // cell[0] + np.arange(size[0]))[:, None, None] * np.ones(size)
        zc.append(z.ravel())
        for k, a in feats:
            out[k].append(a.reshape(a.shape[0], -1).T)
    res = {k: np.concatenate(v) for k, v in out.items()}
    res['_body'] = np.concatenate(bodyc); res['_z'] = np.concatenate(zc)
    if extra is not None: res['_extra'] = np.concatenate(extc)
    return res

def maha_fit(f):
    mu = f.mean(0); c = np.cov((f - mu).T) ; d = f.shape[1]
    c = 0.95 * c + 0.05 * np.trace(c) / d * np.eye(d)
    return mu, np.linalg.inv(c)
def maha(f, fit):
    mu, P = fit; x = f - mu; return np.sqrt(np.einsum('nd,de,ne->n', x, P, x))
def knn(f, bank, k=10):
    a = torch.from_numpy(f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-8)).float()
    b = torch.from_numpy(bank / (np.linalg.norm(bank, axis=1, keepdims=True) + 1e-8)).float()
    out = []
    for i in range(0, len(a), 4096):
        d = torch.cdist(a[i:i+4096], b)
        out.append(d.topk(k, largest=False).values[:, -1].numpy())
    return np.concatenate(out)

t0 = time.time()
A, labA, _ = cached_image(CACHE / 'A.npz')
B, labB, pelB = cached_image(CACHE / 'B.npz')
from ct_ood_checks import mr_like, THORAX
from uqseg.io.load import load_image
ga = gather(A); print('A', time.time() - t0, flush=True)
gb = gather(B, extra=pelB > 0); print('B', time.time() - t0, flush=True)
tests = {'B_all': (gb, gb['_body']), 'B_pelvis': (gb, gb['_body'] & gb['_extra']),
         'B_nonpelvis': (gb, gb['_body'] & ~gb['_extra'])}
for name, p in THORAX.items():
    g = gather(load_image(p, ndim=3)); tests[name] = (g, g['_body']); print(name, time.time() - t0, flush=True)
gm = gather(mr_like(A)); tests['A_mr'] = (gm, gm['_body'])
gm2 = gather(mr_like(B)); tests['B_mr'] = (gm2, gm2['_body'])
print('features', time.time() - t0, flush=True)
bodyA = ga['_body']; zA = ga['_z']
res = {}
for k in TAPS:
    fA = ga[k][bodyA]
    # Mahalanobis (one Gaussian), in-sample threshold like the shipped one
    fit = maha_fit(fA); thr = np.percentile(maha(fA, fit), 99)
    # Mahalanobis with z-half cross-fit calibration
    zs = zA[bodyA]; half = zs < np.median(zs)
    cal = np.concatenate([maha(fA[~half], maha_fit(fA[half])), maha(fA[half], maha_fit(fA[~half]))])
    thr_x = np.percentile(cal, 99)
    # kNN (Sun et al. 2022) with z-half cross-fit calibration
    calk = np.concatenate([knn(fA[~half], fA[half]), knn(fA[half], fA[~half])])
    thr_k = np.percentile(calk, 99)
    row = {}
    for t, (g, m) in tests.items():
        f = g[k][m]
        s = maha(f, fit); sk = knn(f, fA)
        row[t] = (round(float((s > thr).mean()), 3), round(float((s > thr_x).mean()), 3), round(float((sk > thr_k).mean()), 3))
    res[k] = row
    print(k, fA.shape, json.dumps(row), flush=True)
OUT.write_text(json.dumps(res, indent=1))
