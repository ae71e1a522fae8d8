"""Widget task families: links, text entry, drop-downs, check boxes, multi-field forms, scrolling."""

from __future__ import annotations
