"""The dask side: :class:`~.core.FargateCluster`, its tasks ' lifetimes and worker replacement."""
