"""MLflow tracking: experiments, tags and run reuse (:mod:`.runs`), figures (:mod:`.plots`)."""
