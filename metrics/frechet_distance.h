// The Fréchet distance between two Gaussians (Dowson & Landau 1982), FID's formula
// (Heusel et al. 2017):
//   d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).
#pragma once
#include "metrics/feature_stats.h"

namespace ddpm {

// tr((S1 S2)^{1/2}) for symmetric positive semi-definite S1, S2 [n, n]: the sum of the square
// roots of the eigenvalues of S1^{1/2} S2 S1^{1/2}. See frechet_distance.cpp for why this equals
// pytorch-fid's trace(scipy.linalg.sqrtm(S1 @ S2)).
double trace_sqrt_product(const std::vector<double>& s1, const std::vector<double>& s2, int64_t n);

double frechet_distance(const GaussianStats& a, const GaussianStats& b);

}  // namespace ddpm
