"""Read-model queries behind the routers, one small function per question."""
