"""One module per business flow. Deterministic code only: no I/O, no clocks but `workflow.now()`, no env reads."""
