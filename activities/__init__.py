"""Side effects for the workflows: database writes and reads, adapter calls, the rule engine."""
