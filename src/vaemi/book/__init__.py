"""The book's tooling, above the science core: notebook parameters and their validation
(:mod:`~vaemi.book.params`), a chapter's numbers and claims (:mod:`~vaemi.book.results`), reading results and
published sweep records (:mod:`~vaemi.book.records`), the scorecard page (:mod:`~vaemi.book.scorecard`) and the
build (:mod:`~vaemi.book.build`; ``python -m vaemi.book build``)."""
