"""Notebook tooling, apart from the science code: building the book (:mod:`.book`), validating a chapter's
parameters (:mod:`.params`) and collecting its numbers and claims (:mod:`.results`)."""
