"""Other people's landmark models, run side by side with poselive's for comparison only. Each is an optional
extra imported lazily; none is a run-time dependency."""
