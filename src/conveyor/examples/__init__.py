"""Bundled example projects and their seeded data generators."""
