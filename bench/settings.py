"""Model settings shared by foryou and implicit in the benchmark (issue 5)."""

FACTORS = 64
ITERATIONS = 15
THREADS = 2
REGULARIZATION = 0.05
# foryou `confidence = ratio`: c = ALPHA * R (R = summed watch ratio of the pair, each
# event capped at 10, the pair at 10), preference 1. implicit reads C = alpha * value from
# its matrix, with the same R as the value: the same objective.
ALPHA = 2.0
SEED = 0
K = 10

# regularization_scaling = none: implicit's λ is one value for every user and item;
# tune = false: both engines fit the same hyper-parameters once (no hold-out search).
FORYOU_CREATE = (f"factors = {FACTORS}, iterations = {ITERATIONS}, threads = {THREADS}, "
                 f"confidence = ratio, alpha = {ALPHA:g}, regularization = {REGULARIZATION:g}, "
                 f"regularization_scaling = none, tune = false, seed = {SEED}")
