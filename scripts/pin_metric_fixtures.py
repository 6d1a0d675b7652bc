#!/usr/bin/env python3
"""Pins the sample-quality metric fixtures that tests/test_metrics_*.cpp compare against.

Feature sets come from NumPy's seeded generator, rounded to float32 and stored in the fixture (the
C++ tests read those numbers, not the generator). Expected values:
  fid        pytorch-fid's own calculate_frechet_distance (pytorch_fid.fid_score), on
             np.mean / np.cov(rowvar=False) of the stored features, in float64;
  kid        the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018), written
             here from the formula, on the whole sets (one "subset" of all 200: permutation-invariant);
  precision, recall   Kynkaenniemi et al. 2019 with k = 3, written here from the definition;
  inception score     exp(E KL(p(y|x) || p(y))) over 10 consecutive splits, from the definition.
Also writes numpy_stored.npz / numpy_deflated.npz (np.savez / np.savez_compressed) for the C++
reader, and checks that NumPy reads cpp_written.npz (written by the C++ writer, test
"metrics: npz writer output is byte-stable", with DDPM_PIN_FIXTURES=1) as the arrays that test writes.

Needs numpy, scipy and pytorch-fid (with torch):
  apt-get install python3-torch python3-torchvision python3-scipy python3-numpy python3-pil
  /usr/bin/python3 -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install --no-deps pytorch-fid
  /tmp/venv/bin/python scripts/pin_metric_fixtures.py
"""
import json
import os

import numpy as np
from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "metrics")
N, D, K_CLASSES = 200, 16, 10


def features():
    rng = np.random.default_rng(20240613)
    a = rng.standard_normal((N, D))
    # b: another Gaussian, shifted, rescaled and correlated through a random mixing matrix.
    mix = np.eye(D) + 0.3 * rng.standard_normal((D, D))
    b = 0.8 * rng.standard_normal((N, D)) @ mix + 0.25
    logits = 3.0 * rng.standard_normal((N, K_CLASSES))
    return a.astype(np.float32), b.astype(np.float32), logits.astype(np.float32)


def kid_full(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / (m * m))


def squared_distances(p, q):
    p, q = p.astype(np.float64), q.astype(np.float64)
    return ((p[:, None, :] - q[None, :, :]) ** 2).sum(-1)


def precision_recall(real, fake, k=3):
    def radii(s):
        dist = squared_distances(s, s)
        return np.sort(dist, axis=1)[:, k]  # column 0 is the point itself
    def covered(queries, centres):
        return float(np.mean((squared_distances(queries, centres) <= radii(centres)[None, :]).any(axis=1)))
    return covered(fake, real), covered(real, fake)


def inception_score(logits, splits=10):
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    per = len(p) // splits
    scores = []
    for s in range(splits):
        part = p[s * per:(s + 1) * per]
        py = part.mean(axis=0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def cpp_written_arrays():
    # The same formulas as the C++ test "metrics: npz writer output is byte-stable".
    mu = np.array([0.5 * i - 1 for i in range(5)], dtype=np.float64)
    sigma = np.array([[(i * 5 + j) / 7.0 for j in range(5)] for i in range(5)], dtype=np.float64)
    feats = np.array([[0.25 * (i * 4 + j) for j in range(4)] for i in range(3)], dtype=np.float32)
    return {"mu": mu, "sigma": sigma, "features": feats}


def main():
    os.makedirs(OUT, exist_ok=True)
    a, b, logits = features()
    ad, bd = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = ad.mean(axis=0), bd.mean(axis=0)
    sigma_a, sigma_b = np.cov(ad, rowvar=False), np.cov(bd, rowvar=False)
    fid = float(calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b))
    precision, recall = precision_recall(a, b)
    is_mean, is_std = inception_score(logits)
    fixture = {
        "generator": "numpy.random.default_rng(20240613), see scripts/pin_metric_fixtures.py",
        "a": a.tolist(), "b": b.tolist(), "logits": logits.tolist(),
        "mu_a": mu_a.tolist(), "sigma_a": sigma_a.ravel().tolist(),
        "fid": fid, "fid_self": float(calculate_frechet_distance(mu_a, sigma_a, mu_a, sigma_a)),
        "kid": float(kid_full(a, b)),
        "precision": precision, "recall": recall,
        "is_mean": is_mean, "is_std": is_std,
    }
    with open(os.path.join(OUT, "feature_sets.json"), "w") as f:
        json.dump(fixture, f)
    np.savez(os.path.join(OUT, "numpy_stored.npz"), mu=mu_a, sigma=sigma_a)
    np.savez_compressed(os.path.join(OUT, "numpy_deflated.npz"), mu=mu_b, sigma=sigma_b, features=b)
    print(f"fid {fid:.9g}  kid {fixture['kid']:.9g}  precision {precision}  recall {recall}  "
          f"IS {is_mean:.9g} +- {is_std:.9g}")

    cpp = os.path.join(OUT, "cpp_written.npz")
    if os.path.exists(cpp):
        loaded = np.load(cpp)
        for name, want in cpp_written_arrays().items():
            got = loaded[name]
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), name
        # pytorch-fid's own loader of precomputed statistics (the path `python -m pytorch_fid a.npz b.npz` takes).
        mu, sigma = compute_statistics_of_path(cpp, None, 1, 5, "cpu")
        assert np.array_equal(mu, cpp_written_arrays()["mu"]) and np.array_equal(sigma, cpp_written_arrays()["sigma"])
        print("numpy and pytorch-fid read cpp_written.npz as the C++ test's arrays: ok")
    else:
        print("cpp_written.npz missing: run `DDPM_PIN_FIXTURES=1 build/tests/ddpm_tests \"[npz]\"` and re-run this")


if __name__ == "__main__":
    main()
