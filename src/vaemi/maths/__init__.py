"""Closed forms and estimators on tensors, with no model and no data: Gaussian and categorical formulas
(:mod:`~vaemi.maths.distributions`), the VIMAE paper's priors (:mod:`~vaemi.maths.priors`), the kernel MMD
and its tests (:mod:`~vaemi.maths.mmd`), and score-function / pathwise gradient estimators
(:mod:`~vaemi.maths.gradients`). The floor of the package: it imports nothing of vaemi."""
