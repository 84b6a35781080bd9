"""Tests of the in-run runtime (toolkit/runtime)."""
