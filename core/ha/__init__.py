"""High availability: leases, failover groups, health monitoring (internal)."""
