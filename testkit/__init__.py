"""Helpers shared by the tests and the benchmarks: a real HTTP fake of the labeling API,
starting the product's processes, signing webhooks as a product does. Not part of the app."""
