"""A tiny application packaged by strata's python-app example."""
