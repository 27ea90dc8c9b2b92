"""SSH to a cluster's login node: endpoint resolution, host keys, authentication, the session."""
