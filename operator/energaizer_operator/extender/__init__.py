"""``energaizer extender``: kube-scheduler's HTTP extender (prioritize + filter) scoring GPU types by
predicted energy. :mod:`.scoring` decides, :mod:`.node_cache` maps node names to GPU products,
:mod:`.server` speaks HTTP."""
