"""Task balancing behind one interface: `LossWeighting`, registered by name.

- `base`: the interface (`total = sum_t w_t L_t + regularizer`, or a
  gradient-level `balance`), the registry and `get_loss_weighting`;
- `loss_level`: `"fixed"`, `"uncertainty"`, `"dwa"`;
- `gradient_level`: `"gradnorm"`, `"pcgrad"`, `"cagrad"`.

The strategy modules import the interface, never each other; importing this
package registers them all. See docs/balancing.md.
"""

from aesthal.training.balancing.base import (
    STRATEGIES,
    LossWeighting,
    get_loss_weighting,
    register,
)
from aesthal.training.balancing.gradient_level import (
    CAGrad,
    GradientBalancing,
    GradNorm,
    PCGrad,
    first_replica_only,
)
from aesthal.training.balancing.loss_level import (
    DynamicWeightAverage,
    FixedWeighting,
    UncertaintyWeighting,
    dwa_weights,
)

__all__ = [
    "STRATEGIES",
    "CAGrad",
    "DynamicWeightAverage",
    "FixedWeighting",
    "GradNorm",
    "GradientBalancing",
    "LossWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "dwa_weights",
    "first_replica_only",
    "get_loss_weighting",
    "register",
]
