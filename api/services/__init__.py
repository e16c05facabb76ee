"""What the flow routers do besides parsing and answering: atomic holds, starting and messaging workflows."""
