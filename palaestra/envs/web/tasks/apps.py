"""Application-like task families: search, tabs, tables, dates, an inbox and a shop."""

from __future__ import annotations
