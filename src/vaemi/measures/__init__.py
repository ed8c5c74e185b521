"""What is measured on trained models and on exact toys: ELBO terms, importance-weighted likelihoods and code
statistics (:mod:`~vaemi.measures.metrics`), bounds on mutual information (:mod:`~vaemi.measures.mi`), exact
information identities on finite joints (:mod:`~vaemi.measures.information`), entropy estimators for continuous
codes (:mod:`~vaemi.measures.entropy`), FID (:mod:`~vaemi.measures.fid`), representation quality under corruption
(:mod:`~vaemi.measures.representation`), Parzen-window likelihoods (:mod:`~vaemi.measures.parzen`), the variance
loss (:mod:`~vaemi.measures.variance`) and models in which everything is exact (:mod:`~vaemi.measures.toy`)."""
