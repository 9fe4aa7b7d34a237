"""The appliance: states and transitions, and the orchestrator that ties the parts together."""
