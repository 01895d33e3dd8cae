"""Catalog administration (operators): titles, relations, display assets."""
