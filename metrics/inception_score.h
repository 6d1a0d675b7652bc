// Inception score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), p(y|x) the softmax of the
// network's logits and p(y) its mean over the split, computed on `splits` consecutive equal
// splits of the samples (the remainder of N / splits is dropped, as in the original code) and
// reported as the mean and population standard deviation over the splits.
//
// Every logit the network gives is a class: for pytorch-fid's Inception that is all 1008 outputs,
// as in the original TensorFlow implementation and torch-fidelity (whose "logits_unbiased" are the
// same 1008); implementations that slice the first 1000 give slightly different numbers.
#pragma once
#include <cstdint>
#include <vector>

namespace ddpm {

struct InceptionScore {
  double mean = 0, std = 0;
  int64_t splits = 0;
};

// logits [n, k] float32 row-major; needs n >= splits >= 1.
InceptionScore inception_score(const std::vector<float>& logits, int64_t n, int64_t k, int64_t splits = 10);

}  // namespace ddpm
