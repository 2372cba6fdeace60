"""AutoML: search a training config's ``tune.space`` with Optuna, resumably and in parallel.

Optuna samples (TPE, random, NSGA-II), prunes (median, Hyperband, successive halving) and
stores the study; torchship turns each trial into a training run and its artifact, measures
speed objectives with the bench library, and writes the best trial's artifact to OUT/artifact.

Example:
    >>> from torchship.tune import parse_space
    >>> params, problems = parse_space({"optim.lr": {"log_uniform": [1e-4, 1e-1]}, "x": {"int": [4, 2]}})
    >>> [p.key for p in params], problems
    (['optim.lr'], ['tune.space.x: empty range [4, 2] (low must be below high)'])
"""

from torchship.tune.config import Objective, TuneConfig, TuneSpec, check_tune, load_tune
from torchship.tune.run import TuneError, TuneResult, run_search, tune
from torchship.tune.space import Param, parse_space

__all__ = [
    "Objective",
    "Param",
    "TuneConfig",
    "TuneError",
    "TuneResult",
    "TuneSpec",
    "check_tune",
    "load_tune",
    "parse_space",
    "run_search",
    "tune",
]
