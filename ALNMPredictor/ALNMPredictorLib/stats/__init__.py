"""Statistics that give the same numbers as the R packages radiomics papers report from.

Every function takes array-likes and returns a small frozen dataclass, or a DataFrame for curves.
The names and fields are a public contract: renaming one breaks users' scripts (Testing/test_stats_*.py pin
them, with the R outputs they equal in Testing/R and Testing/fixtures).
"""

from ALNMPredictorLib.stats._checks import clopper_pearson  # noqa: F401 - the exact binomial CI, public
from ALNMPredictorLib.stats.agreement import *  # noqa: F403
from ALNMPredictorLib.stats.bootstrap import *  # noqa: F403
from ALNMPredictorLib.stats.calibration import *  # noqa: F403
from ALNMPredictorLib.stats.decision import *  # noqa: F403
from ALNMPredictorLib.stats.logistic import *  # noqa: F403
from ALNMPredictorLib.stats.reclassification import *  # noqa: F403
from ALNMPredictorLib.stats.roc import *  # noqa: F403
