"""stable-baselines3 callbacks: the continual one-liner and the parts it is made of.

- :class:`ContinualCallback`: a named method, consolidated task-free (the one-liner);
- :class:`TaskShiftDetector`: a signal and a trigger, dispatching *settled* and *shift*;
- :class:`ConsolidationCallback`: the regulariser on ``model.policy``, consolidated on call;
- :class:`ResetExploration`: the shift action that raises ``log_std``;
- :class:`ContinualEvalCallback`: every task evaluated periodically, the success matrix.
"""

from continual.sb3.callback import ContinualCallback
from continual.sb3.consolidation import ConsolidationCallback
from continual.sb3.detector import TaskShiftDetector
from continual.sb3.evaluation import ContinualEvalCallback, InfoArrayLogger
from continual.sb3.shift_actions import ResetExploration, ShiftAction
from continual.sb3.signals import PLATEAU_DEFAULTS, SIGNALS

__all__ = [
    "PLATEAU_DEFAULTS",
    "SIGNALS",
    "ConsolidationCallback",
    "ContinualCallback",
    "ContinualEvalCallback",
    "InfoArrayLogger",
    "ResetExploration",
    "ShiftAction",
    "TaskShiftDetector",
]
