"""Monitoring of a node for an NMS: status and counts read from the HSM and the database
(`status`), SIGNET-MIB's layout (`mib`), SNMP notifications (`traps`), the pass_persist agent
snmpd runs (`agent`) and Prometheus metrics (`metrics`)."""
