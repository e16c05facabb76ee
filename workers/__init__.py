"""Process entry points: the Temporal worker, the dev stack launcher, the demo seed and the `qihuang` CLI."""
