"""One module per chapter (its parameter schema, helpers, figures and the paper's tables), plus what the chapters
share: the set-up of a chapter (:mod:`~vaemi.chapters.common`), figures (:mod:`~vaemi.chapters.figures`) and
reports that combine several measures (:mod:`~vaemi.chapters.reports`). Notebooks import from here."""
