"""grokescape: grokking as noise-driven escape from metastable phases.

Simulates ensembles of deep linear networks trained by minibatch SGD with L2
regularisation in a parallel C++ core, with the exact per-mode theory beside it.
"""

from grokescape._config import show_config
from grokescape._version import __version__
from grokescape.data import Dataset, teacher_data
from grokescape.ensemble import Ensemble
from grokescape.history import History

__all__ = ["Dataset", "Ensemble", "History", "show_config", "teacher_data", "__version__"]
