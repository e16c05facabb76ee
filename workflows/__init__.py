"""One module per business flow.

A workflow module imports its models, activity definitions, the other flows it starts or signals and the shared
`steps` inside `workflow.unsafe.imports_passed_through()`. The sandbox imports a run's own module afresh for every run,
together with everything that module imports outside that block: when flows imported each other plainly, starting a
Visit re-ran the Bill, Prescription, Fulfilment and Refund modules and their `@workflow.defn` for every booking, half
of the worker's CPU in a booking rush. The run's own module is still isolated and restricted; the passed-through code
only names other flows or builds commands through `temporalio.workflow`, and the replay tests guard it like the rest.
"""
